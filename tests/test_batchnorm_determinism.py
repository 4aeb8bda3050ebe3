"""Bitwise reproducibility of the batch-norm kernels.

Specification: on inputs large enough to be split across threads (>= 65536 elements) and on both C
layout paths, every result (y, mean, invstd, running statistics, inference y, dx, dgamma, dbeta)
is bitwise identical from run to run, for 1 and 2 threads, and on every instruction-set path
(each equal to the scalar path's bits, also with +-inf and NaN among the inputs: NaNs' signs and
payloads included, and with values spread over 2^-40..2^40; so are the float64 statistics before
their rounding to float32), the AVX-512 path with its statistics sums in either vector width, and
the rows layouts' gradient apply with its L2 prefetch or without, and the channels-first first pass
on one thread with its prefetch of the next channel or group or without.  All are chosen per CPU:
half-width sums on AMD family 19h (Zen 4), full elsewhere; no gradient prefetch on AMD family 1Ah
(Zen 5), prefetch elsewhere; no first-pass prefetch on AMD Zen 3, prefetch elsewhere.
"""
import numpy as np
import pytest

import fastbn
from fastbn import _config, _norm
from bn_helpers import make_inputs, scalar_one_thread_of, spread_wide, with_non_finite, x86_cpu

# Above the size where kernels start threads (csrc/parallel.h: FB_PAR_MIN_ELEMS = 2^19 elements).
# The last is streamed (outputs of 4 MiB and more) in runs of 196 values: each run's ends lie
# inside lines (masked vectors on AVX-512 and AVX2), and on AVX-512 an odd count of whole lines
# is left over by the vector pairs (a line streamed alone).
BIG = [((64, 32, 320), 1), ((32768, 24), 1), ((16384, 8, 5), 1), ((40, 32, 32, 16), -1),
       ((8, 672, 14, 14), 1)]
BIG_IDS = ["NCL-slab", "NC-rows", "NCL-rows-virtual", "NHWC", "NCHW-streamed-14x14"]


def _inputs(shape, axis, dtype, values="near"):
    """values "wide": x spread over 2^-40..2^40 (spread_wide), where float64 sums round"""
    rng = np.random.default_rng(2024)
    x, gamma, beta = make_inputs(rng, shape, axis, dtype, offset=100.0)
    if values == "wide":
        x = spread_wide(x, rng)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dy


def run_all(x, gamma, beta, dy, axis):
    """Every output of the three kernels (and the running-statistics update) for these inputs."""
    C = x.shape[axis]
    rm, rv = np.zeros(C, x.dtype), np.ones(C, x.dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis, running_mean=rm,
                                              running_var=rv)
    yi = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    dx, dgamma, dbeta = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)
    return [y, mean, invstd, rm, rv, yi, dx, dgamma, dbeta]


def scalar_one_thread(args, axis):
    return scalar_one_thread_of(lambda: run_all(*args, axis))


def assert_same_bits(got, want):
    names = ["y", "mean", "invstd", "running_mean", "running_var", "infer y", "dx", "dgamma", "dbeta"]
    for name, g, w in zip(names, got, want):
        assert g.dtype == w.dtype and g.tobytes() == w.tobytes(), f"{name} differs"


