"""Stub of the compiled module fastbn._stream (src/fastbn/_stream.pyx): the benchmark report's
memory floor (see :mod:`fastbn.bench.floor`); not part of fastbn's API."""
from typing import List, Optional, Tuple

import numpy as np

MAX_IN: int
MAX_PASSES: int

def set_isa(isa: int) -> None: ...
def get_isa() -> int: ...
def passes(
    spec: List[Tuple[Tuple[np.ndarray, ...], Optional[np.ndarray]]], n_threads: int
) -> float: ...
