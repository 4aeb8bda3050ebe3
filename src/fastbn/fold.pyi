"""Static types of fastbn.fold (src/fastbn/fold.py).

The runtime code validates every argument at run time; this stub is the static contract: the
folded weight and bias come back in the dtype of ``weight`` (float16, float32 or float64; a
bfloat16 weight, whose scalar type has no NumPy stub, is ``NDArray[Any]``).  Documentation: the
.py docstrings.
"""
from typing import Any, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeVar

from fastbn._typing import _Real

__all__ = ["fold_batch_norm"]

_W = TypeVar("_W", bound=np.float16 | np.float32 | np.float64)

def fold_batch_norm(
    weight: NDArray[_W],
    bias: ArrayLike | None,
    running_mean: ArrayLike,
    running_var: ArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    eps: _Real = 1e-05,
    axis: SupportsIndex = 0,
) -> tuple[NDArray[_W], NDArray[_W]]: ...
