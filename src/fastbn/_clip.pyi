"""Stub of the compiled module fastbn._clip (src/fastbn/_clip.pyx).

Low-level glue: the arrays must already be validated and flattened by :mod:`fastbn.clip`.
"""
from typing import List, Tuple

import numpy as np

ISA_NAMES: Tuple[str, str, str]

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
