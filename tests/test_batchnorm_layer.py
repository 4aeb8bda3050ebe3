"""fastbn.BatchNorm: a batch-norm layer for NumPy networks with PyTorch's BatchNorm*d semantics.

Specification:
- Attributes: ``gamma`` ones and ``beta`` zeros (None without ``affine``), ``running_mean`` zeros
  and ``running_var`` ones (None without ``track_running_stats``), all of ``dtype`` and length C;
  ``num_batches_tracked`` 0 (None without running statistics); ``training`` True.
- ``train(mode=True)`` and ``eval()`` set ``training`` and return the layer.
- ``forward(x, training=None)`` (also ``__call__``), None meaning the layer's mode: in training
  it is batch_norm_train with the layer's parameters, incrementing ``num_batches_tracked`` and
  updating the running statistics with weight ``momentum`` (``1 / num_batches_tracked`` when
  momentum is None); in evaluation it is batch_norm_infer with the running statistics, which it
  leaves alone, or the batch statistics when the layer does not track them.
- ``backward(dy)`` returns dx for the last forward and stores ``dgamma`` and ``dbeta``.
- ``reset_running_stats()`` and ``reset_parameters()`` restore the initial values in place.
- Bad arguments are a TypeError/ValueError naming ``x``, ``dy`` or the constructor argument at
  fault, raised before anything changes.
- Pickling and deepcopy keep the state but not the input saved for backward.
- In float64 it agrees with torch.nn.BatchNorm1d/2d: outputs, running statistics and the counter
  after several steps, and gradients, in training and evaluation mode, for momentum 0.1 and None.
"""
import copy
import pickle
import re

import numpy as np
import pytest

import fastbn
import fastbn.layers
from bn_helpers import make_inputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initial_attributes(dtype):
    bn = fastbn.BatchNorm(4, dtype=dtype)
    assert bn.num_features == 4
    for name, value in [("gamma", 1), ("beta", 0), ("running_mean", 0), ("running_var", 1)]:
        a = getattr(bn, name)
        assert a.dtype == np.dtype(dtype) and a.shape == (4,) and np.all(a == value), name
    assert bn.dgamma is None and bn.dbeta is None
    assert bn.training is True and bn.num_batches_tracked == 0
    assert bn.affine is True and bn.track_running_stats is True and bn.momentum == 0.1
    assert "BatchNorm(4" in repr(bn)


def test_affine_false_and_no_running_stats_have_none_attributes():
    bn = fastbn.BatchNorm(3, affine=False, track_running_stats=False)
    assert bn.gamma is bn.beta is bn.running_mean is bn.running_var is None
    assert bn.num_batches_tracked is None
    assert bn.parameters() == []


def test_training_forward_is_batch_norm_train_and_updates_running_stats(rng):
    x, _, _ = make_inputs(rng, (8, 3, 5, 5), 1, np.float64)
    bn = fastbn.BatchNorm(3, momentum=0.2, eps=1e-4, dtype=np.float64)
    bn.gamma[:] = [1.0, 2.0, 3.0]
    bn.beta[:] = [0.0, -1.0, 1.0]
    rm, rv = np.zeros(3), np.ones(3)
    want = fastbn.batch_norm_train(x, bn.gamma, bn.beta, eps=1e-4, running_mean=rm,
                                   running_var=rv, momentum=0.2)
    y = bn(x)
    assert np.array_equal(y, want.y)
    assert np.array_equal(bn.running_mean, rm) and np.array_equal(bn.running_var, rv)
    assert not np.array_equal(rm, np.zeros(3))


def test_eval_forward_uses_the_running_stats_and_leaves_them(rng):
    x, _, _ = make_inputs(rng, (8, 3), 1, np.float32)
    bn = fastbn.BatchNorm(3)
    bn.running_mean[:] = [1.0, 2.0, 3.0]
    bn.running_var[:] = [4.0, 0.5, 2.0]
    y = bn.forward(x, training=False)
    assert np.array_equal(y, fastbn.batch_norm_infer(x, bn.running_mean, bn.running_var,
                                                     bn.gamma, bn.beta))
    assert np.array_equal(bn.running_mean, [1.0, 2.0, 3.0])


