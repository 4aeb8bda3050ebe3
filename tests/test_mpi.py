"""Synchronized batch norm on real MPI processes: tests/mpi/check_sync.py under
``mpiexec -n P`` for P = 1..4 (MPICH from PyPI oversubscribes the cores by default), and
tests/mpi/check_mismatch.py: a rank that disagrees or fails makes every rank raise, within a
timeout (never a deadlock).

Skipped, with the reason shown, only when mpi4py is not installed (``pip install "fastbn[mpi]"``)
and FASTBN_REQUIRE_MPI is not 1; .ci/run has a step that installs it and runs these with
FASTBN_REQUIRE_MPI=1, where a missing or broken MPI fails.  With
mpi4py installed, an MPI that cannot start is a failure, never a skip.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastbn

if os.environ.get("FASTBN_REQUIRE_MPI") == "1":   # .ci/run's MPI step: no skip allowed
    import mpi4py  # noqa: F401
else:
    pytest.importorskip("mpi4py", reason='mpi4py not installed (pip install "fastbn[mpi]"): '
                                         "the MPI tests need it")

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 180


def mpiexec():
    """The mpiexec beside this interpreter (the mpich wheel's) or on PATH."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which("mpiexec", path=path)
    assert found, "mpi4py is installed but no mpiexec was found (pip install mpich)"
    return found


def run_mpi(n, *args, cwd=None, timeout=TIMEOUT):
    """``mpiexec -n n python -m mpi4py args...`` with this fastbn importable; returns stdout."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastbn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [src, env.get("PYTHONPATH")] if p)
    env.setdefault("OMP_NUM_THREADS", "1")   # P processes on few cores: one thread each
    proc = subprocess.run([mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow_under_qemu
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_sync_batch_norm_matrix_under_mpiexec(n):
    out = run_mpi(n, os.path.join(HERE, "mpi", "check_sync.py"))
    assert f"on {n} processes, all passed" in out


def mismatch_expectations(n):
    """scenario -> (the odd rank, its error type and message prefix, the others' type and
    prefix) of tests/mpi/check_mismatch.py on n processes."""
    last = n - 1
    failed = "failed its argument checks"
    return {
        "channels": (last, "ValueError", f"x: rank {last} has 5 channels, rank 0 has 3",
                     "ValueError", f"x: rank {last} has 5 channels, rank 0 has 3"),
        "dtype": (1, "TypeError", "x: rank 1 has dtype float32, rank 0 has float64",
                  "TypeError", "x: rank 1 has dtype float32, rank 0 has float64"),
        "axis": (1, "ValueError", "axis: rank 1 has channel axis 3 of a 4-d x, rank 0 has axis 1",
                 "ValueError", "axis: rank 1 has channel axis 3 of a 4-d x, rank 0 has axis 1"),
        "eps": (last, "ValueError", "eps: expected", "ValueError", f"eps: rank {last} {failed}"),
        "backward-dy": (0, "ValueError", "dy: expected the shape of x", "ValueError",
                        f"dy: rank 0 {failed}"),
    }


@pytest.mark.slow_under_qemu
@pytest.mark.parametrize("n", [3, 4])
def test_a_disagreeing_or_failing_rank_makes_every_rank_raise_under_mpiexec(tmp_path, n):
    # a deadlock would hit the timeout (subprocess.TimeoutExpired): the job must end by itself
    run_mpi(n, os.path.join(HERE, "mpi", "check_mismatch.py"), str(tmp_path), timeout=60)
    lines = {}
    for rank in range(n):   # each rank's own report (mpiexec's stdout may interleave lines)
        for line in (tmp_path / f"rank{rank}.txt").read_text().splitlines():
            who, scenario, kind, message = line.split(" | ", 3)
            assert who == f"rank {rank}"
            lines[rank, scenario] = (kind, message)
    for scenario, (odd, odd_kind, odd_msg, kind, msg) in mismatch_expectations(n).items():
        for rank in range(n):
            got_kind, got = lines[rank, scenario]
            want_kind, want = (odd_kind, odd_msg) if rank == odd else (kind, msg)
            assert got_kind == want_kind and got.startswith(want), (rank, scenario, got_kind, got)
    # the communicator stays usable: the same well-formed call afterwards on every rank
    afters = {lines[rank, "after"] for rank in range(n)}
    assert len(afters) == 1 and next(iter(afters))[0] == "ok"


@pytest.mark.slow_under_qemu
@pytest.mark.parametrize("n", [3, 4])
def test_demo_data_parallel_follows_the_one_process_curves(tmp_path, n):
    pytest.importorskip("sklearn", reason="the demo needs scikit-learn (the demo extra)")
    pytest.importorskip("matplotlib", reason="the demo needs matplotlib (the demo extra)")
    out = run_mpi(n, "-m", "fastbn.demo", "--data-parallel", "--quick", "--out", str(tmp_path))
    assert f"data-parallel: {n} processes" in out
    summary = json.loads((tmp_path / "data-parallel.json").read_text())
    assert summary["processes"] == n and len(summary["runs"]) == 2
    for run in summary["runs"]:
        # the same global batches: equal up to float rounding (sums added in another order)
        assert len(run["loss_parallel"]) == len(run["loss_one_process"]) == 12
        np.testing.assert_allclose(run["loss_parallel"], run["loss_one_process"], rtol=1e-5)
        assert run["max_accuracy_difference"] <= 2 / 500      # at most 2 of the 500 test images
        assert run["eval_steps"] == [0, 4, 8, 12]
    assert (tmp_path / "data-parallel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
