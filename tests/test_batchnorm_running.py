"""Running statistics of batch_norm_train (PyTorch's convention).

Specification:
- ``running_mean = (1 - momentum) * running_mean + momentum * mean`` and
  ``running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)`` (unbiased),
  n = values per channel, updated in place in the buffers passed (any strides).
- momentum 0 leaves the buffers as they are; momentum 1 replaces them by the batch statistics.
- Either buffer may be given alone.
- NaN or Inf in one channel of x: y is NaN in that channel only, that channel's running
  statistics are not updated, the other channels are, and a RuntimeWarning says so -- before any
  running buffer is written, so that under ``-W error`` (the warning raised as an exception) both
  buffers keep every byte.  ``out``, if given, then holds y (documented in batch_norm_train).
"""
import warnings

import numpy as np
import pytest

import fastbn
from bn_helpers import DTYPES, channel_shape, make_inputs


def batch_stats(x, axis):
    """Hand computation in float64: mean, biased var, n."""
    axis = axis % x.ndim
    axes = tuple(i for i in range(x.ndim) if i != axis)
    xd = x.astype(np.float64)
    n = x.size // x.shape[axis]
    mean = xd.mean(axis=axes)
    var = ((xd - mean.reshape(channel_shape(x.ndim, axis, -1))) ** 2).sum(axis=axes) / n
    return mean, var, n


def rel(dtype):
    return 1e-6 if np.dtype(dtype) == np.float32 else 1e-13


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((6, 4), 1), ((5, 3, 7), 1), ((3, 4, 80), 1),
                                         ((4, 5, 6, 3), -1)],
                         ids=["NC", "NCL-rows", "NCL-slab", "NHWC"])
@pytest.mark.parametrize("momentum", [0.1, 0.37])
def test_running_update_uses_the_unbiased_variance(rng, dtype, shape, axis, momentum):
    x, _, _ = make_inputs(rng, shape, axis, dtype)
    C = shape[axis]
    rm0 = rng.standard_normal(C).astype(dtype)
    rv0 = rng.uniform(0.5, 2.0, C).astype(dtype)
    rm, rv = rm0.copy(), rv0.copy()
    fastbn.batch_norm_train(x, axis=axis, running_mean=rm, running_var=rv, momentum=momentum)
    mean, var, n = batch_stats(x, axis)
    want_m = (1 - momentum) * rm0.astype(np.float64) + momentum * mean
    want_v = (1 - momentum) * rv0.astype(np.float64) + momentum * var * n / (n - 1)
    np.testing.assert_allclose(rm, want_m, rtol=rel(dtype), atol=rel(dtype))
    np.testing.assert_allclose(rv, want_v, rtol=rel(dtype))
    assert rm.dtype == rv.dtype == np.dtype(dtype)


def test_momentum_zero_keeps_and_one_replaces(rng):
    x, _, _ = make_inputs(rng, (9, 3, 4), 1, np.float64)
    mean, var, n = batch_stats(x, 1)
    rm, rv = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    fastbn.batch_norm_train(x, running_mean=rm, running_var=rv, momentum=0.0)
    assert np.array_equal(rm, [1.0, 2.0, 3.0]) and np.array_equal(rv, [4.0, 5.0, 6.0])
    fastbn.batch_norm_train(x, running_mean=rm, running_var=rv, momentum=1.0)
    np.testing.assert_allclose(rm, mean, rtol=1e-14)
    np.testing.assert_allclose(rv, var * n / (n - 1), rtol=1e-13)


def test_one_buffer_alone_is_updated(rng):
    x, _, _ = make_inputs(rng, (9, 3), 1, np.float64)
    mean, var, n = batch_stats(x, 1)
    rm = np.zeros(3)
    fastbn.batch_norm_train(x, running_mean=rm, momentum=0.5)
    np.testing.assert_allclose(rm, 0.5 * mean, rtol=1e-14)
    rv = np.ones(3)
    fastbn.batch_norm_train(x, running_var=rv, momentum=0.5)
    np.testing.assert_allclose(rv, 0.5 + 0.5 * var * n / (n - 1), rtol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_running_buffers_are_updated_in_place(rng, dtype):
    x, _, _ = make_inputs(rng, (8, 5, 6), 1, dtype)
    storage_m = np.full(10, 1.5, dtype)
    storage_v = np.full(15, 2.5, dtype)
    rm, rv = storage_m[::2], storage_v[::-3]          # every other element; negative stride 3
    rm_c, rv_c = rm.copy(), rv.copy()
    fastbn.batch_norm_train(x, running_mean=rm, running_var=rv, momentum=0.3)
    fastbn.batch_norm_train(x, running_mean=rm_c, running_var=rv_c, momentum=0.3)
    assert np.array_equal(rm, rm_c) and np.array_equal(rv, rv_c)
    assert not np.array_equal(rm_c, np.full(5, 1.5, dtype))
    # the elements between them are untouched
    assert np.all(storage_m[1::2] == 1.5)
    mask = np.ones(15, bool)
    mask[::-3] = False
    assert np.all(storage_v[mask] == 2.5)


def test_running_stats_converge_to_the_population_statistics(rng):
    rm, rv = np.zeros(2), np.ones(2)
    for _ in range(200):
        x = rng.standard_normal((64, 2)) * [2.0, 0.5] + [10.0, -3.0]
        fastbn.batch_norm_train(x, running_mean=rm, running_var=rv, momentum=0.1)
    np.testing.assert_allclose(rm, [10.0, -3.0], atol=0.15)
    np.testing.assert_allclose(rv, [4.0, 0.25], rtol=0.2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(16, 4), (6, 4, 5), (4, 4, 80)], ids=["NC", "NCL-rows", "NCL-slab"])
