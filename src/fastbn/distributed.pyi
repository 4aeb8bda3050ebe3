"""Static types of fastbn.distributed (src/fastbn/distributed.py).

``comm`` is an ``mpi4py.MPI.Comm`` (typed as any object with ``Allgather`` and ``Get_size``:
mpi4py is optional and imported lazily).  Documentation: the .py docstrings.
"""
from typing import Any, Protocol, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastbn._typing import _Float, _Float32Codes, _Float64Codes, _FloatArrayLike, _FloatT, _Real
from fastbn.batchnorm import BatchNormGrads, BatchNormResult
from fastbn.layers import BatchNorm

__all__ = ["sync_batch_norm_train", "sync_batch_norm_backward", "SyncBatchNorm"]

class _Comm(Protocol):
    def Allgather(self, sendbuf: Any, recvbuf: Any, /) -> Any: ...
    def Get_size(self) -> int: ...

@overload
def sync_batch_norm_train(
    x: NDArray[_Float],
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    comm: _Comm,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    running_mean: NDArray[_Float] | None = None,
    running_var: NDArray[_Float] | None = None,
    momentum: _Real = 0.1,
    out: NDArray[_Float] | None = None,
) -> BatchNormResult[_Float]: ...
@overload
def sync_batch_norm_train(
    x: _FloatArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    comm: _Comm,
    axis: SupportsIndex = 1,
    eps: _Real = 1e-05,
    running_mean: NDArray[np.floating[Any]] | None = None,
    running_var: NDArray[np.floating[Any]] | None = None,
    momentum: _Real = 0.1,
    out: NDArray[np.floating[Any]] | None = None,
) -> BatchNormResult[np.floating[Any]]: ...
@overload
def sync_batch_norm_backward(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    comm: _Comm,
    axis: SupportsIndex = 1,
    out: NDArray[_Float] | None = None,
) -> BatchNormGrads[_Float]: ...
@overload
def sync_batch_norm_backward(
    dy: _FloatArrayLike,
    x: _FloatArrayLike,
    mean: ArrayLike,
    invstd: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    comm: _Comm,
    axis: SupportsIndex = 1,
    out: NDArray[np.floating[Any]] | None = None,
) -> BatchNormGrads[np.floating[Any]]: ...

class SyncBatchNorm(BatchNorm[_FloatT]):
    comm: _Comm | None

    @overload
    def __init__(
        self: SyncBatchNorm[np.float32],
        num_features: SupportsIndex,
        *,
        comm: _Comm | None = None,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        momentum: _Real | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: _Float32Codes = ...,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: SyncBatchNorm[np.float64],
        num_features: SupportsIndex,
        *,
        comm: _Comm | None = None,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        momentum: _Real | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: _Float64Codes,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: SyncBatchNorm[np.floating[Any]],
        num_features: SupportsIndex,
        *,
        comm: _Comm | None = None,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        momentum: _Real | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: DTypeLike,
        relu: bool = False,
    ) -> None: ...
