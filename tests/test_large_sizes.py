"""Sizes past 32 bits, and sizes past 64.

Specification:

- ``batch_norm_train(x, out=x)`` on one float32 array of more than 2**31 elements (shape
  (2**29 + 3, 4), ~8.6 GB, normalized in place so no second copy is needed) gives per-channel
  statistics equal to the exact ones (the rows repeat a period of 1001, whose float64 sums give
  them), within float32's rounding, and y right on rows sampled across the whole array -- including rows past element
  2**31, where a 32-bit index would wrap.  Marked ``large``, opt-in (``FASTBN_LARGE=1``; .ci/run
  step 1 sets it); skipped, with the reason printed, when the machine has less than ~11 GB of
  available memory.  About a minute.
- A shape whose byte count overflows int64 is refused by every initializer with a ValueError,
  and inputs with astronomically many elements (zero-stride ``np.broadcast_to`` views) passed to
  the kernels give a clean MemoryError or ValueError -- never a crash, a wrapped size, or a
  successful huge allocation.  These run in a child process whose address space is limited to
  4 GiB (RLIMIT_AS), so that no attempt can succeed and swamp the machine.
"""
import os
import resource
import time

import numpy as np
import pytest

import fastbn
from child import run_python

# Not under qemu-user (.ci/run step 4 deselects by "-k 'not qemu'", which matches this marker):
# an emulator's own address-space reservation does not fit under RLIMIT_AS.
pytestmark = pytest.mark.slow_under_qemu

N_ROWS, C = 2**29 + 3, 4          # 2**31 + 12 elements, 8.6 GB of float32


def available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


PERIOD = 1001


def period():
    """One period of x's rows, float32: x[i, c] = (i % PERIOD) / PERIOD * (c + 1) + c."""
    i = np.arange(PERIOD)
    return ((i / PERIOD)[:, None] * np.arange(1, C + 1) + np.arange(C)).astype(np.float32)


def fill(x):
    """x's rows repeat one period: a broadcast copy (one write of the array, seconds)."""
    p = period()
    q, r = divmod(x.shape[0], PERIOD)
    x[:q * PERIOD].reshape(q, PERIOD, C)[...] = p
    x[q * PERIOD:] = p[:r]


def exact_stats():
    """float64 mean and invstd per channel of fill's values, from one period: q whole periods
    and the first r rows of another (sums of 1001 values, no pass over the 8.6 GB)."""
    p = period().astype(np.float64)
    q, r = divmod(N_ROWS, PERIOD)
    mean = (q * p.sum(axis=0) + p[:r].sum(axis=0)) / N_ROWS
    m2 = q * ((p - mean) ** 2).sum(axis=0) + ((p[:r] - mean) ** 2).sum(axis=0)
    return mean, 1.0 / np.sqrt(m2 / N_ROWS + 1e-5)


@pytest.mark.large
@pytest.mark.skipif(os.environ.get("FASTBN_LARGE") != "1",
                    reason="opt-in, ~9 GB and a minute: FASTBN_LARGE=1 pytest -m large")
def test_train_in_place_past_2_to_the_31_elements():
    need = N_ROWS * C * 4 + 2 * 1024**3
    if available_bytes() < need:
        msg = (f"needs ~{need / 1e9:.1f} GB of available memory, the machine has "
               f"{available_bytes() / 1e9:.1f} GB")
        print("SKIPPED:", msg)
        pytest.skip(msg)
    t0 = time.time()
    x = np.empty((N_ROWS, C), np.float32)
    assert x.size > 2**31
    fill(x)
    mean64, invstd64 = exact_stats()
    rows = np.unique(np.r_[0, 1, 1000, N_ROWS // 2, 2**29 - 1, 2**29, N_ROWS - 3, N_ROWS - 1,
                           np.random.default_rng(0).integers(0, N_ROWS, 200)])
    sample = x[rows].astype(np.float64)
    assert (rows.max() + 1) * C > 2**31          # the sample reaches past element 2**31
    t1 = time.time()

    y, mean, invstd = fastbn.batch_norm_train(x, out=x)
    t2 = time.time()
    assert y is x
    assert np.allclose(mean, mean64, rtol=2**-23, atol=0), (mean, mean64)
    assert np.allclose(invstd, invstd64, rtol=2**-22, atol=0), (invstd, invstd64)
    expected = (sample - mean64) * invstd64
    err = np.abs(x[rows].astype(np.float64) - expected)
    assert np.all(err <= 1e-5 * (1 + np.abs(expected))), err.max()
    print(f"\n2**31+12 elements: setup {t1 - t0:.0f} s, batch_norm_train(out=x) {t2 - t1:.1f} s")


LIMITED = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))
import numpy as np
import fastbn, fastbn.init

def big(shape):
    return np.broadcast_to(np.float32(1.0), shape)   # a zero-stride view: no memory

CASES = {
    "init.zeros": lambda: fastbn.init.zeros((2**40, 2**40), rng=0),
    "init.uniform": lambda: fastbn.init.uniform((2**62, 4), rng=0),
    "init.normal float64": lambda: fastbn.init.normal((2**31, 2**31), dtype=np.float64, rng=0),
    "init.glorot_uniform": lambda: fastbn.init.glorot_uniform((2**40, 2**40), rng=0),
    "init.orthogonal": lambda: fastbn.init.orthogonal((2**40, 2**40), rng=0),
    "init.truncated_normal": lambda: fastbn.init.truncated_normal((2**33, 2**33, 2**2), rng=0),
    "batch_norm_train": lambda: fastbn.batch_norm_train(big((2**40, 2))),
    "batch_norm_infer": lambda: fastbn.batch_norm_infer(big((2**40, 2)), np.zeros(2, np.float32),
                                                         np.ones(2, np.float32)),
    "batch_norm_backward": lambda: fastbn.batch_norm_backward(big((2**40, 2)), big((2**40, 2)),
                                                              np.zeros(2, np.float32),
                                                              np.ones(2, np.float32)),
    "BatchNorm": lambda: fastbn.BatchNorm(2)(big((2**40, 2))),
    "global_norm": lambda: fastbn.global_norm([big((2**30, 2**30))]),
    "clip_by_norm": lambda: fastbn.clip_by_norm(big((2**30, 2**30)), 1.0),
}
name = sys.argv[1]
try:
    CASES[name]()
except (MemoryError, ValueError) as e:
    print(type(e).__name__, e)
else:
    print("RETURNED")
"""

OVERFLOW_CASES = ["init.zeros", "init.uniform", "init.normal float64", "init.glorot_uniform",
                  "init.orthogonal", "init.truncated_normal", "batch_norm_train",
                  "batch_norm_infer", "batch_norm_backward", "BatchNorm", "global_norm",
                  "clip_by_norm"]


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS"), reason="needs RLIMIT_AS")
@pytest.mark.parametrize("name", OVERFLOW_CASES)
def test_astronomical_sizes_are_a_clean_error(name):
    r = run_python(None, args=["-c", LIMITED, name])
    assert r.returncode == 0, f"crashed ({r.returncode}): {r.stderr[-2000:]}"
    kind = r.stdout.split()[0]
    assert kind in ("MemoryError", "ValueError"), r.stdout
    if name.startswith("init."):   # the byte count overflows int64: refused before any work
        assert kind == "ValueError", r.stdout
