"""Run Python code in a fresh interpreter that imports the fastbn under test."""
import os
import subprocess
import sys

import fastbn

PKG_PARENT = os.path.dirname(os.path.dirname(fastbn.__file__))


def run_python(code, env_extra=None, prefix=(), args=None):
    """``python -c code`` (or ``python *args``) with this fastbn first on the path, the forced
    instruction set and pytest-xdist's worker variables cleared (``env_extra`` may set them again);
    the completed process, output as text."""
    env = dict(os.environ, PYTHONPATH=PKG_PARENT)
    env.pop("FASTBN_FORCE_ISA", None)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):   # a child is no xdist worker
        env.pop(name, None)
    env.update(env_extra or {})
    argv = args if args is not None else ["-c", code]
    return subprocess.run([*prefix, sys.executable, *argv], env=env, capture_output=True,
                          text=True, timeout=300)


QEMU_CPU = "Nehalem"   # SSE4.2, no AVX: the oldest x86-64 the scalar path is tested on


def run_under_qemu(code, env_extra=None):
    """``run_python`` as a Nehalem CPU under qemu-user.  NumPy's OpenBLAS is told to use that
    model's kernels: left alone it may take the host's (from an inherited OPENBLAS_CORETYPE, or
    its own detection on some AMD hosts) and die with SIGILL."""
    env = {"OPENBLAS_CORETYPE": QEMU_CPU, **(env_extra or {})}
    return run_python(code, env, prefix=("qemu-x86_64", "-cpu", QEMU_CPU))
