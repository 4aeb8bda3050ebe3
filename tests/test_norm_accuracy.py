"""Accuracy of the normalization family far from zero, and bitwise reproducibility.

Specification:
- float32 layer norm, RMS norm, group norm and instance norm of data whose mean is up to 1e6 times
  its standard deviation stay within 1e-4 of the float64 result on the same (float32) input, and
  satisfy the documented per-element bound; where torch is importable, fastbn's float32 layer
  norm error is no larger than torch's float32 layer_norm error there (torch's is printed).
- every output of every norm, forward and backward, on inputs large enough to be split across
  threads, is bitwise the scalar path's on one thread, for 1 and 2 threads and every
  instruction-set path (the AVX-512 one with its statistics sums in either vector width), also
  with +-inf and NaN among the inputs (NaNs' signs and payloads included), and with values
  spread over 2^-40 to 2^40 (where float64 sums of float32 values round); so is
  layer norm's and RMS norm's forward for row lengths that do and do not fill whole lane rounds
  and statistics segments, rows taken in pairs (at most 3.5 KB) and one at a time; and so are
  the float64 statistics of float32 groups before rounding to float32 (mean and invstd, centered
  or not) on every statistics path: rows, channel runs, blocks, runs of 4 values, columns.
- so is layer norm's and RMS norm's backward (dx, dgamma, dbeta) for row lengths that do and do
  not fill whole lane rounds, odd and even numbers of rows, with and without gamma, and a column
  whose dy is -0 in every row (dbeta there stays -0); so is channels-last group norm's (the
  columns layout) for row counts that leave rows over after whole steps of four and after whole
  segments.
- group norm and batch norm on 2 to 5 threads give the one-thread bits where the runs of
  consecutive tasks the threads take do not divide the tasks evenly.
- so do group and instance norm over channel runs of 8 to 127 values (10 x 10 to 3 x 3), taken
  a block of a sample's groups at a time (at most 256 groups or 16384 values: whole blocks and a
  partial one in a sample), forward, backward and fused, also with +-inf and NaN.
- a row of layer norm or RMS norm (with gamma, with or without beta) normalized alone gives the
  bits it gets among many rows (the per-task float64 gamma/beta path), forward and backward,
  for row lengths that do and do not fill whole lane rounds.
- float64 statistics of groups of several segments (more than 4096 values, or channels-last
  group norm's columns) far from zero keep float64's precision: the variance within 1e-12 of
  the exact one, the mean within 2 ulps (batch norm's second pass with the merged mean as shift).
- every NaN that group, instance, layer and RMS norm store (y, mean, invstd, dx, dgamma,
  dbeta), from a NaN input of either sign or an infinity in a group, is the positive quiet NaN,
  over groups of 1 to 9 values (the short ones take the float64 formula) and negative gamma.
- where an intermediate of the float32 elementwise pass overflows -- (x - mean) * s forward,
  dy * g backward -- but the result is representable, every path (whole-channel runs, the
  columns layout, per-element coefficients) gives that finite result, within the documented
  bound: the vector is redone in float64, as batch norm's.
- where a float64 scale gamma invstd is beyond float64's range (gamma 1e308, invstd 2.83), every
  forward path of batch norm (training, inference, apply; slabs and rows, fused ReLU) and of the
  family (runs, short runs, columns, per-element coefficients) applies invstd and gamma as two
  factors: x equal to the mean gives beta, not NaN, and x - mean = 0.5 the finite 1.41e308; so
  does every backward (batch norm's slabs, rows, channels-last, parts and fused; the family's
  blocked groups of one or several channels, whole-channel runs, per-element coefficients,
  columns and rows): dx is 0 where dy is, and within the documented bound of the exact gradient
  for a dy of 1e-300.
"""
import numpy as np
import pytest

import fastbn
from fastbn import _config, _norm
from bn_helpers import scalar_one_thread_of, spread_wide, with_dense_non_finite, with_non_finite
from norm_helpers import (NORMS, NORM_IDS, check_backward_bound, check_forward_bound,
                          exact_forward_terms, make)

FAR = {"layer_norm": ((64, 512), {}), "rms_norm": ((64, 512), {}),
       "group_norm": ((4, 8, 16, 16), {"num_groups": 4}), "instance_norm": ((4, 8, 16, 16), {})}


