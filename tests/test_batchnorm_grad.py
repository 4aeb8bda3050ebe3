"""batch_norm_backward is the gradient of batch_norm_train (training mode, through the statistics).

Specification: for a random linear functional L(y) = sum(w * y) of y = batch_norm_train(x, gamma,
beta), the (dx, dgamma, dbeta) returned for dy = w agree with float64 central differences of L
with respect to every element of x, gamma and beta -- with and without the affine part, for both
C code paths and for channels-last.
"""
import numpy as np
import pytest

import fastbn
from bn_helpers import make_inputs

EPS = 1e-3
H = 1e-6


def numerical_gradient(f, a):
    """Central differences of the scalar f() with respect to every element of a (in place)."""
    grad = np.empty_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        fp = f()
        flat[i] = old - H
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * H)
    return grad


CASES = [((5, 3), 1), ((4, 3, 5), 1), ((3, 2, 66), 1), ((4, 5, 3), -1), ((3, 4, 2, 3), 2)]
IDS = ["NC", "NCL-rows", "NCL-slab", "channels-last", "middle-axis"]


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("shape, axis", CASES, ids=IDS)
def test_backward_matches_central_differences(rng, shape, axis, affine):
    x, gamma, beta = make_inputs(rng, shape, axis, np.float64)
    g, b = (gamma, beta) if affine else (None, None)
    w = rng.standard_normal(shape)

    def loss():
        return float(np.sum(w * fastbn.batch_norm_train(x, g, b, axis=axis, eps=EPS).y))

    _, mean, invstd = fastbn.batch_norm_train(x, g, b, axis=axis, eps=EPS)
    dx, dgamma, dbeta = fastbn.batch_norm_backward(w, x, mean, invstd, g, axis=axis)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    if affine:
        np.testing.assert_allclose(dgamma, numerical_gradient(loss, gamma), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dbeta, numerical_gradient(loss, beta), rtol=1e-6, atol=1e-7)
    else:
        # dgamma/dbeta are what an affine layer at gamma = 1, beta = 0 would get.
        ones, zeros = np.ones(shape[axis]), np.zeros(shape[axis])

        def loss_affine():
            return float(np.sum(w * fastbn.batch_norm_train(x, ones, zeros, axis=axis, eps=EPS).y))

        np.testing.assert_allclose(dgamma, numerical_gradient(loss_affine, ones), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dbeta, numerical_gradient(loss_affine, zeros), rtol=1e-6, atol=1e-7)


def test_float32_backward_is_close_to_the_float64_gradient(rng):
    x, gamma, _ = make_inputs(rng, (8, 3, 40), 1, np.float64)
    w = rng.standard_normal(x.shape)
    _, m64, s64 = fastbn.batch_norm_train(x, gamma, eps=EPS)
    want = fastbn.batch_norm_backward(w, x, m64, s64, gamma)
    x32, g32, w32 = x.astype(np.float32), gamma.astype(np.float32), w.astype(np.float32)
    _, m32, s32 = fastbn.batch_norm_train(x32, g32, eps=EPS)
    got = fastbn.batch_norm_backward(w32, x32, m32, s32, g32)
    for a, e in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4 * np.abs(e).max())
