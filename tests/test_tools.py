"""The measurement programs in ``tools/`` build as their headers say.

Specification:
- each C program in ``tools/`` names its build command in its header comment (a line starting
  ``gcc`` or ``cc``, continued with ``\\``), and that command, run from the checkout with its
  output in a temporary directory (at ``-O0``, for time), builds it without an error;
- ``tools/kpass_lib.c``, which includes this tree's kernels, links with every symbol they use
  defined (``-Wl,--no-undefined``): the cpu.c switches they read are defined in it too.
Runs in a source checkout, on x86-64 Linux with a C compiler: the programs use x86 intrinsics.
"""
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = sorted((ROOT / "tools").glob("*.c"))
if not TOOLS:
    pytest.skip("not in a source checkout", allow_module_level=True)
if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
    pytest.skip("the tools are x86-64 Linux programs", allow_module_level=True)


def build_command(path):
    """The command of ``path``'s header comment, its continuation lines joined."""
    lines = path.read_text(encoding="utf-8").split("*/", 1)[0].splitlines()
    for i, line in enumerate(lines):
        text = line.lstrip(" /*").strip()
        if re.match(r"(gcc|cc) ", text):
            while text.endswith("\\"):
                i += 1
                text = text[:-1] + " " + lines[i].lstrip(" /*").strip()
            return text.split("&&")[0].strip()
    return None


@pytest.mark.parametrize("path", TOOLS, ids=[p.name for p in TOOLS])
def test_each_tool_builds_with_the_command_in_its_header(path, tmp_path):
    cmd = build_command(path)
    assert cmd is not None, f"{path.name} names no build command"
    args = [re.sub(r"^-O[0-3s]$", "-O0", a) for a in shlex.split(cmd.replace("<tree>", str(ROOT)))]
    if shutil.which(args[0]) is None:
        pytest.skip(f"no {args[0]}")
    out = args.index("-o") + 1
    args[out] = str(tmp_path / Path(args[out]).name)
    if args[out].endswith(".so"):
        args.append("-Wl,--no-undefined")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}   # a sanitizer run's runtime
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
