"""Accuracy on data far from zero: the bounds of docs/accuracy.rst.

Specification: for float32 data whose channel mean is up to 1e6 times its standard deviation,
every y of batch_norm_train is within 1e-4 (absolute, on normalized outputs) of a float64
computation on the same float32 values.  The textbook E[x^2] - E[x]^2 fails there by orders of
magnitude (a contrast test documenting why fastbn does not use it), and so does PyTorch's CPU
kernel (measured when torch is installed).
"""
import numpy as np
import pytest

import fastbn
from bn_helpers import channel_shape

TOL = 1e-4

# (shape, axis): both C code paths and channels-last.
OFFSET_LAYOUTS = [((64, 8, 32, 32), 1), ((4096, 8), 1), ((64, 16, 16, 8), -1), ((256, 4, 5), 1)]
OFFSET_IDS = ["NCHW-slab", "NC-rows", "NHWC", "NCL-rows"]


def offset_data(shape, axis, seed=7):
    """float32 data: std 1, channel means between 1e5 and 1e6 (the largest ratio is ~1e6)."""
    rng = np.random.default_rng(seed)
    C = shape[axis]
    loc = rng.uniform(1e5, 1e6, C)
    loc[0] = 1e6
    x = (loc.reshape(channel_shape(len(shape), axis % len(shape), C))
         + rng.standard_normal(shape)).astype(np.float32)
    return x


def exact_y(x, axis, eps=1e-5):
    """Two-pass float64 batch norm of the float32 values (the accuracy yardstick)."""
    axis = axis % x.ndim
    axes = tuple(i for i in range(x.ndim) if i != axis)
    xd = x.astype(np.float64)
    mean = xd.mean(axis=axes, keepdims=True)
    var = ((xd - mean) ** 2).mean(axis=axes, keepdims=True)
    return (xd - mean) / np.sqrt(var + eps), mean, var


@pytest.mark.parametrize("shape, axis", OFFSET_LAYOUTS, ids=OFFSET_IDS)
def test_offset_float32_data_loses_no_digits(shape, axis):
    x = offset_data(shape, axis)
    ey, emean, evar = exact_y(x, axis)
    assert np.sqrt(evar.min()) / np.abs(emean).max() < 1.1e-6   # the data is as hard as specified
    y, mean, invstd = fastbn.batch_norm_train(x, axis=axis)
    assert np.max(np.abs(y - ey)) <= TOL
    np.testing.assert_allclose(invstd, 1 / np.sqrt(evar.ravel() + 1e-5), rtol=1e-6)


@pytest.mark.parametrize("shape, axis", OFFSET_LAYOUTS, ids=OFFSET_IDS)
def test_textbook_formula_cancels_catastrophically_on_the_same_data(shape, axis):
    """Contrast: var = E[x^2] - E[x]^2 in float32 is off by orders of magnitude (why we don't)."""
    x = offset_data(shape, axis)
    ey, _, _ = exact_y(x, axis)
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    m = x.mean(axis=axes, keepdims=True, dtype=np.float32)
    var = (x * x).mean(axis=axes, keepdims=True, dtype=np.float32) - m * m
    with np.errstate(all="ignore"):
        naive = (x - m) / np.sqrt(np.maximum(var, 0) + np.float32(1e-5))
    err = np.abs(naive.astype(np.float64) - ey)
    err = np.where(np.isfinite(err), err, np.inf)
    assert np.max(err) > 1e3 * TOL


@pytest.mark.parametrize("shape, axis", OFFSET_LAYOUTS[:3], ids=OFFSET_IDS[:3])
def test_pytorch_cpu_is_measured_on_the_same_data(shape, axis):
    torch = pytest.importorskip("torch")
    x = offset_data(shape, axis)
    ey, _, _ = exact_y(x, axis)
    tx = torch.from_numpy(x)
    if axis == -1:
        tx = tx.permute(0, 3, 1, 2)   # torch's channels-last memory format
    ty = torch.nn.functional.batch_norm(tx, None, None, training=True, eps=1e-5)
    if axis == -1:
        ty = ty.permute(0, 2, 3, 1)
    torch_err = float(np.max(np.abs(ty.numpy().astype(np.float64) - ey)))
    ours = float(np.max(np.abs(fastbn.batch_norm_train(x, axis=axis).y - ey)))
    print(f"max |y - exact|: fastbn {ours:.2e}, torch {torch_err:.2e}")
    assert ours <= TOL
    assert torch_err > ours


def test_offset_float64_data_is_accurate_to_float64(rng):
    x = 1e9 + rng.standard_normal((200, 3, 40))
    ey, _, _ = exact_y(x, 1)
    assert np.max(np.abs(fastbn.batch_norm_train(x).y - ey)) < 1e-6
