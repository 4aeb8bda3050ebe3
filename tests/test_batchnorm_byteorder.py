"""Arrays of non-native byte order ('>f4' on a little-endian machine, '<f4' on a big-endian one).

Specification (NumPy's ufunc convention):
- Every array the batch-norm functions only read -- x, dy, gamma, beta, mean, invstd, and the
  running statistics of inference -- may have either byte order, strided or not.  The results are
  bitwise those of the same values in native order, and come back in native byte order.
- ``out`` may have either byte order: it receives the same values.
- The running buffers of training are updated in place, so they must be native: another byte
  order is a TypeError naming the buffer, raised before anything is written.
"""
import numpy as np
import pytest

import fastbn
from bn_helpers import DTYPES, make_inputs

SHAPES = [((16, 5), 1), ((6, 3, 7), 1), ((4, 3, 80), 1), ((4, 6, 7, 3), -1)]
SHAPE_IDS = ["NC", "NCL-rows", "NCL-slab", "NHWC"]


def swapped(a):
    """The same values in the other byte order (different bytes in memory)."""
    out = a.astype(a.dtype.newbyteorder("S"))
    assert not out.dtype.isnative and np.array_equal(out, a)
    return out


def same_bits(got, want):
    """Equal bit for bit, and native: a swapped result would compare equal in value only."""
    assert got.dtype == want.dtype and got.dtype.isnative, (got.dtype, want.dtype)
    assert got.shape == want.shape and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES, ids=SHAPE_IDS)
def test_train_reads_any_byte_order(rng, shape, axis, dtype):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    want = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    for args in [(swapped(x), gamma, beta), (x, swapped(gamma), beta), (x, gamma, swapped(beta)),
                 (swapped(x), swapped(gamma), swapped(beta)), (swapped(x), None, None)]:
        got = fastbn.batch_norm_train(*args, axis=axis)
        ref = want if args[1] is not None else fastbn.batch_norm_train(x, axis=axis)
        for g, w in zip(got, ref):
            same_bits(g, w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_big_endian_input_is_read_too(rng, dtype):
    x, gamma, beta = make_inputs(rng, (8, 4, 6), 1, dtype)
    want = fastbn.batch_norm_train(x[:, :, ::2], gamma, beta)
    got = fastbn.batch_norm_train(swapped(x)[:, :, ::2], gamma, beta)
    for g, w in zip(got, want):
        same_bits(g, w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES, ids=SHAPE_IDS)
def test_infer_reads_any_byte_order(rng, shape, axis, dtype):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    C = shape[axis]
    rm = rng.standard_normal(C).astype(dtype)
    rv = rng.uniform(0.5, 2.0, C).astype(dtype)
    want = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    plain = [x, rm, rv, gamma, beta]
    for k in range(len(plain)):
        args = list(plain)
        args[k] = swapped(args[k])
        same_bits(fastbn.batch_norm_infer(*args, axis=axis), want)
    same_bits(fastbn.batch_norm_infer(*map(swapped, plain), axis=axis), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES, ids=SHAPE_IDS)
def test_backward_reads_any_byte_order(rng, shape, axis, dtype):
    x, gamma, _ = make_inputs(rng, shape, axis, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    _, mean, invstd = fastbn.batch_norm_train(x, gamma, axis=axis)
    plain = [dy, x, mean, invstd, gamma]
    want = fastbn.batch_norm_backward(*plain, axis=axis)
    for k in range(len(plain)):
        args = list(plain)
        args[k] = swapped(args[k])
        for g, w in zip(fastbn.batch_norm_backward(*args, axis=axis), want):
            same_bits(g, w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_of_the_other_byte_order_receives_the_values(rng, dtype):
    x, gamma, beta = make_inputs(rng, (6, 3, 7), 1, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta)
    out = swapped(np.full_like(x, -1.0))
    got = fastbn.batch_norm_train(x, gamma, beta, out=out)
    assert got.y is out and np.array_equal(out, y)
    out = swapped(np.full_like(x, -1.0))[:, ::-1]          # strided too
    assert fastbn.batch_norm_infer(x, mean, invstd, out=out) is out
    assert np.array_equal(out, fastbn.batch_norm_infer(x, mean, invstd))
    out = swapped(np.full_like(x, -1.0))
    assert fastbn.batch_norm_backward(dy, x, mean, invstd, out=out).dx is out
    assert np.array_equal(out, fastbn.batch_norm_backward(dy, x, mean, invstd).dx)


def test_big_endian_in_place_is_the_native_result(rng):
    x, gamma, beta = make_inputs(rng, (6, 3, 7), 1, np.float32)
    want = fastbn.batch_norm_train(x, gamma, beta).y
    xb = swapped(x)
    assert fastbn.batch_norm_train(xb, gamma, beta, out=xb).y is xb
    assert np.array_equal(xb, want) and not xb.dtype.isnative


@pytest.mark.parametrize("which", ["running_mean", "running_var"])
@pytest.mark.parametrize("x_order", ["native", "swapped"])
def test_non_native_running_buffers_are_rejected_before_writing(rng, which, x_order):
    x, _, _ = make_inputs(rng, (8, 4), 1, np.float32)
    if x_order == "swapped":
        x = swapped(x)
    bufs = {"running_mean": np.zeros(4, np.float32), "running_var": np.ones(4, np.float32)}
    bufs[which] = swapped(bufs[which])
    before = {k: b.tobytes() for k, b in bufs.items()}
    out = np.full((8, 4), -1.0, np.float32)
    for kw in ({}, {"out": out}):     # without out and with it: neither writes
        with pytest.raises(TypeError, match=f"^{which}: expected native byte order"):
            fastbn.batch_norm_train(x, **bufs, **kw)
        assert {k: b.tobytes() for k, b in bufs.items()} == before
    assert np.all(out == -1.0)


def test_the_example_of_the_report_is_fixed():
    """A big-endian batch used to give a mean of about -2.8e36 without any error."""
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(">f4")
    _, mean, invstd = fastbn.batch_norm_train(x)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(x.astype(np.float64).var(axis=0) + 1e-5),
                               rtol=1e-6)
