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
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastbn
from bn_helpers import (DTYPES, LAYOUT_IDS, LAYOUT_PARAMS, assert_close, backward_bound,
                        infer_bound, make_inputs, oracle_backward, oracle_infer, oracle_train,
                        strided_variants, train_bound)

EPS = 1e-5


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
@pytest.mark.parametrize("shape, axis", [((4, 3, 6, 7), 1), ((4, 3, 2, 3), 1), ((4, 6, 7, 3), -1),
                                         ((9, 5), 0)], ids=["NCHW-slab", "NCHW-rows", "NHWC", "axis0"])
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
