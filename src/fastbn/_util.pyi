"""Stub of the compiled module fastbn._util (src/fastbn/_util.pyx): CPU queries, overlap extents."""
from typing import List, Optional, Tuple

import numpy as np

def cpu_supports(isa: int) -> bool: ...
def best_isa() -> int: ...
def extent_overlaps(
    written: List[Tuple[str, Optional[np.ndarray]]],
    others: List[Tuple[str, Optional[np.ndarray]]],
) -> List[Tuple[int, int]]: ...
