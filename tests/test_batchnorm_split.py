"""Batch norm split into its parts: moments, apply, grad_sums, grad_apply (fastbn._batchnorm).

Specification: on the (outer, C, inner) view of a C-contiguous x, for float32 and float64, any
thread count and any instruction-set path,
- ``moments`` gives train's float64 mean bit for bit, and m2 with m2 / count == train's var;
- ``apply`` with train's own mean and invstd gives train's y bit for bit (also in place);
- ``grad_sums`` gives backward's float64 dbeta as sum_dy, and sum_dy_xmu with
  sum_dy_xmu * invstd == backward's float64 dgamma, bit for bit;
- ``grad_apply`` with those local sums and count = outer * inner gives backward's dx bit for bit
  (also in place), and with sums reduced over several parts of a batch, the whole batch's dx;
- no values (outer or inner 0): moments and sums are 0, the elementwise parts write nothing;
- a NaN channel stays NaN where the fused kernels' does, the other channels keep their bits.
These are the building blocks of a batch norm whose statistics are reduced across processes.
"""
import numpy as np
import pytest

from fastbn import _batchnorm

# (shape, channel axis): NC, NCHW, NHWC, NCDHW on the slab path (inner > 64) and the rows path,
# several statistics segments / row chunks / column tiles, and sizes above the threading threshold.
SHAPES = [
    ((16, 5), 1), ((7, 3), 0), ((20000, 5), 1), ((60, 1500), 1),
    ((4, 3, 9, 9), 1), ((4, 3, 2, 3), 1), ((3, 2, 64, 65), 1), ((16, 8, 64, 64), 1),
    ((4, 6, 7, 3), -1), ((8, 64, 64, 16), -1),
    ((2, 3, 2, 3, 4), 1), ((2, 3, 4, 4, 5), 1),
]
IDS = [f"{list(s)}axis{a}" for s, a in SHAPES]
DTYPES = [np.float32, np.float64]


def _view(shape, axis):
    axis %= len(shape)
    return (int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:])))


def _inputs(shape, axis, dtype, seed=7):
    rng = np.random.default_rng(seed)
    outer, C, inner = _view(shape, axis)
    loc = rng.uniform(-50.0, 50.0, (1, C, 1))
    x = (rng.standard_normal((outer, C, inner)) * rng.uniform(0.5, 3.0, (1, C, 1)) + loc)
    dy = rng.standard_normal((outer, C, inner))
    gamma = rng.uniform(0.5, 2.0, C)
    beta = rng.uniform(-1.0, 1.0, C)
    return (x.reshape(shape).astype(dtype), dy.reshape(shape).astype(dtype),
            gamma.astype(dtype), beta.astype(dtype))


def _train(x, view, gamma, beta, threads):
    y = np.empty_like(x)
    stats = np.empty((3, view[1]))
    _batchnorm.train(x, y, *view, gamma, beta, 1e-5, stats, threads)
    return y, stats[0].copy(), stats[1].copy(), stats[2].copy()


def _backward(dy, x, view, mean, invstd, gamma, threads):
    dx = np.empty_like(x)
    grads = np.empty((2, view[1]))
    _batchnorm.backward(dy, x, dx, *view, mean, invstd, gamma, grads, threads)
    return dx, grads[0].copy(), grads[1].copy()


def _moments(x, view, threads):
    mean, m2 = np.full(view[1], -1.0), np.full(view[1], -1.0)
    _batchnorm.moments(x, *view, mean, m2, threads)
    return mean, m2


def _grad_sums(dy, x, view, mean, invstd, threads):
    s1, s2 = np.full(view[1], -1.0), np.full(view[1], -1.0)
    _batchnorm.grad_sums(dy, x, *view, mean, invstd, s1, s2, threads)
    return s1, s2


def assert_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES, ids=IDS)
def test_moments_give_trains_mean_and_m2_over_count_its_var(shape, axis, dtype, threads, isa):
    x, _, gamma, beta = _inputs(shape, axis, dtype)
    view = _view(shape, axis)
    _, mean, var, _ = _train(x, view, gamma, beta, threads)
    got_mean, m2 = _moments(x, view, threads)
    assert_bits(got_mean, mean)
    assert_bits(m2 / float(view[0] * view[2]), var)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES, ids=IDS)