@pytest.mark.parametrize("values", ["near", "wide"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", BIG, ids=BIG_IDS)
def test_every_thread_count_and_isa_gives_the_scalar_bits(shape, axis, dtype, values, threads,
                                                          isa, sums_width):
    args = _inputs(shape, axis, dtype, values)
    want = scalar_one_thread(args, axis)   # restores the fixtures' settings afterwards
    assert fastbn.get_num_threads() == threads and _config.get_isa() == isa
    assert_same_bits(run_all(*args, axis), want)


@pytest.mark.parametrize("shape, axis", BIG, ids=BIG_IDS)
def test_float64_statistics_give_the_scalar_bits(shape, axis, threads, isa, sums_width):
    """The training forward's float64 mean, var and invstd of float32 data, before they are
    rounded to float32 (where another order of the additions would rarely show), values spread
    over 2^-40..2^40 (_inputs' "wide"), a NaN and +-inf among them: the scalar path's bits."""
    x = _inputs(shape, axis, np.float32, "wide")[0]
    x.reshape(-1).view(np.uint32)[-1] = 0xFFC00003
    x.reshape(-1)[1], x.reshape(-1)[7] = np.inf, -np.inf
    ax = axis % x.ndim
    outer, C = int(np.prod(shape[:ax])), shape[ax]
    inner = int(np.prod(shape[ax + 1:]))

    def stats():
        st = np.empty((3, C))
        _norm.train(x, np.empty_like(x), outer, C, inner, None, None, 1e-5, st,
                    fastbn.get_num_threads())
        return st
    want = scalar_one_thread_of(stats)
    assert stats().tobytes() == want.tobytes()


@pytest.mark.filterwarnings("ignore:.*non-finite batch statistics:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", BIG, ids=BIG_IDS)
def test_non_finite_inputs_give_the_scalar_bits_nan_included(shape, axis, dtype, threads, isa):
    """+-inf and NaN of both signs in x and dy: every output has the scalar path's bits, its NaNs'
    signs and payloads too."""
    x, gamma, beta, dy = _inputs(shape, axis, dtype)
    with_non_finite(x, 1), with_non_finite(dy, 2)
    want = scalar_one_thread((x, gamma, beta, dy), axis)
    assert np.isnan(want[0]).any() and np.isfinite(want[0]).any()
    quiet = np.array(np.nan, dtype).tobytes()   # the positive quiet NaN
    for out in (want[0], want[1], want[2], want[5], want[6], want[7], want[8]):   # all but running
        assert np.isnan(out).any() and out[np.isnan(out)].tobytes() == quiet * np.isnan(out).sum()
    assert_same_bits(run_all(x, gamma, beta, dy, axis), want)


@pytest.mark.parametrize("shape, axis", BIG[:2], ids=BIG_IDS[:2])
def test_repeated_runs_give_the_same_bits(shape, axis):
    args = _inputs(shape, axis, np.float32)
    first = run_all(*args, axis)
    for _ in range(3):
        assert_same_bits(run_all(*args, axis), first)


def test_more_threads_than_cores_give_the_same_bits():
    args = _inputs((32768, 24), 1, np.float64)
    want = scalar_one_thread(args, 1)
    saved = fastbn.get_num_threads()
    try:
        fastbn.set_num_threads(7)
        assert_same_bits(run_all(*args, 1), want)
    finally:
        fastbn.set_num_threads(saved)


def test_concurrent_calls_from_several_threads_give_the_same_bits():
    # One call at a time runs on fastbn's pool of helper threads; calls that find it busy start
    # threads of their own.  Either way each call gets its own results, bit for bit.
    import threading
    args = _inputs((32768, 24), 1, np.float32)
    want = scalar_one_thread(args, 1)
    saved = fastbn.get_num_threads()
    results, errors = [], []

    def worker():
        try:
            for _ in range(5):
                results.append(run_all(*args, 1))
        except BaseException as e:   # pragma: no cover - reported below
            errors.append(e)

    try:
        fastbn.set_num_threads(2)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        fastbn.set_num_threads(saved)
    assert not errors and len(results) == 20
    for got in results:
        assert_same_bits(got, want)


@pytest.fixture
def prefetch_chosen():
    chosen = _norm.get_grad_prefetch()
    yield chosen
    _norm.set_grad_prefetch(chosen)


def _backwards(x, gamma, beta, dy, axis):
    """Batch norm's backward, plain and through a fused ReLU (with dresidual), and group norm's
    (4 groups): every output."""
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis, relu=True)
    dres = np.empty_like(x)
    fused = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y,
                                       dresidual=dres)
    plain = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)
    _, gm, gr = fastbn.group_norm(x, 4, gamma, beta, axis=axis)
    group = fastbn.group_norm_backward(dy, x, gm, gr, 4, gamma, axis=axis)
    return [*plain, *fused, dres, *group]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", BIG[1:], ids=BIG_IDS[1:])
