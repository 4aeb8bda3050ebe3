"""Static types of fastbn.norm (src/fastbn/norm.py).

The runtime code validates every argument; this stub is the static contract: an ndarray of
float32 or float64 in gives results of that dtype; other floating data gives
``numpy.floating[Any]``.  Documentation: the .py docstrings.
"""
from typing import Any, Sequence, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbn._typing import _Float, _FloatArrayLike, _Real
from typing_extensions import TypeAlias

__all__ = ["layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "group_norm",
           "group_norm_backward", "instance_norm", "instance_norm_backward"]

_Axes: TypeAlias = SupportsIndex | Sequence[SupportsIndex]

@overload
def layer_norm(
    x: NDArray[_Float],
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    eps: _Real = 1e-05,
    out: NDArray[_Float] | None = None,
    relu: bool = False,
    residual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float], NDArray[_Float]]: ...
@overload
def layer_norm(
    x: _FloatArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    eps: _Real = 1e-05,
    out: NDArray[np.floating[Any]] | None = None,
    relu: bool = False,
    residual: _FloatArrayLike | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
@overload
def layer_norm_backward(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    out: NDArray[_Float] | None = None,
    y: NDArray[_Float] | None = None,
    dresidual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float], NDArray[_Float]]: ...
@overload
def layer_norm_backward(
    dy: _FloatArrayLike,
    x: _FloatArrayLike,
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    out: NDArray[np.floating[Any]] | None = None,
    y: _FloatArrayLike | None = None,
    dresidual: NDArray[np.floating[Any]] | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
@overload
def rms_norm(
    x: NDArray[_Float],
    gamma: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    eps: _Real | None = 1e-06,
    out: NDArray[_Float] | None = None,
    relu: bool = False,
    residual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float]]: ...
@overload
def rms_norm(
    x: _FloatArrayLike,
    gamma: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    eps: _Real | None = 1e-06,
    out: NDArray[np.floating[Any]] | None = None,
    relu: bool = False,
    residual: _FloatArrayLike | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
@overload
def rms_norm_backward(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    invrms: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    out: NDArray[_Float] | None = None,
    y: NDArray[_Float] | None = None,
    dresidual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float]]: ...
@overload
def rms_norm_backward(
    dy: _FloatArrayLike,
    x: _FloatArrayLike,
    invrms: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    axis: _Axes = -1,
    out: NDArray[np.floating[Any]] | None = None,
    y: _FloatArrayLike | None = None,
    dresidual: NDArray[np.floating[Any]] | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
@overload
def group_norm(
    x: NDArray[_Float],
    num_groups: SupportsIndex,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    out: NDArray[_Float] | None = None,
    relu: bool = False,
    residual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float], NDArray[_Float]]: ...
@overload
def group_norm(
    x: _FloatArrayLike,
    num_groups: SupportsIndex,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    out: NDArray[np.floating[Any]] | None = None,
    relu: bool = False,
    residual: _FloatArrayLike | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
@overload
def group_norm_backward(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    mean: ArrayLike,
    invstd: ArrayLike,
    num_groups: SupportsIndex,
    gamma: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[_Float] | None = None,
    y: NDArray[_Float] | None = None,
    dresidual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float], NDArray[_Float]]: ...
@overload
def group_norm_backward(
    dy: _FloatArrayLike,
    x: _FloatArrayLike,
    mean: ArrayLike,
    invstd: ArrayLike,
    num_groups: SupportsIndex,
    gamma: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[np.floating[Any]] | None = None,
    y: _FloatArrayLike | None = None,
    dresidual: NDArray[np.floating[Any]] | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
@overload
def instance_norm(
    x: NDArray[_Float],
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    out: NDArray[_Float] | None = None,
    relu: bool = False,
    residual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float], NDArray[_Float]]: ...
@overload
def instance_norm(
    x: _FloatArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    out: NDArray[np.floating[Any]] | None = None,
    relu: bool = False,
    residual: _FloatArrayLike | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
@overload
def instance_norm_backward(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[_Float] | None = None,
    y: NDArray[_Float] | None = None,
    dresidual: NDArray[_Float] | None = None,
) -> tuple[NDArray[_Float], NDArray[_Float], NDArray[_Float]]: ...
@overload
def instance_norm_backward(
    dy: _FloatArrayLike,
    x: _FloatArrayLike,
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[np.floating[Any]] | None = None,
    y: _FloatArrayLike | None = None,
    dresidual: NDArray[np.floating[Any]] | None = None,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...
