"""Array forms that every public function meets, beyond dtype, shape and byte order.

Specification:
- An array that is written (``out``, ``dresidual``, running buffers, gradients clipped in
  place, an initializer's ``out``) whose elements overlap one another in memory (a zero stride
  from ``as_strided``) is a ValueError naming it, and nothing is written: each of its elements
  would receive several results.  Layouts whose elements are distinct but interleaved are
  accepted and give the contiguous result.
- A masked array anywhere is a TypeError naming the argument: the kernels would read its data
  and ignore its mask (NumPy's reductions honour masks; fastbn does not pretend to).
- Other ndarray subclasses (np.matrix) are read as plain arrays: ``*`` is never their matrix
  product, and in-place functions write their memory.
"""
import re

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastbn
from fastbn import init, reference

SENTINEL = 7.0


def zero_stride(n, dtype=np.float32, value=SENTINEL):
    """A writeable length-n vector all of whose elements are one float."""
    return as_strided(np.full(1, value, dtype), shape=(n,), strides=(0,))


def rows_alias(shape, dtype=np.float32):
    """A writeable array of ``shape`` whose rows are one row (stride 0 along axis 0)."""
    base = np.full(shape[1:], SENTINEL, dtype)
    return as_strided(base, shape=shape, strides=(0,) + base.strides)


X = np.arange(24, dtype=np.float32).reshape(4, 3, 2) % 5
DY = (np.arange(24, dtype=np.float32).reshape(4, 3, 2) % 3) - 1.0
X2 = X.reshape(4, 6)


def _bn_stats():
    return fastbn.batch_norm_train(X)


def _ln_stats():
    return fastbn.layer_norm(X2)


# (id, argument named in the error, call given the self-overlapping array)
OVERLAPPING = [
    ("bn-train-out", "out", lambda a: fastbn.batch_norm_train(X, out=a),
     lambda: rows_alias(X.shape)),
    ("bn-train-running_mean", "running_mean",
     lambda a: fastbn.batch_norm_train(X, running_mean=a), lambda: zero_stride(3)),
    ("bn-train-running_var", "running_var",
     lambda a: fastbn.batch_norm_train(X, running_var=a), lambda: zero_stride(3)),
    ("bn-infer-out", "out", lambda a: fastbn.batch_norm_infer(X, np.zeros(3, np.float32),
                                                               np.ones(3, np.float32), out=a),
     lambda: rows_alias(X.shape)),
    ("bn-backward-out", "out", lambda a: fastbn.batch_norm_backward(
        DY, X, _bn_stats().mean, _bn_stats().invstd, out=a), lambda: rows_alias(X.shape)),
    ("bn-backward-dresidual", "dresidual", lambda a: fastbn.batch_norm_backward(
        DY, X, _bn_stats().mean, _bn_stats().invstd, y=_bn_stats().y, dresidual=a),
     lambda: rows_alias(X.shape)),
    ("ln-out", "out", lambda a: fastbn.layer_norm(X2, out=a), lambda: rows_alias(X2.shape)),
    ("ln-backward-out", "out", lambda a: fastbn.layer_norm_backward(
        DY.reshape(4, 6), X2, _ln_stats()[1], _ln_stats()[2], out=a),
     lambda: rows_alias(X2.shape)),
    ("rms-out", "out", lambda a: fastbn.rms_norm(X2, out=a), lambda: rows_alias(X2.shape)),
    ("gn-out", "out", lambda a: fastbn.group_norm(X, 3, out=a), lambda: rows_alias(X.shape)),
    ("in-out", "out", lambda a: fastbn.instance_norm(X, out=a), lambda: rows_alias(X.shape)),
    ("update_running_stats", "running_mean", lambda a: fastbn.update_running_stats(
        a, None, 4, np.ones(3), np.ones(3)), lambda: zero_stride(3, np.float64)),
    ("clip_grad_norm", "grads", lambda a: fastbn.clip_grad_norm(a, 1.0),
     lambda: zero_stride(4, np.float64, 5.0)),
    ("clip_grad_value", "grads", lambda a: fastbn.clip_grad_value(a, 1.0),
     lambda: zero_stride(4, np.float64, 5.0)),
    ("clip_by_norm-out", "out", lambda a: fastbn.clip_by_norm(np.full(4, 5.0), 1.0, out=a),
     lambda: zero_stride(4, np.float64)),
    ("clip_by_norm-half-out", "out", lambda a: fastbn.clip_by_norm(np.full(4, 5.0, np.float16),
                                                                    1.0, out=a),
     lambda: zero_stride(4, np.float16)),
    ("init-normal-out", "out", lambda a: init.normal((4,), rng=0, out=a), lambda: zero_stride(4)),
    ("init-zeros-out", "out", lambda a: init.zeros((4,), out=a), lambda: zero_stride(4)),
]


