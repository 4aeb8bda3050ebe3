"""TEMPORARY NumPy stand-ins for the split batch-norm kernels (moments, apply, grad_sums,
grad_apply) until they arrive in fastbn._batchnorm; same signatures, float64 work."""
import numpy as np


def _v(x, outer, C, inner):
    return np.asarray(x, dtype=np.float64).reshape(outer, C, inner)


def _c(a):
    return a.reshape(1, -1, 1)


def moments(x, outer, C, inner, mean, m2, n_threads):
    xs = _v(x, outer, C, inner)
    mean[...] = xs.mean(axis=(0, 2))
    m2[...] = ((xs - _c(mean)) ** 2).sum(axis=(0, 2))


def apply(x, y, outer, C, inner, mean, invstd, gamma, beta, n_threads):
    xs = _v(x, outer, C, inner)
    r = (xs - _c(mean)) * _c(invstd)
    if gamma is not None:
        r = r * _c(np.asarray(gamma, np.float64))
    if beta is not None:
        r = r + _c(np.asarray(beta, np.float64))
    y.reshape(outer, C, inner)[...] = r


def grad_sums(dy, x, outer, C, inner, mean, invstd, sum_dy, sum_dy_xhat, n_threads):
    d, xs = _v(dy, outer, C, inner), _v(x, outer, C, inner)
    sum_dy[...] = d.sum(axis=(0, 2))
    sum_dy_xhat[...] = (d * (xs - _c(mean))).sum(axis=(0, 2))   # h-core: sum(dy * (x - mean))


def grad_apply(dy, x, dx, outer, C, inner, mean, invstd, gamma, sum_dy, sum_dy_xhat, count,
               n_threads):
    d, xs = _v(dy, outer, C, inner), _v(x, outer, C, inner)
    g = invstd if gamma is None else np.asarray(gamma, np.float64) * invstd
    xhat = (xs - _c(mean)) * _c(invstd)
    r = _c(g) * (d - _c(sum_dy) / count - xhat * _c(sum_dy_xhat * invstd) / count)
    dx.reshape(outer, C, inner)[...] = r
