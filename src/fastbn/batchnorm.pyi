"""Static types of fastbn.batchnorm (src/fastbn/batchnorm.py).

The runtime code validates every argument at run time; this stub is the static contract: an
ndarray of float32 or float64 in gives results of that dtype; other floating data (nested lists,
objects with ``__array__``) gives ``numpy.floating[Any]``.  Documentation: the .py docstrings.
"""
from typing import Any, Generic, NamedTuple, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbn._typing import _Float, _FloatArrayLike, _FloatT, _Real

__all__ = ["batch_norm_train", "batch_norm_infer", "batch_norm_backward", "BatchNormResult",
    "BatchNormGrads"]

class BatchNormResult(NamedTuple, Generic[_FloatT]):
    y: NDArray[_FloatT]
    mean: NDArray[_FloatT]
    invstd: NDArray[_FloatT]

class BatchNormGrads(NamedTuple, Generic[_FloatT]):
    dx: NDArray[_FloatT]
    dgamma: NDArray[_FloatT]
    dbeta: NDArray[_FloatT]

@overload
def batch_norm_train(
    x: NDArray[_Float],
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    running_mean: NDArray[_Float] | None = None,
    running_var: NDArray[_Float] | None = None,
    momentum: _Real = 0.1,
    out: NDArray[_Float] | None = None,
    relu: bool = False,
    residual: NDArray[_Float] | None = None,
) -> BatchNormResult[_Float]: ...
@overload
def batch_norm_train(
    x: _FloatArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    running_mean: NDArray[np.floating[Any]] | None = None,
    running_var: NDArray[np.floating[Any]] | None = None,
    momentum: _Real = 0.1,
    out: NDArray[np.floating[Any]] | None = None,
    relu: bool = False,
    residual: _FloatArrayLike | None = None,
) -> BatchNormResult[np.floating[Any]]: ...

@overload
def batch_norm_infer(
    x: NDArray[_Float],
    running_mean: ArrayLike,
    running_var: ArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    out: NDArray[_Float] | None = None,
    relu: bool = False,
    residual: NDArray[_Float] | None = None,
) -> NDArray[_Float]: ...
@overload
def batch_norm_infer(
    x: _FloatArrayLike,
    running_mean: ArrayLike,
    running_var: ArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    out: NDArray[np.floating[Any]] | None = None,
    relu: bool = False,
    residual: _FloatArrayLike | None = None,
) -> NDArray[np.floating[Any]]: ...

@overload
def batch_norm_backward(
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
) -> BatchNormGrads[_Float]: ...
@overload
def batch_norm_backward(
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
) -> BatchNormGrads[np.floating[Any]]: ...
