"""InstanceNorm's running statistics (``track_running_stats=True``), PyTorch's semantics.

Specification:
- a training forward normalizes each (sample, channel) with its own statistics and updates
  ``r = (1 - momentum) r + momentum batch`` per channel, where ``batch`` is the average over the
  samples of the channel's mean (``running_mean``) and unbiased variance (``running_var``),
  computed in float64; ``num_batches_tracked`` counts these forwards and ``momentum=None`` is
  the cumulative average, as :class:`BatchNorm`'s;
- in evaluation mode the layer is ``batch_norm_infer`` with the running statistics (bitwise),
  leaves them unchanged, and its backward is that of an affine map (``dx = dy gamma invstd``);
- the buffers are the same for any thread count; a PyTorch ``InstanceNorm2d`` trained on the
  same batches holds the same buffers and gives the same evaluation output and gradients;
- a training forward that cannot update them (one value per instance, no samples) is a
  ValueError naming ``x`` and changes nothing; channels with non-finite statistics are left
  unchanged with a RuntimeWarning, as batch norm's;
- without ``track_running_stats`` (the default) the layer has no buffers and computes the same
  in both modes.
"""
import pickle
import warnings

import numpy as np
import pytest

import fastbn

RNG = np.random.default_rng(7)
X = RNG.normal(1.5, 2.0, (4, 3, 5, 6))


