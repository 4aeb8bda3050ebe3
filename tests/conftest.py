"""Shared fixtures: every test that takes `threads`, `isa` or `sums_width` runs at each value."""
import importlib.util
import os

import numpy as np
import pytest

import fastbn
from fastbn import _config, _norm

# Scripts run by mpiexec (tests/test_mpi.py launches them), not test modules: --doctest-modules
# would import them, and they import mpi4py at the top.
collect_ignore = ["mpi"]


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    saved = fastbn.get_num_threads()
    fastbn.set_num_threads(request.param)
    yield request.param
    fastbn.set_num_threads(saved)


@pytest.fixture(params=list(_config.ISA_NAMES))
def isa(request):
    if request.param not in _config.available_isas():
        pytest.skip(f"{request.param} cannot run on this CPU")
    saved = _config.get_isa()
    _config.set_isa(request.param)
    yield request.param
    _config.set_isa(saved)


@pytest.fixture(params=[False, True], ids=["wide-sums", "narrow-sums"])
def sums_width(request, isa):
    """The AVX-512 kernels' float32 statistics sums in full- or half-width vectors (csrc/cpu.h's
    fb_narrow_sums, chosen per CPU), forced either way with the `isa` fixture; the other
    instruction sets have one width."""
    if request.param and isa != "avx512":
        pytest.skip("only the AVX-512 kernels have a narrow width")
    saved = _norm.get_narrow_sums()
    _norm.set_narrow_sums(request.param)
    yield request.param
    _norm.set_narrow_sums(saved)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_report_header(config):
    """Which fastbn the run tests: the source tree or an installed wheel."""
    return f"fastbn {fastbn.__version__} from {fastbn.__file__} (isa {_config.get_isa()})"


def pytest_collection_modifyitems(config, items):
    """The longest tests first: those marked slow_under_qemu (the resource counts, the fuzz
    profiles, the concurrency stress), so that under ``pytest -n`` none of them starts last and
    keeps one worker busy after the others have finished.

    The docstring examples of fastbn.distributed use mpi4py: without it they are skipped with
    the reason shown (never under FASTBN_REQUIRE_MPI=1, .ci/run's MPI step)."""
    items.sort(key=lambda item: item.get_closest_marker("slow_under_qemu") is None)   # stable
    # FASTBN_SHARD=i/n: only every n-th test from the i-th (.ci/run's emulated step runs the
    # shards of one collection in parallel processes).
    shard = os.environ.get("FASTBN_SHARD")
    if shard:
        i, n = map(int, shard.split("/"))
        config.hook.pytest_deselected(items=[t for k, t in enumerate(items) if k % n != i])
        items[:] = [t for k, t in enumerate(items) if k % n == i]
    if importlib.util.find_spec("mpi4py") is not None or os.environ.get("FASTBN_REQUIRE_MPI") == "1":
        return
    skip = pytest.mark.skip(reason='mpi4py not installed (pip install "fastbn[mpi]"): the '
                                   "examples of fastbn.distributed need it")
    for item in items:
        if item.name.startswith("fastbn.distributed."):   # doctest items are named by object
            item.add_marker(skip)
