"""Static types of fastbn.reference (src/fastbn/reference.py).

The runtime code is plain NumPy without validation; this stub is the static contract.  The twins
of the kernels have the signatures and results of the fastbn functions they mirror (a test checks
the signatures at run time), so their types are those functions' types.  The initializer idioms
take a ``numpy.random.Generator`` and return ``dtype`` (float32 by default); their first
overloads ignore mypy's overload-overlap error for the reason given in ``init.pyi``.
"""
from typing import Any, Sequence, SupportsIndex, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastbn._typing import _Float32Codes, _Float64Codes, _Real, _ShapeLike
from fastbn.batchnorm import batch_norm_backward as batch_norm_backward
from fastbn.batchnorm import batch_norm_infer as batch_norm_infer
from fastbn.batchnorm import batch_norm_train as batch_norm_train
from fastbn.batchnorm_parts import batch_norm_apply as batch_norm_apply
from fastbn.batchnorm_parts import batch_norm_backward_apply as batch_norm_backward_apply
from fastbn.batchnorm_parts import batch_norm_backward_reduce as batch_norm_backward_reduce
from fastbn.batchnorm_parts import batch_norm_stats as batch_norm_stats
from fastbn.batchnorm_parts import merge_stats as merge_stats
from fastbn.batchnorm_parts import update_running_stats as update_running_stats
from fastbn.clip import clip_by_norm as clip_by_norm
from fastbn.norm import group_norm as group_norm
from fastbn.norm import group_norm_backward as group_norm_backward
from fastbn.norm import instance_norm as instance_norm
from fastbn.norm import instance_norm_backward as instance_norm_backward
from fastbn.norm import layer_norm as layer_norm
from fastbn.norm import layer_norm_backward as layer_norm_backward
from fastbn.norm import rms_norm as rms_norm
from fastbn.norm import rms_norm_backward as rms_norm_backward
from fastbn.clip import clip_grad_norm as clip_grad_norm
from fastbn.clip import clip_grad_value as clip_grad_value
from fastbn.clip import global_norm as global_norm

__all__ = ["batch_norm_train", "batch_norm_infer", "batch_norm_backward", "global_norm",
    "clip_grad_norm", "clip_grad_value", "clip_by_norm", "uniform", "normal", "truncated_normal",
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "orthogonal",
    "layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "group_norm",
    "group_norm_backward", "instance_norm", "instance_norm_backward", "batch_norm_stats",
    "merge_stats", "batch_norm_apply", "update_running_stats", "batch_norm_backward_reduce",
    "batch_norm_backward_apply"]

_Gen = np.random.Generator

@overload
def uniform(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, low: _Real, high: _Real, rng: _Gen, dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def uniform(
    shape: _ShapeLike, low: _Real, high: _Real, rng: _Gen, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def uniform(
    shape: _ShapeLike, low: _Real, high: _Real, rng: _Gen, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...

@overload
def normal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, mean: _Real, std: _Real, rng: _Gen, dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def normal(
    shape: _ShapeLike, mean: _Real, std: _Real, rng: _Gen, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def normal(
    shape: _ShapeLike, mean: _Real, std: _Real, rng: _Gen, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...

@overload
def truncated_normal(  # type: ignore[overload-overlap]  # see the header
    shape: _ShapeLike, mean: _Real, std: _Real, a: _Real, b: _Real, rng: _Gen,
    dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def truncated_normal(
    shape: _ShapeLike, mean: _Real, std: _Real, a: _Real, b: _Real, rng: _Gen, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def truncated_normal(
    shape: _ShapeLike, mean: _Real, std: _Real, a: _Real, b: _Real, rng: _Gen, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...

# The fan-based idioms index the shape: a sequence, not a bare integer.
@overload
def glorot_uniform(  # type: ignore[overload-overlap]  # see the header
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def glorot_uniform(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def glorot_uniform(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...

@overload
def glorot_normal(  # type: ignore[overload-overlap]  # see the header
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def glorot_normal(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def glorot_normal(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...

@overload
def he_uniform(  # type: ignore[overload-overlap]  # see the header
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def he_uniform(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def he_uniform(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...

@overload
def he_normal(  # type: ignore[overload-overlap]  # see the header
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def he_normal(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def he_normal(
    shape: Sequence[SupportsIndex], rng: _Gen, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...

# dtype may follow gain positionally, or come by keyword without gain.
@overload
def orthogonal(  # type: ignore[overload-overlap]  # see the header
    shape: Sequence[SupportsIndex], rng: _Gen, gain: _Real = 1.0, dtype: _Float32Codes = ...
) -> NDArray[np.float32]: ...
@overload
def orthogonal(
    shape: Sequence[SupportsIndex], rng: _Gen, gain: _Real, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def orthogonal(
    shape: Sequence[SupportsIndex], rng: _Gen, gain: _Real = 1.0, *, dtype: _Float64Codes
) -> NDArray[np.float64]: ...
@overload
def orthogonal(
    shape: Sequence[SupportsIndex], rng: _Gen, gain: _Real, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...
@overload
def orthogonal(
    shape: Sequence[SupportsIndex], rng: _Gen, gain: _Real = 1.0, *, dtype: DTypeLike
) -> NDArray[np.floating[Any]]: ...