def test_without_running_stats_eval_normalizes_with_the_batch(rng):
    x, _, _ = make_inputs(rng, (8, 3), 1, np.float32)
    bn = fastbn.BatchNorm(3, track_running_stats=False)
    assert np.array_equal(bn(x, training=False), fastbn.batch_norm_train(x, bn.gamma, bn.beta).y)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
def test_backward_returns_dx_and_stores_parameter_gradients(rng, training, affine):
    x, _, _ = make_inputs(rng, (6, 3, 4), 1, np.float64)
    dy = rng.standard_normal(x.shape)
    bn = fastbn.BatchNorm(3, affine=affine, dtype=np.float64)
    if affine:
        bn.gamma[:] = [0.5, 1.5, 2.0]
    bn.running_var[:] = [2.0, 3.0, 0.5]
    bn.forward(x, training=training)
    dx = bn.backward(dy)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    if training:
        _, mean, invstd = fastbn.batch_norm_train(x, bn.gamma)
        want = fastbn.batch_norm_backward(dy, x, mean, invstd, bn.gamma)
    else:   # y = (x - rm) * invstd * gamma + beta is affine in x
        invstd = 1 / np.sqrt(bn.running_var + bn.eps)
        g = bn.gamma if affine else np.ones(3)
        xhat = (x - bn.running_mean[:, None]) * invstd[:, None]
        want = (dy * (g * invstd)[:, None], (dy * xhat).sum(axis=(0, 2)), dy.sum(axis=(0, 2)))
    np.testing.assert_allclose(dx, want[0], rtol=1e-12, atol=1e-12)
    if affine:
        np.testing.assert_allclose(bn.dgamma, want[1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bn.dbeta, want[2], rtol=1e-12, atol=1e-12)
        assert [p[0] is q for p, q in zip(bn.parameters(), (bn.gamma, bn.beta))] == [True, True]
    else:
        assert bn.dgamma is None and bn.dbeta is None


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="forward"):
        fastbn.BatchNorm(2).backward(np.ones((2, 2), np.float32))


def test_channels_last_layer(rng):
    x, _, _ = make_inputs(rng, (4, 5, 5, 3), -1, np.float32)
    bn = fastbn.BatchNorm(3, axis=-1)
    assert np.array_equal(bn(x), fastbn.batch_norm_train(x, axis=-1).y)
    assert bn.backward(np.ones_like(x)).shape == x.shape


@pytest.mark.parametrize("kwargs, name, exc", [
    (dict(num_features=0), "num_features", ValueError),
    (dict(num_features=2.5), "num_features", TypeError),
    (dict(num_features=True), "num_features", TypeError),
    (dict(num_features=3, eps=-1.0), "eps", ValueError),
    (dict(num_features=3, eps=0.0), "eps", ValueError),
    (dict(num_features=3, eps=float("nan")), "eps", ValueError),
    (dict(num_features=3, momentum="0.1"), "momentum", TypeError),
    (dict(num_features=3, momentum=-0.1), "momentum", ValueError),
    (dict(num_features=3, affine=1), "affine", TypeError),
    (dict(num_features=3, track_running_stats=None), "track_running_stats", TypeError),
    (dict(num_features=3, dtype="no such dtype"), "dtype", TypeError),
    (dict(num_features=3, momentum=1.5), "momentum", ValueError),
    (dict(num_features=3, dtype=np.int32), "dtype", TypeError),
    (dict(num_features=3, axis=1.0), "axis", TypeError),
])
def test_bad_constructor_arguments_are_named(kwargs, name, exc):
    n = kwargs.pop("num_features")
    with pytest.raises(exc, match="^" + name + ":"):
        fastbn.BatchNorm(n, **kwargs)


