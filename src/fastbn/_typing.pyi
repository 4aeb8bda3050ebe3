"""Type aliases shared by the stubs of fastbn (stub-only: there is no runtime module).

The runtime code validates every argument (TypeError/ValueError naming it); these aliases state
the same contract statically.  Private: import them only in ``.pyi`` files.
"""
from typing import Any, Iterable, Literal, Protocol, Sequence, SupportsIndex, Union

import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypeAlias, TypeVar

# The dtype of an array the kernels take and return: float32 or float64.
_Float = TypeVar("_Float", bound=np.float32 | np.float64)
# The same for generic classes, so that a bare ``BatchNorm`` or ``BatchNormResult`` annotation
# means "of float32 or float64" (PEP 696 default) instead of a missing type parameter.
_FloatT = TypeVar("_FloatT", bound=np.float32 | np.float64, default=np.floating[Any])

class _SupportsFloatArray(Protocol):
    """An ndarray of a floating dtype, or an object that converts to one (``__array__``)."""
    def __array__(self) -> np.ndarray[Any, np.dtype[np.floating[Any]]]: ...

# Data the batch-norm functions convert with ``numpy.asarray``: a floating array, or nested
# sequences of floats at least 2 deep (x has a batch and a channel axis).  Written out to a fixed
# depth: numpy's recursive ``ArrayLike`` also admits ``str``, which the runtime rejects.
_FloatArrayLike: TypeAlias = Union[
    _SupportsFloatArray,
    Sequence[Sequence[float]],
    Sequence[Sequence[Sequence[float]]],
    Sequence[Sequence[Sequence[Sequence[float]]]],
    Sequence[Sequence[Sequence[Sequence[Sequence[float]]]]],
]

# A real number: a Python float or int, or a NumPy floating or integer scalar (numbers.Real).
_Real: TypeAlias = float | np.floating[Any] | np.integer[Any]

# One gradient array or any iterable of them (a list, a tuple, a generator).
_Grads: TypeAlias = NDArray[np.floating[Any]] | Iterable[NDArray[np.floating[Any]]]

# A weight's shape: an integer (1-d) or a sequence of integers.
_ShapeLike: TypeAlias = SupportsIndex | Sequence[SupportsIndex]

# ``rng`` of the initializers: None (fresh entropy), an int seed, or a Generator.
_RNG: TypeAlias = None | int | np.integer[Any] | np.random.Generator

# ``dtype=`` spellings that name float32 or float64 exactly (numpy.dtype(...) of them).
_Float32Codes: TypeAlias = (
    type[np.float32] | np.dtype[np.float32] | Literal["float32", "f4", "<f4", "single"]
)
_Float64Codes: TypeAlias = (
    type[np.float64] | type[float] | np.dtype[np.float64]
    | Literal["float64", "f8", "<f8", "d", "double", "float"]
)

_Nonlinearity: TypeAlias = Literal[
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu",
]
_FanMode: TypeAlias = Literal["fan_in", "fan_out"]
