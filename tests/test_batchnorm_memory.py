"""Memory stays flat over many batch-norm calls (no leak in the C scratch or the glue).

Specification: after a warm-up, 200 more calls of each kernel on a mid-size array (both C paths,
with ``out`` given so each call allocates only its small results) neither grow the resident set
(the C kernels malloc their scratch) nor leave Python allocations behind (tracemalloc).  Repeated
backward calls through the fused ReLU on the rows path (whose scratch holds y's mask as bits,
512 KiB for (4096, 1024)) take no new pages from the system: glibc's default malloc keeps the
one block a call frees for the next (in a fresh process, under no sanitizer).
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastbn
from child import run_python


def rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        pytest.skip("no /proc/self/statm on this platform")


# rows: 1024 virtual channels, so each call mallocs ~100 KiB of scratch that a leak would keep
@pytest.mark.parametrize("shape", [(64, 16, 80), (256, 1024)], ids=["slab", "rows"])
def test_memory_is_flat_over_many_calls(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    C = shape[1]
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    out = np.empty_like(x)

    def calls(n):
        for _ in range(n):
            _, mean, invstd = fastbn.batch_norm_train(x, g, b, running_mean=rm, running_var=rv, out=out)
            fastbn.batch_norm_infer(x, rm, rv, g, b, out=out)
            fastbn.batch_norm_backward(dy, x, mean, invstd, g, out=out)

    calls(20)
    gc.collect()
    rss0 = rss_bytes()
    calls(200)
    gc.collect()
    rss1 = rss_bytes()
    assert rss1 - rss0 < 1024 * 1024, f"RSS grew by {rss1 - rss0} bytes over 600 calls"

    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    calls(200)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    assert grown < 64 * 1024, f"Python allocations grew by {grown} bytes over 600 calls"


FAULTS = r"""
import resource, numpy as np, fastbn
fastbn.set_num_threads(1)
rng = np.random.default_rng(0)
x, dy = rng.standard_normal((2, 4096, 1024), dtype=np.float32)
g, b = np.ones(1024, np.float32), np.zeros(1024, np.float32)
y, mean, invstd = fastbn.batch_norm_train(x, g, b, relu=True)
out = np.empty_like(x)
for _ in range(3):
    fastbn.batch_norm_backward(dy, x, mean, invstd, g, out=out)
for _ in range(3):
    fastbn.batch_norm_backward(dy, x, mean, invstd, g, out=out, y=y)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    fastbn.batch_norm_backward(dy, x, mean, invstd, g, out=out, y=y)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


UNDER_SANITIZER = "libasan" in os.environ.get("LD_PRELOAD", "") or "FASTBN_SANITIZE" in os.environ


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, getrusage")
@pytest.mark.skipif(UNDER_SANITIZER, reason="a sanitizer's allocator quarantines freed memory")
def test_repeated_fused_backward_calls_take_no_new_pages():
    """Two scratch blocks (the rows' sums and coefficients, then the mask) let glibc trim the
    heap between calls: 192 page faults a call, 13 % of the call's time."""
    p = run_python(FAULTS)
    assert p.returncode == 0, p.stderr
    faults = float(p.stdout)
    assert faults < 8, f"{faults} page faults a call"
