"""pytest-benchmark: fastbn.init against the NumPy/SciPy idiom, grouped per initializer family.

Run with ``PYTHONPATH=src python -m pytest bench/test_bench_init.py --benchmark-only``.
One (4096, 4096) float32 weight per case (16.7M values), every contender drawing all of them, so
the ratios in a group compare like with like.  The truncated-normal baseline is the report's
(:func:`fastbn.bench.init.truncnorm_baseline`): scipy.stats.truncnorm.rvs in 16 calls of n/16.

Rounds: fixed, with ``benchmark.pedantic``, after one untimed call (it pays the one-time costs:
code loading, scipy's first-call setup).  pytest-benchmark's automatic mode fits its rounds into
``max_time`` (1 s by default) with a minimum of 5, so a 200 ms NumPy call would get 5 rounds, and
its median is a slowed round as soon as 3 of them are slowed by other load.  ROUNDS = 15 for the
calls of 10-200 ms (at most about 3 s a case): the median stays an unslowed round with up to 7
slowed.  The scipy baseline takes about 4 s a round (16 calls, which also spread it over the
seconds-long bursts of load), so it gets SCIPY_ROUNDS = 7: about 30 s, up to 3 rounds slowed.
"""
import math

import numpy as np
import pytest

from fastbn import init
from fastbn.bench.init import truncnorm_baseline

SHAPE = (4096, 4096)
N = SHAPE[0] * SHAPE[1]
A = math.sqrt(6.0 / (SHAPE[0] + SHAPE[1]))
STD = math.sqrt(2.0 / SHAPE[0])
ROUNDS, SCIPY_ROUNDS = 15, 7


def _scipy_truncnorm(rng):
    fn = truncnorm_baseline(N, STD, rng)
    if fn is None:
        pytest.skip("scipy is not installed (the bench extra)")
    return fn


CASES = {
    # id: (group, rounds, rng -> zero-argument callable drawing N values)
    "fastbn-glorot_uniform": ("uniform", ROUNDS,
                              lambda rng: lambda: init.glorot_uniform(SHAPE, rng=rng)),
    "numpy-uniform": ("uniform", ROUNDS,
                      lambda rng: lambda: rng.uniform(-A, A, N).astype(np.float32)),
    "fastbn-he_normal": ("normal", ROUNDS, lambda rng: lambda: init.he_normal(SHAPE, rng=rng)),
    "numpy-standard_normal": ("normal", ROUNDS,
                              lambda rng: lambda: (rng.standard_normal(N, dtype=np.float32)
                                                   * np.float32(STD))),
    "fastbn-truncated_normal": ("truncated normal", ROUNDS,
                                lambda rng: lambda: init.truncated_normal(SHAPE, 0.0, STD,
                                                                          rng=rng)),
    "scipy-truncnorm": ("truncated normal", SCIPY_ROUNDS, _scipy_truncnorm),
}


@pytest.mark.parametrize("name", list(CASES))
def test_init(benchmark, name):
    group, rounds, make = CASES[name]
    benchmark.group = f"init {group} {SHAPE} f32"
    benchmark.pedantic(make(np.random.default_rng(0)), rounds=rounds, warmup_rounds=1)
