"""pytest-benchmark suite settings: run ``pytest bench --benchmark-only``.

Not collected by a plain ``python -m pytest`` (pyproject's testpaths is ``tests``).
The kernels run on FASTBN_BENCH_THREADS threads (default 1, the issue's speed targets), so the
comparison with the single-threaded NumPy reference is like for like.
"""
import os

import pytest

import fastbn


@pytest.fixture(autouse=True, scope="session")
def _bench_threads():
    saved = fastbn.get_num_threads()
    fastbn.set_num_threads(int(os.environ.get("FASTBN_BENCH_THREADS", "1")))
    yield
    fastbn.set_num_threads(saved)
