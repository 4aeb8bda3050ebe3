"""Resources stay flat: memory, file descriptors, threads; the thread-count settings.

Specification (each measured in a fresh child process, where process state is not shared with
the test run):

- 5000 calls of every public function on small inputs (so that the Python glue, the C scratch
  and the result objects are what is exercised), after a warm-up of 2000 calls, leave the counts
  of live Python objects (``sys.getallocatedblocks``) and of bytes live in malloc (glibc's
  ``mallinfo2``: in-use and mmapped) flat: in each half of the calls (a leak grows both, a cache
  filled once one) fewer than 25 more blocks -- one object leaked per 50 calls gives 50 -- and
  fewer than 2500 more bytes (one byte per call); the calls grow the resident set
  by less than 2 MiB and leave the number of open file descriptors and of threads exactly
  unchanged.  Both counts are exact (the harness's own state costs a constant ~10 blocks and
  ~160 bytes), so 5000 calls find what 10^5 calls and the resident set alone did at 20 bytes per
  call; without mallinfo2 (not glibc) the harness makes 10^5 calls and the resident-set bound
  is that check.
  (tests/test_batchnorm_memory.py checks the batch-norm kernels' scratch on mid-size inputs and
  Python allocations with tracemalloc; this file covers every public function.)
- 10^4 changes of ``set_num_threads`` (1 to 4, each followed by a call large enough to run on
  threads) leave at most the pool's helpers for the largest count running and the resident set
  within 2 MiB.
- ``set_num_threads`` refuses 0 and negative counts (tests/test_platform.py), and clamps a count
  larger than the pool's size (csrc/parallel.c: FB_MAX_THREADS = 256) to 256 -- 2**40 too, which
  does not fit a C int: ``get_num_threads()`` then says 256 and calls run, with the same bits.
  ``OMP_NUM_THREADS`` (the variable the default thread count is read from; fastbn has no
  FASTBN_NUM_THREADS) is clamped the same way when huge, and ignored for the physical-core count
  when malformed (not a positive decimal integer: "abc", "0", "-1", "1.5", a superscript digit).
"""
import json
import os
import sys

import pytest

from child import run_python

# slow_under_qemu: .ci/run step 4 deselects it ("-k 'not qemu'" matches the marker's name):
# qemu-user keeps memory per guest thread (see .ci/run), and emulated calls take minutes.
pytestmark = [pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                 reason="counts threads and descriptors in /proc"),
              pytest.mark.slow_under_qemu]