@pytest.mark.parametrize("name, call, make", [c[1:] for c in OVERLAPPING],
                         ids=[c[0] for c in OVERLAPPING])
def test_a_written_array_whose_elements_overlap_is_named_and_not_written(name, call, make):
    a = make()
    before = a.copy()
    with pytest.raises(ValueError, match=f"^{name}: its elements overlap in memory"):
        call(a)
    assert np.array_equal(a, before)


def test_interleaved_but_distinct_elements_are_an_output_like_any_other():
    # offsets 24 i + 32 j bytes, i, j < 3: nine distinct float64s, no stride spans the other
    buf = np.full(15, SENTINEL)
    out = as_strided(buf, shape=(3, 3), strides=(24, 32))
    x = np.array([[1.0, 2.0, 4.0], [0.0, -1.0, 3.0], [5.0, 5.5, 7.0]])
    y, _, _ = fastbn.layer_norm(x, out=out)
    assert y is out
    assert np.array_equal(out, fastbn.layer_norm(x)[0])
    assert np.count_nonzero(buf != SENTINEL) == 9


def _masked(a):
    return np.ma.masked_array(a, mask=np.zeros(np.shape(a), bool))


MASKED = [
    ("bn-x", "x", lambda: fastbn.batch_norm_train(_masked(X))),
    ("bn-gamma", "gamma", lambda: fastbn.batch_norm_train(X, _masked(np.ones(3, np.float32)))),
    ("bn-out", "out", lambda: fastbn.batch_norm_train(X, out=_masked(np.zeros_like(X)))),
    ("bn-backward-dy", "dy", lambda: fastbn.batch_norm_backward(
        _masked(DY), X, _bn_stats().mean, _bn_stats().invstd)),
    ("ln-x", "x", lambda: fastbn.layer_norm(_masked(X2))),
    ("gn-x", "x", lambda: fastbn.group_norm(_masked(X), 3)),
    ("stats-x", "x", lambda: fastbn.batch_norm_stats(_masked(X))),
    ("clip-grads", "grads[0]", lambda: fastbn.clip_grad_norm([_masked(np.ones(3))], 1.0)),
    ("clip-out", "out", lambda: fastbn.clip_by_norm(np.ones(3), 1.0, out=_masked(np.ones(3)))),
    ("fold-weight", "weight", lambda: fastbn.fold_batch_norm(_masked(np.ones((2, 2))), None,
                                                              np.zeros(2), np.ones(2))),
    ("fold-running_var", "running_var", lambda: fastbn.fold_batch_norm(
        np.ones((2, 2)), None, np.zeros(2), _masked(np.ones(2)))),
    ("init-out", "out", lambda: init.zeros((3,), out=_masked(np.ones(3, np.float32)))),
]


@pytest.mark.parametrize("name, call", [c[1:] for c in MASKED], ids=[c[0] for c in MASKED])
def test_a_masked_array_is_a_type_error_naming_it(name, call):
    with pytest.raises(TypeError, match="^" + re.escape(name) + ": expected an ndarray, got a "
                                        "masked array"):
        call()


