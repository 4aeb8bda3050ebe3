"""pytest-benchmark suite settings: run ``pytest bench --benchmark-only``.

Not collected by a plain ``python -m pytest`` (pyproject's testpaths is ``tests``).

Threads: ``FASTBN_BENCH_THREADS=2 pytest bench --benchmark-only`` runs fastbn's kernels on 2
threads (``fastbn.set_num_threads``) for the whole session; unset, on 1.  The default compares
like with like: the NumPy and SciPy baselines run on one thread (BLAS, in the clipping baseline,
on fastbn's thread count when threadpoolctl is installed).  With more threads a group's ratio is
fastbn's threads and kernel together.  A value that is not a whole number of at least 1 stops
the run with a usage error.

The table: unless ``--benchmark-columns`` is given, it shows min, median, IQR and rounds, within
120 columns (pytest-benchmark's default ten columns take over 200).  The median is the figure to
compare; IQR its spread.
"""
import os

import pytest

import fastbn

COLUMNS = ["min", "median", "iqr", "rounds"]


def bench_threads(environ=os.environ):
    """fastbn's thread count for the suite: FASTBN_BENCH_THREADS, default 1."""
    text = environ.get("FASTBN_BENCH_THREADS", "1")
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise pytest.UsageError(
            f"FASTBN_BENCH_THREADS must be a whole number of threads, at least 1; got {text!r}")
    return n


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Before pytest-benchmark's own pytest_configure, which reads the option into its session.
    given = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    if hasattr(config.option, "benchmark_columns") and not any(
            a.startswith("--benchmark-columns") for a in given):
        config.option.benchmark_columns = COLUMNS
    config.fastbn_bench_threads = bench_threads()


@pytest.fixture(autouse=True, scope="session")
def _bench_threads(pytestconfig):
    saved = fastbn.get_num_threads()
    fastbn.set_num_threads(pytestconfig.fastbn_bench_threads)
    yield
    fastbn.set_num_threads(saved)
