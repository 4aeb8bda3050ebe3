"""Run Python code in a fresh interpreter that imports the fastbn under test."""
import os
import subprocess
import sys

import fastbn

PKG_PARENT = os.path.dirname(os.path.dirname(fastbn.__file__))


def run_python(code, env_extra=None, prefix=(), args=None):
    """``python -c code`` (or ``python *args``) with this fastbn first on the path, the forced
    instruction set cleared unless ``env_extra`` sets it; the completed process, output as text."""
    env = dict(os.environ, PYTHONPATH=PKG_PARENT)
    env.pop("FASTBN_FORCE_ISA", None)
    env.update(env_extra or {})
    argv = args if args is not None else ["-c", code]
    return subprocess.run([*prefix, sys.executable, *argv], env=env, capture_output=True,
                          text=True, timeout=300)
