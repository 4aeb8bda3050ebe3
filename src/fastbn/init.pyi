"""Static types of fastbn.init (src/fastbn/init.py).

The runtime code validates every argument at run time; this stub is the static contract.  Each
initializer has the same four overloads, in this order:

1. ``dtype`` float32 (the default) -> ``NDArray[numpy.float32]``;
2. ``dtype`` float64 (``numpy.float64``, ``float``, ``"float64"``...) -> ``NDArray[numpy.float64]``;
3. ``out=`` an array -> that array's type (``out`` is filled and returned; any ``dtype``);
4. any other ``dtype`` -> ``NDArray[numpy.floating[Any]]`` (the runtime also accepts float16
   and bfloat16, ``ml_dtypes``; nothing else).

The first overload of each set carries ``# type: ignore[overload-overlap]``: mypy counts a
class deriving from both ``numpy.float32`` and ``numpy.float64`` as possible, so the float32 and
float64 overloads "overlap"; no such array exists (numpy's own stubs ignore the same error).

Documentation: the .py docstrings.
"""
from typing import Any, Literal, SupportsIndex, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray
from typing_extensions import TypeAlias

from fastbn._typing import (_FanMode, _Float, _Float32Codes, _Float64Codes, _Nonlinearity, _Real,
                            _RNG, _ShapeLike)

_Array32: TypeAlias = NDArray[np.float32]
_Array64: TypeAlias = NDArray[np.float64]
_ArrayF: TypeAlias = NDArray[np.floating[Any]]
_VSMode: TypeAlias = Literal["fan_in", "fan_out", "fan_avg"]
_Distribution: TypeAlias = Literal["truncated_normal", "normal", "untruncated_normal", "uniform"]

__all__ = [
    "compute_fans", "calculate_gain", "zeros", "ones", "constant", "uniform", "normal",
    "truncated_normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal", "variance_scaling", "orthogonal", "xavier_uniform",
    "xavier_normal", "kaiming_uniform", "kaiming_normal",
]

TRUNCATION_STD: float

def compute_fans(
    shape: _ShapeLike, *, in_axis: SupportsIndex = -2, out_axis: SupportsIndex = -1
) -> tuple[int, int]: ...
def calculate_gain(nonlinearity: _Nonlinearity, param: _Real | None = None) -> float: ...

@overload
def zeros(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, *, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def zeros(
    shape: _ShapeLike, *, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def zeros(
    shape: _ShapeLike, *, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def zeros(
    shape: _ShapeLike, *, dtype: DTypeLike = ..., rng: _RNG = None, out: None = None
) -> _ArrayF: ...

@overload
def ones(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, *, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def ones(
    shape: _ShapeLike, *, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def ones(
    shape: _ShapeLike, *, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def ones(
    shape: _ShapeLike, *, dtype: DTypeLike = ..., rng: _RNG = None, out: None = None
) -> _ArrayF: ...

@overload
def constant(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, value: _Real, *, dtype: _Float32Codes = ..., rng: _RNG = None,
    out: None = None
) -> _Array32: ...
@overload
def constant(
    shape: _ShapeLike, value: _Real, *, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def constant(
    shape: _ShapeLike, value: _Real, *, dtype: DTypeLike = ..., rng: _RNG = None,
    out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def constant(
    shape: _ShapeLike, value: _Real, *, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def uniform(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, low: _Real = 0.0, high: _Real = 1.0, *, dtype: _Float32Codes = ...,
    rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def uniform(
    shape: _ShapeLike, low: _Real = 0.0, high: _Real = 1.0, *, dtype: _Float64Codes,
    rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def uniform(
    shape: _ShapeLike, low: _Real = 0.0, high: _Real = 1.0, *, dtype: DTypeLike = ...,
    rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def uniform(
    shape: _ShapeLike, low: _Real = 0.0, high: _Real = 1.0, *, dtype: DTypeLike = ...,
    rng: _RNG = None, out: None = None
) -> _ArrayF: ...

@overload
def normal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, *, dtype: _Float32Codes = ...,
    rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def normal(
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, *, dtype: _Float64Codes,
    rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def normal(
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, *, dtype: DTypeLike = ...,
    rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def normal(
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, *, dtype: DTypeLike = ...,
    rng: _RNG = None, out: None = None
) -> _ArrayF: ...

@overload
def truncated_normal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, a: _Real = -2.0, b: _Real = 2.0, *,
    dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def truncated_normal(
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, a: _Real = -2.0, b: _Real = 2.0, *,
    dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def truncated_normal(
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, a: _Real = -2.0, b: _Real = 2.0, *,
    dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def truncated_normal(
    shape: _ShapeLike, mean: _Real = 0.0, std: _Real = 1.0, a: _Real = -2.0, b: _Real = 2.0, *,
    dtype: DTypeLike = ..., rng: _RNG = None, out: None = None
) -> _ArrayF: ...

@overload
def glorot_uniform(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def glorot_uniform(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def glorot_uniform(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def glorot_uniform(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def glorot_normal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def glorot_normal(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def glorot_normal(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def glorot_normal(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def he_uniform(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def he_uniform(
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def he_uniform(
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def he_uniform(
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def he_normal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def he_normal(
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def he_normal(
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def he_normal(
    shape: _ShapeLike, a: _Real = 0.0, mode: _FanMode = "fan_in",
    nonlinearity: _Nonlinearity = "relu", *, gain: _Real | None = None, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def lecun_uniform(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def lecun_uniform(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def lecun_uniform(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def lecun_uniform(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def lecun_normal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def lecun_normal(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def lecun_normal(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def lecun_normal(
    shape: _ShapeLike, gain: _Real = 1.0, *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def variance_scaling(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, scale: _Real = 1.0, mode: _VSMode = "fan_in",
    distribution: _Distribution = "truncated_normal", *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def variance_scaling(
    shape: _ShapeLike, scale: _Real = 1.0, mode: _VSMode = "fan_in",
    distribution: _Distribution = "truncated_normal", *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: _Float64Codes, rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def variance_scaling(
    shape: _ShapeLike, scale: _Real = 1.0, mode: _VSMode = "fan_in",
    distribution: _Distribution = "truncated_normal", *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def variance_scaling(
    shape: _ShapeLike, scale: _Real = 1.0, mode: _VSMode = "fan_in",
    distribution: _Distribution = "truncated_normal", *, in_axis: SupportsIndex = -2,
    out_axis: SupportsIndex = -1, dtype: DTypeLike = ..., rng: _RNG = None,
    out: None = None
) -> _ArrayF: ...

@overload
def orthogonal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, gain: _Real = 1.0, *, out_axis: SupportsIndex = -1,
    dtype: _Float32Codes = ..., rng: _RNG = None, out: None = None
) -> _Array32: ...
@overload
def orthogonal(
    shape: _ShapeLike, gain: _Real = 1.0, *, out_axis: SupportsIndex = -1, dtype: _Float64Codes,
    rng: _RNG = None, out: None = None
) -> _Array64: ...
@overload
def orthogonal(
    shape: _ShapeLike, gain: _Real = 1.0, *, out_axis: SupportsIndex = -1, dtype: DTypeLike = ...,
    rng: _RNG = None, out: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def orthogonal(
    shape: _ShapeLike, gain: _Real = 1.0, *, out_axis: SupportsIndex = -1, dtype: DTypeLike = ...,
    rng: _RNG = None, out: None = None
) -> _ArrayF: ...
xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal
