"""fastbn.BatchNorm: a batch-norm layer for NumPy networks with PyTorch's BatchNorm*d semantics.

Specification:
- Attributes: ``gamma`` ones and ``beta`` zeros (None without ``affine``), ``running_mean`` zeros
  and ``running_var`` ones (None without ``track_running_stats``), all of ``dtype`` and length C.
- ``forward(x, training=True)`` (also ``__call__``) is batch_norm_train with the layer's
  parameters, updating the running statistics; ``training=False`` is batch_norm_infer with the
  running statistics, or the batch statistics when the layer does not track them.
- ``backward(dy)`` returns dx for the last forward and stores ``dgamma`` and ``dbeta``.
- In float64 it agrees with torch.nn.BatchNorm1d/2d: outputs, running statistics after several
  steps, and gradients, in training and evaluation mode.
"""
import numpy as np
import pytest

import fastbn
from bn_helpers import make_inputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initial_attributes(dtype):
    bn = fastbn.BatchNorm(4, dtype=dtype)
    assert bn.num_features == 4
    for name, value in [("gamma", 1), ("beta", 0), ("running_mean", 0), ("running_var", 1)]:
        a = getattr(bn, name)
        assert a.dtype == np.dtype(dtype) and a.shape == (4,) and np.all(a == value), name
    assert bn.dgamma is None and bn.dbeta is None
    assert "BatchNorm(4" in repr(bn)


def test_affine_false_and_no_running_stats_have_none_attributes():
    bn = fastbn.BatchNorm(3, affine=False, track_running_stats=False)
    assert bn.gamma is bn.beta is bn.running_mean is bn.running_var is None
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
    (dict(num_features=3, momentum=1.5), "momentum", ValueError),
    (dict(num_features=3, dtype=np.int32), "dtype", TypeError),
    (dict(num_features=3, axis=1.0), "axis", TypeError),
])
def test_bad_constructor_arguments_are_named(kwargs, name, exc):
    n = kwargs.pop("num_features")
    with pytest.raises(exc, match="^" + name + ":"):
        fastbn.BatchNorm(n, **kwargs)


def test_wrong_number_of_channels_in_forward_is_named(rng):
    bn = fastbn.BatchNorm(4)
    with pytest.raises(ValueError, match="^gamma:"):
        bn(np.ones((3, 3), np.float32))
    assert np.all(bn.running_mean == 0) and np.all(bn.running_var == 1)


# ---- against PyTorch ------------------------------------------------------------------------

@pytest.mark.parametrize("shape, torch_cls", [((16, 4), "BatchNorm1d"), ((8, 4, 10), "BatchNorm1d"),
                                              ((6, 4, 5, 7), "BatchNorm2d")])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
def test_matches_torch_batchnorm_in_float64(rng, shape, torch_cls, affine):
    torch = pytest.importorskip("torch")
    C = shape[1]
    tbn = getattr(torch.nn, torch_cls)(C, eps=1e-5, momentum=0.1, affine=affine, dtype=torch.float64)
    bn = fastbn.BatchNorm(C, eps=1e-5, momentum=0.1, affine=affine, dtype=np.float64)
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
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        if affine:
            tbn.weight.grad = tbn.bias.grad = None
        ty = tbn(tx)
        ty.backward(torch.from_numpy(dy))
        y = bn.forward(x, training=training)
        dx = bn.backward(dy)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        if affine:
            np.testing.assert_allclose(bn.dgamma, tbn.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(bn.dbeta, tbn.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-13)

    for _ in range(4):
        step(True)
    step(False)
    step(True)
    step(False)
