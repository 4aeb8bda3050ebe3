"""Batch normalization (Ioffe & Szegedy 2015, Algorithm 1) for NumPy arrays.

Validation and layout dispatch live here; the loops are C (``csrc/batchnorm_*``) reached through
the Cython module ``fastbn._batchnorm``.  The plain-NumPy twin of every function is in
:mod:`fastbn.reference`.
"""
import warnings
from collections import namedtuple

import numpy as np

from fastbn import _batchnorm, _config
from fastbn import _validation as v

BatchNormResult = namedtuple("BatchNormResult", ["y", "mean", "invstd"])
BatchNormResult.__doc__ = """Result of :func:`batch_norm_train`: the output ``y`` and the batch
``mean`` and ``invstd = 1/sqrt(var + eps)`` (1-d, one value per channel, dtype of x)."""

BatchNormGrads = namedtuple("BatchNormGrads", ["dx", "dgamma", "dbeta"])
BatchNormGrads.__doc__ = """Result of :func:`batch_norm_backward`: gradients with respect to x,
gamma and beta."""

_config._register(_batchnorm)


def _input(x, name="x"):
    x = v.float_array(x, name)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected an array with at least 2 dimensions (batch, channels, ...),"
                         f" got {x.ndim}-d shape {x.shape}")
    return x


def _optional_vector(a, name, C, dtype):
    """The validated array itself (not a copy), so that overlap checks see the caller's memory."""
    return None if a is None else v.vector(a, name, C, dtype)


def _contiguous(a):
    return None if a is None else np.ascontiguousarray(a)


def _result_buffer(out, x, name="out"):
    """Where the kernel writes: ``out`` itself when C-contiguous, else a fresh array."""
    if out is not None:
        v.output(out, name, x.shape, x.dtype)
        if out.flags.c_contiguous:
            return out
    return np.empty(x.shape, dtype=x.dtype)


def _deliver(buf, out):
    if out is not None and buf is not out:
        np.copyto(out, buf)
        return out
    return buf


def _warn_skipped(skipped, C):
    warnings.warn(f"batch_norm_train: {skipped} of {C} channels have non-finite batch "
                  "statistics; their running statistics were not updated",
                  RuntimeWarning, stacklevel=3)