# ---- modes: train() / eval() ----------------------------------------------------------------

def test_train_and_eval_set_the_mode_and_return_the_layer():
    bn = fastbn.BatchNorm(3)
    assert bn.training is True
    assert bn.eval() is bn and bn.training is False
    assert bn.train() is bn and bn.training is True
    assert bn.train(False) is bn and bn.training is False
    assert bn.train(np.True_) is bn and bn.training is True


@pytest.mark.parametrize("call, name", [(lambda bn, x: bn.train(1), "mode"),
                                        (lambda bn, x: bn.train("eval"), "mode"),
                                        (lambda bn, x: bn(x, training=0), "training"),
                                        (lambda bn, x: bn.forward(x, 1.0), "training")])
def test_a_mode_that_is_not_a_bool_is_a_type_error(call, name):
    bn = fastbn.BatchNorm(3)
    with pytest.raises(TypeError, match="^" + name + ": expected a bool"):
        call(bn, np.ones((4, 3), np.float32))
    assert bn.training is True and bn.num_batches_tracked == 0 and np.all(bn.running_mean == 0)


def test_calling_a_layer_in_eval_mode_uses_the_running_stats_and_changes_nothing(rng):
    bn = fastbn.BatchNorm(3)
    bn(make_inputs(rng, (8, 3), 1, np.float32)[0])                  # training: one update
    rm, rv, count = bn.running_mean.copy(), bn.running_var.copy(), bn.num_batches_tracked
    bn.eval()
    for _ in range(3):
        x = make_inputs(rng, (8, 3), 1, np.float32)[0]
        want = fastbn.batch_norm_infer(x, rm, rv, bn.gamma, bn.beta)
        assert np.array_equal(bn(x), want)
        assert np.array_equal(bn.forward(x), want)
    assert np.array_equal(bn.running_mean, rm) and np.array_equal(bn.running_var, rv)
    assert bn.num_batches_tracked == count == 1


def test_the_training_argument_overrides_the_mode_for_one_call(rng):
    x = make_inputs(rng, (8, 3), 1, np.float64)[0]
    bn = fastbn.BatchNorm(3, dtype=np.float64).eval()
    assert np.array_equal(bn(x, training=True), fastbn.batch_norm_train(x).y)
    assert bn.num_batches_tracked == 1 and not np.all(bn.running_mean == 0)
    assert bn.training is False
    bn.train()
    rm = bn.running_mean.copy()
    bn(x, training=False)
    assert np.array_equal(bn.running_mean, rm) and bn.num_batches_tracked == 1


# ---- momentum=None and num_batches_tracked --------------------------------------------------

def test_momentum_none_is_the_cumulative_average_of_the_batches(rng):
    bn = fastbn.BatchNorm(3, momentum=None, dtype=np.float64)
    means, variances = [], []
    for k in range(1, 6):
        x = make_inputs(rng, (10, 3, 4), 1, np.float64)[0]
        bn(x)
        means.append(x.mean(axis=(0, 2)))
        variances.append(x.var(axis=(0, 2), ddof=1))
        assert bn.num_batches_tracked == k
        # the first batch has weight 1: the initial zeros/ones are forgotten
        np.testing.assert_allclose(bn.running_mean, np.mean(means, axis=0), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(bn.running_var, np.mean(variances, axis=0), rtol=1e-13)


def test_num_batches_tracked_counts_training_forwards_whatever_the_momentum(rng):
    x = make_inputs(rng, (8, 3), 1, np.float32)[0]
    bn = fastbn.BatchNorm(3, momentum=0.3)
    for _ in range(3):
        bn(x)
    bn.eval()(x)
    bn(x, training=True)
    assert bn.num_batches_tracked == 4
    assert type(bn.num_batches_tracked) is int
    # a float momentum is used as it is, not 1/count: four updates with the same batch
    rm = np.zeros(3)
    for _ in range(4):
        rm = 0.7 * rm + 0.3 * x.mean(axis=0, dtype=np.float64)
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-6)