HARNESS = r"""
import gc, json, os, sys, warnings
import numpy as np
import fastbn, fastbn.init

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

try:   # glibc >= 2.33: bytes in use (main arena) and in mmapped chunks, exact
    import ctypes
    class _Mallinfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    _mallinfo2 = ctypes.CDLL(None).mallinfo2
    _mallinfo2.restype = _Mallinfo2
    def heap():
        m = _mallinfo2()
        return m.uordblks + m.hblkhd
except (AttributeError, OSError):
    heap = None

def state():
    gc.collect()
    return (rss(), len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task")),
            sys.getallocatedblocks(), heap() if heap else None)

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 3, 2)).astype(np.float32)
xs = x.astype(">f4")                                  # a byte-swapped input, copied per call
dy = rng.standard_normal((4, 3, 2)).astype(np.float32)
g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
out = np.empty_like(x)
_, mean, invstd = fastbn.batch_norm_train(x)
layer = fastbn.BatchNorm(3)
grads = [rng.standard_normal(5), rng.standard_normal((2, 3)).astype(np.float32)]
w = np.empty((4, 3), np.float32)

CALLS = {
    "batch_norm_train": lambda: fastbn.batch_norm_train(x, g, b, running_mean=rm, running_var=rv),
    "batch_norm_train out=,swapped": lambda: fastbn.batch_norm_train(xs, g, b, out=out),
    "batch_norm_infer": lambda: fastbn.batch_norm_infer(x, rm, rv, g, b),
    "batch_norm_backward": lambda: fastbn.batch_norm_backward(dy, x, mean, invstd, g),
    "BatchNorm forward/backward": lambda: (layer.train(True), layer(x), layer.backward(dy),
                                           layer.eval(), layer(x), layer.backward(dy)),
    "global_norm": lambda: fastbn.global_norm(grads),
    "clip_grad_norm": lambda: fastbn.clip_grad_norm(grads, 1e9),
    "clip_grad_value": lambda: fastbn.clip_grad_value(grads, 1e9),
    "clip_by_norm": lambda: fastbn.clip_by_norm(x, 1.0),
    "a refused call": lambda: _refused(),
}
# The norm family, on (4, 3, 2): layer/RMS over the last axis, group (3 groups) and instance over axis 1.
_, lm, li = fastbn.layer_norm(x)
_, ri = fastbn.rms_norm(x)
_, gm, gi = fastbn.group_norm(x, 3)
_, im, ii = fastbn.instance_norm(x)
lnl, gnl = fastbn.LayerNorm(2), fastbn.GroupNorm(3, 3)
g2 = np.ones(2, np.float32)
CALLS.update({
    "layer_norm": lambda: fastbn.layer_norm(x, g2, g2),
    "layer_norm_backward": lambda: fastbn.layer_norm_backward(dy, x, lm, li, g2),
    "rms_norm": lambda: fastbn.rms_norm(xs, g2, out=out),
    "rms_norm_backward": lambda: fastbn.rms_norm_backward(dy, x, ri, g2),
    "group_norm": lambda: fastbn.group_norm(x, 3, g, b),
    "group_norm_backward": lambda: fastbn.group_norm_backward(dy, x, gm, gi, 3, g),
    "instance_norm": lambda: fastbn.instance_norm(x, g, b),
    "instance_norm_backward": lambda: fastbn.instance_norm_backward(dy, x, im, ii, g),
    "LayerNorm, GroupNorm layers": lambda: (lnl(x), lnl.backward(dy), gnl(x), gnl.backward(dy)),
})
def _refused():
    try:
        fastbn.batch_norm_train(x, eps=-1.0)
    except ValueError:
        pass
for name in fastbn.init.__all__:
    if name in ("compute_fans", "calculate_gain"):
        continue
    f = getattr(fastbn.init, name)
    CALLS["init." + name] = (lambda f=f: f((4, 3), rng=7)) if name != "constant" else \
        (lambda f=f: f((4, 3), 0.5, rng=7, out=w))

N = int(sys.argv[1]) if heap else 100_000   # without the exact heap count, the RSS alone
which = sys.argv[2:] or list(CALLS)
report = {}
for name in which:
    call = CALLS[name]
    for _ in range(max(N // 10, 2000)):   # free lists and caches filled first
        call()
    states = [state()]
    for _ in range(2):   # two halves
        for _ in range(N // 2):
            call()
        states.append(state())
    report[name] = states
print(json.dumps(report))
"""

CALLS_PER_FUNCTION = 5000
RSS_TOLERANCE = 2 * 1024 * 1024
BLOCKS_TOLERANCE = 25      # per half: one Python object leaked per 50 calls gives 50
HEAP_TOLERANCE = 2500      # per half: one byte leaked per call gives 2500


def _names():
    import fastbn.init
    base = ["batch_norm_train", "batch_norm_train out=,swapped", "batch_norm_infer",
            "batch_norm_backward", "BatchNorm forward/backward", "global_norm", "clip_grad_norm",
            "clip_grad_value", "clip_by_norm", "a refused call"]
    return base + NORMS + ["init." + n for n in fastbn.init.__all__
                           if n not in ("compute_fans", "calculate_gain")]


NORMS = ["layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "group_norm",
         "group_norm_backward", "instance_norm", "instance_norm_backward",
         "LayerNorm, GroupNorm layers"]
GROUPS = {
    "batchnorm": lambda n: "atch" in n or "refused" in n,
    "norms": lambda n: n in NORMS,
    "clip": lambda n: n in ("global_norm", "clip_grad_norm", "clip_grad_value", "clip_by_norm"),
    "init": lambda n: n.startswith("init."),
}


def test_every_call_is_in_exactly_one_group():
    for name in _names():
        assert sum(pick(name) for pick in GROUPS.values()) == 1, name