def test_the_gradient_apply_gives_the_same_bits_with_its_prefetch_or_without(
        shape, axis, dtype, threads, isa, prefetch_chosen):
    """The rows layouts' gradient apply (batch norm NC / NHWC, plain and through the ReLU mask;
    group norm channels-last) prefetches its inputs into L2 or leaves them to the hardware
    (csrc/cpu.h's fb_grad_prefetch, chosen per CPU): either way, the scalar path's bits."""
    args = _inputs(shape, axis, dtype)
    saved_isa, saved_n = _config.get_isa(), fastbn.get_num_threads()
    try:
        _config.set_isa("scalar")
        fastbn.set_num_threads(1)
        want = _backwards(*args, axis)
    finally:
        _config.set_isa(saved_isa)
        fastbn.set_num_threads(saved_n)
    for on in (True, False):
        _norm.set_grad_prefetch(on)
        for got, w in zip(_backwards(*args, axis), want):
            assert got.tobytes() == w.tobytes(), f"prefetch {on}"


def test_the_gradient_prefetch_is_chosen_per_cpu_family():
    """Off where the hardware prefetcher alone was measured faster (AMD family 1Ah: Zen 5), on
    elsewhere (it was measured faster on Zen 4)."""
    vendor, family, _ = x86_cpu()
    assert _norm.get_grad_prefetch() == (not (vendor == "AuthenticAMD" and family == 0x1A))


@pytest.fixture
def first_prefetch_chosen():
    chosen = _norm.get_first_prefetch()
    yield chosen
    _norm.set_first_prefetch(chosen)


def _channels_first(x, gamma, beta, dy):
    """Batch norm's training and backward and group and instance norm's forward and backward on
    channels-first data (axis 1), one thread: every output."""
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta)
    out = [y, mean, invstd, *fastbn.batch_norm_backward(dy, x, mean, invstd, gamma)]
    y, gm, gr = fastbn.group_norm(x, 4, gamma, beta)
    out += [y, gm, gr, *fastbn.group_norm_backward(dy, x, gm, gr, 4, gamma)]
    y, im, ir = fastbn.instance_norm(x, gamma, beta)
    return out + [y, im, ir, *fastbn.instance_norm_backward(dy, x, im, ir, gamma)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [BIG[0][0], BIG[4][0]], ids=[BIG_IDS[0], BIG_IDS[4]])
def test_the_first_pass_gives_the_same_bits_with_its_prefetch_or_without(
        shape, dtype, isa, first_prefetch_chosen):
    """On one thread the first pass over a channel (batch norm's slabs) or a group (group and
    instance norm, channels first) prefetches the next one or leaves it to the hardware
    (csrc/cpu.h's fb_first_prefetch, chosen per CPU): either way, the scalar path's bits."""
    args = _inputs(shape, 1, dtype)
    saved_isa, saved_n = _config.get_isa(), fastbn.get_num_threads()
    try:
        fastbn.set_num_threads(1)
        _config.set_isa("scalar")
        want = _channels_first(*args)
        _config.set_isa(saved_isa)
        for on in (True, False):
            _norm.set_first_prefetch(on)
            for got, w in zip(_channels_first(*args), want):
                assert got.tobytes() == w.tobytes(), f"first-pass prefetch {on}"
    finally:
        _config.set_isa(saved_isa)
        fastbn.set_num_threads(saved_n)


def test_the_first_pass_prefetch_is_chosen_per_cpu_model():
    """Off where it was measured slower (AMD family 19h, the Zen 3 models 00h-0Fh, 20h-2Fh,
    40h-5Fh: 53 of 54 cases), on elsewhere (it was measured faster on Zen 4)."""
    vendor, family, model = x86_cpu()
    zen3 = (vendor == "AuthenticAMD" and family == 0x19
            and (model <= 0x0F or 0x20 <= model <= 0x2F or 0x40 <= model <= 0x5F))
    assert _norm.get_first_prefetch() == (not zen3)


def test_the_statistics_width_is_chosen_per_cpu_family():
    """Half-width sums where they were measured to help (AMD family 19h: Zen 4), full elsewhere."""
    vendor, family, _ = x86_cpu()
    assert _norm.get_narrow_sums() == (vendor == "AuthenticAMD" and family == 0x19)
