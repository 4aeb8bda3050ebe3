"""Stub of the compiled module fastbn._norm (src/fastbn/_norm.pyx): the normalization family's
glue; not part of fastbn's API (use fastbn.norm and fastbn.batchnorm).  Its batch-norm functions
are re-exported by fastbn._batchnorm."""
from typing import Optional, Tuple

import numpy as np

ISA_NAMES: Tuple[str, ...]

def set_isa(isa: int) -> None: ...
def get_isa() -> int: ...
def set_alias_reverse(on: bool) -> None: ...
def get_alias_reverse() -> bool: ...
def set_narrow_sums(on: bool) -> None: ...
def get_narrow_sums() -> bool: ...
def set_grad_prefetch(on: bool) -> None: ...
def get_grad_prefetch() -> bool: ...
def set_first_prefetch(on: bool) -> None: ...
def get_first_prefetch() -> bool: ...
def norm_forward(
    x: np.ndarray, y: np.ndarray, view: Tuple[int, int, int, int, int], gamma: Optional[np.ndarray],
    beta: Optional[np.ndarray], eps: float, centered: bool, mean: np.ndarray, invstd: np.ndarray,
    n_threads: int, residual: Optional[np.ndarray] = None, relu: bool = False,
    var_out: bool = False,
) -> None: ...
def norm_backward(
    dy: np.ndarray, x: np.ndarray, dx: np.ndarray, view: Tuple[int, int, int, int, int],
    mean: Optional[np.ndarray], invstd: np.ndarray, gamma: Optional[np.ndarray], centered: bool,
    dgamma: np.ndarray, dbeta: Optional[np.ndarray], n_threads: int,
    y: Optional[np.ndarray] = None, dresidual: Optional[np.ndarray] = None,
) -> None: ...

# batch norm (src/fastbn/_batchnorm_glue.pxi)
def train(
    x: np.ndarray,
    y: np.ndarray,
    outer: int,
    C: int,
    inner: int,
    gamma: Optional[np.ndarray],
    beta: Optional[np.ndarray],
    eps: float,
    stats: np.ndarray,
    n_threads: int,
    residual: Optional[np.ndarray] = None,
    relu: bool = False,
) -> None: ...
def infer(
    x: np.ndarray,
    y: np.ndarray,
    outer: int,
    C: int,
    inner: int,
    rmean: Optional[np.ndarray],
    rvar: Optional[np.ndarray],
    gamma: Optional[np.ndarray],
    beta: Optional[np.ndarray],
    eps: float,
    n_threads: int,
    residual: Optional[np.ndarray] = None,
    relu: bool = False,
) -> None: ...
def backward(
    dy: np.ndarray,
    x: np.ndarray,
    dx: np.ndarray,
    outer: int,
    C: int,
    inner: int,
    mean: np.ndarray,
    invstd: np.ndarray,
    gamma: Optional[np.ndarray],
    grads: np.ndarray,
    n_threads: int,
    y: Optional[np.ndarray] = None,
    dresidual: Optional[np.ndarray] = None,
) -> None: ...
def moments(
    x: np.ndarray,
    outer: int,
    C: int,
    inner: int,
    mean: np.ndarray,
    m2: np.ndarray,
    n_threads: int,
) -> None: ...
def apply(
    x: np.ndarray,
    y: np.ndarray,
    outer: int,
    C: int,
    inner: int,
    mean: np.ndarray,
    invstd: np.ndarray,
    gamma: Optional[np.ndarray],
    beta: Optional[np.ndarray],
    n_threads: int,
    residual: Optional[np.ndarray] = None,
    relu: bool = False,
) -> None: ...
def grad_sums(
    dy: np.ndarray,
    x: np.ndarray,
    outer: int,
    C: int,
    inner: int,
    mean: np.ndarray,
    invstd: np.ndarray,
    sum_dy: np.ndarray,
    sum_dy_xmu: np.ndarray,
    n_threads: int,
    y: Optional[np.ndarray] = None,
) -> None: ...
def grad_apply(
    dy: np.ndarray,
    x: np.ndarray,
    dx: np.ndarray,
    outer: int,
    C: int,
    inner: int,
    mean: np.ndarray,
    invstd: np.ndarray,
    gamma: Optional[np.ndarray],
    sum_dy: np.ndarray,
    sum_dy_xmu: np.ndarray,
    count: int,
    n_threads: int,
    y: Optional[np.ndarray] = None,
    dresidual: Optional[np.ndarray] = None,
) -> None: ...
def update_running(
    rmean: Optional[np.ndarray],
    rvar: Optional[np.ndarray],
    stats: np.ndarray,
    count: int,
    momentum: float,
    typenum: int,
) -> int: ...
def count_nonfinite(stats: np.ndarray) -> int: ...
def layout(x: np.ndarray, axis: int) -> Tuple[int, int, int]: ...
def train_plain(
    x: object,
    gamma: object,
    beta: object,
    axis: object,
    eps: object,
    running_mean: object,
    running_var: object,
    momentum: object,
    n_threads: int,
    out: object = ...,
) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]]: ...
def infer_plain(
    x: object,
    running_mean: object,
    running_var: object,
    gamma: object,
    beta: object,
    axis: object,
    eps: object,
    n_threads: int,
    out: object = ...,
) -> Optional[np.ndarray]: ...
def backward_plain(
    dy: object,
    x: object,
    mean: object,
    invstd: object,
    gamma: object,
    axis: object,
    n_threads: int,
    out: object = ...,
) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]: ...
def trailing_forward_plain(
    x: object,
    gamma: object,
    beta: object,
    axis: object,
    eps: object,
    centered: bool,
    n_threads: int,
    out: object = ...,
) -> Optional[Tuple[np.ndarray, Optional[np.ndarray], np.ndarray]]: ...
def trailing_backward_plain(
    dy: object,
    x: object,
    mean: object,
    invstd: object,
    gamma: object,
    axis: object,
    centered: bool,
    n_threads: int,
    out: object = ...,
) -> Optional[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]: ...
def group_forward_plain(
    x: object,
    num_groups: object,
    gamma: object,
    beta: object,
    axis: object,
    eps: object,
    n_threads: int,
    out: object = ...,
) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]: ...
def group_backward_plain(
    dy: object,
    x: object,
    mean: object,
    invstd: object,
    num_groups: object,
    gamma: object,
    axis: object,
    n_threads: int,
    out: object = ...,
) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]: ...
