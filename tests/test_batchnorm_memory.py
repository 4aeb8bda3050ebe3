"""Memory stays flat over many batch-norm calls (no leak in the C scratch or the glue).

Specification: after a warm-up, 200 more calls of each kernel on a mid-size array (both C paths,
with ``out`` given so each call allocates only its small results) neither grow the resident set
(the C kernels malloc their scratch) nor leave Python allocations behind (tracemalloc).
"""
import gc
import tracemalloc

import numpy as np
import pytest

import fastbn


def rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        pytest.skip("no /proc/self/statm on this platform")


# rows: 1024 virtual channels, so each call mallocs ~100 KiB of scratch that a leak would keep
@pytest.mark.parametrize("shape", [(64, 16, 40), (256, 1024)], ids=["slab", "rows"])
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
