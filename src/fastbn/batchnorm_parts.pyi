"""Static types of fastbn.batchnorm_parts (src/fastbn/batchnorm_parts.py).

Statistics and gradient sums are float64 arrays of one value per channel; ``y`` and ``dx`` have
the dtype of ``x`` (``numpy.floating[Any]`` for other floating data).  Documentation: the .py
docstrings.
"""
from typing import Any, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbn._typing import _Float, _FloatArrayLike, _Real

__all__ = ["batch_norm_stats", "merge_stats", "batch_norm_apply", "update_running_stats",
    "batch_norm_backward_reduce", "batch_norm_backward_apply"]

_F64 = NDArray[np.float64]

def batch_norm_stats(
    x: NDArray[np.floating[Any]] | _FloatArrayLike, *, axis: SupportsIndex = 1
) -> tuple[_F64, _F64, _F64]: ...
def merge_stats(counts: ArrayLike, means: ArrayLike, m2s: ArrayLike) -> tuple[_F64, _F64, _F64]: ...
@overload
def batch_norm_apply(
    x: NDArray[_Float],
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[_Float] | None = None,
) -> NDArray[_Float]: ...
@overload
def batch_norm_apply(
    x: _FloatArrayLike,
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[np.floating[Any]] | None = None,
) -> NDArray[np.floating[Any]]: ...
def update_running_stats(
    running_mean: NDArray[np.floating[Any]] | None,
    running_var: NDArray[np.floating[Any]] | None,
    count: _Real | ArrayLike,
    mean: ArrayLike,
    m2: ArrayLike,
    *,
    momentum: _Real = 0.1,
) -> None: ...
def batch_norm_backward_reduce(
    dy: NDArray[np.floating[Any]] | _FloatArrayLike,
    x: NDArray[np.floating[Any]] | _FloatArrayLike,
    mean: ArrayLike,
    invstd: ArrayLike,
    *,
    axis: SupportsIndex = 1,
) -> tuple[_F64, _F64]: ...
@overload
def batch_norm_backward_apply(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None,
    sum_dy: ArrayLike,
    sum_dy_xhat: ArrayLike,
    count: _Real | ArrayLike,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[_Float] | None = None,
) -> NDArray[_Float]: ...
@overload
def batch_norm_backward_apply(
    dy: _FloatArrayLike,
    x: _FloatArrayLike,
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None,
    sum_dy: ArrayLike,
    sum_dy_xhat: ArrayLike,
    count: _Real | ArrayLike,
    *,
    axis: SupportsIndex = 1,
    out: NDArray[np.floating[Any]] | None = None,
) -> NDArray[np.floating[Any]]: ...
