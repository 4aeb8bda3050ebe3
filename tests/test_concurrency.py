"""Concurrency: many Python threads in the kernels at once, the thread count changing underneath,
and a fork while a parallel call is in flight.

Specification:

- Eight Python threads call every public kernel (batch norm train/infer/backward on the slab and
  the rows path, the four clipping functions, every initializer) on inputs large enough to run
  on the pool (2**19 elements and more; each kernel twice per thread, once under a sanitizer),
  each thread with its own outputs, while a ninth thread keeps changing ``set_num_threads``
  (1 to 4).  Every result equals, bit for bit, the result of
  the same call made on one thread beforehand: the kernels share nothing but the pool, and a call
  that finds the pool busy runs on threads of its own.
- A process forks while another of its threads is inside a parallel call.  The child calls every
  kernel again, on threads (its own pool: csrc/parallel.c's fork handlers), gets the same bits,
  and exits 0; the parent's call completes with the same bits too.

``.ci/run`` runs this file under ThreadSanitizer too (FASTBN_SANITIZE=thread): zero reports.
There the forked child calls the kernels on one thread: TSan does not support starting threads
after a multi-threaded fork (it says so, and stops checking the child), and GCC 12's runtime then
aborts in about one run in ten ("dup thread with used id": the child's new thread reuses the stack,
hence the pthread_t, of a parent thread it still counts as live).  The child's threads are tested
natively and under AddressSanitizer.
Both tests take a few seconds natively.
"""
import os
import threading

import numpy as np
import pytest

import fastbn
import fastbn.init
from child import run_python

UNDER_TSAN = "libtsan" in os.environ.get("LD_PRELOAD", "")
# Under a sanitizer one round of the stress: its reports come from the accesses made (TSan orders
# them by happens-before, ASan checks each), not from how often a timing recurs; natively, two.
UNDER_SANITIZER = UNDER_TSAN or "libasan" in os.environ.get("LD_PRELOAD", "")
pytestmark = pytest.mark.slow_under_qemu   # .ci/run step 4: thread-heavy, minutes under qemu

SETUP = r"""
import os, threading
import numpy as np
import fastbn, fastbn.init

N = 2**19 + 3                                     # above the size where calls start threads
rng = np.random.default_rng(0)
slab = rng.standard_normal((8, 4, N // 32 + 1)).astype(np.float32)     # inner >= 32: slab path
rows = rng.standard_normal((N // 4 + 1, 2, 2))                        # inner 2: rows path
dy_slab = rng.standard_normal(slab.shape).astype(np.float32)
dy_rows = rng.standard_normal(rows.shape)
ones4, zeros4 = np.ones(4, np.float32), np.zeros(4, np.float32)
rows_ln = rng.standard_normal((N // 256 + 1, 256)).astype(np.float32)   # layer/RMS rows of 256
dy_ln = rng.standard_normal(rows_ln.shape).astype(np.float32)
grads = [rng.standard_normal(N), rng.standard_normal((N // 8, 4)).astype(np.float32)]
INITS = [n for n in fastbn.init.__all__ if n not in ("compute_fans", "calculate_gain")]


def calls():
    # name -> function of nothing returning a tuple of arrays/floats (its outputs fresh per call)
    out = {}
    for name, x, dy, g in (("slab", slab, dy_slab, ones4 * 1.5), ("rows", rows, dy_rows, None)):
        def train(x=x, g=g):
            r = fastbn.batch_norm_train(x, g, None, axis=1)
            return tuple(r)
        def infer(x=x, g=g):
            C = x.shape[1]
            return (fastbn.batch_norm_infer(x, np.full(C, 0.25, x.dtype), np.full(C, 2.0, x.dtype),
                                            None if g is None else g, axis=1),)
        def backward(x=x, dy=dy, g=g):
            _, mean, invstd = fastbn.batch_norm_train(x, g, axis=1)
            return tuple(fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=1))
        out[f"train_{name}"], out[f"infer_{name}"], out[f"backward_{name}"] = train, infer, backward
    # the norm family: groups that each run on the pool (rows, whole channels, channels-last)
    def layer():
        y, mean, invstd = fastbn.layer_norm(rows_ln, axis=-1)
        return (y, mean, invstd, *fastbn.layer_norm_backward(dy_ln, rows_ln, mean, invstd, axis=-1))
    def rms():
        y, invrms = fastbn.rms_norm(rows_ln, axis=-1)
        return (y, invrms, *fastbn.rms_norm_backward(dy_ln, rows_ln, invrms, axis=-1))
    def group():
        y, mean, invstd = fastbn.group_norm(slab, 2, ones4, zeros4, axis=1)
        return (y, mean, invstd,
                *fastbn.group_norm_backward(dy_slab, slab, mean, invstd, 2, ones4, axis=1))
    def instance_last():
        y, mean, invstd = fastbn.instance_norm(rows, axis=-1)
        return (y, mean, invstd, *fastbn.instance_norm_backward(dy_rows, rows, mean, invstd, axis=-1))
    out["layer_norm"], out["rms_norm"], out["group_norm"] = layer, rms, group
    out["instance_norm channels-last"] = instance_last
    out["global_norm"] = lambda: (fastbn.global_norm(grads),)
    def clip_norm():
        gs = [a.copy() for a in grads]
        return (fastbn.clip_grad_norm(gs, 10.0), *gs)
    def clip_value():
        gs = [a.copy() for a in grads]
        fastbn.clip_grad_value(gs, 0.5)
        return tuple(gs)
    out["clip_grad_norm"], out["clip_grad_value"] = clip_norm, clip_value
    out["clip_by_norm"] = lambda: (fastbn.clip_by_norm(grads[0], 3.0),)
    for n in INITS:
        f = getattr(fastbn.init, n)
        if n == "constant":
            out["init.constant"] = lambda f=f: (f((N // 2, 2), 0.5),)
        elif n == "orthogonal":          # blocks of reflectors past the first: threaded updates
            out["init.orthogonal"] = lambda f=f: (f((600, 200), rng=7, dtype=np.float64),)
        else:
            out["init." + n] = lambda f=f: (f((N // 2, 2), rng=7),)
    return out


def same(a, b):
    return all(np.array_equal(np.asarray(p), np.asarray(q), equal_nan=True) for p, q in zip(a, b))


CALLS = calls()
fastbn.set_num_threads(1)
EXPECTED = {name: call() for name, call in CALLS.items()}
"""

