"""Batch norm's output bits, pinned: a digest of every result over a fixed corpus.

Specification: for each case of the corpus (shapes from tiny to above the threading threshold,
channel axis first, middle and last, float32 and float64, 1 and 2 threads), the SHA-256 of the
bytes of every result -- train (y, mean, invstd, running_mean, running_var), infer (y) and
backward (dx, dgamma, dbeta) -- equals the digest recorded in ``tests/golden/batchnorm.json``.
A change of kernel that moves a single bit fails here; one that means to (a new summation
order, say) re-records the file with ``python tests/test_batchnorm_golden.py --record`` and says
why in its commit.  Inputs come from integers and IEEE division only, so they are the same bits on
every machine.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbn

GOLDEN = Path(__file__).parent / "golden" / "batchnorm.json"

# (shape, axis): NC, NCL/NCHW (slab path), channels-last (rows path), a middle axis, cases above
# the 2^19-element threshold where the kernels start threads, and rows wider than a column tile.
CORPUS = [((2, 3), 1), ((7, 5), 1), ((300, 7), 1), ((33, 5, 40), 1), ((4, 6, 6, 9), -1),
          ((3, 17, 1, 31), 2), ((5, 4, 3, 2, 6), 1), ((64, 96, 100), 1), ((32768, 24), 1),
          ((40, 32, 32, 16), -1), ((16, 40, 8, 100), 2), ((300, 2080), 1)]


def _case_id(shape, axis, dtype, threads):
    return f"{np.dtype(dtype).name}{list(shape)}axis{axis}threads{threads}"


def _digest(shape, axis, dtype, threads):
    rng = np.random.default_rng(sum(shape) + axis)
    ints = lambda s: rng.integers(-10**6, 10**6, s) / 997.0   # noqa: E731
    C = shape[axis]
    x = (ints(shape) + 1e3).astype(dtype)
    g = (1.0 + np.abs(ints(C)) / 1e3).astype(dtype)
    b = (ints(C) / 1e3).astype(dtype)
    dy = ints(shape).astype(dtype)
    rm, rv = (ints(C) / 1e3).astype(dtype), (1.0 + np.abs(ints(C)) / 1e3).astype(dtype)
    saved = fastbn.get_num_threads()
    fastbn.set_num_threads(threads)
    try:
        y, mean, invstd = fastbn.batch_norm_train(x, g, b, axis=axis, running_mean=rm,
                                                  running_var=rv)
        yi = fastbn.batch_norm_infer(x, rm, rv, g, b, axis=axis)
        dx, dg, db = fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=axis)
    finally:
        fastbn.set_num_threads(saved)
    h = hashlib.sha256()
    for a in (y, mean, invstd, rm, rv, yi, dx, dg, db):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


CASES = [(s, a, d, t) for s, a in CORPUS for d in (np.float32, np.float64) for t in (1, 2)]


@pytest.mark.parametrize("shape, axis, dtype, threads", CASES,
                         ids=[_case_id(*c) for c in CASES])
def test_every_result_has_the_recorded_bits(shape, axis, dtype, threads):
    recorded = json.loads(GOLDEN.read_text())
    assert _digest(shape, axis, dtype, threads) == recorded[_case_id(shape, axis, dtype, threads)]


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_batchnorm_golden.py --record")
    GOLDEN.write_text(json.dumps({_case_id(*c): _digest(*c) for c in CASES}, indent=1) + "\n")
    print(f"recorded {len(CASES)} digests in {GOLDEN}")
