"""Threads, instruction-set paths and portability.

Specification:
- ``FASTBN_FORCE_ISA`` picks the instruction-set path at import; ``show_config`` reports it and the
  thread count; an unknown or unsupported value is refused with a message naming the variable.
- A process forked after a multi-threaded call (multiprocessing's default on Linux) runs kernels
  on threads without hanging: the child has none of the parent's pool of helper threads, and a
  fork handler lets it start its own.  (Where the platform cannot start any thread in a forked
  child -- qemu-user 7.2 when the parent has another thread alive -- the test skips, having
  checked that with a plain Python thread.)
- The thread count defaults to ``OMP_NUM_THREADS`` when set; bad values of ``set_num_threads``
  are refused.
- One build runs on any x86-64: under ``qemu-x86_64 -cpu Nehalem`` (no AVX) fastbn picks the
  scalar path and gives exactly the bits the scalar path gives here.  NumPy runs there too, on
  any host, Intel or AMD: its OpenBLAS is pointed at the guest's kernels, whatever the host's
  environment says (``.ci/run`` runs the suite under qemu the same way).
"""
import faulthandler
import multiprocessing
import os
import platform
import re
import shutil
import sys
import threading

import numpy as np
import pytest

import fastbn
from child import QEMU_CPU, run_python, run_under_qemu
from fastbn import _config


@pytest.mark.parametrize("isa", list(_config.ISA_NAMES))
def test_force_isa_environment_variable_selects_the_path(isa):
    # Ask a child what it can run: under qemu-user only this process is emulated, not its children.
    r = run_python("from fastbn import _config; print(' '.join(_config.available_isas()))")
    available = r.stdout.split()
    r = run_python("import fastbn; fastbn.show_config()", {"FASTBN_FORCE_ISA": isa})
    if isa not in available:
        assert r.returncode != 0 and "FASTBN_FORCE_ISA" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert f"isa in use    {isa}" in r.stdout


def test_unknown_isa_name_is_refused():
    r = run_python("import fastbn", {"FASTBN_FORCE_ISA": "sse9"})
    assert r.returncode != 0 and "isa" in r.stderr and "sse9" in r.stderr
    with pytest.raises(ValueError, match="isa"):
        _config.set_isa("sse9")


def test_show_config_reports_isa_and_threads(capsys):
    fastbn.show_config()
    text = capsys.readouterr().out
    assert f"isa in use    {_config.get_isa()}" in text
    assert f"threads       {fastbn.get_num_threads()}" in text


def test_omp_num_threads_sets_the_default():
    r = run_python("import fastbn; print(fastbn.get_num_threads())", {"OMP_NUM_THREADS": "3"})
    assert r.returncode == 0 and r.stdout.strip() == "3"


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                      ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc):
    with pytest.raises(exc, match="^n:"):
        fastbn.set_num_threads(bad)


# Above the size where kernels start threads (csrc/parallel.h: FB_PAR_MIN_ELEMS = 2^19 elements).
FORK_SHAPE = (64, 32, 320)


def _child_runs_fastbn(conn):
    # If the child stalls, print where it is and exit, rather than leave the parent waiting.
    faulthandler.dump_traceback_later(50, exit=True)
    x = np.random.default_rng(1).standard_normal(FORK_SHAPE, dtype=np.float32)
    y, mean, invstd = fastbn.batch_norm_train(x)
    conn.send(float(np.abs(y).sum()))   # a pipe, not a Queue: the child starts no feeder thread


def _child_starts_a_plain_thread(conn):
    faulthandler.dump_traceback_later(50, exit=True)
    t = threading.Thread(target=conn.send, args=(1.0,))
    t.start()
    t.join()


def _forked(target):
    """Run target(conn) in a forked child; what it sent (None if nothing) and its exit code."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=target, args=(send,))
    p.start()
    send.close()
    try:
        got = receive.recv() if receive.poll(60) else None
    except EOFError:   # the child died without sending
        got = None
    p.join(10)
    if p.is_alive():
        p.kill()
        p.join()
    return got, p.exitcode


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the default start method on Linux")
def test_fork_after_a_parallel_call_does_not_hang(threads):
    x = np.random.default_rng(1).standard_normal(FORK_SHAPE, dtype=np.float32)
    assert x.size >= 2**19
    expected = float(np.abs(fastbn.batch_norm_train(x).y).sum())   # the pool's helpers start
    got, exitcode = _forked(_child_runs_fastbn)
    if got is None and _forked(_child_starts_a_plain_thread)[0] is None:
        # qemu-user 7.2 aborts or hangs a forked child that starts any thread while the parent
        # has another thread alive (torch's OpenMP pool, say): nothing fastbn can change.
        pytest.skip("this platform cannot start a thread in a forked child (an emulator?)")
    assert got is not None, f"the forked child hung or died (exit code {exitcode})"
    assert exitcode == 0 and got == expected


POOL_THREADS = r"""
import numpy as np, fastbn