STRESS = SETUP + f"ROUNDS = {1 if UNDER_SANITIZER else 2}\n" + r"""
WORKERS = 8
stop = threading.Event()
errors = []

def changer():
    k = 0
    while not stop.is_set():
        fastbn.set_num_threads(1 + k % 4)
        k += 1
        stop.wait(0.0005)

def worker(w):
    try:
        names = list(CALLS)
        for r in range(ROUNDS):
            for i in range(len(names)):
                name = names[(i + 3 * w + r) % len(names)]    # each thread in its own order
                if not same(CALLS[name](), EXPECTED[name]):
                    errors.append(f"thread {w}: {name} gave other bits")
    except BaseException as e:                                 # report, never hang the joins
        errors.append(f"thread {w}: {type(e).__name__}: {e}")

fastbn.set_num_threads(4)
t_change = threading.Thread(target=changer)
t_change.start()
threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
stop.set()
t_change.join()
print(len(CALLS), "kernels", WORKERS * ROUNDS * len(CALLS), "calls")
print("\n".join(errors) or "ok")
"""

FORK = SETUP + f"CHILD_THREADS = {1 if UNDER_TSAN else 2}\n" + r"""
fastbn.set_num_threads(4)
started, done, parent_errors = threading.Event(), threading.Event(), []

def in_flight():
    started.set()
    while not done.is_set():                       # a parallel call is in flight when we fork
        if not same(CALLS["train_slab"](), EXPECTED["train_slab"]):
            parent_errors.append("train_slab")
    if not same(CALLS["backward_rows"](), EXPECTED["backward_rows"]):
        parent_errors.append("backward_rows")

t = threading.Thread(target=in_flight)
t.start()
started.wait()
pid = os.fork()
if pid == 0:                                       # the child: every kernel, on threads
    status = 0
    try:
        fastbn.set_num_threads(CHILD_THREADS)
        for name, call in CALLS.items():
            if not same(call(), EXPECTED[name]):
                print("child:", name, "gave other bits", flush=True)
                status = 1
    except BaseException as e:
        print("child:", type(e).__name__, e, flush=True)
        status = 1
    os._exit(status)
done.set()                                         # the parent's thread stops competing with
t.join()                                           # the child for the (shared, busy) cores
_, wstatus = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(wstatus), "parent", parent_errors or "ok")
"""


def test_eight_threads_with_the_thread_count_changing_underneath():
    r = run_python(STRESS)
    assert r.returncode == 0, r.stderr[-4000:]
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "ok", r.stdout[-4000:]
    assert int(lines[0].split()[0]) >= 9 + len(fastbn.init.__all__) - 3   # every kernel ran


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_fork_while_a_parallel_call_is_in_flight():
    r = run_python(FORK)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stdout.strip().splitlines()[-1] == "child exit 0 parent ok", r.stdout[-4000:] + r.stderr[-4000:]


def test_a_call_in_progress_elsewhere_does_not_change_the_thread_count_seen():
    """set_num_threads from another thread takes effect for later calls; it never breaks one."""
    x = np.random.default_rng(1).standard_normal(2**19 + 5)
    saved = fastbn.get_num_threads()
    try:
        fastbn.set_num_threads(1)
        expected = fastbn.global_norm(x)
        results = []

        def call():
            for _ in range(20):
                results.append(fastbn.global_norm(x))

        t = threading.Thread(target=call)
        t.start()
        for k in range(200):
            fastbn.set_num_threads(1 + k % 3)
        t.join()
        assert results == [expected] * 20
    finally:
        fastbn.set_num_threads(saved)