def batch_norm_train(x, gamma=None, beta=None, *, axis=1, eps=1e-5, running_mean=None,
                     running_var=None, momentum=0.1, out=None):
    """Batch-normalize ``x`` with the statistics of the batch (training mode).

    For every channel ``c`` along ``axis``, over all other axes::

        mean[c]   = mean(x[..., c, ...])
        var[c]    = mean((x[..., c, ...] - mean[c])**2)          # biased
        invstd[c] = 1 / sqrt(var[c] + eps)
        y         = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]

    Parameters
    ----------
    x : ndarray of float32 or float64, ndim >= 2
        The batch.  Any strides; C-contiguous arrays take the fast path, others are copied.
    gamma, beta : array_like, shape (C,), optional
        Scale and shift, same dtype as ``x``.  None means no affine part (1 and 0).
    axis : int, default 1
        The channel axis: 1 for (N, C, ...) layouts, -1 for channels-last.
    eps : float, default 1e-5
        Added to the variance, >= 0.
    running_mean, running_var : ndarray, shape (C,), optional
        Updated in place when given, PyTorch's way:
        ``r = (1 - momentum) * r + momentum * batch``, with the unbiased variance
        (``var * n / (n - 1)``) for ``running_var``.  Channels whose batch statistics are not
        finite are left unchanged, with a RuntimeWarning.
    momentum : float in [0, 1], default 0.1
    out : ndarray, optional
        Where to write ``y``: same shape and dtype as ``x``, sharing no memory with any input.

    Returns
    -------
    BatchNormResult
        Named tuple ``(y, mean, invstd)``; ``mean`` and ``invstd`` are 1-d of length C in the
        dtype of ``x``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Notes
    -----
    Statistics are accumulated in float64 by shifted sums inside cache-sized segments merged by
    Chan's formula, so data whose mean is far from zero lose no digits (relative error of the
    variance within about 1e-12).  The elementwise pass runs in the dtype of ``x`` with the mean
    split into two parts, a few ulps of the largest term (README, "Accuracy").  Results are
    bitwise identical for any thread count and instruction set.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    >>> y, mean, invstd = fastbn.batch_norm_train(x, eps=0.0)
    >>> y
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> mean
    array([ 2., 20.], dtype=float32)
    """
    if out is None:   # the plain case, checked and run in Cython (fastbn._batchnorm)
        plain = _batchnorm.train_plain(x, gamma, beta, axis, eps, running_mean, running_var,
                                       momentum, _config.get_num_threads())
        if plain is not None:
            y, mean, invstd, skipped = plain
            if skipped:
                _warn_skipped(skipped, mean.shape[0])
            return BatchNormResult(y, mean, invstd)
    x = _input(x)
    axis = v.normalize_axis(axis, x.ndim)
    dtype = x.dtype
    outer, C, inner = _batchnorm.layout(x, axis)
    eps = v.real(eps, "eps", lo=0.0)
    momentum = v.real(momentum, "momentum", lo=0.0, hi=1.0)
    count = outer * inner
    if count < 2:
        raise ValueError(f"x: expected more than 1 value per channel in training, got {count} "
                         f"(shape {x.shape}, channel axis {axis})")
    g = _optional_vector(gamma, "gamma", C, dtype)
    b = _optional_vector(beta, "beta", C, dtype)
    rm = None if running_mean is None else v.vector(running_mean, "running_mean", C, dtype, inplace=True)
    rv = None if running_var is None else v.vector(running_var, "running_var", C, dtype, inplace=True)
    y = _result_buffer(out, x)
    v.no_overlap([("out", out), ("running_mean", rm), ("running_var", rv)],
                 [("x", x), ("gamma", g), ("beta", b)])

    stats = np.empty((3, C), dtype=np.float64)   # mean, var, invstd
    if C:
        _batchnorm.train(np.ascontiguousarray(x), y, outer, C, inner, _contiguous(g),
                         _contiguous(b), eps, stats, _config.get_num_threads())
    y = _deliver(y, out)
    if (rm is not None or rv is not None) and C:
        skipped = _batchnorm.update_running(rm, rv, stats, count, momentum, x.dtype.num)
        if skipped:
            _warn_skipped(skipped, C)
    return BatchNormResult(y, stats[0].astype(dtype), stats[2].astype(dtype))


def batch_norm_infer(x, running_mean, running_var, gamma=None, beta=None, *, axis=1, eps=1e-5,
                     out=None):
    """Batch-normalize ``x`` with fixed (running) statistics (inference mode).

    ``y = (x - running_mean[c]) / sqrt(running_var[c] + eps) * gamma[c] + beta[c]``, per-channel
    coefficients in float64, the elementwise pass in the dtype of ``x`` (error bound: README,
    "Accuracy").

    Parameters
    ----------
    x : ndarray of float32 or float64, ndim >= 2
    running_mean, running_var : array_like, shape (C,)
        Same dtype as ``x``.
    gamma, beta : array_like, shape (C,), optional
        None means no affine part.
    axis : int, default 1
        The channel axis.
    eps : float, default 1e-5
    out : ndarray, optional
        Where to write ``y``; shares no memory with any input.

    Returns
    -------
    y : ndarray, same shape and dtype as ``x``

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> fastbn.batch_norm_infer(x, np.array([1.0, 2.0]), np.array([4.0, 1.0]), eps=0.0)
    array([[0., 0.],
           [1., 2.]])
    """
    if out is None:   # the plain case, checked and run in Cython (fastbn._batchnorm)
        y = _batchnorm.infer_plain(x, running_mean, running_var, gamma, beta, axis, eps,
                                   _config.get_num_threads())
        if y is not None:
            return y
    x = _input(x)
    axis = v.normalize_axis(axis, x.ndim)
    dtype, C = x.dtype, x.shape[axis]
    eps = v.real(eps, "eps", lo=0.0)
    rm = v.vector(running_mean, "running_mean", C, dtype)
    rv = v.vector(running_var, "running_var", C, dtype)
    g = _optional_vector(gamma, "gamma", C, dtype)
    b = _optional_vector(beta, "beta", C, dtype)
    y = _result_buffer(out, x)
    v.no_overlap([("out", out)], [("x", x), ("running_mean", rm), ("running_var", rv),
                                  ("gamma", g), ("beta", b)])
    if x.size:
        outer, C, inner = _batchnorm.layout(x, axis)
        _batchnorm.infer(np.ascontiguousarray(x), y, outer, C, inner, _contiguous(rm),
                         _contiguous(rv), _contiguous(g), _contiguous(b), eps,
                         _config.get_num_threads())
    return _deliver(y, out)