def test_non_finite_values_stay_in_their_channel(rng, shape, bad):
    x, gamma, beta = make_inputs(rng, shape, 1, np.float32)
    x[(1, 2) + (0,) * (x.ndim - 2)] = bad
    rm0 = rng.standard_normal(4).astype(np.float32)
    rv0 = rng.uniform(0.5, 2, 4).astype(np.float32)
    rm, rv = rm0.copy(), rv0.copy()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, running_mean=rm, running_var=rv)
    moved = np.moveaxis(y, 1, 0).reshape(4, -1)
    assert np.all(np.isnan(moved[2]))
    others = [0, 1, 3]
    assert np.all(np.isfinite(moved[others]))
    # channel 2 keeps its running statistics bit for bit; the others move
    assert rm[2] == rm0[2] and rv[2] == rv0[2]
    assert np.all(rm[others] != rm0[others]) and np.all(rv[others] != rv0[others])
    clean = fastbn.batch_norm_train(np.delete(x, 2, axis=1), gamma[others], beta[others])
    assert np.array_equal(moved[others], np.moveaxis(clean.y, 1, 0).reshape(3, -1))


def test_no_warning_without_running_buffers_or_when_finite(rng):
    x, _, _ = make_inputs(rng, (8, 3), 1, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastbn.batch_norm_train(x, running_mean=np.zeros(3), running_var=np.ones(3))
        x[0, 0] = np.nan
        y, _, _ = fastbn.batch_norm_train(x)
    assert np.all(np.isnan(y[:, 0])) and np.all(np.isfinite(y[:, 1:]))


def _nan_channel_batch(rng, shape):
    x, gamma, beta = make_inputs(rng, shape, 1, np.float32)
    x[(0, 1) + (0,) * (x.ndim - 2)] = np.nan
    return x, gamma, beta


# the Cython path without out= and with a C-contiguous out=; the general path with a strided
# out= or a strided x
CALLS = {
    "plain": lambda x: dict(x=x),
    "out": lambda x: dict(x=x, out=np.full_like(x, -7.0)),
    "strided-out": lambda x: dict(x=x, out=np.full(x.shape[:-1] + (2 * x.shape[-1],), -7.0,
                                                   np.float32)[..., ::2]),
    "strided-x": lambda x: dict(x=np.asfortranarray(x)),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("shape", [(16, 4), (4, 4, 80)], ids=["rows", "slab"])
def test_warning_as_error_leaves_the_running_buffers_unwritten(rng, shape, call):
    """Under -W error the warning is an exception: it comes before the running buffers are
    written, so they keep every byte; out= (documented) already holds y."""
    x, gamma, beta = _nan_channel_batch(rng, shape)
    kw = call(x)
    rm, rv = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    rm_bytes, rv_bytes = rm.tobytes(), rv.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="1 of 4 channels have non-finite"):
            fastbn.batch_norm_train(gamma=gamma, beta=beta, running_mean=rm, running_var=rv, **kw)
    assert rm.tobytes() == rm_bytes and rv.tobytes() == rv_bytes
    if "out" in kw:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = fastbn.batch_norm_train(x, gamma, beta).y
        assert np.ascontiguousarray(kw["out"]).tobytes() == want.tobytes()


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_the_warning_points_at_the_caller_and_the_update_follows(rng, call):
    x, gamma, beta = _nan_channel_batch(rng, (16, 4))
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    with pytest.warns(RuntimeWarning, match="non-finite") as record:
        fastbn.batch_norm_train(running_mean=rm, running_var=rv, **call(x))
    assert len(record) == 1 and record[0].filename == __file__
    assert rm[1] == 0.0 and rv[1] == 1.0                       # the NaN channel: skipped
    assert np.all(rm[[0, 2, 3]] != 0.0) and np.all(rv[[0, 2, 3]] != 1.0)