def test_momentum_none_continues_from_the_count_after_a_reset(rng):
    x1, x2 = (make_inputs(rng, (8, 3), 1, np.float64)[0] for _ in range(2))
    bn = fastbn.BatchNorm(3, momentum=None, dtype=np.float64)
    bn(x1)
    bn.reset_running_stats()
    bn(x2)                      # count 1 again: weight 1, x1 is forgotten
    np.testing.assert_allclose(bn.running_mean, x2.mean(axis=0), rtol=1e-14, atol=1e-15)


def test_a_failed_forward_changes_nothing(rng):
    bn = fastbn.BatchNorm(3, momentum=None)
    x = make_inputs(rng, (8, 3), 1, np.float32)[0]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    bn(x)
    dx = bn.backward(dy)
    state = (bn.running_mean.copy(), bn.running_var.copy(), bn.num_batches_tracked)
    with pytest.raises(ValueError, match="^x: expected more than 1 value per channel"):
        bn(np.ones((1, 3), np.float32))
    with pytest.raises(TypeError, match="^x:"):
        bn(np.ones((4, 3), np.float64))
    assert np.array_equal(bn.running_mean, state[0]) and np.array_equal(bn.running_var, state[1])
    assert bn.num_batches_tracked == state[2] == 1
    assert np.array_equal(bn.backward(dy), dx)          # the saved input is still the first x


# ---- track_running_stats=False, resets ------------------------------------------------------

@pytest.mark.parametrize("momentum", [0.1, None])
def test_without_running_stats_both_modes_normalize_with_the_batch(rng, momentum):
    bn = fastbn.BatchNorm(3, track_running_stats=False, momentum=momentum, dtype=np.float64)
    bn.gamma[:] = [1.0, 2.0, 0.5]
    x = make_inputs(rng, (8, 3, 2), 1, np.float64)[0]
    dy = rng.standard_normal(x.shape)
    want = fastbn.batch_norm_train(x, bn.gamma, bn.beta)
    grads = fastbn.batch_norm_backward(dy, x, want.mean, want.invstd, bn.gamma)
    for mode in (True, False):
        bn.train(mode)
        assert np.array_equal(bn(x), want.y)
        assert np.array_equal(bn.backward(dy), grads.dx)   # through the batch statistics
        assert np.array_equal(bn.dgamma, grads.dgamma)
        assert bn.running_mean is None and bn.running_var is None
        assert bn.num_batches_tracked is None


def test_reset_running_stats_restores_zeros_ones_and_the_counter_in_place(rng):
    bn = fastbn.BatchNorm(3)
    rm, rv = bn.running_mean, bn.running_var
    bn(make_inputs(rng, (8, 3), 1, np.float32)[0])
    bn.gamma[:] = 2.0
    assert bn.reset_running_stats() is None
    assert bn.running_mean is rm and bn.running_var is rv
    assert np.all(rm == 0) and np.all(rv == 1) and bn.num_batches_tracked == 0
    assert np.all(bn.gamma == 2.0)                                   # parameters untouched
    untracked = fastbn.BatchNorm(3, track_running_stats=False)
    untracked.reset_running_stats()
    assert untracked.running_mean is None and untracked.num_batches_tracked is None


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
def test_reset_parameters_restores_gamma_beta_and_the_running_stats_in_place(rng, affine):
    bn = fastbn.BatchNorm(3, affine=affine)
    params = bn.parameters()
    bn(make_inputs(rng, (8, 3), 1, np.float32)[0])
    for p, _ in params:
        p += 0.5
    bn.reset_parameters()
    assert [p is q for (p, _), (q, _) in zip(params, bn.parameters())] == [True] * len(params)
    if affine:
        assert np.all(bn.gamma == 1) and np.all(bn.beta == 0)
    assert np.all(bn.running_mean == 0) and np.all(bn.running_var == 1)
    assert bn.num_batches_tracked == 0


