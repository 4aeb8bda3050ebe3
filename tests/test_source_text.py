"""What the source says about itself stays true.

Specification:
- every test file (``tests/*.py``) and docs page (``docs/*.rst``) named in a comment or docstring of
  the package, the C sources, the tests or the benchmark suite exists;
- none of them points at "the issue" for a target or a rule: they say what it is;
- the Python side's size from which outputs are streamed (where new ones are placed away from
  their inputs) is the C kernels' ``FB_STREAM_MIN_BYTES``.
(``FB_LANES`` in clipping's docstrings is checked against the code in tests/test_clip.py.)
Runs in a source checkout only: an installed wheel carries no C sources or docs.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIRS = ("src/fastbn", "csrc", "tests", "bench")
if not (ROOT / "csrc").is_dir():
    pytest.skip("not in a source checkout", allow_module_level=True)


def _sources():
    for d in DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if p.suffix in (".py", ".pyx", ".pyi", ".pxd", ".c", ".h") and p.name != Path(__file__).name:
                if not (p.suffix == ".c" and (p.with_suffix(".pyx")).exists()):   # Cython output
                    yield p


CITED = re.compile(r"\b((?:tests|docs)/[\w/]+\.(?:py|rst))\b")


def test_every_cited_test_file_and_docs_page_exists():
    missing = [(str(p.relative_to(ROOT)), c) for p in _sources()
               for c in CITED.findall(p.read_text(encoding="utf-8")) if not (ROOT / c).exists()]
    assert not missing


def test_no_text_defers_to_an_issue_for_what_it_means():
    deferring = [str(p.relative_to(ROOT)) for p in _sources()
                 if re.search(r"\bthe issue\b", p.read_text(encoding="utf-8"), re.I)]
    assert not deferring


def test_the_placement_threshold_is_the_kernels_stream_threshold():
    from fastbn import _validation
    text = (ROOT / "csrc" / "norm_common.h").read_text(encoding="utf-8")
    shift = re.search(r"#define FB_STREAM_MIN_BYTES \((\d+) << (\d+)\)", text)
    assert shift, "FB_STREAM_MIN_BYTES is no longer written as (a << b)"
    assert _validation.STREAM_MIN_BYTES == int(shift.group(1)) << int(shift.group(2))