def threads():
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("Threads:")))

fastbn.set_num_threads(2)
x = np.random.default_rng(0).standard_normal((64, 32, 320), dtype=np.float32)
grads = [np.ones((700, 1000), np.float32) for _ in range(2)]
def calls():
    y, mean, invstd = fastbn.batch_norm_train(x)
    fastbn.batch_norm_backward(x, x, mean, invstd)
    fastbn.clip_grad_norm(grads, 1.0)
    fastbn.init.he_normal((1024, 1024), rng=1)
before = threads()
calls()
after_first = threads()
for _ in range(20):
    calls()
print(before, after_first, threads())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts threads in /proc")
def test_the_pool_starts_its_helpers_once():
    # One pool for the process, whichever module's kernel runs: for two threads, one helper,
    # started by the first parallel call; the later calls reuse it and start no thread.
    r = run_python(POOL_THREADS)
    assert r.returncode == 0, r.stderr
    before, after_first, after_many = map(int, r.stdout.split())
    assert after_first - before == 1
    assert after_many == after_first


SMOKE = r"""
import numpy as np, fastbn, sys
from fastbn import _config
rng = np.random.default_rng(7)
out = {"isa": np.array(_config.get_isa())}
# Inputs from integers and IEEE division only: NumPy's own SIMD math (cos, exp, ...) may differ
# between CPUs, fastbn's results must not.
ints = lambda shape: rng.integers(-10**6, 10**6, shape) / 997.0
for dt in (np.float32, np.float64):
    for shape, axis in [((33, 5, 80), 1), ((300, 7), 1), ((4, 6, 6, 9), -1)]:
        x = (ints(shape) + 1e3).astype(dt)
        g = (1.0 + np.abs(ints(shape[axis])) / 1e3).astype(dt)
        y, m, s = fastbn.batch_norm_train(x, g, None, axis=axis)
        dx, dg, db = fastbn.batch_norm_backward(ints(shape).astype(dt), x, m, s, g, axis=axis)
        key = f"{np.dtype(dt).name}{shape}"
        for name, a in (("y", y), ("m", m), ("s", s), ("dx", dx), ("dg", dg), ("db", db)):
            out[key + name] = a
np.savez(sys.argv[1] if len(sys.argv) > 1 else "smoke.npz", **out)
"""


needs_qemu = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("qemu-x86_64") is None,
    reason="x86-64 with qemu-user only")


@needs_qemu
def test_runs_on_an_old_cpu_under_qemu_with_the_scalar_bits(tmp_path):
    old, here = tmp_path / "nehalem.npz", tmp_path / "scalar.npz"
    code = SMOKE.replace('sys.argv[1] if len(sys.argv) > 1 else "smoke.npz"', repr(str(old)))
    r = run_under_qemu(code)
    assert r.returncode == 0, r.stderr[-2000:]
    code = SMOKE.replace('sys.argv[1] if len(sys.argv) > 1 else "smoke.npz"', repr(str(here)))
    r = run_python(code, {"FASTBN_FORCE_ISA": "scalar"})
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = np.load(old), np.load(here)
    assert str(a["isa"]) == "scalar"
    for key in b.files:
        if key != "isa":
            assert np.array_equal(a[key], b[key]), key


BLAS_UNDER_QEMU = r"""
import numpy as np
from threadpoolctl import threadpool_info
a = np.arange(40000.0).reshape(200, 200) / 7.0
print(float((a @ a.T).trace()), *[i.get("architecture") for i in threadpool_info()
                                  if i["internal_api"] == "openblas"])
"""


@needs_qemu
def test_numpy_blas_runs_under_qemu_whatever_the_host_environment_says(monkeypatch):
    # A host whose environment picks AVX2 kernels (as some machines set OPENBLAS_CORETYPE) must
    # not leak them into the Nehalem guest, where they die with SIGILL.
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    r = run_under_qemu(BLAS_UNDER_QEMU)
    assert r.returncode == 0, r.stderr[-2000:]
    trace, *arch = r.stdout.split()
    a = np.arange(40000.0).reshape(200, 200) / 7.0
    assert float(trace) == pytest.approx(float((a @ a.T).trace()), rel=1e-12)
    assert arch in ([], [QEMU_CPU])


def test_ci_runs_qemu_with_the_guest_blas_kernels():
    ci = os.path.join(os.path.dirname(__file__), os.pardir, ".ci", "run")
    if not os.path.exists(ci):
        pytest.skip("not in a source checkout: no .ci/run beside the tests")
    with open(ci) as f:
        calls = [line for line in f if re.search(r"^\s*[^#]*\bqemu-x86_64 -cpu", line)]
    assert calls
    for line in calls:
        cpu = re.search(r"-cpu (\w+)", line).group(1)
        assert f"OPENBLAS_CORETYPE={cpu} " in line, line
