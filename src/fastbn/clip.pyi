"""Static types of fastbn.clip (src/fastbn/clip.py).

The runtime code validates every argument at run time; this stub is the static contract:
``grads`` is one floating ndarray or an iterable of them; the norms are Python floats;
:func:`clip_by_norm` returns the clipped array in the dtype of ``grad`` (float16, float32 or
float64; a bfloat16 array, whose scalar type has no NumPy stub, is ``NDArray[Any]``).  Documentation: the .py
docstrings.
"""
import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypeVar

from fastbn._typing import _Grads, _Real

# The dtypes clip_by_norm returns as given: float16 too (bfloat16 arrays are NDArray[Any]).
_G = TypeVar("_G", bound=np.float16 | np.float32 | np.float64)

__all__ = ["global_norm", "clip_grad_norm", "clip_grad_value", "clip_by_norm"]

def global_norm(grads: _Grads, norm_type: _Real = 2.0) -> float: ...
def clip_grad_norm(
    grads: _Grads, max_norm: _Real, *, norm_type: _Real = 2.0, error_if_nonfinite: bool = False
) -> float: ...
def clip_grad_value(grads: _Grads, clip_value: _Real) -> None: ...
def clip_by_norm(
    grad: NDArray[_G], max_norm: _Real, *, out: NDArray[_G] | None = None
) -> NDArray[_G]: ...
