"""The README as a specification: every Python snippet in it runs as written, and it stays short.

Each ```python block of README.md runs in a fresh interpreter (``sys.executable``, the fastbn the
tests import) from an empty temporary directory, so a snippet can rely on nothing but its own
lines.  Shell blocks (```bash) are not run.  Where the README is not beside the tests (the tests
copied next to an installed wheel), these tests skip.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_LINES = 150

pytestmark = pytest.mark.skipif(not README.is_file(), reason=f"no README.md at {README}")


def python_blocks(text):
    """``(first line number, code)`` of every fenced ```python block, in order."""
    blocks = []
    for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M):
        blocks.append((text.count("\n", 0, m.start()) + 2, m.group(1)))
    return blocks


def _blocks():
    if not README.is_file():
        return []
    return [pytest.param(line, code, id=f"line{line}")
            for line, code in python_blocks(README.read_text(encoding="utf-8"))]


def test_python_blocks_are_found_and_shell_blocks_are_not():
    sample = "a\n```python\nx = 1\n```\n```bash\nexit 1\n```\n```python\ny = 2\n```\n"
    assert python_blocks(sample) == [(3, "x = 1\n"), (9, "y = 2\n")]
    assert _blocks(), "README.md has no ```python block: nothing shows how to call fastbn"


@pytest.mark.parametrize("line, code", _blocks())
def test_python_block_runs_as_written(line, code, tmp_path):
    env = dict(os.environ)
    # The snippet imports the fastbn these tests import, from wherever it is (installed or src/).
    import fastbn
    package_root = str(Path(fastbn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_root, env.get("PYTHONPATH")] if p)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (f"README.md line {line}: the block failed\n{code}\n"
                                    f"--- stderr ---\n{result.stderr}")


def test_readme_is_at_most_150_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; the first screen is {MAX_LINES} at most"