@pytest.mark.parametrize("ratio", [1e3, 1e6])
@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_float32_far_from_zero_is_within_1e_4_of_float64(norm, ratio, rng):
    shape, kw = FAR[norm.name]
    x, gamma, beta = make(norm, shape, kw, np.float32, rng, loc=ratio, scale=1.0)
    y32 = norm.forward(norm.fb(), x, gamma, beta, kw)[0]
    g64 = gamma.astype(np.float64)
    b64 = None if beta is None else beta.astype(np.float64)
    y64 = norm.forward(norm.fb(), x.astype(np.float64), g64, b64, kw)[0]
    assert np.max(np.abs(y32 - y64)) <= 1e-4
    check_forward_bound(norm, x, y32, gamma, beta, kw, 1e-5 if norm.centered else 1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_means_beyond_2_to_102_keep_the_bound(norm, dtype, rng):
    """|mean| >= 2^102: x - mean could overflow in T, the kernels switch to the float64 formula."""
    shape, kw = {"layer_norm": ((4, 40), {}), "rms_norm": ((4, 40), {}),
                 "group_norm": ((2, 20, 20, 4), {"num_groups": 2, "axis": -1}),
                 "instance_norm": ((2, 3, 40), {})}[norm.name]
    x, gamma, beta = make(norm, shape, kw, dtype, rng, loc=1e32, scale=1e25)
    for g, b in ((gamma, beta), (None, None)):
        y = norm.forward(norm.fb(), x, g, b, kw)[0]
        assert np.all(np.isfinite(y))
        check_forward_bound(norm, x, y, g, b, kw, 1e-5 if norm.centered else 1e-6)


try:
    import torch
except ImportError:
    torch = None


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("ratio", [1e4, 1e6])
def test_float32_layer_norm_far_from_zero_beats_torch(ratio, rng, capsys):
    x = (rng.standard_normal((64, 1024)) + ratio).astype(np.float32)
    want = fastbn.layer_norm(x.astype(np.float64))[0]
    ours = np.max(np.abs(fastbn.layer_norm(x)[0] - want))
    theirs = np.max(np.abs(torch.nn.functional.layer_norm(torch.from_numpy(x), (1024,)).numpy()
                           - want))
    with capsys.disabled():
        print(f"\n  mean/std {ratio:g}: fastbn float32 error {ours:.2e}, torch float32 {theirs:.2e}")
    assert ours <= 1e-4 and ours <= theirs


BIG = {"layer_norm": ((1024, 640), {}), "rms_norm": ((96, 80, 70), {"axis": (1, 2)}),
       "group_norm": ((8, 32, 48, 48), {"num_groups": 8}),
       "instance_norm": ((4, 70, 48, 48), {"axis": -1})}


def _assert_scalar_bits(outputs):
    """outputs() gives, on this thread count and instruction set, the bits it gives on the scalar
    path on one thread; returns the scalar path's outputs."""
    want = scalar_one_thread_of(outputs)
    got = outputs()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.tobytes() == w.tobytes()
    return want


def _all_outputs(norm, x, gamma, beta, dy, kw):
    fwd = norm.forward(norm.fb(), x, gamma, beta, kw)
    return list(fwd) + list(norm.backward(norm.fb(True), dy, x, fwd[1:], gamma, kw))


@pytest.mark.parametrize("values", ["near", "wide"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_every_thread_count_and_isa_gives_the_scalar_bits(norm, dtype, values, threads, isa,
                                                          sums_width):
    shape, kw = BIG[norm.name]
    rng = np.random.default_rng(7)
    x, gamma, beta = make(norm, shape, kw, dtype, rng, loc=50.0)
    if values == "wide":
        x = spread_wide(x, rng)
    dy = rng.standard_normal(shape).astype(dtype)
    _assert_scalar_bits(lambda: _all_outputs(norm, x, gamma, beta, dy, kw))


@pytest.mark.parametrize("n_threads", [2, 3, 4, 5])
def test_runs_of_tasks_that_do_not_divide_the_tasks_give_the_one_thread_bits(n_threads):
    """Threads take runs of consecutive tasks (csrc/parallel.c: about 8 runs a thread).  Group
    norm here has 76 tasks (4 sample chunks x 19 groups): runs of 4, 3, 2 and 1 at 2-5 threads,
    a partial last run at 3; batch norm's 37 channels: runs of 2 at 2 threads, the last partial."""
    rng = np.random.default_rng(76)
    x = (rng.standard_normal((37, 38, 24, 24)) * 3.0 + 2.0).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma = rng.standard_normal(38).astype(np.float32)
    beta = rng.standard_normal(38).astype(np.float32)
    xb = np.ascontiguousarray(x[:, :37])

    def outputs():
        y, mean, invstd = fastbn.group_norm(x, 19, gamma, beta)
        yb, mb, sb = fastbn.batch_norm_train(xb, gamma[:37], beta[:37])
        dxs = fastbn.group_norm_backward(dy, x, mean, invstd, 19, gamma)
        dxb = fastbn.batch_norm_backward(dy[:, :37], xb, mb, sb, gamma[:37])
        return [y, mean, invstd, *dxs, yb, mb, sb, *dxb]

    saved = fastbn.get_num_threads()
    try:
        fastbn.set_num_threads(1)
        want = outputs()
        fastbn.set_num_threads(n_threads)
        got = outputs()
    finally:
        fastbn.set_num_threads(saved)
    for g, w in zip(got, want):
        assert g.tobytes() == w.tobytes()


@pytest.mark.parametrize("non_finite", [False, True], ids=["finite", "non-finite"])
@pytest.mark.parametrize("shape, groups", [((40, 300, 9, 9), 300), ((24, 256, 10, 10), 64),
                                           ((40, 300, 7, 7), 300), ((32, 512, 6, 6), 64),
                                           ((48, 700, 4, 4), 700), ((64, 1024, 3, 3), 256)],
                         ids=["instance 9x9", "group 10x10", "instance 7x7", "group 6x6",
                              "instance 4x4", "group 3x3"])
def test_blocks_of_short_channel_runs_give_the_scalar_bits(shape, groups, non_finite, threads,
                                                           isa):
    rng = np.random.default_rng(300)
    x = (rng.standard_normal(shape) * 3.0 + 2.0).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    res = rng.standard_normal(shape).astype(np.float32)
    if non_finite:
        with_non_finite(x, 1), with_non_finite(dy, 2)
    gamma = rng.standard_normal(shape[1]).astype(np.float32)
    beta = rng.standard_normal(shape[1]).astype(np.float32)

    def outputs():
        y, mean, invstd = fastbn.group_norm(x, groups, gamma, beta)
        yf = fastbn.group_norm(x, groups, gamma, beta, relu=True, residual=res)[0]
        dres = np.empty_like(x)
        fused = fastbn.group_norm_backward(dy, x, mean, invstd, groups, gamma, y=yf,
                                           dresidual=dres)
        return [y, mean, invstd, yf, *fastbn.group_norm_backward(dy, x, mean, invstd, groups),
                *fused, dres]

    _assert_scalar_bits(outputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
@pytest.mark.parametrize("spread", ["scattered", "dense"])
def test_non_finite_inputs_give_the_scalar_bits_nan_included(norm, dtype, spread, threads, isa):
    """Every NaN an output holds, the statistics' included, has the same bits on every path, sign
    and payload too (a commutative operation of two NaNs returns one of them, as each build's
    compiler orders it)."""
    shape, kw = BIG[norm.name]
    rng = np.random.default_rng(8)
    x, gamma, beta = make(norm, shape, kw, dtype, rng, loc=50.0)
    dy = with_non_finite(rng.standard_normal(shape).astype(dtype), 1)
    if spread == "dense":
        with_dense_non_finite(x)
    else:
        with_non_finite(x, 2)
    want = _assert_scalar_bits(lambda: _all_outputs(norm, x, gamma, beta, dy, kw))
    assert any(np.isnan(w).any() for w in want) and np.isfinite(want[0]).any()


@pytest.mark.parametrize("rows, D", [(7, 37), (65, 700), (301, 1001), (16, 4099)])
def test_row_norm_forward_gives_the_scalar_bits(rows, D, threads, isa, sums_width):
    x = (np.random.default_rng(rows * D).standard_normal((rows, D)) * 3.0 + 2.0).astype(np.float32)
    _assert_scalar_bits(lambda: list(fastbn.layer_norm(x)) + list(fastbn.rms_norm(x)))


# (outer, mid, G, Cg, inner) views of each statistics path (csrc/norm_kernels.c's plan)
STATS_VIEWS = {
    "rows of 37": (40, 1, 1, 37, 1),            # lanes in registers (under FB_TOTALS_RUN)
    "rows of 256": (40, 1, 1, 256, 1),          # whole lane rounds (narrow: totals in registers)
    "rows of 257": (40, 1, 1, 257, 1),          # and a partial last round
    "rows of 700": (40, 1, 1, 700, 1),
    "rows of 1001": (40, 1, 1, 1001, 1),
    "rows of 5000": (6, 1, 1, 5000, 1),         # two segments, Chan-merged
    "channel runs": (3, 1, 4, 2, 3000),         # group norm NCHW: runs of 3000, two segments
    "blocks": (3, 1, 16, 2, 300),               # a sample's groups a block at a time
    "runs of 4": (3, 1, 8, 4, 4),               # per-element coefficients, not blocked
    "columns": (2, 2100, 4, 8, 1),              # channels-last: 1024-row segments of columns
    "columns, one channel a group": (2, 1500, 16, 1, 1),
}


@pytest.mark.parametrize("view", list(STATS_VIEWS.values()), ids=list(STATS_VIEWS))
@pytest.mark.parametrize("centered", [True, False])
def test_statistics_in_float64_are_the_scalar_bits(view, centered, threads, isa, sums_width):
    """The float64 mean and invstd of float32 groups, as the kernel computes them before they are
    rounded to float32 (where another order of the additions would rarely show): the scalar
    path's bits on every statistics path, the values spread wide (spread_wide), a NaN and +-inf
    among them."""
    rng = np.random.default_rng(sum(view))
    x = spread_wide(rng.standard_normal(int(np.prod(view))).astype(np.float32), rng)
    x.view(np.uint32)[-1] = 0xFFC00003
    x[view[-1] * 3], x[1] = np.inf, -np.inf
    n = view[0] * view[2]

    def stats():
        mean, invstd = np.empty(n), np.empty(n)
        _norm.norm_forward(x, np.empty_like(x), view, None, None, 1e-5, centered, mean, invstd,
                           fastbn.get_num_threads())
        return [mean, invstd]
    _assert_scalar_bits(stats)


@pytest.mark.parametrize("rows, D", [(7, 37), (8, 37), (301, 1001), (64, 768)])
@pytest.mark.parametrize("with_gamma", [True, False])
def test_row_norm_backward_gives_the_scalar_bits(rows, D, with_gamma, threads, isa):
    rng = np.random.default_rng(rows * D)
    x = (rng.standard_normal((rows, D)) * 3.0 + 2.0).astype(np.float32)
    dy = rng.standard_normal((rows, D)).astype(np.float32)
    dy[:, D // 2] = -0.0
    gamma = rng.standard_normal(D).astype(np.float32) if with_gamma else None
    _, mean, invstd = fastbn.layer_norm(x, gamma)
    _, invrms = fastbn.rms_norm(x, gamma)

    def outputs():
        return (list(fastbn.layer_norm_backward(dy, x, mean, invstd, gamma))
                + list(fastbn.rms_norm_backward(dy, x, invrms, gamma)))

    want = _assert_scalar_bits(outputs)
    assert want[2][D // 2] == 0 and np.signbit(want[2][D // 2])   # dbeta of the all -0 column


@pytest.mark.parametrize("shape, groups", [((3, 7, 5, 12), 4), ((2, 1027, 6), 3), ((2, 1030, 8), 2)])
def test_channels_last_group_norm_gives_the_scalar_bits(shape, groups, threads, isa):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3.0 + 2.0).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.standard_normal(shape[-1]).astype(np.float32)
    beta = rng.standard_normal(shape[-1]).astype(np.float32)

    def outputs():
        y, mean, invstd = fastbn.group_norm(x, groups, gamma, beta, axis=-1)
        return [y, mean, invstd, *fastbn.group_norm_backward(dy, x, mean, invstd, groups, gamma,
                                                             axis=-1)]

    _assert_scalar_bits(outputs)


# Group norm over short channel runs (inner 32-127, several channels a group, their coefficients
# repeated per element): run lengths odd and of whole vectors, a group longer than one segment of
# coefficients (512 values), an output large enough to be streamed (4 MB), non-finite inputs.
@pytest.mark.parametrize("shape, groups", [((3, 8, 7, 7), 2), ((2, 48, 33), 3), ((2, 64, 127), 4),
                                           ((84, 256, 7, 7), 32)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("finite", [True, False], ids=["finite", "non-finite"])
def test_group_norm_over_short_channel_runs_gives_the_scalar_bits(shape, groups, dtype, finite,
                                                                   threads, isa):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3.0 + 2.0).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    if not finite:
        with_non_finite(x, 3), with_non_finite(dy, 4)
    gamma = rng.standard_normal(shape[1]).astype(dtype)
    beta = rng.standard_normal(shape[1]).astype(dtype)

    def outputs():
        y, mean, invstd = fastbn.group_norm(x, groups, gamma, beta)
        return [y, mean, invstd, *fastbn.group_norm_backward(dy, x, mean, invstd, groups, gamma)]

    want = _assert_scalar_bits(outputs)
    assert np.isnan(want[0]).any() != finite and np.isfinite(want[0]).any()


@pytest.mark.parametrize("D", [37, 768, 1001])
@pytest.mark.parametrize("with_beta", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_alone_gives_its_bits_among_many_rows(D, with_beta, dtype):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((6, D)) * 3.0 + 2.0).astype(dtype)
    dy = rng.standard_normal((6, D)).astype(dtype)
    gamma = rng.standard_normal(D).astype(dtype)
    beta = rng.standard_normal(D).astype(dtype) if with_beta else None
    y, mean, invstd = fastbn.layer_norm(x, gamma, beta)
    dx, dgamma, _ = fastbn.layer_norm_backward(dy, x, mean, invstd, gamma)
    yr, invrms = fastbn.rms_norm(x, gamma)
    dxr, _ = fastbn.rms_norm_backward(dy, x, invrms, gamma)
    for i in range(6):
        one = slice(i, i + 1)
        y1, m1, r1 = fastbn.layer_norm(x[one], gamma, beta)
        assert y1.tobytes() == y[one].tobytes()
        assert fastbn.layer_norm_backward(dy[one], x[one], m1, r1, gamma)[0].tobytes() == dx[one].tobytes()
        yr1, ir1 = fastbn.rms_norm(x[one], gamma)
        assert yr1.tobytes() == yr[one].tobytes()
        assert fastbn.rms_norm_backward(dy[one], x[one], ir1, gamma)[0].tobytes() == dxr[one].tobytes()


# (norm, shape, kwargs, where): one group per channel (or row) of n values, the one at `where`
# large, the others 0; whole-channel runs (inner 64), the columns layout (40 rows, channels last),
# per-element coefficients (layer norm: one row per task, and rows with gamma cached in float64).
LAST0 = (Ellipsis, 0)
OVERFLOW_CASES = [("group_norm", (1, 2, 64), {"num_groups": 2}, LAST0),
                  ("group_norm", (1, 40, 2), {"num_groups": 2, "axis": -1}, (0, 0)),
                  ("instance_norm", (1, 2, 64), {}, LAST0),
                  ("layer_norm", (1, 64), {}, LAST0), ("layer_norm", (2, 64), {}, LAST0)]
OVERFLOW_IDS = ["group_norm-runs", "group_norm-columns", "instance_norm-runs", "layer_norm-row",
                "layer_norm-rows"]
F32_MAX = float(np.finfo(np.float32).max)


def _one_large(shape, where, value):
    x = np.zeros(shape, np.float32)
    x[where] = value
    return x


@pytest.mark.parametrize("name, shape, kw, where", OVERFLOW_CASES, ids=OVERFLOW_IDS)
def test_float32_forward_whose_scaled_deviation_overflows_is_finite(name, shape, kw, where):
    norm = next(n for n in NORMS if n.name == name)
    x = _one_large(shape, where, 8.0)
    ps = norm.param_shape(shape, kw)
    gamma, beta = np.full(ps, 7e37, np.float32), np.full(ps, -2.8e38, np.float32)
    xg, m, sc, c, _, _ = exact_forward_terms(norm, x, gamma, beta, kw, 1e-5)
    assert np.max(np.abs((xg - m) * sc)) > F32_MAX                 # the intermediate overflows
    assert np.all(np.abs((xg - m) * sc + c) < F32_MAX)             # the result does not
    y = norm.forward(norm.fb(), x, gamma, beta, kw)[0]
    assert np.all(np.isfinite(y))
    check_forward_bound(norm, x, y, gamma, beta, kw, 1e-5)


# dgamma = sum(dy * xhat) is itself beyond float32 here: its cast to float32 warns
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("name, shape, kw, where", OVERFLOW_CASES, ids=OVERFLOW_IDS)
def test_float32_backward_whose_dy_times_g_overflows_is_finite(name, shape, kw, where):
    """dy proportional to x: dx is the small remainder of terms beyond float32's range."""
    norm = next(n for n in NORMS if n.name == name)
    dy, x = _one_large(shape, where, 3e38), _one_large(shape, where, 3.0)
    gamma = np.ones(norm.param_shape(shape, kw), np.float32)
    stats = norm.forward(norm.fb(), x, gamma, None if not norm.has_beta else gamma * 0, kw)[1:]
    xg = norm.groups(x.astype(np.float64), kw)[0]
    r = 1.0 / np.sqrt(xg.var(axis=1) + 1e-5)
    assert np.max(np.abs(norm.groups(dy.astype(np.float64), kw)[0]).max(axis=1) * r) > F32_MAX
    dx = norm.backward(norm.fb(True), dy, x, stats, gamma, kw)[0]
    assert np.all(np.isfinite(dx))
    check_backward_bound(norm, dy, x, dx, gamma, kw, 1e-5, stats)


def test_float32_short_channel_runs_redo_each_value_with_its_own_channel():
    """Group norm over short runs redoes a pair of vectors holding an overflowed intermediate
    value by value, each with its own channel's coefficients: also where the pair spans two
    channels and lies past the group's first segment of coefficients (512 values).  Even and odd
    channels' coefficients differ by far more than the bound, so another channel's would fail."""
    shape, kw = (1, 32, 40), {"num_groups": 2}   # groups of 16 channels of 40 values: 640
    norm = next(n for n in NORMS if n.name == "group_norm")
    odd = np.arange(32) % 2 == 1
    x = np.zeros(shape, np.float32)
    x[0, [1, 13], 2] = 8.0                       # values 42 and 522 of group 0, odd channels
    gamma = np.where(odd, 2.8e37, 1.0).astype(np.float32)
    beta = np.where(odd, -2.8e38, 0.5).astype(np.float32)
    xg, m, sc, c, _, _ = exact_forward_terms(norm, x, gamma, beta, kw, 1e-5)
    assert np.max(np.abs((xg - m) * sc)) > F32_MAX
    assert np.all(np.abs((xg - m) * sc + c) < F32_MAX)
    y, mean, invstd = fastbn.group_norm(x, 2, gamma, beta)
    assert np.all(np.isfinite(y))
    check_forward_bound(norm, x, y, gamma, beta, kw, 1e-5)

    x = np.zeros(shape, np.float32)
    x[0, 13, 2] = 3.0
    dy = np.full(shape, 0.5, np.float32)
    dy[0, 13, 2] = 3e38                          # dy * gamma r overflows there
    gamma = np.where(odd, 1.0, 1e31).astype(np.float32)
    _, mean, invstd = fastbn.group_norm(x, 2, gamma)
    r = np.asarray(invstd, np.float64)
    assert 3e38 * r[0, 0] > F32_MAX
    dx = fastbn.group_norm_backward(dy, x, mean, invstd, 2, gamma)[0]
    assert np.all(np.isfinite(dx))
    check_backward_bound(norm, dy, x, dx, gamma, kw, 1e-5, (mean, invstd))

    # the coefficients themselves finite in float32: dy * gamma r alone overflows, just
    x = np.where(np.arange(40) % 2 == 0, 1.0, -1.0).astype(np.float32) + np.zeros(shape, np.float32)
    x[0, 13, 2] = 0.0
    _, mean, invstd = fastbn.group_norm(x, 2)
    gamma[13] = np.float32(1.1345 / np.float64(invstd[0, 0]))
    assert 3e38 * np.float64(np.float32(gamma[13] * np.float64(invstd[0, 0]))) > F32_MAX
    dx = fastbn.group_norm_backward(dy, x, mean, invstd, 2, gamma)[0]
    assert np.all(np.isfinite(dx))
    check_backward_bound(norm, dy, x, dx, gamma, kw, 1e-5, (mean, invstd))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("L", [1, 2, 3, 7, 8, 9])
def test_every_nan_of_y_and_dx_is_the_positive_quiet_nan(dtype, L, isa):
    """Whatever made it: a NaN input of either sign, or an infinity in a group, whose statistics
    are then NaN and whose channel's gamma is negative (short runs take the float64 formula)."""
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        x = np.ones((2, 3, L), dtype) * np.arange(1, L + 1, dtype=dtype)
        x[0, 1, 0] = bad
        g = np.array([1.0, -1.0, -2.0], np.float32 if dtype == np.float16 else dtype)
        dy = np.ones_like(x)
        outs = []
        for fwd, bwd in ((lambda: fastbn.instance_norm(x, g),
                          lambda m, s: fastbn.instance_norm_backward(dy, x, m, s, g)),
                         (lambda: fastbn.group_norm(x, 1, g),
                          lambda m, s: fastbn.group_norm_backward(dy, x, m, s, 1, g))):
            y, m, s = fwd()
            outs += [y, m, s, *bwd(m, s)]
        ln = fastbn.layer_norm(x.reshape(6, L), g[0] * np.ones(L, g.dtype))
        outs += [ln[0], fastbn.rms_norm(x.reshape(6, L), -np.ones(L, g.dtype))[0]]
        assert any(np.isnan(a).any() for a in outs)
        for a in outs:
            assert {v.tobytes() for v in a[np.isnan(a)]} <= {np.array(np.nan, a.dtype).tobytes()}


# (id, call returning invstd, shape, the values of group i)
MULTI_SEGMENT = [
    ("layer", lambda x: fastbn.layer_norm(x, eps=1e-300), (2, 8195), lambda x, i: x[i]),
    ("group-NCHW", lambda x: fastbn.group_norm(x, 2, eps=1e-300), (2, 4, 3000),
     lambda x, i: x[i // 2, i % 2 * 2:i % 2 * 2 + 2]),
    ("group-NHWC", lambda x: fastbn.group_norm(x, 2, axis=-1, eps=1e-300), (2, 1100, 4),
     lambda x, i: x[i // 2, :, i % 2 * 2:i % 2 * 2 + 2]),
    ("instance", lambda x: fastbn.instance_norm(x, eps=1e-300), (1, 2, 9000), lambda x, i: x[0, i]),
]


@pytest.mark.parametrize("loc, sd", [(1e12, 1.0), (-3e8, 0.5)])
@pytest.mark.parametrize("call, shape, group", [c[1:] for c in MULTI_SEGMENT],
                         ids=[c[0] for c in MULTI_SEGMENT])
def test_float64_variance_far_from_zero_over_several_segments(call, shape, group, loc, sd):
    """Was 1e-7 relative at mean / sd = 1e12 and 1e-4 at 1e15: each segment's rounded mean
    entered Chan's merge."""
    from fractions import Fraction
    x = np.random.default_rng(0).standard_normal(shape) * sd + loc
    _, mean, invstd = call(x)
    for i in range(2):
        vals = [Fraction(float(a)) for a in group(x, i).ravel()]
        m = sum(vals) / len(vals)
        exact = float(sum((a - m) ** 2 for a in vals) / len(vals))
        assert abs(1.0 / float(invstd.flat[i]) ** 2 / exact - 1) <= 1e-12
        assert abs(float(mean.flat[i]) - float(m)) <= 2.0 ** -52 * abs(float(m))



def _pattern(shape, axis):
    """0.5, 0, -0.5, 0 repeated along axis (mean 0, variance 1/8 over any whole run of it)."""
    pattern = np.resize([0.5, 0.0, -0.5, 0.0], shape[axis])
    return np.moveaxis(np.broadcast_to(pattern, np.delete(shape, axis).tolist() + [shape[axis]]),
                       -1, axis).copy()


# (id, call(x, gamma, beta), x's shape, the pattern's axis, gamma's shape): each group holds
# 0.5, 0, -0.5, 0 repeated along the pattern's axis (mean 0, variance 1/8: invstd 2.83);
# gamma 1e308 and beta 2.5 (RMS norm: no beta) for every channel.
def _bn(**kw):
    return lambda x, g, b: fastbn.batch_norm_train(x, g, b, eps=1e-300, **kw)[0]


def _family(fn, *args, **kw):
    return lambda x, g, b: getattr(fastbn, fn)(x, *args, g, b, eps=1e-300, **kw)[0]


SPLIT_SCALE_CASES = [
    ("bn-slabs", _bn(), (2, 3, 8, 12), -1, 3),
    ("bn-slabs-relu", _bn(relu=True), (2, 3, 8, 12), -1, 3),
    ("bn-rows", _bn(), (8, 3), 0, 3),
    ("bn-channels-last", _bn(axis=-1), (2, 4, 4, 3), 1, 3),
    ("bn-infer", lambda x, g, b: fastbn.batch_norm_infer(x, np.zeros(3), np.full(3, 0.125), g, b,
                                                         eps=1e-300), (2, 3, 8, 12), -1, 3),
    ("bn-apply", lambda x, g, b: fastbn.batch_norm_apply(x, np.zeros(3), np.full(3, 8 ** 0.5), g,
                                                         b), (8, 3), 0, 3),
    ("gn-runs", _family("group_norm", 4), (2, 4, 64), -1, 4),
    ("gn-short-runs", _family("group_norm", 2), (2, 4, 64), -1, 4),
    ("gn-short-runs-small", _family("group_norm", 2), (2, 8, 16), -1, 8),
    ("gn-per-element", _family("group_norm", 2), (2, 4, 4), 2, 4),
    ("gn-columns", _family("group_norm", 2, axis=-1), (2, 16, 8), 1, 8),
    ("gn-rows", _family("group_norm", 2, axis=-1), (2, 4, 8), 1, 8),
    ("in", _family("instance_norm"), (2, 3, 8), -1, 3),
    ("in-columns", _family("instance_norm", axis=-1), (2, 16, 2), 1, 2),
    ("ln-rows", _family("layer_norm"), (2, 8), -1, 8),
    ("ln-per-element", _family("layer_norm", axis=0), (8, 3), 0, 8),
    ("rms-rows", lambda x, g, b: fastbn.rms_norm(x, g, eps=1e-300)[0], (2, 8), -1, 8),
    ("rms-per-element", lambda x, g, b: fastbn.rms_norm(x, g, axis=0, eps=1e-300)[0], (8, 3), 0,
     8),
]


@pytest.mark.parametrize("call, shape, axis, channels", [c[1:] for c in SPLIT_SCALE_CASES],
                         ids=[c[0] for c in SPLIT_SCALE_CASES])
def test_float64_scale_beyond_float64_keeps_its_two_factors(request, call, shape, axis, channels):
    case = request.node.callspec.id
    x = _pattern(shape, axis)
    gamma, beta = np.full(channels, 1e308), np.full(channels, 2.5)
    with np.errstate(over="ignore"):
        assert np.isinf(1e308 * 8 ** 0.5)                    # gamma invstd overflows float64
    y = call(x, gamma, beta)
    c = 0.0 if case.startswith("rms") else 2.5
    ld = np.longdouble
    exact = x.astype(ld) * (1 / np.sqrt(ld(0.125) + ld(1e-300))) * ld(1e308) + ld(c)
    if case.endswith("relu"):
        exact = np.maximum(exact, 0)
    assert np.max(np.abs(exact)) > 1.4e308 and np.all(np.isfinite(y)), y    # was +-inf and NaN
    assert np.all(y[x == 0] == c)
    u = 2.0 ** -53
    assert np.all(np.abs(y - exact) <= 4 * u * np.abs(exact - c) + 2 * u * c)


def _bn_backward_parts(dy, x, mean, invstd, gamma, axis, y):
    sum_dy, sum_dy_xhat = fastbn.batch_norm_backward_reduce(dy, x, mean, invstd, axis=axis)
    count = x.size // x.shape[axis]
    return fastbn.batch_norm_backward_apply(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, count,
                                            axis=axis)


def _bn_backward_fused(dy, x, mean, invstd, gamma, axis, y):
    dres = np.empty_like(dy)
    return fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y, dresidual=dres)[0]


def _bn_backward(dy, x, mean, invstd, gamma, axis, y):
    return fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)[0]


# (id, backward, x's shape, channel axis, pattern axis) over the forward cases' data
BN_SPLIT_BACKWARD = [("slabs", _bn_backward, (2, 3, 8, 12), 1, -1),
                     ("rows", _bn_backward, (8, 3), 1, 0),
                     ("channels-last", _bn_backward, (2, 4, 4, 3), -1, 1),
                     ("parts", _bn_backward_parts, (2, 3, 8, 12), 1, -1),
                     ("fused", _bn_backward_fused, (2, 3, 8, 12), 1, -1)]


@pytest.mark.parametrize("backward, shape, axis, pattern_axis", [c[1:] for c in BN_SPLIT_BACKWARD],
                         ids=[c[0] for c in BN_SPLIT_BACKWARD])
def test_float64_batch_norm_backward_whose_g_is_beyond_float64(backward, shape, axis,
                                                               pattern_axis):
    x = _pattern(shape, pattern_axis)
    gamma = np.full(3, 1e308)
    fused = backward is _bn_backward_fused
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, np.full(3, 2.5), axis=axis, eps=1e-300,
                                              relu=fused)[:3]
    with np.errstate(over="ignore"):
        assert np.all(np.isinf(gamma * invstd))                  # g = gamma invstd overflows
    assert np.all(backward(np.zeros_like(x), x, mean, invstd, gamma, axis, y) == 0)   # was NaN
    dy = np.random.default_rng(5).standard_normal(shape) * 1e-300
    dx = backward(dy, x, mean, invstd, gamma, axis, y)
    # the exact gradient at the given statistics, and its bound 8u (|dy g| + |(x - m) s| + |c|)
    ld = np.longdouble
    dym = np.where(y > 0, dy, 0.0).astype(ld) if fused else dy.astype(ld)
    other = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    shape_c = [1] * x.ndim
    shape_c[axis] = 3
    g = (ld(1e308) * invstd.astype(ld)).reshape(shape_c)
    xhat = (x.astype(ld) - mean.astype(ld).reshape(shape_c)) * invstd.astype(ld).reshape(shape_c)
    m_dy, m_dyx = dym.mean(axis=other, keepdims=True), (dym * xhat).mean(axis=other, keepdims=True)
    exact = g * (dym - m_dy - xhat * m_dyx)
    tol = 8 * 2.0 ** -53 * (np.abs(dym * g) + np.abs(xhat * g * m_dyx) + np.abs(g * m_dy))
    assert np.all(np.isfinite(dx)) and np.max(np.abs(exact)) > 1e7
    assert np.all(np.abs(dx - exact) <= tol), np.max(np.abs(dx - exact) / tol)


# (id, norm, shape, kwargs, pattern axis): each path of the family's backward
FAMILY_SPLIT_BACKWARD = [
    ("gn-blocked-one-channel", "group_norm", (2, 4, 64), {"num_groups": 4}, -1),
    ("gn-blocked", "group_norm", (2, 4, 64), {"num_groups": 2}, -1),
    ("gn-runs-one-channel", "group_norm", (2, 2, 8192), {"num_groups": 2}, -1),
    ("gn-runs", "group_norm", (2, 2, 8192), {"num_groups": 1}, -1),
    ("gn-per-element", "group_norm", (2, 4, 4), {"num_groups": 2}, -1),
    ("gn-columns", "group_norm", (2, 16, 8), {"num_groups": 2, "axis": -1}, 1),
    ("gn-rows", "group_norm", (2, 4, 8), {"num_groups": 2, "axis": -1}, 1),
    ("in", "instance_norm", (2, 3, 8), {}, -1),
    ("in-columns", "instance_norm", (2, 16, 2), {"axis": -1}, 1),
    ("ln-rows", "layer_norm", (2, 8), {}, -1),
    ("rms-rows", "rms_norm", (2, 8), {}, -1),
]


@pytest.mark.parametrize("name, shape, kw, pattern_axis", [c[1:] for c in FAMILY_SPLIT_BACKWARD],
                         ids=[c[0] for c in FAMILY_SPLIT_BACKWARD])
def test_float64_family_backward_whose_g_is_beyond_float64(name, shape, kw, pattern_axis):
    norm = next(n for n in NORMS if n.name == name)
    x = _pattern(shape, pattern_axis)
    ps = norm.param_shape(shape, kw)
    gamma = np.full(ps, 1e308)
    stats = norm.forward(norm.fb(), x, gamma, np.full(ps, 2.5), kw, eps=1e-300)[1:]
    with np.errstate(over="ignore"):
        assert np.all(np.isinf(1e308 * stats[-1]))               # g = gamma invstd overflows
    zero = norm.backward(norm.fb(True), np.zeros_like(x), x, stats, gamma, kw)[0]
    assert np.all(zero == 0), zero                                # was NaN (not layer and RMS)
    dy = np.random.default_rng(6).standard_normal(shape) * 1e-300
    dx = norm.backward(norm.fb(True), dy, x, stats, gamma, kw)[0]
    ld = np.longdouble
    exact = norm.backward(norm.ref(True), dy.astype(ld), x.astype(ld),
                          [a.astype(ld) for a in stats], gamma.astype(ld), kw)[0]
    # the bound 8u (|dy g| + |(x - m) s| + |c|), per group r (gamma dy - A - xhat B), and 1e-12
    # of those terms for the float64 sums' rounding (norm_helpers.check_backward_bound's)
    xg, dyg = norm.groups(x.astype(ld), kw)[0], norm.groups(dy.astype(ld), kw)[0] * ld(1e308)
    r = stats[-1].astype(ld).reshape(-1, 1)
    xhat = (xg - (stats[0].astype(ld).reshape(-1, 1) if norm.centered else 0)) * r
    A = dyg.mean(axis=1, keepdims=True) if norm.centered else 0
    B = (dyg * xhat).mean(axis=1, keepdims=True)
    terms = np.abs(r * dyg) + np.abs(r * xhat * B) + np.abs(r * A)
    tol = (8 * 2.0 ** -53 + 1e-12) * terms
    err = np.abs(norm.groups(dx.astype(ld), kw)[0] - norm.groups(exact, kw)[0])
    assert np.all(np.isfinite(dx)) and np.max(np.abs(exact)) > 1e7
    assert np.all(err <= tol), np.max(err / tol)
