"""Stub of the compiled module fastbn._random (src/fastbn/_random.pyx): Philox4x32-10 streams and
the uniform / normal / truncated-normal laws of :mod:`fastbn.init`.

Low-level glue: the arrays must be 1-d C-contiguous float32/float64 in native byte order
(``seed``: 4 uint32 words); ``fill_half`` takes the uint16 bits of a float16 or bfloat16 output.
"""
from typing import Dict, Sequence, Tuple

import numpy as np

ISA_NAMES: Tuple[str, str, str]
LAWS: Dict[str, int]
FUNCTIONS: Dict[str, int]

def set_isa(isa: int) -> None: ...
def get_isa() -> int: ...
def fill(out: np.ndarray, law: str, seed: np.ndarray, params: Sequence[float], n_threads: int) -> None: ...
def fill_half(
    out: np.ndarray, kind: str, law: str, seed: np.ndarray, params: Sequence[float], n_threads: int
) -> None: ...
def eval_math(name: str, x: np.ndarray, y: np.ndarray) -> None: ...
def philox_words(seed: np.ndarray, block0: int, n_blocks: int) -> np.ndarray: ...