def test_apply_with_trains_statistics_gives_trains_y(shape, axis, dtype, affine, threads, isa):
    x, _, gamma, beta = _inputs(shape, axis, dtype)
    if not affine:
        gamma = beta = None
    view = _view(shape, axis)
    y, mean, _, invstd = _train(x, view, gamma, beta, threads)
    got = np.full_like(x, np.nan)
    _batchnorm.apply(x, got, *view, mean, invstd, gamma, beta, threads)
    assert_bits(got, y)
    inplace = x.copy()
    _batchnorm.apply(inplace, inplace, *view, mean, invstd, gamma, beta, threads)
    assert_bits(inplace, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES, ids=IDS)
def test_grad_sums_give_backwards_dbeta_and_dgamma(shape, axis, dtype, threads, isa):
    x, dy, gamma, beta = _inputs(shape, axis, dtype)
    view = _view(shape, axis)
    _, mean, _, invstd = _train(x, view, gamma, beta, threads)
    _, dgamma, dbeta = _backward(dy, x, view, mean, invstd, gamma, threads)
    sum_dy, sum_dy_xmu = _grad_sums(dy, x, view, mean, invstd, threads)
    assert_bits(sum_dy, dbeta)
    assert_bits(sum_dy_xmu * invstd, dgamma)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES, ids=IDS)
def test_grad_apply_with_local_sums_gives_backwards_dx(shape, axis, dtype, affine, threads, isa):
    x, dy, gamma, beta = _inputs(shape, axis, dtype)
    if not affine:
        gamma = None
    view = _view(shape, axis)
    _, mean, _, invstd = _train(x, view, gamma, beta, threads)
    dx, _, _ = _backward(dy, x, view, mean, invstd, gamma, threads)
    sum_dy, sum_dy_xmu = _grad_sums(dy, x, view, mean, invstd, threads)
    count = view[0] * view[2]
    got = np.full_like(x, np.nan)
    _batchnorm.grad_apply(dy, x, got, *view, mean, invstd, gamma, sum_dy, sum_dy_xmu, count,
                          threads)
    assert_bits(got, dx)
    inplace = dy.copy()
    _batchnorm.grad_apply(inplace, x, inplace, *view, mean, invstd, gamma, sum_dy, sum_dy_xmu,
                          count, threads)
    assert_bits(inplace, dx)


@pytest.mark.parametrize("shape, axis", [((40, 3, 50), 1), ((64, 6), 1), ((12, 5, 5, 4), -1)])
def test_sums_reduced_over_parts_of_a_batch_give_the_whole_batchs_gradient(shape, axis, threads):
    """What a synchronized batch norm does: each part of the batch (split along axis 0) computes
    its moments and sums, the sums are added, every part applies them with the whole count."""
    x, dy, gamma, beta = _inputs(shape, axis, np.float64)
    view = _view(shape, axis)
    y, mean, var, invstd = _train(x, view, gamma, beta, threads)
    dx, dgamma, dbeta = _backward(dy, x, view, mean, invstd, gamma, threads)
    parts = np.array_split(np.arange(shape[0]), 3)
    # statistics: Chan's merge of the parts' (count, mean, m2)
    n, mu, m2 = 0, np.zeros(view[1]), np.zeros(view[1])
    for p in parts:
        xp = np.ascontiguousarray(x[p])
        vp = _view(xp.shape, axis)
        pm, pq = _moments(xp, vp, threads)
        nb = vp[0] * vp[2]
        delta = pm - mu
        mu, m2, n = mu + delta * nb / (n + nb), m2 + pq + delta ** 2 * n * nb / (n + nb), n + nb
    np.testing.assert_allclose(mu, mean, rtol=1e-13, atol=1e-13 * np.abs(mean).max())
    np.testing.assert_allclose(m2 / n, var, rtol=1e-12)
    s1, s2 = np.zeros(view[1]), np.zeros(view[1])
    for p in parts:
        a, b = _grad_sums(np.ascontiguousarray(dy[p]), np.ascontiguousarray(x[p]),
                          _view(x[p].shape, axis), mean, invstd, threads)
        s1, s2 = s1 + a, s2 + b
    np.testing.assert_allclose(s1, dbeta, rtol=1e-12, atol=1e-12 * np.abs(dbeta).max())
    np.testing.assert_allclose(s2 * invstd, dgamma, rtol=1e-12, atol=1e-12 * np.abs(dgamma).max())
    got = np.empty_like(dx)
    for p in parts:
        dxp = np.empty((len(p),) + shape[1:])
        _batchnorm.grad_apply(np.ascontiguousarray(dy[p]), np.ascontiguousarray(x[p]), dxp,
                              *_view(dxp.shape, axis), mean, invstd, gamma, s1, s2, n, threads)
        got[p] = dxp
    np.testing.assert_allclose(got, dx, rtol=1e-10, atol=1e-12 * np.abs(dx).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", [(0, 3, 5), (4, 3, 0), (0, 3, 40)])
def test_no_values_give_zero_moments_and_sums_and_write_nothing(view, dtype):
    x = np.empty(view, dtype)
    mean, m2 = _moments(x, view, 1)
    assert_bits(mean, np.zeros(3))
    assert_bits(m2, np.zeros(3))
    s1, s2 = _grad_sums(x, x, view, np.zeros(3), np.ones(3), 1)
    assert_bits(s1, np.zeros(3))
    assert_bits(s2, np.zeros(3))
    y = np.empty(view, dtype)
    _batchnorm.apply(x, y, *view, np.zeros(3), np.ones(3), None, None, 1)
    _batchnorm.grad_apply(x, x, y, *view, np.zeros(3), np.ones(3), None, s1, s2, 0, 1)
    # sums over other processes' values: any count >= 0 is fine without local values
    _batchnorm.grad_apply(x, x, y, *view, np.zeros(3), np.ones(3), None, s1, s2, 10, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((6, 4, 40), 1), ((50, 4), 1), ((6, 3, 3, 4), -1)])