# ---- errors name x and dy -------------------------------------------------------------------

CONFIGS = [dict(), dict(affine=False), dict(track_running_stats=False),
           dict(affine=False, track_running_stats=False)]
CONFIG_IDS = ["default", "no-affine", "no-running", "bare"]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kwargs", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("layer_dtype, x_dtype", [
    (np.float32, np.float64), (np.float64, np.float32), (np.float32, np.int64),
    (np.float64, np.float16)])
def test_x_of_another_dtype_is_named(kwargs, training, layer_dtype, x_dtype):
    bn = fastbn.BatchNorm(3, dtype=layer_dtype, **kwargs).train(training)
    want = (f"^x: expected dtype {np.dtype(layer_dtype)} \\(the layer's dtype\\), "
            f"got {np.dtype(x_dtype)}$")
    with pytest.raises(TypeError, match=want):
        bn(np.ones((4, 3), x_dtype))
    assert bn.num_batches_tracked in (0, None) and bn._cache is None


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kwargs", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("axis, shape", [(1, (8, 3, 5)), (-1, (8, 5, 3)), (0, (3, 8))])
def test_the_wrong_number_of_channels_is_named_with_the_channel_axis(kwargs, training, axis, shape):
    bn = fastbn.BatchNorm(4, axis=axis, **kwargs).train(training)
    want = (f"^x: expected 4 channels along axis {axis}, got 3 "
            f"\\(shape {re.escape(str(shape))}\\)$")
    with pytest.raises(ValueError, match=want):
        bn(np.ones(shape, np.float32))
    if bn.track_running_stats:
        assert np.all(bn.running_mean == 0) and np.all(bn.running_var == 1)
        assert bn.num_batches_tracked == 0


@pytest.mark.parametrize("axis, shape, match", [
    (1, (4,), "at least 2 dimensions"),
    (1, (), "at least 2 dimensions"),
    (2, (4, 3), "at least 3 dimensions for the layer's axis 2"),
    (-3, (4, 3), "at least 3 dimensions for the layer's axis -3")])
def test_x_with_too_few_dimensions_is_named(axis, shape, match):
    with pytest.raises(ValueError, match="^x: expected .*" + match):
        fastbn.BatchNorm(3, axis=axis)(np.ones(shape, np.float32))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dy_shape, dy_dtype, exc, match", [
    ((1, 3), np.float32, ValueError,
     r"^dy: expected the shape of the last input x \(8, 3\), got \(1, 3\)$"),
    ((8, 1), np.float32, ValueError, r"^dy: expected the shape"),
    ((3, 8), np.float32, ValueError, r"^dy: expected the shape"),
    ((8, 3), np.float64, TypeError,
     r"^dy: expected dtype float32 \(the layer's dtype\), got float64$"),
    ((8, 3), np.int32, TypeError, r"^dy: expected dtype float32"),
])
def test_dy_of_the_wrong_shape_or_dtype_is_named(rng, training, dy_shape, dy_dtype, exc, match):
    bn = fastbn.BatchNorm(3).train(training)
    x = make_inputs(rng, (8, 3), 1, np.float32)[0]
    bn(x)
    bn.backward(np.ones_like(x))
    grads = bn.dgamma.copy(), bn.dbeta.copy()
    with pytest.raises(exc, match=match):
        bn.backward(np.full(dy_shape, 2, dy_dtype))    # broadcastable shapes too
    assert np.array_equal(bn.dgamma, grads[0]) and np.array_equal(bn.dbeta, grads[1])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_and_byte_swapped_inputs_give_the_results_of_native_contiguous_ones(rng, training,
                                                                                     dtype):
    big = make_inputs(rng, (6, 8, 5), 1, dtype)[0]
    dy_big = rng.standard_normal(big.shape).astype(dtype)
    x, dy = big[:, ::2], dy_big[:, ::2]                        # strided views, 4 channels
    swapped = np.dtype(dtype).newbyteorder("S")
    variants = [(x, dy), (x.astype(swapped), dy.astype(swapped)),
                (np.ascontiguousarray(x).astype(swapped), dy.astype(swapped))]

    def run(xv, dyv):
        bn = fastbn.BatchNorm(4, dtype=dtype).train(training)
        bn.gamma[:] = [0.5, 1.0, 2.0, 3.0]
        bn.running_mean[:] = [1.0, -1.0, 0.5, 0.0]
        bn.running_var[:] = [2.0, 0.5, 1.0, 4.0]
        y = bn(xv)
        return y, bn.backward(dyv), bn.dgamma, bn.dbeta, bn.running_mean

    want = run(np.ascontiguousarray(x), np.ascontiguousarray(dy))
    for xv, dyv in variants:
        got = run(xv, dyv)
        for g, w in zip(got, want):
            assert g.dtype == np.dtype(dtype) and g.dtype.isnative and g.shape == w.shape
            np.testing.assert_array_equal(g, w)


