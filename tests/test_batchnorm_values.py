"""batch_norm_train / batch_norm_infer / batch_norm_backward compute what fastbn.reference does.

Specification:
- For every layout (any ndim >= 2, channel axis 1, -1, 0 or in the middle, both C code paths) and
  both float dtypes, with and without gamma/beta, the results equal the float64 reference on the
  same values: float32 per-channel results within one float32 ulp, float32 elementwise outputs
  within the documented bound of the float32 elementwise pass (bn_helpers), float64 to ~1e-12.
- Outputs keep the dtype of x; ``mean``, ``invstd``, ``dgamma``, ``dbeta`` are 1-d of length C.
- Strides do not matter: any view gives exactly the bits of its C-contiguous copy, and a
  non-contiguous ``out`` receives exactly those bits too.
- Random shapes, axes, strides and dtypes (hypothesis) agree with the reference.
- Batch norm in parts (fastbn.batchnorm_parts) equals its twins in fastbn.reference over the same
  layouts, dtypes, random strides and axes: statistics and gradient sums (float64) within 1e-12
  of their scale (the sums 1e-13 per value summed), y and dx within the documented bounds above,
  running statistics within one ulp; over shards of a batch (empty and one-row shards among
  them) merged in order they are those of the whole batch; an empty shard gives 0 and empty
  arrays; any view, either byte order, gives the bits of the C-contiguous native copy.  The
  twins compose to the fused twins (reference.batch_norm_train / batch_norm_backward).
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastbn
from bn_helpers import (DTYPES, LAYOUT_IDS, LAYOUT_PARAMS, assert_close, backward_bound, f64,
                        infer_bound, make_inputs, oracle_backward, oracle_infer, oracle_train,
                        strided_variants, train_bound)
from fastbn import reference

EPS = 1e-5
# the layouts of the stride tests: both C code paths, channels last, channel axis 0
STRIDE_LAYOUTS = [((4, 3, 9, 9), 1), ((4, 3, 2, 3), 1), ((4, 6, 7, 3), -1), ((9, 5), 0)]
STRIDE_IDS = ["NCHW-slab", "NCHW-rows", "NHWC", "axis0"]


@pytest.fixture(params=[True, False], ids=["affine", "no-affine"])
def affine(request):
    return request.param


def _affine(gamma, beta, affine):
    return (gamma, beta) if affine else (None, None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_train_matches_reference(rng, shape, axis, dtype, affine):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    g, b = _affine(gamma, beta, affine)
    y, mean, invstd = fastbn.batch_norm_train(x, g, b, axis=axis, eps=EPS)
    ey, emean, einvstd = oracle_train(x, g, b, axis=axis, eps=EPS)
    C = shape[axis]
    assert mean.shape == invstd.shape == (C,)
    assert y.dtype == mean.dtype == invstd.dtype == np.dtype(dtype)
    assert_close(y, ey, dtype, bound32=train_bound(x, g, b, emean, einvstd, axis))
    assert_close(mean, emean, dtype)
    assert_close(invstd, einvstd, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_infer_matches_reference(rng, shape, axis, dtype, affine):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    g, b = _affine(gamma, beta, affine)
    C = shape[axis]
    rm = rng.uniform(-3, 3, C).astype(dtype)
    rv = rng.uniform(0.2, 4, C).astype(dtype)
    y = fastbn.batch_norm_infer(x, rm, rv, g, b, axis=axis, eps=EPS)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    assert_close(y, oracle_infer(x, rm, rv, g, b, axis=axis, eps=EPS), dtype,
                 bound32=infer_bound(x, rm, rv, g, b, EPS, axis))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_backward_matches_reference(rng, shape, axis, dtype, affine):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    g = gamma if affine else None
    dy = rng.standard_normal(shape).astype(dtype)
    _, mean, invstd = fastbn.batch_norm_train(x, g, axis=axis, eps=EPS)
    dx, dgamma, dbeta = fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=axis)
    edx, edgamma, edbeta = oracle_backward(dy, x, mean, invstd, g, axis=axis)
    C = shape[axis]
    assert dgamma.shape == dbeta.shape == (C,)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.dtype(dtype)
    # dx is a difference of sums (cancellation by design): float64 slack scales with the count.
    n = x.size // C
    assert_close(dx, edx, dtype, rel64=1e-13 * n,
                 bound32=backward_bound(dy, x, mean, invstd, g, axis))
    assert_close(dgamma, edgamma, dtype, rel64=1e-13 * n)
    assert_close(dbeta, edbeta, dtype, rel64=1e-13 * n)


def test_backward_gradients_sum_to_zero_over_each_channel(rng):
    """Through the batch statistics, adding a constant to dy changes nothing: sum(dx) == 0."""
    x, gamma, _ = make_inputs(rng, (6, 4, 9), 1, np.float64)
    dy = rng.standard_normal(x.shape)
    _, mean, invstd = fastbn.batch_norm_train(x, gamma)
    dx, _, _ = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma)
    np.testing.assert_allclose(dx.sum(axis=(0, 2)), 0.0, atol=1e-12)
    dx2, _, _ = fastbn.batch_norm_backward(dy + 5.0, x, mean, invstd, gamma)
    np.testing.assert_allclose(dx2, dx, atol=1e-12)


def test_train_output_is_normalized(rng):
    """With no affine part, each channel of y has mean 0 and variance var/(var+eps)."""
    x, _, _ = make_inputs(rng, (32, 3, 5, 5), 1, np.float64)
    eps, var = 1e-3, x.var(axis=(0, 2, 3))
    y, _, invstd = fastbn.batch_norm_train(x, eps=eps)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), var / (var + eps), rtol=1e-13)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(var + eps), rtol=1e-13)


def test_infer_with_the_batch_statistics_is_train(rng):
    x, gamma, beta = make_inputs(rng, (10, 4, 33), 1, np.float64)
    y, mean, _ = fastbn.batch_norm_train(x, gamma, beta, eps=1e-3)
    var = x.var(axis=(0, 2))
    np.testing.assert_allclose(fastbn.batch_norm_infer(x, mean, var, gamma, beta, eps=1e-3), y,
                               rtol=1e-12, atol=1e-12)


def test_eps_is_added_to_the_biased_variance(rng):
    x, _, _ = make_inputs(rng, (7, 2, 3), 1, np.float64)
    for eps in (1e-300, 1e-5, 0.5, 10.0):
        _, _, invstd = fastbn.batch_norm_train(x, eps=eps)
        np.testing.assert_allclose(invstd, 1 / np.sqrt(x.var(axis=(0, 2)) + eps), rtol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_constant_channel_normalizes_to_zero(dtype):
    """eps > 0 (0 is rejected, as by PyTorch) keeps invstd finite: y = beta exactly."""
    x = np.full((4, 2), 3.0, dtype)
    beta = np.array([0.5, -2.0], dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, None, beta, eps=1e-4)
    assert np.array_equal(mean, [3.0, 3.0]) and np.allclose(invstd, 100.0, rtol=1e-6)
    assert np.array_equal(y, np.broadcast_to(beta, x.shape))
    for fn in (lambda: fastbn.batch_norm_train(x, eps=0.0),
               lambda: fastbn.batch_norm_infer(x, mean, np.zeros(2, dtype), eps=0.0)):
        with pytest.raises(ValueError, match=r"^eps: expected a number in \(0, inf\]"):
            fn()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", STRIDE_LAYOUTS, ids=STRIDE_IDS)
def test_strides_give_the_bits_of_the_contiguous_copy(rng, shape, axis, dtype):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    y0, m0, s0 = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    i0 = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    b0 = fastbn.batch_norm_backward(dy, x, m0, s0, gamma, axis=axis)
    for name, xv in strided_variants(x):
        y, m, s = fastbn.batch_norm_train(xv, gamma, beta, axis=axis)
        assert np.array_equal(y, y0) and np.array_equal(m, m0) and np.array_equal(s, s0), name
        assert np.array_equal(fastbn.batch_norm_infer(xv, rm, rv, gamma, beta, axis=axis), i0), name
        for dname, dyv in strided_variants(dy)[:2]:
            b = fastbn.batch_norm_backward(dyv, xv, m0, s0, gamma, axis=axis)
            for got, want in zip(b, b0):
                assert np.array_equal(got, want), (name, dname)


def test_strided_parameter_vectors_give_the_same_bits(rng):
    x, gamma, beta = make_inputs(rng, (6, 4, 5), 1, np.float32)
    y0 = fastbn.batch_norm_train(x, gamma, beta).y
    g2 = np.zeros(8, np.float32)
    g2[::2] = gamma
    b2 = np.zeros(12, np.float32)
    b2[::-3] = beta
    assert np.array_equal(fastbn.batch_norm_train(x, g2[::2], b2[::-3]).y, y0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["C", "F", "strided"])
def test_out_receives_the_result_in_any_layout(rng, dtype, order):
    x, gamma, beta = make_inputs(rng, (5, 3, 4, 6), 1, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)

    def new_out():
        if order == "strided":
            return np.full(x.shape[:-1] + (2 * x.shape[-1],), -7.0, dtype)[..., ::2]
        return np.full(x.shape, -7.0, dtype, order=order)

    y0, mean, invstd = fastbn.batch_norm_train(x, gamma, beta)
    out = new_out()
    res = fastbn.batch_norm_train(x, gamma, beta, out=out)
    assert res.y is out and np.array_equal(out, y0)

    out = new_out()
    assert fastbn.batch_norm_infer(x, rm, rv, gamma, beta, out=out) is out
    assert np.array_equal(out, fastbn.batch_norm_infer(x, rm, rv, gamma, beta))

    out = new_out()
    grads = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, out=out)
    assert grads.dx is out
    assert np.array_equal(out, fastbn.batch_norm_backward(dy, x, mean, invstd, gamma).dx)


def test_results_are_named_tuples(rng):
    x, gamma, beta = make_inputs(rng, (4, 3), 1, np.float64)
    r = fastbn.batch_norm_train(x, gamma, beta)
    assert isinstance(r, fastbn.BatchNormResult) and r._fields == ("y", "mean", "invstd")
    g = fastbn.batch_norm_backward(np.ones_like(x), x, r.mean, r.invstd, gamma)
    assert isinstance(g, fastbn.BatchNormGrads) and g._fields == ("dx", "dgamma", "dbeta")


def test_array_likes_are_accepted_for_x_and_parameters():
    x = [[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]]
    y, mean, invstd = fastbn.batch_norm_train(x, [1.0, 2.0], [0.0, 1.0])
    ey, emean, einvstd = oracle_train(np.array(x), [1.0, 2.0], [0.0, 1.0])
    assert y.dtype == np.float64
    assert_close(y, ey, np.float64)
    assert_close(fastbn.batch_norm_infer(x, [3.0, 20.0], [4.0, 1.0]),
                 oracle_infer(np.array(x), [3.0, 20.0], [4.0, 1.0]), np.float64)


# ---- hypothesis: random shapes, axes, strides and dtypes -------------------------------------

@st.composite
def strided_batches(draw):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(2, 5))
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=7))
    axis = draw(st.integers(-ndim, ndim - 1))
    C = shape[axis]
    # Ensure at least 2 values per channel (the training requirement).
    if np.prod(shape) // C < 2:
        shape = (shape[0] + 1,) + shape[1:] if axis % ndim != 0 else shape[:1] + (shape[1] + 1,) + shape[2:]
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    # A random view: steps in {-2, -1, 1, 2} per axis, then a random axis order.
    steps = draw(st.lists(st.sampled_from([-2, -1, 1, 2]), min_size=ndim, max_size=ndim))
    perm = draw(st.permutations(range(ndim)))
    base_shape = tuple(shape[p] * abs(steps[p]) for p in perm)
    base = (rng.standard_normal(base_shape) * 3 + rng.uniform(-50, 50)).astype(dtype)
    inv = np.argsort(perm)
    view = base.transpose(inv)[tuple(slice(None, None, s) for s in steps)]
    assert view.shape == tuple(shape)
    affine = draw(st.booleans())
    return view, axis, affine, rng


@settings(max_examples=60, deadline=None)
@given(strided_batches())
def test_random_strided_inputs_match_reference(case):
    x, axis, affine, rng = case
    dtype = x.dtype
    C = x.shape[axis]
    gamma = rng.uniform(0.5, 2, C).astype(dtype) if affine else None
    beta = rng.uniform(-1, 1, C).astype(dtype) if affine else None
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis, eps=1e-3)
    ey, emean, einvstd = oracle_train(x, gamma, beta, axis=axis, eps=1e-3)
    assert_close(y, ey, dtype, bound32=train_bound(x, gamma, beta, emean, einvstd, axis))
    assert_close(mean, emean, dtype)
    assert_close(invstd, einvstd, dtype)
    assert np.array_equal(y, fastbn.batch_norm_train(np.ascontiguousarray(x), gamma, beta,
                                                     axis=axis, eps=1e-3).y)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dgamma, dbeta = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)
    edx, edgamma, edbeta = oracle_backward(dy, x, mean, invstd, gamma, axis=axis)
    n = x.size // C
    assert_close(dx, edx, dtype, rel64=1e-13 * n,
                 bound32=backward_bound(dy, x, mean, invstd, gamma, axis))
    assert_close(dgamma, edgamma, dtype, rel64=1e-13 * n)
    assert_close(dbeta, edbeta, dtype, rel64=1e-13 * n)
    rv = rng.uniform(0.5, 2, C).astype(dtype)
    assert_close(fastbn.batch_norm_infer(x, mean, rv, gamma, beta, axis=axis),
                 oracle_infer(x, mean, rv, gamma, beta, axis=axis), dtype,
                 bound32=infer_bound(x, mean, rv, gamma, beta, 1e-5, axis))


# ---- batch norm in parts (fastbn.batchnorm_parts) against their twins in fastbn.reference ----

def _f64_all(*arrays):
    return [f64(a) for a in arrays]


def _check_parts(x, dy, gamma, beta, axis):
    """Every part of fastbn.batchnorm_parts on (x, dy) against its twin on the float64 cast;
    returns fastbn's (count, mean, m2, invstd, sum_dy, sum_dy_xhat)."""
    dtype, C = x.dtype, x.shape[axis]
    n = x.size // C
    count, mean, m2 = fastbn.batch_norm_stats(x, axis=axis)
    ecount, emean, em2 = reference.batch_norm_stats(f64(x), axis=axis)
    assert np.array_equal(count, ecount) and count.dtype == np.float64
    assert_close(mean, emean, np.float64)
    assert_close(m2, em2, np.float64)

    invstd = 1.0 / np.sqrt(m2 / count + EPS)
    y = fastbn.batch_norm_apply(x, mean, invstd, gamma, beta, axis=axis)
    ey = reference.batch_norm_apply(f64(x), mean, invstd, f64(gamma), f64(beta), axis=axis)
    assert y.shape == x.shape and y.dtype == dtype
    assert_close(y, ey, dtype, bound32=train_bound(x, gamma, beta, mean, invstd, axis))

    sums = fastbn.batch_norm_backward_reduce(dy, x, mean, invstd, axis=axis)
    esums = reference.batch_norm_backward_reduce(*_f64_all(dy, x), mean, invstd, axis=axis)
    assert len(sums) == len(esums) == 2
    for got, want in zip(sums, esums):   # n terms each: float64 slack grows with n
        assert_close(got, want, np.float64, rel64=1e-13 * n)

    dx = fastbn.batch_norm_backward_apply(dy, x, mean, invstd, gamma, *sums, count, axis=axis)
    edx = reference.batch_norm_backward_apply(*_f64_all(dy, x), mean, invstd, f64(gamma), *sums,
                                              count, axis=axis)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert_close(dx, edx, dtype, rel64=1e-13 * n,
                 bound32=backward_bound(dy, x, mean, invstd, gamma, axis))
    return count, mean, m2, invstd, sums


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_parts_match_their_twins(rng, shape, axis, dtype, affine):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    g, b = _affine(gamma, beta, affine)
    dy = rng.standard_normal(shape).astype(dtype)
    count, mean, m2, _, _ = _check_parts(x, dy, g, b, axis)

    C = shape[axis]
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)
    erm, erv = f64(rm), f64(rv)
    fastbn.update_running_stats(rm, rv, count, mean, m2, momentum=0.3)
    reference.update_running_stats(erm, erv, count, mean, m2, momentum=0.3)
    assert_close(rm, erm, dtype)
    assert_close(rv, erv, dtype)


