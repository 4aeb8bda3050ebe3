"""Stub of the compiled module fastbn._clip (src/fastbn/_clip.pyx).

Low-level glue: the arrays must already be validated and flattened by :mod:`fastbn.clip`
(1-d, one stride, float32/float64 in native byte order; anything else is a ValueError).
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
def value(arrays: List[np.ndarray], clip_value: float, n_threads: int) -> None: ...