def test_eval_backward_in_float32_matches_the_float64_formula(rng):
    x, gamma, beta = make_inputs(rng, (32, 3, 4), 1, np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    bn = fastbn.BatchNorm(3).eval()
    bn.gamma[:], bn.beta[:] = gamma, beta
    bn.running_mean[:] = [0.5, -2.0, 3.0]
    bn.running_var[:] = [0.25, 4.0, 1.5]
    bn(x)
    dx = bn.backward(dy)
    invstd = 1 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    want = dy * (gamma * invstd)[:, None]
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, want, rtol=2**-23)   # one rounding of the float64 value


# ---- pickling, copies, repr -----------------------------------------------------------------

@pytest.mark.parametrize("copier", ["pickle", "deepcopy"])
def test_a_copy_keeps_the_state_but_not_the_saved_input(rng, copier):
    bn = fastbn.BatchNorm(4, momentum=None, eps=1e-3, axis=-1)
    for _ in range(3):
        bn(make_inputs(rng, (256, 4), -1, np.float32)[0])
    x = make_inputs(rng, (1024, 4), -1, np.float32)[0]
    bn.backward(np.ones_like(bn(x)))
    bn.gamma[:] = [1.0, 2.0, 3.0, 4.0]
    bn.eval()
    blob = pickle.dumps(bn)
    assert len(blob) < 2000 < x.nbytes                 # the 16 KB input is not in the pickle
    twin = pickle.loads(blob) if copier == "pickle" else copy.deepcopy(bn)
    assert twin.training is False and twin.num_batches_tracked == bn.num_batches_tracked == 4
    assert (twin.momentum, twin.eps, twin.axis, twin.dtype) == (None, 1e-3, -1, np.float32)
    assert repr(twin) == repr(bn)
    for name in ("gamma", "beta", "running_mean", "running_var", "dgamma", "dbeta"):
        a, b = getattr(bn, name), getattr(twin, name)
        assert a is not b and np.array_equal(a, b), name
    with pytest.raises(RuntimeError, match="call forward first"):
        twin.backward(np.ones_like(x))
    bn.backward(np.ones_like(x))                       # the original keeps its saved input
    x2 = make_inputs(rng, (64, 4), -1, np.float32)[0]
    for mode in (False, True, False):                  # eval, train (updates both), eval
        bn.train(mode), twin.train(mode)
        assert np.array_equal(bn(x2), twin(x2))
        assert np.array_equal(bn.running_mean, twin.running_mean)
    assert twin.num_batches_tracked == 5