def test_a_byte_swapped_memmap_is_read_as_a_plain_array(tmp_path):
    mm = np.memmap(tmp_path / "x", dtype=">f4", mode="w+", shape=X.shape)
    mm[...] = X
    for got, want in zip(fastbn.batch_norm_train(mm), fastbn.batch_norm_train(X)):
        assert type(got) is np.ndarray and got.tobytes() == want.tobytes()


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_a_matrix_weight_folds_elementwise_as_an_ndarray():
    w = np.arange(1.0, 7.0).reshape(3, 2)
    var = np.array([1.0, 4.0, 16.0])
    want = fastbn.fold_batch_norm(w, None, np.zeros(3), var)
    got = fastbn.fold_batch_norm(np.asmatrix(w), None, np.zeros(3), var)
    assert got[0].shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(got[0]), want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_matrix_gradients_are_clipped_in_place(dtype):
    g = np.arange(20, dtype=dtype).reshape(5, 4)
    m = np.asmatrix(g.copy())
    assert fastbn.clip_grad_norm(m, 1.0) == fastbn.clip_grad_norm(g, 1.0)
    np.testing.assert_array_equal(np.asarray(m), g)
    g = np.arange(20, dtype=dtype).reshape(5, 4)
    out = np.asmatrix(np.full((5, 4), 7, dtype))
    assert fastbn.clip_by_norm(g, 1.0, out=out) is out
    np.testing.assert_array_equal(np.asarray(out), fastbn.clip_by_norm(g, 1.0))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_an_initializer_fills_a_matrix_out_and_draws_as_for_an_ndarray():
    gen_a, gen_b = np.random.default_rng(5), np.random.default_rng(5)
    want = init.normal((2, 3), rng=gen_a)
    out = np.asmatrix(np.zeros((2, 3), np.float32))
    assert init.normal((2, 3), rng=gen_b, out=out) is out
    np.testing.assert_array_equal(np.asarray(out), want)
    assert gen_a.bit_generator.state == gen_b.bit_generator.state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_normal_whose_reach_overflows_the_dtype_is_refused(dtype):
    big = float(np.finfo(dtype).max) / 4   # 6.67 (float32) or 8.58 (float64) std reach past max
    out = np.full(8, SENTINEL, dtype)
    with pytest.raises(ValueError, match="^std: values up to"):
        init.normal((8,), 0.0, big, dtype=dtype, rng=0, out=out)
    assert (out == SENTINEL).all()
    assert np.isfinite(init.normal((1000,), 0.0, big / 4, dtype=dtype, rng=0)).all()


def test_the_reference_half_twins_write_dresidual():
    x = (np.arange(24).reshape(4, 3, 2) % 5 - 2.0).astype(np.float16)
    dy = (np.arange(24).reshape(4, 3, 2) % 3 - 1.0).astype(np.float16)
    y, m, s = fastbn.batch_norm_train(x, relu=True)
    d = np.full_like(x, 7)
    reference.batch_norm_backward(dy, x, m, s, y=y, dresidual=d)
    np.testing.assert_array_equal(d, np.where(y > 0, dy, np.float16(0)))
    d2 = np.full_like(x, 7)
    fastbn.batch_norm_backward(dy, x, m, s, y=y, dresidual=d2)
    np.testing.assert_array_equal(d, d2)


@pytest.mark.parametrize("count", [2**63, 1e19, 2.0**53 + 2])
def test_a_count_beyond_float64_integers_is_named(count):
    rm = np.full(3, SENTINEL)
    with pytest.raises(ValueError, match="^count: expected a whole number >= 2 and <= 2\\*\\*53"):
        fastbn.update_running_stats(rm, None, count, np.ones(3), np.ones(3))
    assert (rm == SENTINEL).all()


def test_shard_counts_beyond_float64_integers_are_named():
    # Chan's merge of such counts loses the counts' own digits (and gave m2 = NaN at 1e300)
    with pytest.raises(ValueError, match="^counts: expected whole numbers >= 0 and <= 2\\*\\*53"):
        fastbn.merge_stats(np.full((2, 1), 1e300), np.ones((2, 1)), np.ones((2, 1)))
    count, mean, m2 = fastbn.merge_stats(np.full((2, 1), 2.0**52), np.array([[1.0], [3.0]]),
                                         np.ones((2, 1)))
    assert count[0] == 2.0**53 and mean[0] == 2.0
    assert m2[0] == pytest.approx(2.0 + 2.0**53, rel=1e-15)   # 2 + 2**53: two roundings apart


def test_a_layer_size_beyond_any_array_is_named():
    with pytest.raises(ValueError, match="^num_features: expected an integer <="):
        fastbn.BatchNorm(2**70)
    with pytest.raises(ValueError, match="^normalized_shape: expected an integer <="):
        fastbn.LayerNorm((4, 2**70))


def test_running_buffers_of_two_dtypes_name_the_first():
    with pytest.raises(TypeError, match=r"^running_var: expected dtype float64 \(the dtype of "
                                        r"running_mean\), got float32"):
        fastbn.update_running_stats(np.zeros(3), np.ones(3, np.float32), 4, np.ones(3),
                                    np.ones(3))