def test_a_nan_channel_gives_the_fused_kernels_bits(shape, axis, dtype, threads):
    x, dy, gamma, beta = _inputs(shape, axis, dtype)
    view = _view(shape, axis)
    x.reshape(view)[1, 2, 0] = np.nan
    dy.reshape(view)[0, 1, 0] = np.nan
    y, mean, var, invstd = _train(x, view, gamma, beta, threads)
    assert np.isnan(mean[2]) and np.isfinite(mean[[0, 1, 3]]).all()
    got_mean, m2 = _moments(x, view, threads)
    assert_bits(got_mean, mean)
    assert_bits(m2 / float(view[0] * view[2]), var)
    got = np.empty_like(x)
    _batchnorm.apply(x, got, *view, mean, invstd, gamma, beta, threads)
    assert_bits(got, y)
    dx, dgamma, dbeta = _backward(dy, x, view, mean, invstd, gamma, threads)
    s1, s2 = _grad_sums(dy, x, view, mean, invstd, threads)
    assert_bits(s1, dbeta)
    assert_bits(s2 * invstd, dgamma)
    _batchnorm.grad_apply(dy, x, got, *view, mean, invstd, gamma, s1, s2, view[0] * view[2],
                          threads)
    assert_bits(got, dx)


def test_grad_apply_rejects_a_count_below_the_local_values_and_writes_nothing():
    x, dy, gamma, _ = _inputs((8, 3, 5), 1, np.float64)
    view = (8, 3, 5)
    dx = np.full_like(x, 7.0)
    with pytest.raises(ValueError, match="^count"):
        _batchnorm.grad_apply(dy, x, dx, *view, np.zeros(3), np.ones(3), gamma, np.zeros(3),
                              np.zeros(3), 39, 1)
    assert (dx == 7.0).all()


@pytest.mark.parametrize("func, args", [
    ("moments", lambda x, c: (x, 4, 3, 5, c, c, 1)),
    ("apply", lambda x, c: (x, x, 4, 3, 5, c, c, None, None, 1)),
    ("grad_sums", lambda x, c: (x, x, 4, 3, 5, c, c, c, c, 1)),
    ("grad_apply", lambda x, c: (x, x, x, 4, 3, 5, c, c, None, c, c, 20, 1)),
])
def test_per_channel_arrays_must_be_float64_of_length_C(func, args):
    x = np.zeros((4, 3, 5), np.float32)
    for bad in (np.zeros(3, np.float32), np.zeros(4), np.zeros((3, 2))[:, 0]):
        with pytest.raises(ValueError):
            getattr(_batchnorm, func)(*args(x, bad))
    getattr(_batchnorm, func)(*args(x, np.ones(3)))   # the right arrays are accepted