def _batch(x, axis=1):
    """Per channel: the samples' means and unbiased variances averaged, in float64."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 1).reshape(x.shape[0], x.shape[axis], -1)
    return x.mean(axis=2).mean(axis=0), x.var(axis=2, ddof=1).mean(axis=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_forwards_update_the_buffers_as_the_formula(dtype):
    layer = fastbn.InstanceNorm(3, momentum=0.25, track_running_stats=True, dtype=dtype)
    rm, rv = np.zeros(3), np.ones(3)
    for k in range(3):
        x = (X * (k + 1) + k).astype(dtype)
        y = layer(x)
        mean, var = _batch(x)
        rm, rv = 0.75 * rm + 0.25 * mean, 0.75 * rv + 0.25 * var
        assert y.tobytes() == fastbn.instance_norm(x)[0].tobytes()   # per-instance statistics
        np.testing.assert_allclose(layer.running_mean, rm, rtol=2e-7 if dtype == np.float32
                                   else 1e-14)
        np.testing.assert_allclose(layer.running_var, rv, rtol=2e-7 if dtype == np.float32
                                   else 1e-14)
    assert layer.num_batches_tracked == 3
    assert layer.running_mean.dtype == layer.running_var.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("axis", [1, -1])
def test_tracking_changes_no_output_bit(dtype, axis):
    x = np.moveaxis(X, 1, axis).astype(dtype)
    x[0, 0, 0, 0], x[1, 1, 1, 1], x[2, 2, 2, 2] = np.nan, np.inf, 3e4   # odd instances too
    got = []
    for tracked in (False, True):
        layer = fastbn.InstanceNorm(3, axis=axis, affine=True, track_running_stats=tracked,
                                    dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            y = layer(x)
        dx = layer.backward(np.ones_like(x))     # through the saved mean and invstd
        got.append(y.tobytes() + dx.tobytes() + layer.dgamma.tobytes() + layer.dbeta.tobytes())
    assert got[0] == got[1]


def test_a_variance_far_below_eps_is_kept_to_float64_rounding():
    # the kernel's variance itself, not 1 / invstd^2 - eps (which loses it beside eps = 1e-5)
    layer = fastbn.InstanceNorm(3, momentum=1.0, track_running_stats=True, dtype=np.float64)
    x = 1.0 + 1e-7 * X
    layer(x)
    mean, var = _batch(x)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-13)
    assert np.all(layer.running_var < 1e-12)


def test_channels_last_and_momentum_none_the_cumulative_average():
    layer = fastbn.InstanceNorm(3, axis=-1, momentum=None, track_running_stats=True,
                                dtype=np.float64)
    xs = [np.moveaxis(X * s + s, 1, -1) for s in (1.0, 2.0, 5.0)]
    for x in xs:
        layer(x)
    stats = [_batch(x, axis=-1) for x in xs]
    np.testing.assert_allclose(layer.running_mean, np.mean([m for m, _ in stats], axis=0),
                               rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, np.mean([v for _, v in stats], axis=0),
                               rtol=1e-14)


def test_evaluation_is_batch_norm_inference_and_changes_nothing():
    layer = fastbn.InstanceNorm(3, affine=True, track_running_stats=True, relu=True)
    x = X.astype(np.float32)
    layer(x)
    layer.gamma[:] = [0.5, -1.0, 2.0]
    layer.beta[:] = [0.1, 0.2, -0.3]
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    r = RNG.normal(size=x.shape).astype(np.float32)
    y = layer.eval()(x, residual=r)
    want = fastbn.batch_norm_infer(x, rm, rv, layer.gamma, layer.beta, relu=True, residual=r)
    assert y.tobytes() == want.tobytes()
    assert layer.running_mean.tobytes() == rm.tobytes()
    assert layer.running_var.tobytes() == rv.tobytes() and layer.num_batches_tracked == 1
    dy = RNG.normal(size=x.shape).astype(np.float32)
    dx = layer.backward(dy)
    g = np.where(y > 0, dy.astype(np.float64), 0.0)        # through the ReLU
    invstd = 1 / np.sqrt(rv.astype(np.float64) + layer.eps)
    scale = (layer.gamma * invstd)[:, None, None]
    xhat = (x - rm[:, None, None].astype(np.float64)) * invstd[:, None, None]
    np.testing.assert_allclose(dx, g * scale, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layer.dgamma, (g * xhat).sum(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(layer.dbeta, g.sum(axis=(0, 2, 3)), rtol=1e-5)
    assert np.array_equal(layer.dresidual, g.astype(np.float32))


def test_the_buffers_do_not_depend_on_the_thread_count():
    x = RNG.normal(3.0, 1.0, (3, 8, 64, 64)).astype(np.float32)
    got, saved = [], fastbn.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fastbn.set_num_threads(threads)
            layer = fastbn.InstanceNorm(8, track_running_stats=True)
            layer(x)
            got.append(layer.running_mean.tobytes() + layer.running_var.tobytes())
    finally:
        fastbn.set_num_threads(saved)
    assert got[0] == got[1] == got[2]


def test_torch_trained_on_the_same_batches_agrees():
    torch = pytest.importorskip("torch")
    module = torch.nn.InstanceNorm2d(3, affine=True, momentum=0.3,
                                     track_running_stats=True).double()
    layer = fastbn.InstanceNorm(3, affine=True, momentum=0.3, track_running_stats=True,
                                dtype=np.float64)
    with torch.no_grad():
        module.weight.uniform_(0.5, 2.0)
        module.bias.uniform_(-1.0, 1.0)
    layer.gamma[:], layer.beta[:] = module.weight.detach().numpy(), module.bias.detach().numpy()
    for k in range(3):
        x = X * (k + 1) - k
        want = module(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(layer(x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, module.running_mean.numpy(), rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, module.running_var.numpy(), rtol=1e-14)
    module.eval(), layer.eval()
    xt = torch.from_numpy(X).requires_grad_()
    yt = module(xt)
    dy = RNG.normal(size=X.shape)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer(X), yt.detach().numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.dgamma, module.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.dbeta, module.bias.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (2, 3), (0, 3, 4)])
def test_a_forward_that_cannot_update_is_refused_and_changes_nothing(shape):
    layer = fastbn.InstanceNorm(3, track_running_stats=True)
    with pytest.raises(ValueError, match=r"^x: expected at least one sample and more than 1"):
        layer(np.ones(shape, np.float32))
    assert layer.running_mean.tolist() == [0.0] * 3 and layer.running_var.tolist() == [1.0] * 3
    assert layer.num_batches_tracked == 0
    with pytest.raises(RuntimeError, match="^backward: call forward first"):
        layer.backward(np.ones(shape, np.float32))
    assert layer.eval()(np.ones(shape, np.float32)).shape == shape   # evaluation can


def test_non_finite_statistics_leave_their_channel_with_a_warning():
    layer = fastbn.InstanceNorm(3, momentum=0.5, track_running_stats=True, dtype=np.float64)
    x = X.copy()
    x[1, 2, 0, 0] = np.inf
    with pytest.warns(RuntimeWarning, match="InstanceNorm: 1 of 3 channels have non-finite"):
        layer(x)
    mean, var = _batch(x[:, :2])
    np.testing.assert_allclose(layer.running_mean[:2], 0.5 * mean, rtol=1e-14)
    np.testing.assert_allclose(layer.running_var[:2], 0.5 + 0.5 * var, rtol=1e-14)
    assert layer.running_mean[2] == 0.0 and layer.running_var[2] == 1.0
    before = layer.running_mean.tobytes() + layer.running_var.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # the warning raised: nothing changes
        with pytest.raises(RuntimeWarning):
            layer(x)
    assert layer.running_mean.tobytes() + layer.running_var.tobytes() == before
    assert layer.num_batches_tracked == 1


def test_without_tracking_there_are_no_buffers_and_both_modes_agree():
    layer = fastbn.InstanceNorm(3)
    assert layer.running_mean is layer.running_var is layer.num_batches_tracked is None
    x = X.astype(np.float32)
    assert layer(x).tobytes() == layer.eval()(x).tobytes()
    assert sorted(layer.state_dict()) == []


def test_reset_pickle_and_repr_keep_the_buffers():
    layer = fastbn.InstanceNorm(3, momentum=0.2, track_running_stats=True)
    layer(X.astype(np.float32))
    back = pickle.loads(pickle.dumps(layer))
    assert back.running_mean.tobytes() == layer.running_mean.tobytes()
    assert back.num_batches_tracked == 1 and back.momentum == 0.2
    assert repr(layer) == ("InstanceNorm(3, axis=1, eps=1e-05, affine=False, momentum=0.2, "
                           "track_running_stats=True, dtype='float32')")
    again = eval("fastbn." + repr(layer))
    assert again.track_running_stats and again.momentum == 0.2
    layer.reset_parameters()
    assert layer.running_mean.tolist() == [0.0] * 3 and layer.num_batches_tracked == 0
    old = fastbn.InstanceNorm(3).__getstate__()       # a pickle from before the buffers
    for key in ("running_mean", "running_var", "num_batches_tracked", "momentum",
                "track_running_stats"):
        del old[key]
    restored = fastbn.InstanceNorm.__new__(fastbn.InstanceNorm)
    restored.__setstate__(old)
    assert restored.running_mean is None and not restored.track_running_stats


@pytest.mark.parametrize("kwargs, error, match", [
    ({"momentum": 1.5}, ValueError, "^momentum:"),
    ({"momentum": "0.1"}, TypeError, "^momentum:"),
    ({"track_running_stats": 1}, TypeError, "^track_running_stats:"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastbn.InstanceNorm(3, **kwargs)