def batch_norm_backward(dy, x, mean, invstd, gamma=None, *, axis=1, out=None):
    """Gradients of training-mode batch norm, through the batch statistics.

    With ``xhat = (x - mean) * invstd`` and ``n`` values per channel::

        dbeta  = sum(dy)
        dgamma = sum(dy * xhat)
        dx     = gamma * invstd * (dy - dbeta / n - xhat * dgamma / n)

    Parameters
    ----------
    dy : ndarray of float32 or float64
        Gradient of the loss with respect to ``y``; same shape and dtype as ``x``.
    x : ndarray
        The input of the forward pass.
    mean, invstd : array_like, shape (C,)
        As returned by :func:`batch_norm_train`; same dtype as ``x``.
    gamma : array_like, shape (C,), optional
        The scale of the forward pass; None means 1.
    axis : int, default 1
    out : ndarray, optional
        Where to write ``dx``; shares no memory with any input.

    Returns
    -------
    BatchNormGrads
        Named tuple ``(dx, dgamma, dbeta)``; ``dgamma`` and ``dbeta`` are 1-d of length C (also
        when ``gamma`` is None: they are then the gradients an affine layer would get).

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> y, mean, invstd = fastbn.batch_norm_train(x, eps=0.0)
    >>> dx, dgamma, dbeta = fastbn.batch_norm_backward(np.ones_like(x), x, mean, invstd)
    >>> dx
    array([[0., 0.],
           [0., 0.]])
    >>> dbeta
    array([2., 2.])
    """
    if out is None:   # the plain case, checked and run in Cython (fastbn._batchnorm)
        plain = _batchnorm.backward_plain(dy, x, mean, invstd, gamma, axis,
                                          _config.get_num_threads())
        if plain is not None:
            return BatchNormGrads(*plain)
    x = _input(x)
    dy = v.float_array(dy, "dy")
    v.same_dtype(dy, "dy", x.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    axis = v.normalize_axis(axis, x.ndim)
    dtype = x.dtype
    outer, C, inner = _batchnorm.layout(x, axis)
    mean = v.vector(mean, "mean", C, dtype)
    invstd = v.vector(invstd, "invstd", C, dtype)
    g = _optional_vector(gamma, "gamma", C, dtype)
    if outer * inner < 1:
        raise ValueError(f"x: expected a non-empty batch, got shape {x.shape}")
    dx = _result_buffer(out, x)
    v.no_overlap([("out", out)], [("dy", dy), ("x", x), ("mean", mean), ("invstd", invstd),
                                  ("gamma", g)])
    grads = np.empty((2, C), dtype=np.float64)   # dgamma, dbeta
    if C:
        m = np.ascontiguousarray(mean, dtype=np.float64)
        s = np.ascontiguousarray(invstd, dtype=np.float64)
        _batchnorm.backward(np.ascontiguousarray(dy), np.ascontiguousarray(x), dx, outer, C,
                            inner, m, s, _contiguous(g), grads, _config.get_num_threads())
    return BatchNormGrads(_deliver(dx, out), grads[0].astype(dtype), grads[1].astype(dtype))