def _shards(x, axis):
    """x cut along a batch axis (not the channel axis) into an empty shard, a one-row shard and
    the rest in two (an empty one too when that axis is short)."""
    cut = 1 if axis % x.ndim == 0 else 0
    rows = x.shape[cut]
    return cut, np.split(x, [0, 1, 1 + (rows - 1) // 2], axis=cut)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_parts_over_shards_match_their_twins_and_the_whole_batch(rng, shape, axis, dtype):
    """The data-parallel pipeline, every rank's step against its twin: local statistics merged
    in order, applied to each shard; local gradient sums added in order, applied to each shard."""
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    cut, xs = _shards(x, axis)
    dys = np.split(dy, np.cumsum([s.shape[cut] for s in xs])[:-1], axis=cut)
    assert [s.shape[cut] for s in xs][:2] == [0, 1]

    local = [fastbn.batch_norm_stats(s, axis=axis) for s in xs]
    stacked = [np.stack(part) for part in zip(*local)]
    count, mean, m2 = fastbn.merge_stats(*stacked)
    ecount, emean, em2 = reference.merge_stats(*stacked)
    wcount, wmean, wm2 = reference.batch_norm_stats(f64(x), axis=axis)
    assert np.array_equal(count, ecount) and np.array_equal(ecount, wcount)
    for got, twin, whole in ((mean, emean, wmean), (m2, em2, wm2)):
        assert_close(got, twin, np.float64)
        assert_close(twin, whole, np.float64)

    invstd = 1.0 / np.sqrt(m2 / count + EPS)
    for s in xs:
        y = fastbn.batch_norm_apply(s, mean, invstd, gamma, beta, axis=axis)
        ey = reference.batch_norm_apply(f64(s), mean, invstd, f64(gamma), f64(beta), axis=axis)
        assert_close(y, ey, dtype, bound32=train_bound(s, gamma, beta, mean, invstd, axis))

    sums = [np.zeros(shape[axis]), np.zeros(shape[axis])]
    for d, s in zip(dys, xs):
        for total, part in zip(sums, fastbn.batch_norm_backward_reduce(d, s, mean, invstd,
                                                                        axis=axis)):
            total += part
    esums = reference.batch_norm_backward_reduce(*_f64_all(dy, x), mean, invstd, axis=axis)
    n = count[0]
    for got, want in zip(sums, esums):
        assert_close(got, want, np.float64, rel64=1e-13 * n)
    for d, s in zip(dys, xs):
        dx = fastbn.batch_norm_backward_apply(d, s, mean, invstd, gamma, *sums, count, axis=axis)
        edx = reference.batch_norm_backward_apply(*_f64_all(d, s), mean, invstd, f64(gamma),
                                                  *sums, count, axis=axis)
        assert_close(dx, edx, dtype, rel64=1e-13 * n,
                     bound32=backward_bound(d, s, mean, invstd, gamma, axis, sums=sums, count=n))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_parts_of_an_empty_shard_match_their_twins(shape, axis, dtype):
    cut = 1 if axis % len(shape) == 0 else 0
    x = np.zeros(shape[:cut] + (0,) + shape[cut + 1:], dtype)
    C = shape[axis]
    mean, invstd, gamma = np.full(C, 0.5), np.full(C, 2.0), np.full(C, 3.0, dtype)
    for impl in (fastbn, reference):
        count, m, m2 = impl.batch_norm_stats(x, axis=axis)
        assert all(a.shape == (C,) and a.dtype == np.float64 and not a.any()
                   for a in (count, m, m2)), impl.__name__
        y = impl.batch_norm_apply(x, mean, invstd, gamma, gamma, axis=axis)
        assert y.shape == x.shape and y.dtype == dtype, impl.__name__
        sums = impl.batch_norm_backward_reduce(x, x, mean, invstd, axis=axis)
        assert all(a.shape == (C,) and a.dtype == np.float64 and not a.any() for a in sums)
        dx = impl.batch_norm_backward_apply(x, x, mean, invstd, gamma, [1.0] * C, [1.0] * C, 10,
                                            axis=axis)
        assert dx.shape == x.shape and dx.dtype == dtype, impl.__name__


@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_the_parts_twins_compose_to_the_fused_twins(rng, shape, axis, affine):
    """The twins checked against the fused twins, so that the oracle has an oracle."""
    x, gamma, beta = make_inputs(rng, shape, axis, np.float64)
    g, b = _affine(gamma, beta, affine)
    dy = rng.standard_normal(shape)
    n = x.size // shape[axis]
    count, mean, m2 = reference.batch_norm_stats(x, axis=axis)
    y, fmean, finvstd = reference.batch_norm_train(x, g, b, axis=axis, eps=EPS)
    invstd = 1.0 / np.sqrt(m2 / count + EPS)
    assert np.array_equal(count, np.full(shape[axis], n))
    assert_close(mean, fmean, np.float64)
    assert_close(invstd, finvstd, np.float64)
    assert_close(reference.batch_norm_apply(x, mean, invstd, g, b, axis=axis), y, np.float64)
    dx, dgamma, dbeta = reference.batch_norm_backward(dy, x, mean, invstd, g, axis=axis)
    sum_dy, sum_dy_xhat = reference.batch_norm_backward_reduce(dy, x, mean, invstd, axis=axis)
    assert_close(sum_dy, dbeta, np.float64)
    assert_close(sum_dy_xhat, dgamma, np.float64)
    assert_close(reference.batch_norm_backward_apply(dy, x, mean, invstd, g, sum_dy, sum_dy_xhat,
                                                     count, axis=axis), dx, np.float64,
                 rel64=1e-13 * n)


def test_the_merge_twin_skips_empty_shards_and_keeps_nan_in_its_channel():
    counts = [[0.0, 0.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0], [3.0, 3.0, 0.0]]
    means = [[np.nan, 7.0, np.nan], [1.5, np.nan, 9.0], [np.nan, 7.0, 1.0], [2.0, 1.0, 1.0]]
    m2s = [[np.nan, 1.0, 1.0], [0.5, 0.5, 1.0], [5.0, 1.0, 1.0], [2.0, 2.0, 1.0]]
    for impl in (fastbn, reference):
        count, mean, m2 = impl.merge_stats(counts, means, m2s)
        assert np.array_equal(count, [5.0, 5.0, 0.0]), impl.__name__
        # channel 0: 1.5 (x2) and 2.0 (x3); channel 1: a NaN mean; channel 2: no values
        assert mean[0] == pytest.approx(1.8) and m2[0] == pytest.approx(0.5 + 2.0 + 0.3)
        assert np.isnan(mean[1]) and np.isnan(m2[1])
        assert mean[2] == 0.0 and m2[2] == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_running_twin_skips_non_finite_channels(dtype):
    mean, m2 = np.array([1.0, np.nan, 2.0, np.inf]), np.array([0.0, 1.0, np.inf, 1.0])
    for count in (2, 4):
        buffers = {}
        for impl in (fastbn, reference):
            rm, rv = np.zeros(4, dtype), np.ones(4, dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # fastbn's, about channels 1-3
                impl.update_running_stats(rm, rv, count, mean, m2, momentum=0.5)
            buffers[impl.__name__] = rm, rv
            assert np.array_equal(rm[1:], [0.0, 0.0, 0.0]) and np.array_equal(rv[1:], [1.0] * 3)
        (rm, rv), (erm, erv) = buffers.values()
        assert rm[0] == erm[0] == 0.5 and rv[0] == erv[0] == 0.5   # m2 0: variance 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", STRIDE_LAYOUTS, ids=STRIDE_IDS)
def test_parts_on_any_view_give_the_bits_of_the_contiguous_copy(rng, shape, axis, dtype):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    dy = rng.standard_normal(shape).astype(dtype)

    def parts(x, dy):
        count, mean, m2 = fastbn.batch_norm_stats(x, axis=axis)
        invstd = 1.0 / np.sqrt(m2 / count + EPS)
        sums = fastbn.batch_norm_backward_reduce(dy, x, mean, invstd, axis=axis)
        return (count, mean, m2, fastbn.batch_norm_apply(x, mean, invstd, gamma, beta, axis=axis),
                *sums, fastbn.batch_norm_backward_apply(dy, x, mean, invstd, gamma, *sums, count,
                                                        axis=axis))

    want = parts(x, dy)
    swapped = [("byteswapped", x.byteswap().view(x.dtype.newbyteorder()))]
    for name, xv in strided_variants(x) + swapped:
        for dname, dyv in strided_variants(dy)[:2]:
            for got, w in zip(parts(xv, dyv), want):
                assert got.dtype == w.dtype and got.tobytes() == w.tobytes(), (name, dname)


@settings(max_examples=40, deadline=None)
@given(strided_batches())
def test_random_strided_inputs_match_the_parts_twins(case):
    x, axis, affine, rng = case
    C = x.shape[axis]
    gamma = rng.uniform(0.5, 2, C).astype(x.dtype) if affine else None
    beta = rng.uniform(-1, 1, C).astype(x.dtype) if affine else None
    dy = rng.standard_normal(x.shape).astype(x.dtype)
    _check_parts(x, dy, gamma, beta, axis)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parts_and_twins_return_native_byte_order_for_a_byteswapped_batch(rng, dtype):
    x, gamma, beta = make_inputs(rng, (6, 3, 5), 1, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    xs, dys = (a.byteswap().view(a.dtype.newbyteorder()) for a in (x, dy))
    mean, invstd, sums = np.full(3, 0.5), np.full(3, 2.0), ([1.0, 2.0, 3.0], [0.5, 0.0, -1.0])
    for impl in (fastbn, reference):
        for y, want in ((impl.batch_norm_apply(xs, mean, invstd, gamma, beta),
                         impl.batch_norm_apply(x, mean, invstd, gamma, beta)),
                        (impl.batch_norm_backward_apply(dys, xs, mean, invstd, gamma, *sums, 90),
                         impl.batch_norm_backward_apply(dy, x, mean, invstd, gamma, *sums, 90))):
            assert y.dtype == np.dtype(dtype) and y.dtype.isnative, impl.__name__
            assert y.tobytes() == want.tobytes(), impl.__name__