def test_unpickling_a_layer_pickled_before_the_modes_existed_fills_in_the_new_attributes():
    bn = fastbn.BatchNorm(2, affine=False)
    state = {k: val for k, val in vars(bn).items()
             if k not in ("training", "affine", "track_running_stats", "num_batches_tracked")}
    old = fastbn.BatchNorm.__new__(fastbn.BatchNorm)
    old.__setstate__(state)
    assert old.training is True and old.affine is False and old.track_running_stats is True
    assert old.num_batches_tracked == 0
    assert np.array_equal(old(np.eye(2, dtype=np.float32)), bn(np.eye(2, dtype=np.float32)))


@pytest.mark.parametrize("kwargs", [dict(), dict(momentum=None), dict(affine=False, eps=1e-3),
                                    dict(track_running_stats=False, axis=-1, dtype=np.float64)])
def test_repr_shows_the_constructor_arguments_and_evaluates_back(kwargs):
    bn = fastbn.BatchNorm(5, **kwargs)
    text = repr(bn)
    assert text.startswith("BatchNorm(5, ") and f"momentum={bn.momentum}," in text
    assert repr(bn.eval()) == text                     # like PyTorch, the mode is not shown
    again = eval(text, {"BatchNorm": fastbn.BatchNorm})
    assert vars(again).keys() == vars(bn).keys()
    for key in ("num_features", "axis", "eps", "momentum", "affine", "track_running_stats",
                "dtype"):
        assert getattr(again, key) == getattr(bn, key), key


def test_the_module_exports_only_the_layers():
    assert fastbn.layers.__all__ == ["BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm"]


# ---- against PyTorch ------------------------------------------------------------------------

@pytest.mark.parametrize("shape, torch_cls", [((16, 4), "BatchNorm1d"), ((8, 4, 10), "BatchNorm1d"),
                                              ((6, 4, 5, 7), "BatchNorm2d")])
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum0.1", "cumulative"])
@pytest.mark.parametrize("affine, track", [(True, True), (False, True), (True, False)],
                         ids=["affine", "no-affine", "no-running"])
def test_matches_torch_batchnorm_in_float64(rng, shape, torch_cls, momentum, affine, track):
    torch = pytest.importorskip("torch")
    C = shape[1]
    tbn = getattr(torch.nn, torch_cls)(C, eps=1e-5, momentum=momentum, affine=affine,
                                       track_running_stats=track, dtype=torch.float64)
    bn = fastbn.BatchNorm(C, eps=1e-5, momentum=momentum, affine=affine,
                          track_running_stats=track, dtype=np.float64)
    ours = repr(bn)[len("BatchNorm("):-1].split(", ")
    theirs = repr(tbn)[len(torch_cls) + 1:-1].split(", ")
    assert [f for f in theirs if not f.startswith("bias=")] == [f for f in ours if f in theirs]
    if affine:
        g, b = rng.uniform(0.5, 2, C), rng.uniform(-1, 1, C)
        with torch.no_grad():
            tbn.weight.copy_(torch.from_numpy(g))
            tbn.bias.copy_(torch.from_numpy(b))
        bn.gamma[:], bn.beta[:] = g, b

    def step(training):
        x, _, _ = make_inputs(rng, shape, 1, np.float64)
        dy = rng.standard_normal(shape)
        tbn.train(training)
        bn.train(training)
        assert bn.training == tbn.training
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        if affine:
            tbn.weight.grad = tbn.bias.grad = None
        ty = tbn(tx)
        ty.backward(torch.from_numpy(dy))
        y = bn(x)                                   # the layer's mode
        dx = bn.backward(dy)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        if affine:
            np.testing.assert_allclose(bn.dgamma, tbn.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(bn.dbeta, tbn.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        if track:
            np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-13,
                                       atol=1e-15)
            np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-13)
            assert bn.num_batches_tracked == int(tbn.num_batches_tracked)
        else:
            assert bn.running_mean is tbn.running_mean is None
            assert bn.num_batches_tracked is tbn.num_batches_tracked is None

    for training in [True, True, True, True, False, True, False, False, True]:
        step(training)
    if track:
        tbn.reset_running_stats()
        bn.reset_running_stats()
        for training in [True, False, True]:
            step(training)
