"""pytest-benchmark view of the clipping cases of ``python -m fastbn.bench``.

Run: ``PYTHONPATH=src python -m pytest bench/test_bench_clip.py --benchmark-only``.  One test per
(case, contender), parametrized from ``fastbn.bench.clip.cases`` -- the same inputs and callables
as the report, so the two never drift apart.  Set FASTBN_BENCH_FULL=1 for the full-size inputs.
"""
import os

import pytest

from fastbn.bench import clip

pytest.importorskip("pytest_benchmark")

_FULL = os.environ.get("FASTBN_BENCH_FULL", "") not in ("", "0")
_CASES = clip.cases(quick=not _FULL, torch=False)
_PARAMS = [pytest.param(case, who, id=f"{case.kernel}-{who}")
           for case in _CASES for who in ("fastbn", "reference", "roofline")
           if getattr(case, who) is not None]


@pytest.mark.parametrize("case, who", _PARAMS)
def test_clip(benchmark, case, who):
    benchmark.group = case.kernel
    benchmark(getattr(case, who))
