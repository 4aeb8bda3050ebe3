"""pytest-benchmark: fastbn.init against the NumPy/SciPy idiom, grouped per initializer family.

Run with ``PYTHONPATH=src python -m pytest bench/test_bench_init.py --benchmark-only``.
One (4096, 4096) float32 weight per case (16.7M values); the truncated-normal baseline
(scipy.stats.truncnorm.rvs, seconds per call) runs on 1/16 of the values, so compare its time
multiplied by 16.
"""
import math

import numpy as np
import pytest

from fastbn import init

SHAPE = (4096, 4096)
N = SHAPE[0] * SHAPE[1]
A = math.sqrt(6.0 / (SHAPE[0] + SHAPE[1]))
STD = math.sqrt(2.0 / SHAPE[0])


def _np_uniform(rng):
    return rng.uniform(-A, A, N).astype(np.float32)


def _np_normal(rng):
    return rng.standard_normal(N, dtype=np.float32) * np.float32(STD)


def _scipy_truncnorm_sixteenth(rng):
    from scipy import stats
    return stats.truncnorm.rvs(-2.0, 2.0, scale=STD, size=N // 16, random_state=rng)


CASES = {
    # id: (group, callable of rng)
    "fastbn-glorot_uniform": ("uniform", lambda rng: init.glorot_uniform(SHAPE, rng=rng)),
    "numpy-uniform": ("uniform", _np_uniform),
    "fastbn-he_normal": ("normal", lambda rng: init.he_normal(SHAPE, rng=rng)),
    "numpy-standard_normal": ("normal", _np_normal),
    "fastbn-truncated_normal": ("truncated normal",
                                lambda rng: init.truncated_normal(SHAPE, 0.0, STD, rng=rng)),
    "scipy-truncnorm-n/16": ("truncated normal", _scipy_truncnorm_sixteenth),
}


@pytest.mark.parametrize("name", list(CASES))
def test_init(benchmark, name):
    group, fn = CASES[name]
    benchmark.group = f"init {group} {SHAPE} f32"
    rng = np.random.default_rng(0)
    benchmark.pedantic(fn, args=(rng,), rounds=5, warmup_rounds=1)
