"""Stub of the compiled module fastbn._norm (src/fastbn/_norm.pyx): the normalization core's
glue; not part of fastbn's API (use fastbn.norm)."""
from typing import Optional, Tuple

import numpy as np

ISA_NAMES: Tuple[str, ...]

def set_isa(isa: int) -> None: ...
def get_isa() -> int: ...
def forward(
    x: np.ndarray, y: np.ndarray, view: Tuple[int, int, int, int, int], gamma: Optional[np.ndarray],
    beta: Optional[np.ndarray], eps: float, centered: bool, mean: np.ndarray, invstd: np.ndarray,
    n_threads: int,
) -> None: ...
def backward(
    dy: np.ndarray, x: np.ndarray, dx: np.ndarray, view: Tuple[int, int, int, int, int],
    mean: Optional[np.ndarray], invstd: np.ndarray, gamma: Optional[np.ndarray], centered: bool,
    dgamma: np.ndarray, dbeta: Optional[np.ndarray], n_threads: int,
) -> None: ...
