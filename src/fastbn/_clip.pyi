"""Stub of the compiled module fastbn._clip (src/fastbn/_clip.pyx).

Low-level glue: the arrays must already be validated and flattened by :mod:`fastbn.clip`
(1-d, one stride, float32/float64/float16 in native byte order, or bfloat16 viewed as uint16;
anything else is a ValueError).
"""
from typing import List, Tuple

import numpy as np

ISA_NAMES: Tuple[str, str, str]
LANES: int
BLOCK: int

def set_isa(isa: int) -> None: ...
def get_isa() -> int: ...
def norm(
    arrays: List[np.ndarray],
    norm_type: float,
    clip: int,
    max_norm: float,
    acc: np.ndarray,
    n_threads: int,
) -> Tuple[float, bool]: ...
def scale(arrays: List[np.ndarray], coef: float, n_threads: int) -> None: ...
def value(arrays: List[np.ndarray], clip_value: float, n_threads: int) -> None: ...
