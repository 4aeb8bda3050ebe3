"""Static types of fastbn.layers (src/fastbn/layers.py).

The runtime code validates every argument at run time; this stub is the static contract.  A layer
is generic in its dtype: ``BatchNorm(3)`` is a ``BatchNorm[numpy.float32]``, ``BatchNorm(3,
dtype=numpy.float64)`` a ``BatchNorm[numpy.float64]``, and its parameters, inputs and outputs
are arrays of that dtype.  (The subscripted form is for annotations only; the runtime class is
not subscriptable.)  Documentation: the .py docstrings.
"""
from typing import Any, Generic, Mapping, NamedTuple, Sequence, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray
from typing_extensions import Self

from fastbn._typing import _Float32Codes, _Float64Codes, _FloatT, _Real

__all__ = ["BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm"]

class _IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]

class BatchNorm(Generic[_FloatT]):
    num_features: int
    axis: int
    eps: float
    momentum: float | None
    dtype: np.dtype[_FloatT]
    training: bool
    num_batches_tracked: int | None
    gamma: NDArray[_FloatT] | None
    beta: NDArray[_FloatT] | None
    running_mean: NDArray[_FloatT] | None
    running_var: NDArray[_FloatT] | None
    dgamma: NDArray[_FloatT] | None
    dbeta: NDArray[_FloatT] | None
    relu: bool
    dresidual: NDArray[_FloatT] | None

    @overload
    def __init__(
        self: BatchNorm[np.float32],
        num_features: SupportsIndex,
        *,
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
        self: BatchNorm[np.float64],
        num_features: SupportsIndex,
        *,
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
        self: BatchNorm[np.floating[Any]],
        num_features: SupportsIndex,
        *,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        momentum: _Real | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: DTypeLike,
        relu: bool = False,
    ) -> None: ...

    def train(self, mode: bool = True) -> Self: ...
    def eval(self) -> Self: ...
    def forward(self, x: NDArray[_FloatT], training: bool | None = None, *,
                residual: NDArray[_FloatT] | None = None) -> NDArray[_FloatT]: ...
    def __call__(self, x: NDArray[_FloatT], training: bool | None = None, *,
                 residual: NDArray[_FloatT] | None = None) -> NDArray[_FloatT]: ...
    def backward(self, dy: NDArray[_FloatT]) -> NDArray[_FloatT]: ...
    def parameters(self) -> list[tuple[NDArray[_FloatT], NDArray[_FloatT] | None]]: ...
    def state_dict(self) -> dict[str, NDArray[Any]]: ...
    def load_state_dict(self, state_dict: Mapping[str, ArrayLike],
                        strict: bool = True) -> _IncompatibleKeys: ...
    def reset_running_stats(self) -> None: ...
    def reset_parameters(self) -> None: ...

class _NormLayer(Generic[_FloatT]):   # the methods the four layers share
    training: bool
    def forward(self, x: NDArray[_FloatT], *,
                residual: NDArray[_FloatT] | None = None) -> NDArray[_FloatT]: ...
    def __call__(self, x: NDArray[_FloatT], *,
                 residual: NDArray[_FloatT] | None = None) -> NDArray[_FloatT]: ...
    def backward(self, dy: NDArray[_FloatT]) -> NDArray[_FloatT]: ...
    def parameters(self) -> list[tuple[NDArray[_FloatT], NDArray[_FloatT] | None]]: ...
    def reset_parameters(self) -> None: ...
    def train(self, mode: bool = True) -> Self: ...
    def eval(self) -> Self: ...
    def state_dict(self) -> dict[str, NDArray[Any]]: ...
    def load_state_dict(self, state_dict: Mapping[str, ArrayLike],
                        strict: bool = True) -> _IncompatibleKeys: ...

