"""Gradients of the normalization family.

Specification: for every norm, dx, dgamma and dbeta of the *_backward functions agree with
float64 central finite differences of sum(y * w) (to 1e-6 relative), and, where torch is
importable, with torch's float64 autograd through torch.nn.functional.layer_norm, rms_norm,
group_norm and instance_norm (to 1e-10), on NCHW and channels-last layouts.
"""
import numpy as np
import pytest

import fastbn
from norm_helpers import NORMS, NORM_IDS, make

FD_CASES = {"layer_norm": ((3, 5), {}), "rms_norm": ((3, 2, 3), {"axis": (1, 2)}),
            "group_norm": ((2, 4, 3), {"num_groups": 2}),
            "instance_norm": ((2, 3, 2, 2), {"axis": -1})}


def _fd(f, a, h=1e-6):
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        fp = f()
        a[i] = old - h
        fm = f()
        a[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_backward_matches_finite_differences(norm, rng):
    shape, kw = FD_CASES[norm.name]
    x, gamma, beta = make(norm, shape, kw, np.float64, rng)
    w = rng.standard_normal(shape)
    loss = lambda: float(np.sum(norm.forward(norm.fb(), x, gamma, beta, kw)[0] * w))
    fwd = norm.forward(norm.fb(), x, gamma, beta, kw)
    got = norm.backward(norm.fb(True), w, x, fwd[1:], gamma, kw)
    want = [_fd(loss, x), _fd(loss, gamma)] + ([_fd(loss, beta)] if beta is not None else [])
    for g, f in zip(got, want):
        np.testing.assert_allclose(g, f, rtol=1e-6, atol=1e-7)


try:
    import torch
except ImportError:   # the torch comparisons are skipped
    torch = None

TORCH_CASES = [("layer_norm", (4, 6, 8), {"axis": (-2, -1)}), ("rms_norm", (5, 16), {}),
               ("group_norm", (3, 6, 5, 5), {"num_groups": 3}),
               ("group_norm", (3, 5, 5, 6), {"num_groups": 2, "axis": -1}),
               ("instance_norm", (2, 3, 7, 7), {}), ("instance_norm", (2, 7, 7, 3), {"axis": -1})]


def _torch_forward(name, xt, gt, bt, kw, eps):
    F = torch.nn.functional
    if name == "layer_norm":
        axes = kw.get("axis", -1)
        k = len(axes) if isinstance(axes, tuple) else 1
        return F.layer_norm(xt, xt.shape[-k:], gt, bt, eps)
    if name == "rms_norm":
        return F.rms_norm(xt, xt.shape[-1:], gt, eps)
    channels_last = kw.get("axis", 1) == -1
    if channels_last:   # torch wants NC...: move the channels to axis 1 and back
        xt = xt.movedim(-1, 1)
    if name == "group_norm":
        y = F.group_norm(xt, kw["num_groups"], gt, bt, eps)
    else:
        y = F.instance_norm(xt, weight=gt, bias=bt, eps=eps)
    return y.movedim(1, -1) if channels_last else y


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("name, shape, kw", TORCH_CASES,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s, _ in TORCH_CASES])
def test_forward_and_backward_match_torch_float64(name, shape, kw, rng):
    norm = next(n for n in NORMS if n.name == name)
    x, gamma, beta = make(norm, shape, kw, np.float64, rng)
    dy = rng.standard_normal(shape)
    eps = 1e-5
    fwd = norm.forward(norm.fb(), x, gamma, beta, kw, eps=eps)
    grads = norm.backward(norm.fb(True), dy, x, fwd[1:], gamma, kw)
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma, requires_grad=True)
    bt = None if beta is None else torch.tensor(beta, requires_grad=True)
    yt = _torch_forward(name, xt, gt, bt, kw, eps)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(fwd[0], yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    want = [xt.grad, gt.grad] + ([bt.grad] if bt is not None else [])
    for g, t in zip(grads, want):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-10, atol=1e-11)
