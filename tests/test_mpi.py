"""Synchronized batch norm on real MPI processes: tests/mpi/check_sync.py under
``mpiexec -n P`` for P = 1..4 (MPICH from PyPI oversubscribes the cores by default).

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


def run_mpi(n, *args, cwd=None):
    """``mpiexec -n n python -m mpi4py args...`` with this fastbn importable; returns stdout."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastbn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [src, env.get("PYTHONPATH")] if p)
    env.setdefault("OMP_NUM_THREADS", "1")   # P processes on few cores: one thread each
    proc = subprocess.run([mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", *args],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=cwd)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow_under_qemu
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_sync_batch_norm_matrix_under_mpiexec(n):
    out = run_mpi(n, os.path.join(HERE, "mpi", "check_sync.py"))
    assert f"on {n} processes, all passed" in out


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