@pytest.mark.parametrize("group", list(GROUPS))
def test_resources_are_flat_over_many_calls(group):
    names = [n for n in _names() if GROUPS[group](n)]
    r = run_python(None, args=["-c", HARNESS, str(CALLS_PER_FUNCTION), *names])
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert set(report) == set(names)
    for name, (s0, s1, s2) in report.items():
        (rss0, fd0, th0, *_), (rss2, fd2, th2, *_) = s0, s2
        assert rss2 - rss0 < RSS_TOLERANCE, f"{name}: RSS grew by {rss2 - rss0} bytes"
        assert fd2 == fd0, f"{name}: open descriptors {fd0} -> {fd2}"
        assert th2 == th0, f"{name}: threads {th0} -> {th2}"
        # A leak grows both halves; a cache or free list still filling grows one.
        blocks = min(s1[3] - s0[3], s2[3] - s1[3])
        assert blocks < BLOCKS_TOLERANCE, f"{name}: {blocks} more live Python objects per half"
        if s0[4] is not None:
            heap = min(s1[4] - s0[4], s2[4] - s1[4])
            assert heap < HEAP_TOLERANCE, f"{name}: {heap} more bytes in malloc per half"


THREAD_CHANGES = r"""
import gc, json, os
import numpy as np
import fastbn

def state():
    gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return rss, len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))

x = np.ones(2**19 + 1, np.float32)            # above the size where calls start threads
expected = fastbn.global_norm(x)
base_threads = len(os.listdir("/proc/self/task"))
for k in range(400):                           # warm-up: the pool at its largest
    fastbn.set_num_threads(1 + k % 4)
    assert fastbn.global_norm(x) == expected
before = state()
for k in range(10_000):
    fastbn.set_num_threads(1 + k % 4)
    assert fastbn.global_norm(x) == expected
after = state()
print(json.dumps([base_threads, before, after]))
"""


def test_many_thread_count_changes_grow_nothing():
    r = run_python(THREAD_CHANGES)
    assert r.returncode == 0, r.stderr[-3000:]
    base_threads, (rss0, th0, fd0), (rss1, th1, fd1) = json.loads(r.stdout)
    assert th1 == th0 <= base_threads + 3, (base_threads, th0, th1)   # at most 3 helpers for 4
    assert fd1 == fd0
    assert rss1 - rss0 < RSS_TOLERANCE, f"RSS grew by {rss1 - rss0} bytes"


def test_a_thread_count_above_the_pool_limit_is_clamped():
    r = run_python(r"""
import os
import numpy as np
import fastbn
x = np.random.default_rng(0).standard_normal(2**20).astype(np.float32)
expected = fastbn.global_norm(x)
fastbn.set_num_threads(1_000_000)
assert fastbn.get_num_threads() == 256
assert fastbn.global_norm(x) == expected
assert fastbn.batch_norm_train(x.reshape(-1, 4)).mean.shape == (4,)
print(len(os.listdir("/proc/self/task")))
""")
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout) <= 1 + 256 + 8    # the pool's limit, plus the interpreter's own


@pytest.mark.parametrize("value", ["abc", "0", "-1", "", "1.5", "four", "\u00b2", "\uff13"])
def test_a_malformed_omp_num_threads_is_ignored(value):
    r = run_python("import fastbn, numpy as np; "
                   "print(fastbn.get_num_threads(), fastbn.global_norm(np.ones(2**20)))",
                   {"OMP_NUM_THREADS": value})
    assert r.returncode == 0, r.stderr[-2000:]
    n, norm = r.stdout.split()
    assert int(n) >= 1 and float(norm) == 1024.0


@pytest.mark.parametrize("n", [2**31, 2**40, 10**30])
def test_a_huge_thread_count_is_clamped(n):
    """Was accepted as given, then every kernel call raised a bare OverflowError (C int)."""
    r = run_python(f"""
import numpy as np
import fastbn
x = np.random.default_rng(0).standard_normal(2**20)
expected = fastbn.global_norm(x)
fastbn.set_num_threads({n})
assert fastbn.get_num_threads() == 256, fastbn.get_num_threads()
assert fastbn.global_norm(x) == expected
print(fastbn.batch_norm_train(x.reshape(-1, 4)).mean.shape)
""")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(4,)"


@pytest.mark.parametrize("value", ["99999999999999999999", "257", "100000"])
def test_a_huge_omp_num_threads_is_clamped(value):
    """Was taken as the default thread count as given, then every kernel call raised
    OverflowError."""
    r = run_python("import fastbn, numpy as np; "
                   "print(fastbn.get_num_threads(), fastbn.global_norm(np.ones(2**20)))",
                   {"OMP_NUM_THREADS": value})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["256", "1024.0"]