class LayerNorm(_NormLayer[_FloatT]):
    dtype: np.dtype[_FloatT]
    eps: float
    normalized_shape: tuple[int, ...]
    elementwise_affine: bool
    bias: bool
    gamma: NDArray[_FloatT] | None
    beta: NDArray[_FloatT] | None
    dgamma: NDArray[_FloatT] | None
    dbeta: NDArray[_FloatT] | None
    relu: bool
    dresidual: NDArray[_FloatT] | None

    @overload
    def __init__(
        self: LayerNorm[np.float32],
        normalized_shape: SupportsIndex | Sequence[SupportsIndex],
        *,
        eps: _Real = 1e-05,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: _Float32Codes = ...,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: LayerNorm[np.float64],
        normalized_shape: SupportsIndex | Sequence[SupportsIndex],
        *,
        eps: _Real = 1e-05,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: _Float64Codes,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: LayerNorm[np.floating[Any]],
        normalized_shape: SupportsIndex | Sequence[SupportsIndex],
        *,
        eps: _Real = 1e-05,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: DTypeLike,
        relu: bool = False,
    ) -> None: ...


class RMSNorm(_NormLayer[_FloatT]):
    dtype: np.dtype[_FloatT]
    eps: float | None
    normalized_shape: tuple[int, ...]
    elementwise_affine: bool
    gamma: NDArray[_FloatT] | None
    beta: NDArray[_FloatT] | None
    dgamma: NDArray[_FloatT] | None
    dbeta: NDArray[_FloatT] | None
    relu: bool
    dresidual: NDArray[_FloatT] | None

    @overload
    def __init__(
        self: RMSNorm[np.float32],
        normalized_shape: SupportsIndex | Sequence[SupportsIndex],
        *,
        eps: _Real | None = 1e-06,
        elementwise_affine: bool = True,
        dtype: _Float32Codes = ...,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: RMSNorm[np.float64],
        normalized_shape: SupportsIndex | Sequence[SupportsIndex],
        *,
        eps: _Real | None = 1e-06,
        elementwise_affine: bool = True,
        dtype: _Float64Codes,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: RMSNorm[np.floating[Any]],
        normalized_shape: SupportsIndex | Sequence[SupportsIndex],
        *,
        eps: _Real | None = 1e-06,
        elementwise_affine: bool = True,
        dtype: DTypeLike,
        relu: bool = False,
    ) -> None: ...


class GroupNorm(_NormLayer[_FloatT]):
    dtype: np.dtype[_FloatT]
    eps: float
    num_groups: int
    num_channels: int
    axis: int
    affine: bool
    gamma: NDArray[_FloatT] | None
    beta: NDArray[_FloatT] | None
    dgamma: NDArray[_FloatT] | None
    dbeta: NDArray[_FloatT] | None
    relu: bool
    dresidual: NDArray[_FloatT] | None

    @overload
    def __init__(
        self: GroupNorm[np.float32],
        num_groups: SupportsIndex,
        num_channels: SupportsIndex,
        *,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        affine: bool = True,
        dtype: _Float32Codes = ...,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: GroupNorm[np.float64],
        num_groups: SupportsIndex,
        num_channels: SupportsIndex,
        *,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        affine: bool = True,
        dtype: _Float64Codes,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: GroupNorm[np.floating[Any]],
        num_groups: SupportsIndex,
        num_channels: SupportsIndex,
        *,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        affine: bool = True,
        dtype: DTypeLike,
        relu: bool = False,
    ) -> None: ...


class InstanceNorm(_NormLayer[_FloatT]):
    dtype: np.dtype[_FloatT]
    eps: float
    num_features: int
    axis: int
    affine: bool
    gamma: NDArray[_FloatT] | None
    beta: NDArray[_FloatT] | None
    dgamma: NDArray[_FloatT] | None
    dbeta: NDArray[_FloatT] | None
    relu: bool
    dresidual: NDArray[_FloatT] | None
    momentum: float | None
    track_running_stats: bool
    running_mean: NDArray[_FloatT] | None
    running_var: NDArray[_FloatT] | None
    num_batches_tracked: int | None

    @overload
    def __init__(
        self: InstanceNorm[np.float32],
        num_features: SupportsIndex,
        *,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        momentum: _Real | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        dtype: _Float32Codes = ...,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: InstanceNorm[np.float64],
        num_features: SupportsIndex,
        *,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        momentum: _Real | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        dtype: _Float64Codes,
        relu: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self: InstanceNorm[np.floating[Any]],
        num_features: SupportsIndex,
        *,
        axis: SupportsIndex = 1,
        eps: _Real = 1e-05,
        momentum: _Real | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        dtype: DTypeLike,
        relu: bool = False,
    ) -> None: ...
    def reset_running_stats(self) -> None: ...
