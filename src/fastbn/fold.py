"""Folding an inference-mode batch norm into the linear or convolution layer before it.

At inference a batch norm is a fixed per-channel affine map, ``y = z * s + t`` with
``s = gamma / sqrt(running_var + eps)`` and ``t = beta - running_mean * s``; applied to the output
``z = W x + b`` of a linear or convolution layer it folds into that layer's weights:
``W' = W * s`` (along the output-channel axis) and ``b' = (b - running_mean) * s + beta``.  The
folded layer then does in one pass what took two.
"""
import math

import numpy as np

from fastbn import _half
from fastbn import _validation as v

__all__ = ["fold_batch_norm"]


def _floating(a, name):
    """``a`` as an ndarray of a floating dtype (float16/32/64 or bfloat16); an array-like of
    numbers is converted to float64; another dtype is a TypeError.  A subclass (np.matrix,
    whose * is a matrix product) as a plain view; a masked array is a TypeError."""
    v.not_masked(a, name)
    a = v.plain(a)
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a, dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name}: expected an array of real numbers ({e})") from None
    dt = v.native_dtype(a.dtype)
    if dt not in v.FLOAT_DTYPES and _half.kind(dt, name) is None:
        raise TypeError(f"{name}: expected a {_half.EXPECTED} array, got dtype {a.dtype}")
    return a


def _per_channel(a, name, C, default):
    """A channel vector in float64: ``default`` for None (if there is one), else a 1-d float
    array of length C."""
    if a is None:
        if default is None:
            raise TypeError(f"{name}: expected an array of {C} numbers, got None")
        return np.full(C, default, dtype=np.float64)
    a = _floating(a, name)
    if a.shape != (C,):
        raise ValueError(f"{name}: expected shape ({C},) (one value per output channel of "
                         f"weight), got {a.shape}")
    return a.astype(np.float64)


