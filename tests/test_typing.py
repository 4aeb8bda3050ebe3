"""The public API's static types (the ``.pyi`` stubs beside the modules), under ``mypy --strict``.

Specification:
- tests/typing_user.py, user code that calls every public function and layer method, type-checks
  under ``mypy --strict`` without an error, and every ``reveal_type`` line reveals the type
  written in its ``# T:`` comment: float32 arrays in give float32 arrays out, float64 give
  float64, ``dtype=`` picks the initializers' result, other floating data gives
  ``numpy.floating[Any]``; nothing is ``Any``.
- every line of tests/typing_errors.py marked ``# E: <code> <text>`` gets a mypy error with that
  code (``a|b``: either) mentioning ``<text>`` (``axis="one"``, a str as x, the array of ``clip_by_norm`` used as a
  float, ``training="yes"``, ...), and no other line gets one.
- every public name of fastbn, fastbn.init and fastbn.reference and every public method of
  BatchNorm is used in tests/typing_user.py.

mypy checks the fastbn that this interpreter imports (a source tree on PYTHONPATH, an editable
install or an installed wheel): its ``.py``/``.pyi`` files are copied beside the checked files,
because setuptools' editable finder is invisible to mypy and mypy refuses site-packages on
MYPYPATH.  The expected types are rendered by the same mypy run, from the ``# T:`` annotations,
so the comparison does not depend on how a numpy version spells ``float32``.
"""
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastbn
from fastbn import init, reference

HERE = Path(__file__).parent
USER = HERE / "typing_user.py"
ERRORS = HERE / "typing_errors.py"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (it is in the test extra)")

# --strict, isolated from any project or user configuration; the package copy may hold
# "type: ignore" comments another mypy version no longer needs.
MYPY_INI = """\
[mypy]
strict = True
[mypy-fastbn.*]
warn_unused_ignores = False
"""
REPORT = re.compile(r"^(?P<file>[^:]+\.pyi?):(?P<line>\d+): (?P<kind>error|note): (?P<msg>.*)$")
EXPECT_TYPE = re.compile(r"^\s*reveal_type\(.*\)\s*# T: (?P<type>.+?)\s*$")
EXPECT_ERROR = re.compile(r"# E: (?P<codes>[a-z|-]+) (?P<text>.+?)\s*$")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with a copy of the imported fastbn's Python files and stubs."""
    root = tmp_path_factory.mktemp("typing")
    pkg = Path(fastbn.__file__).parent
    (root / "fastbn").mkdir()
    for f in pkg.iterdir():
        if f.suffix in (".py", ".pyi") or f.name == "py.typed":
            shutil.copy(f, root / "fastbn" / f.name)
    (root / "mypy.ini").write_text(MYPY_INI)
    return root


def run_mypy(workdir, *files):
    """mypy --strict on ``files`` (in ``workdir``): the list of (file, line, kind, message)."""
    for f in files:
        if not (workdir / f.name).exists():
            shutil.copy(f, workdir / f.name)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", ".mypy_cache",
         "--show-error-codes", "--no-error-summary", "--no-pretty", "--no-color-output",
         "--hide-error-context", *(f.name for f in files)],
        cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), f"mypy crashed:\n{proc.stdout}\n{proc.stderr}"
    reports = []
    for line in proc.stdout.splitlines():
        m = REPORT.match(line)
        assert m, f"unexpected mypy output: {line!r}\n{proc.stdout}"
        reports.append((m["file"], int(m["line"]), m["kind"], m["msg"]))
    return reports


def expected_types():
    """{line of typing_user.py: the type its ``# T:`` comment names}."""
    return {n: m["type"] for n, text in enumerate(USER.read_text().splitlines(), 1)
            if (m := EXPECT_TYPE.match(text))}


def test_user_code_type_checks_and_reveals_the_documented_types(workdir):
    expected = expected_types()
    assert len(expected) > 50
    # The expected types as mypy renders them: one annotated name per check, revealed.
    imports = [t for t in USER.read_text().splitlines() if t.startswith(("import ", "from "))]
    lines = imports + [""]
    where = {}
    for n, annotation in expected.items():
        lines.append(f"_t{n}: {annotation}")
        lines.append(f"reveal_type(_t{n})")
        where[len(lines)] = n
    (workdir / "typing_expected.py").write_text("\n".join(lines) + "\n")

    reports = run_mypy(workdir, USER, workdir / "typing_expected.py")
    errors = [r for r in reports if r[2] == "error"]
    assert not errors, "mypy --strict errors:\n" + "\n".join(f"{f}:{n}: {m}" for f, n, _, m in errors)
    revealed, rendered = {}, {}
    for f, n, _, msg in reports:
        m = re.fullmatch(r'Revealed type is "(.*)"', msg)
        if not m:
            continue
        if f == USER.name:
            assert n not in revealed, f"typing_user.py:{n}: more than one reveal_type on a line"
            revealed[n] = m[1]
        elif f == "typing_expected.py":
            rendered[where[n]] = m[1]
    assert revealed.keys() == expected.keys(), "reveal_type lines without a '# T:' comment " \
        f"or the reverse: {sorted(revealed.keys() ^ expected.keys())}"
    wrong = [f"typing_user.py:{n}: expected {expected[n]} = {rendered[n]},\n    revealed {revealed[n]}"
             for n in sorted(expected) if revealed[n] != rendered[n]]
    assert not wrong, "\n".join(wrong)
    assert not any(t == "Any" or t.startswith("Any ") for t in revealed.values())


def test_mistakes_are_type_errors(workdir):
    expected = {}
    for n, text in enumerate(ERRORS.read_text().splitlines(), 1):
        m = EXPECT_ERROR.search(text)
        if m:
            expected[n] = (m["codes"].split("|"), m["text"])
    assert len(expected) >= 20
    reports = run_mypy(workdir, ERRORS)
    got = {}
    for f, n, kind, msg in reports:
        if kind == "error":
            assert f == ERRORS.name, f"error outside typing_errors.py: {f}:{n}: {msg}"
            got.setdefault(n, []).append(msg)
    unexpected = {n: msgs for n, msgs in got.items() if n not in expected}
    assert not unexpected, f"errors on lines not marked '# E:': {unexpected}"
    for n, (codes, text) in sorted(expected.items()):
        msgs = got.get(n, [])
        assert any(msg.endswith(tuple(f"[{c}]" for c in codes)) and text in msg for msg in msgs), \
            f"typing_errors.py:{n}: expected a {codes} error mentioning {text}, got {msgs}"


def _public_names():
    for name in fastbn.__all__:
        if name not in ("init", "reference"):   # modules: their names are checked below
            yield f"fastbn.{name}"
    for name in init.__all__:
        yield f"init.{name}"
    for name, obj in vars(reference).items():
        if inspect.isfunction(obj) and not name.startswith("_"):
            yield f"reference.{name}"
    for name, obj in vars(fastbn.BatchNorm).items():
        if callable(obj) and not name.startswith("_"):
            yield f".{name}("


def test_user_code_uses_every_public_name():
    text = USER.read_text()
    text = text.replace("BatchNorm(", "fastbn.BatchNorm(")   # imported by name
    text = text.replace("BatchNormResult[", "fastbn.BatchNormResult[")
    text = text.replace("BatchNormGrads[", "fastbn.BatchNormGrads[")
    missing = [name for name in _public_names()
               if not re.search(re.escape(name) + (r"\b" if name[-1].isalnum() else ""), text)]
    assert not missing, f"not used in typing_user.py: {missing}"