def fold_batch_norm(weight, bias, running_mean, running_var, gamma=None, beta=None, *, eps=1e-5,
                    axis=0):
    """The weights of a linear or convolution layer with the batch norm after it folded in.

    For inference: ``layer(x; W', b') == batch_norm_infer(layer(x; W, b), running_mean,
    running_var, gamma, beta, eps=eps)`` up to rounding, with, per output channel ``c``,
    ``s[c] = gamma[c] / sqrt(running_var[c] + eps)``, ``W'[..c..] = W[..c..] * s[c]`` and
    ``b'[c] = (b[c] - running_mean[c]) * s[c] + beta[c]``.  Computed in float64 and rounded once
    to the dtype of ``weight`` (so float32 results are the float64 values rounded to float32).
    The inputs are never modified.

    Parameters
    ----------
    weight : ndarray, ndim >= 1
        float32, float64, float16 or bfloat16 (``ml_dtypes``), any layout and byte order.
    bias : array_like, shape (C,), or None
        The layer's bias, ``C = weight.shape[axis]``; None means zero (a layer without bias).
    running_mean, running_var : array_like, shape (C,)
        The batch norm's statistics (any floating dtype); ``running_var >= 0``.
    gamma, beta : array_like, shape (C,), optional
        The batch norm's affine parameters; None means 1 and 0.
    eps : float, default 1e-5
        Added to the variance, finite and > 0.
    axis : int, default 0
        The output-channel axis of ``weight``: 0 for PyTorch's (out, in) and
        (out, in, kh, kw); -1 for Keras' (in, out) and (kh, kw, in, out) (HWIO).

    Returns
    -------
    (weight, bias) : tuple of ndarray
        New arrays in the dtype of ``weight`` (native byte order): the folded weight, of
        ``weight``'s shape, and the folded bias, of shape (C,).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message: a non-floating dtype, a length other than
        C, ``eps <= 0``, an axis out of range, a negative ``running_var``, a scale
        ``gamma / sqrt(running_var + eps)`` beyond float64's range, or folded values that
        overflow the dtype of ``weight``.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)    # (out, in): x @ W.T
    >>> mean, var = np.array([1.0, -1.0], np.float32), np.array([4.0, 0.25], np.float32)
    >>> Wf, bf = fastbn.fold_batch_norm(W, None, mean, var)   # s = 1 / sqrt(var + 1e-5)
    >>> np.round(Wf, 3), np.round(bf, 3)
    (array([[0.5, 1. ],
           [6. , 8. ]], dtype=float32), array([-0.5,  2. ], dtype=float32))
    >>> x = np.array([[1.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    >>> y = fastbn.batch_norm_infer(x @ W.T, mean, var)       # the layer, then the batch norm
    >>> bool(np.allclose(x @ Wf.T + bf, y, rtol=1e-6))         # the folded layer alone
    True
    """
    weight = _floating(weight, "weight")
    dtype = v.native_dtype(weight.dtype)
    if weight.ndim < 1:
        raise ValueError("weight: expected at least 1 dimension, got a 0-d array")
    axis = v.normalize_axis(axis, weight.ndim, "axis")
    eps = v.real(eps, "eps", lo=0.0, hi=math.inf, lo_open=True, hi_open=True)
    C = weight.shape[axis]
    b = _per_channel(bias, "bias", C, 0.0)
    mean = _per_channel(running_mean, "running_mean", C, None)
    var = _per_channel(running_var, "running_var", C, None)
    g = _per_channel(gamma, "gamma", C, 1.0)
    t = _per_channel(beta, "beta", C, 0.0)
    if np.any(var < 0):
        c = int(np.flatnonzero(var < 0)[0])
        raise ValueError(f"running_var: expected values >= 0, got {var[c]!r} at channel {c}")
    with np.errstate(over="ignore"):
        d = var + eps    # beyond float64 (var near its max): sqrt(d / 4) * 2, exactly sqrt(d)
        s = g / np.where(np.isinf(d) & np.isfinite(var), np.sqrt(var * 0.25 + eps * 0.25) * 2,
                         np.sqrt(d))
    over = ~np.isfinite(s) & np.isfinite(g) & np.isfinite(var)
    if np.any(over):   # 0 * inf would fold a zero weight to NaN
        c = int(np.flatnonzero(over)[0])
        raise ValueError(f"gamma: the scale gamma / sqrt(running_var + eps) overflows float64 at "
                         f"channel {c} ({g[c]!r} / sqrt({var[c] + eps!r}))")
    shape = [1] * weight.ndim
    shape[axis] = C
    w = weight.astype(np.float64)
    with np.errstate(over="ignore"):
        w64 = w * s.reshape(shape)
        b64 = _shift_scale(b, mean, s, t)
        w_out, b_out = w64.astype(dtype), b64.astype(dtype)
    finite = (np.isfinite(w) & np.isfinite(s).reshape(shape),
              np.isfinite(b) & np.isfinite(mean) & np.isfinite(s) & np.isfinite(t))
    for name, exact, rounded, ok in zip(("weight", "bias"), (w64, b64), (w_out, b_out), finite):
        bad = ok & ~np.isfinite(rounded.astype(np.float64))   # finite inputs, not finite out
        if np.any(bad):
            value = float(exact[bad].flat[0])
            what = repr(value) if math.isfinite(value) else "beyond float64's range"
            hint = "; fold into a wider dtype" if dtype.itemsize < 8 else ""
            raise ValueError(f"{name}: a folded {name} value ({what}) overflows {dtype}{hint}")
    return w_out, b_out


def _shift_scale(b, mean, s, t):
    """(b - mean) * s + t in float64; where b - mean alone overflows (b and mean of opposite
    signs near the float64 limit), that term halved and the sum doubled back, and where s is 0
    it is an exact 0."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = (b - mean) * s + t
        redo = ~np.isfinite(out) & np.isfinite(b) & np.isfinite(mean) & np.isfinite(s) \
            & np.isfinite(t)
        if np.any(redo):
            h = (b[redo] * 0.5 - mean[redo] * 0.5) * s[redo]    # (b - mean) s / 2
            out[redo] = np.where(s[redo] == 0, h + t[redo], (h + t[redo] * 0.5) * 2)
    return out
