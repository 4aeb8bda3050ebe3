"""Plain-NumPy reference implementations, written from the formulas.

They are the oracle of the tests and the baseline of the benchmarks: readable first, no
validation, no tricks.  Each has the signature and the results of its fastbn twin.
"""
import functools

import numpy as np

from fastbn.batchnorm import BatchNormGrads, BatchNormResult

__all__ = [
    "batch_norm_train", "batch_norm_infer", "batch_norm_backward",
    "global_norm", "clip_grad_norm", "clip_grad_value", "clip_by_norm",
    "uniform", "normal", "truncated_normal", "glorot_uniform", "glorot_normal", "he_uniform",
    "he_normal", "orthogonal", "layer_norm", "layer_norm_backward", "rms_norm",
    "rms_norm_backward", "group_norm", "group_norm_backward", "instance_norm",
    "instance_norm_backward", "batch_norm_stats", "merge_stats", "batch_norm_apply",
    "update_running_stats", "batch_norm_backward_reduce", "batch_norm_backward_apply",
]


def _channel_view(a, x, axis):
    """Reshape a per-channel vector so it broadcasts against x along ``axis``."""
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return np.reshape(a, shape)


def _reduce_axes(x, axis):
    axis = axis % x.ndim
    return tuple(i for i in range(x.ndim) if i != axis), axis


def _relu(s):
    """torch.relu on CPU: 0 where s < 0, s itself elsewhere (NaN and -0.0 kept)."""
    return np.where(s < 0, s.dtype.type(0), s)


def _fused_output(y, relu, residual):
    """The fused forward's epilogue of the batch-norm output ``y`` (already in x's dtype):
    ``y + residual`` rounded once in that dtype, then the ReLU."""
    if residual is not None:
        y = np.add(y, residual, dtype=y.dtype)
    return _relu(y) if relu else y


def _relu_grad(dy, y):
    """PyTorch's threshold_backward(dy, y, 0): 0 where y <= 0, dy elsewhere (also where y is
    NaN)."""
    return np.where(y <= 0, dy.dtype.type(0), dy)


def batch_norm_train(x, gamma=None, beta=None, *, axis=1, eps=1e-5, running_mean=None,
                     running_var=None, momentum=0.1, out=None, relu=False, residual=None):
    """Ioffe & Szegedy (2015), Algorithm 1, with PyTorch's running-statistics update.

    The twin of :func:`fastbn.batch_norm_train` (same parameters and results), in NumPy.  With
    ``residual`` and/or ``relu``, the output is then ``relu(y + residual)`` in x's dtype: the
    sum rounded once, then 0 where negative (NaN and -0.0 kept, as ``torch.relu``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> reference.batch_norm_train(x).y.round(4)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> reference.batch_norm_train(x, relu=True, residual=np.full_like(x, 0.5)).y.round(4)
    array([[0. , 0. ],
           [1.5, 1.5]])
    """
    axes, axis = _reduce_axes(x, axis)
    n = x.size // max(x.shape[axis], 1)                            # values per channel
    mean = x.mean(axis=axes, keepdims=True)                        # mini-batch mean
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)         # mini-batch variance (biased)
    invstd = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * invstd                                        # normalize
    if gamma is not None:
        y = y * _channel_view(gamma, x, axis)                      # scale
    if beta is not None:
        y = y + _channel_view(beta, x, axis)                       # shift
    mean, var, invstd = mean.reshape(-1), var.reshape(-1), invstd.reshape(-1)
    finite = np.isfinite(mean) & np.isfinite(var)
    if running_mean is not None:
        new = (1 - momentum) * running_mean + momentum * mean
        running_mean[finite] = new[finite]
    if running_var is not None:
        new = (1 - momentum) * running_var + momentum * var * n / (n - 1)   # unbiased
        running_var[finite] = new[finite]
    y = _fused_output(y.astype(x.dtype, copy=False), relu, residual)
    if out is not None:
        out[...] = y
        y = out
    return BatchNormResult(y, mean.astype(x.dtype), invstd.astype(x.dtype))


def batch_norm_infer(x, running_mean, running_var, gamma=None, beta=None, *, axis=1, eps=1e-5,
                     out=None, relu=False, residual=None):
    """Normalize with fixed statistics: (x - running_mean) / sqrt(running_var + eps) * gamma + beta.

    The twin of :func:`fastbn.batch_norm_infer` (same parameters and result), in NumPy; relu
    and residual as in :func:`batch_norm_train`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> reference.batch_norm_infer(x, np.array([1.0, 2.0]), np.array([3.75, 0.75]), eps=0.25)
    array([[0., 0.],
           [1., 2.]])
    """
    axis = axis % x.ndim
    y = (x - _channel_view(running_mean, x, axis)) / np.sqrt(_channel_view(running_var, x, axis) + eps)
    if gamma is not None:
        y = y * _channel_view(gamma, x, axis)
    if beta is not None:
        y = y + _channel_view(beta, x, axis)
    y = _fused_output(y.astype(x.dtype, copy=False), relu, residual)
    if out is not None:
        out[...] = y
        y = out
    return y


def batch_norm_backward(dy, x, mean, invstd, gamma=None, *, axis=1, out=None, y=None,
                        dresidual=None):
    """Backward pass through the batch statistics (Ioffe & Szegedy 2015, section 3).

    The twin of :func:`fastbn.batch_norm_backward` (same parameters and results), in NumPy.
    With ``y`` (a fused forward's output) ``dy`` is first ``threshold_backward(dy, y, 0)``: 0
    where ``y <= 0``, ``dy`` elsewhere (also where ``y`` is NaN); ``dresidual`` receives it.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> _, mean, invstd = reference.batch_norm_train(x)
    >>> reference.batch_norm_backward(np.ones_like(x), x, mean, invstd).dbeta
    array([2., 2.])
    >>> y = np.array([[0.0, 2.0], [-1.0, 3.0]])      # a fused forward's output
    >>> reference.batch_norm_backward(np.ones_like(x), x, mean, invstd, y=y).dbeta
    array([0., 2.])
    """
    if y is not None:
        dy = _relu_grad(dy, y)
    if dresidual is not None:
        dresidual[...] = dy
    axes, axis = _reduce_axes(x, axis)
    n = x.size // max(x.shape[axis], 1)                            # values per channel
    mean, invstd = _channel_view(mean, x, axis), _channel_view(invstd, x, axis)
    xhat = (x - mean) * invstd
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    g = 1.0 if gamma is None else _channel_view(gamma, x, axis)
    dxhat = dy * g
    # dL/dx = invstd / n * (n * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    dx = invstd / n * (n * dxhat - dxhat.sum(axis=axes, keepdims=True)
                       - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
    dx = dx.astype(x.dtype, copy=False)
    if out is not None:
        out[...] = dx
        dx = out
    return BatchNormGrads(dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype))


# ---- batch norm in parts (fastbn.batchnorm_parts): each step on its own, in float64 ---------

def _per_channel(a, x, axis):
    """A per-channel vector (or scalar) as float64, broadcasting against x along ``axis``."""
    return _channel_view(np.broadcast_to(np.asarray(a, dtype=np.float64), (x.shape[axis],)), x,
                         axis)


def _native_result(y, x, out):
    """y rounded once to x's dtype in native byte order, written to ``out`` when given."""
    y = y.astype(x.dtype.newbyteorder("="))
    if out is not None:
        out[...] = y
        y = out
    return y


def batch_norm_stats(x, *, axis=1):
    """Per-channel count, mean and M2 = sum((x - mean)**2): two passes in float64.

    The twin of :func:`fastbn.batch_norm_stats` (same parameters and results), in NumPy.  A
    shard with no values has count, mean and M2 0 (not NumPy's NaN mean of nothing).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> reference.batch_norm_stats(np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]]))
    (array([3., 3.]), array([ 3., 30.]), array([  8., 800.]))
    """
    x = np.asarray(x, dtype=np.float64)
    axes, axis = _reduce_axes(x, axis)
    C = x.shape[axis]
    n = x.size // max(C, 1)                                        # values per channel
    if n == 0:
        return np.zeros(C), np.zeros(C), np.zeros(C)
    mean = x.mean(axis=axes)
    m2 = ((x - _channel_view(mean, x, axis)) ** 2).sum(axis=axes)
    return np.full(C, float(n)), mean, m2


def merge_stats(counts, means, m2s):
    """The statistics of the union of shards, per channel from the whole-set formulas.

    Over the non-empty shards ``k`` of a channel::

        count = sum(n_k)
        mean  = sum(n_k * mean_k) / count
        m2    = sum(m2_k + n_k * (mean_k - mean)**2)     # within-shard + between-shard

    The twin of :func:`fastbn.merge_stats` (same parameters, and results up to rounding: fastbn
    folds the shards in one at a time, Chan et al.'s update, which in exact arithmetic is this
    sum over all shards at once).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[1.0], [2.0], [4.0], [8.0], [16.0]])
    >>> shards = [reference.batch_norm_stats(s) for s in (x[:2], x[2:2], x[2:])]
    >>> count, mean, m2 = reference.merge_stats(*(np.stack(s) for s in zip(*shards)))
    >>> count, mean, m2 / count
    (array([5.]), array([6.2]), array([29.76]))
    """
    counts, means, m2s = (np.asarray(a, dtype=np.float64) for a in (counts, means, m2s))
    C = counts.shape[1]
    count, mean, m2 = np.zeros(C), np.zeros(C), np.zeros(C)
    for c in range(C):
        used = counts[:, c] > 0                    # an empty shard adds nothing, not even a NaN
        n, mu, q = counts[used, c], means[used, c], m2s[used, c]
        if n.size:
            count[c] = n.sum()
            mean[c] = (n * mu).sum() / count[c]
            m2[c] = (q + n * (mu - mean[c]) ** 2).sum()
    return count, mean, m2


def batch_norm_apply(x, mean, invstd, gamma=None, beta=None, *, axis=1, out=None):
    """Normalize with given statistics: y = (x - mean) * invstd * gamma + beta, in float64.

    The twin of :func:`fastbn.batch_norm_apply` (same parameters and result), in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> reference.batch_norm_apply(x, [2.0, 20.0], [1.0, 0.1], beta=[0.0, 5.0])
    array([[-1.,  4.],
           [ 1.,  6.]])
    """
    x = np.asarray(x)
    axis = axis % x.ndim
    y = (x.astype(np.float64) - _per_channel(mean, x, axis)) * _per_channel(invstd, x, axis)
    if gamma is not None:
        y = y * _per_channel(gamma, x, axis)
    if beta is not None:
        y = y + _per_channel(beta, x, axis)
    return _native_result(y, x, out)


def update_running_stats(running_mean, running_var, count, mean, m2, *, momentum=0.1):
    """PyTorch's running update from (merged) statistics, in place: r = (1 - m) r + m batch.

    ``batch`` is ``mean`` for ``running_mean`` and the unbiased variance ``m2 / (count - 1)``
    for ``running_var`` (``count`` >= 2: fastbn refuses one value); channels whose mean or (biased)
    variance is not finite are left as they are, as :func:`fastbn.reference.batch_norm_train`
    does.  The twin of :func:`fastbn.update_running_stats` (same parameters and results; it
    also warns about the skipped channels, this does not), in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> rm, rv = np.zeros(1), np.ones(1)
    >>> reference.update_running_stats(rm, rv, 3, [2.0], [8.0], momentum=0.5)
    >>> rm, rv
    (array([1.]), array([2.5]))
    """
    n = np.asarray(count, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(m2, dtype=np.float64) / n                     # biased, as batch_norm_train's
    finite = np.isfinite(mean) & np.isfinite(var)
    unbias = n / (n - 1)                                              # Bessel's correction
    if running_mean is not None:
        new = (1 - momentum) * running_mean + momentum * mean
        running_mean[finite] = new[finite]
    if running_var is not None:
        new = (1 - momentum) * running_var + momentum * var * unbias   # unbiased
        running_var[finite] = new[finite]


def batch_norm_backward_reduce(dy, x, mean, invstd, *, axis=1):
    """sum(dy) and sum(dy * xhat) per channel, xhat = (x - mean) * invstd, in float64.

    The twin of :func:`fastbn.batch_norm_backward_reduce` (same parameters and results), in
    NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x, dy = np.array([[1.0], [3.0]]), np.array([[1.0], [2.0]])
    >>> reference.batch_norm_backward_reduce(dy, x, [2.0], [1.0])   # xhat = -1, 1
    (array([3.]), array([1.]))
    """
    x, dy = np.asarray(x, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    axes, axis = _reduce_axes(x, axis)
    xhat = (x - _per_channel(mean, x, axis)) * _per_channel(invstd, x, axis)
    return dy.sum(axis=axes), (dy * xhat).sum(axis=axes)


def batch_norm_backward_apply(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, count, *, axis=1,
                              out=None):
    """dx = gamma * invstd * (dy - sum_dy / count - xhat * sum_dy_xhat / count), in float64.

    The sums and ``count`` are those of the whole (global) batch.  The twin of
    :func:`fastbn.batch_norm_backward_apply` (same parameters and result), in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x, dy = np.array([[1.0], [3.0]]), np.array([[1.0], [4.0]])
    >>> reference.batch_norm_backward_apply(dy, x, [2.0], [1.0], None, [5.0], [3.0], 2)
    array([[0.],
           [0.]])
    """
    x = np.asarray(x)
    axis = axis % x.ndim
    xhat = (x.astype(np.float64) - _per_channel(mean, x, axis)) * _per_channel(invstd, x, axis)
    n = _per_channel(count, x, axis)
    g = 1.0 if gamma is None else _per_channel(gamma, x, axis)
    dx = g * _per_channel(invstd, x, axis) * (np.asarray(dy, dtype=np.float64)
                                              - _per_channel(sum_dy, x, axis) / n
                                              - xhat * _per_channel(sum_dy_xhat, x, axis) / n)
    return _native_result(dx, x, out)


# ---- gradient clipping ---------------------------------------------------------------------

def _as_list(grads):
    return [grads] if isinstance(grads, np.ndarray) else list(grads)


def global_norm(grads, norm_type=2.0):
    """``sum(abs(x)**p) ** (1/p)`` over every element of every array (``max(abs(x))``, p = inf).

    The twin of :func:`fastbn.global_norm`, in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> reference.global_norm([np.array([3.0]), np.array([4.0], dtype=np.float32)])
    5.0
    """
    flat = [np.abs(np.asarray(g, dtype=np.float64)).ravel() for g in _as_list(grads)]
    a = np.concatenate(flat) if flat else np.zeros(0)
    if a.size == 0:
        return 0.0
    if norm_type == np.inf:
        return float(np.max(a))
    return float(np.sum(a ** norm_type) ** (1.0 / norm_type))


def clip_grad_norm(grads, max_norm, *, norm_type=2.0, error_if_nonfinite=False):
    """PyTorch's ``clip_grad_norm_``: scale by coef = max_norm / (total + 1e-6) when coef < 1.

    The twin of :func:`fastbn.clip_grad_norm`, in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> g = [np.array([3.0, 4.0])]
    >>> reference.clip_grad_norm(g, 1.0)
    5.0
    >>> np.round(g[0], 6)
    array([0.6, 0.8])
    """
    grads = _as_list(grads)
    total = global_norm(grads, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise ValueError("grads: the total norm is non-finite")
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:        # a NaN coef scales too, as torch's clamp(coef, max=1) does
        for g in grads:
            g[...] = (g.astype(np.float64) * float(g.dtype.type(coef))).astype(g.dtype)
    return total


def clip_grad_value(grads, clip_value):
    """Clamp in place to [-clip_value, clip_value] (the bound in each array's dtype).

    The twin of :func:`fastbn.clip_grad_value`, in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> g = np.array([-3.0, 0.5, 2.0])
    >>> reference.clip_grad_value(g, 1.0)
    >>> g
    array([-1. ,  0.5,  1. ])
    """
    for g in _as_list(grads):
        c = g.dtype.type(clip_value)
        np.clip(g, -c, c, out=g)


def clip_by_norm(grad, max_norm, *, out=None):
    """TensorFlow's clip_by_norm: grad * max_norm / max(norm, max_norm), norm the 2-norm.

    The twin of :func:`fastbn.clip_by_norm`, in NumPy: the scale rounded to the dtype, then
    one multiply.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> reference.clip_by_norm(np.array([6.0, 8.0]), 5.0)
    array([3., 4.])
    """
    norm = global_norm(grad)
    scale = 1.0 if norm <= max_norm else max_norm / norm
    with np.errstate(invalid="ignore"):
        clipped = grad.astype(np.float64) * float(grad.dtype.type(scale))
    result = clipped.astype(grad.dtype.newbyteorder("="))
    if out is None:
        return result
    out[...] = result
    return out


# ---- weight initializers: the NumPy idioms users write today (rng: a numpy Generator) --------

def _fans(shape):
    """Keras' rule for the (..., in, out) layout: the receptive field is the product of the rest."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _generated(dtype):
    """The dtype NumPy's Generator draws in for ``dtype``: itself for float32/float64, float64
    for the half types (rounded once to them afterwards)."""
    dt = np.dtype(dtype)
    return dt if dt in (np.dtype(np.float32), np.dtype(np.float64)) else np.dtype(np.float64)


def uniform(shape, low, high, rng, dtype=np.float32):
    """``rng.uniform(low, high, shape)`` in ``dtype``.

    The NumPy idiom users write today for :func:`fastbn.init.uniform`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.uniform((3, 4), -1.0, 1.0, np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.all(np.abs(w) <= 1))
    ((3, 4), dtype('float32'), True)
    """
    return rng.uniform(low, high, shape).astype(dtype)


def normal(shape, mean, std, rng, dtype=np.float32):
    """``mean + std * rng.standard_normal(shape)`` in ``dtype``.

    The NumPy idiom users write today for :func:`fastbn.init.normal`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.normal((3, 4), 0.0, 0.1, np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.all(np.isfinite(w)))
    ((3, 4), dtype('float32'), True)
    """
    g = _generated(dtype)
    return (rng.standard_normal(shape, dtype=g) * g.type(std) + g.type(mean)).astype(dtype)


def truncated_normal(shape, mean, std, a, b, rng, dtype=np.float32):
    """Rejection: draw N(0, 1), redraw whatever falls outside [a, b].

    The NumPy idiom users write today for :func:`fastbn.init.truncated_normal`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.truncated_normal((3, 4), 0.0, 1.0, -2.0, 2.0, np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.all(np.abs(w) <= 2))
    ((3, 4), dtype('float32'), True)
    """
    z = rng.standard_normal(int(np.prod(shape)))
    bad = (z < a) | (z > b)
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = (z < a) | (z > b)
    return (mean + std * z).reshape(shape).astype(dtype)


def glorot_uniform(shape, rng, dtype=np.float32):
    """Glorot/Xavier uniform on ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))`` ((..., in, out) layout).

    The NumPy idiom users write today for :func:`fastbn.init.glorot_uniform`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.glorot_uniform((3, 4), np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.all(np.abs(w) <= np.sqrt(6 / 7)))
    ((3, 4), dtype('float32'), True)
    """
    fan_in, fan_out = _fans(shape)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -a, a, rng, dtype)


def glorot_normal(shape, rng, dtype=np.float32):
    """Glorot/Xavier normal, std ``sqrt(2 / (fan_in + fan_out))`` (not truncated).

    The NumPy idiom users write today for :func:`fastbn.init.glorot_normal`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.glorot_normal((3, 4), np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.all(np.isfinite(w)))
    ((3, 4), dtype('float32'), True)
    """
    fan_in, fan_out = _fans(shape)
    return normal(shape, 0.0, np.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


def he_uniform(shape, rng, dtype=np.float32):
    """He/Kaiming uniform on ``U(-a, a)``, ``a = sqrt(6 / fan_in)``.

    The NumPy idiom users write today for :func:`fastbn.init.he_uniform`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.he_uniform((3, 4), np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.all(np.abs(w) <= np.sqrt(2)))
    ((3, 4), dtype('float32'), True)
    """
    a = np.sqrt(6.0 / _fans(shape)[0])
    return uniform(shape, -a, a, rng, dtype)


def he_normal(shape, rng, dtype=np.float32):
    """He/Kaiming normal, std ``sqrt(2 / fan_in)`` (not truncated).

    The NumPy idiom users write today for :func:`fastbn.init.he_normal`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.he_normal((3, 4), np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.all(np.isfinite(w)))
    ((3, 4), dtype('float32'), True)
    """
    return normal(shape, 0.0, np.sqrt(2.0 / _fans(shape)[0]), rng, dtype)


def orthogonal(shape, rng, gain=1.0, dtype=np.float32):
    """QR of a Gaussian matrix (rows: all axes but the last), signs of diag(R) folded in.

    The NumPy idiom users write today for :func:`fastbn.init.orthogonal`
    (the benchmark baseline; another random stream, so another sample of the same law).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> w = reference.orthogonal((3, 4), np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(np.allclose(w @ w.T, np.eye(3), atol=1e-5))
    ((3, 4), dtype('float32'), True)
    """
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    g = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diagonal(r))
    m = q if rows >= cols else q.T
    return (gain * m).reshape(shape).astype(dtype)


# ---- the normalization family: written from the formulas on a grouped view -----------------
# relu and residual as batch norm's (_fused_output); y and dresidual as batch_norm_backward's.

def _masked(dy, y, dresidual):
    """dy through a fused ReLU (threshold_backward by y, when given), stored in dresidual."""
    if y is not None:
        dy = _relu_grad(dy, y)
    if dresidual is not None:
        dresidual[...] = dy
    return dy


def _norm_axes(x, axis):
    axes = sorted(a % x.ndim for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))
    rest = [i for i in range(x.ndim) if i not in axes]
    return axes, rest


def _trailing(x, axis):
    """x with the normalized axes moved last and flattened: (rows, D), and the shapes back."""
    axes, rest = _norm_axes(x, axis)
    xt = np.transpose(x, rest + axes)
    return xt.reshape(-1, int(np.prod([x.shape[a] for a in axes]))), rest + axes, xt.shape


def _untrail(a2, perm, tshape):
    return np.transpose(a2.reshape(tshape), np.argsort(perm))


def _finish(y, x, out, relu=False, residual=None):
    """y in x's dtype, then batch norm's fused epilogue relu(y + residual) (_fused_output)."""
    y = _fused_output(y.astype(x.dtype, copy=False), relu, residual)
    if out is not None:
        out[...] = y
        y = out
    return y


def layer_norm(x, gamma=None, beta=None, *, axis=-1, eps=1e-5, out=None, relu=False,
               residual=None):
    """Layer norm: (x - mean) / sqrt(var + eps) * gamma + beta over the axes ``axis``.

    The twin of :func:`fastbn.layer_norm` (same parameters and results), in NumPy; relu and
    residual as in :func:`batch_norm_train`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> reference.layer_norm(np.array([[1.0, 3.0]]), eps=1e-12)[0]
    array([[-1.,  1.]])
    >>> reference.layer_norm(np.array([[1.0, 3.0]]), eps=1e-12, relu=True,
    ...                      residual=np.array([[0.5, 0.5]]))[0]
    array([[0. , 1.5]])
    """
    x2, perm, tshape = _trailing(x, axis)
    mean = x2.mean(axis=1, keepdims=True)
    invstd = 1.0 / np.sqrt(((x2 - mean) ** 2).mean(axis=1, keepdims=True) + eps)
    y = (x2 - mean) * invstd
    if gamma is not None:
        y = y * np.reshape(gamma, -1)
    if beta is not None:
        y = y + np.reshape(beta, -1)
    stat_shape = tshape[:x.ndim - len(_norm_axes(x, axis)[0])]
    return (_finish(_untrail(y, perm, tshape), x, out, relu, residual),
            mean.reshape(stat_shape).astype(x.dtype),
            invstd.reshape(stat_shape).astype(x.dtype))


def layer_norm_backward(dy, x, mean, invstd, gamma=None, *, axis=-1, out=None, y=None,
                        dresidual=None):
    """dx = invstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma; dgamma, dbeta.

    The twin of :func:`fastbn.layer_norm_backward` (same parameters and results), in NumPy; y
    and dresidual as in :func:`batch_norm_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[1.0, 3.0]])
    >>> reference.layer_norm_backward(np.ones_like(x), x, np.array([2.0]), np.array([1.0]))[2]
    array([1., 1.])
    """
    dy = _masked(dy, y, dresidual)
    x2, perm, tshape = _trailing(x, axis)
    dy2 = _trailing(dy, axis)[0]
    m, r = np.reshape(mean, (-1, 1)), np.reshape(invstd, (-1, 1))
    xhat = (x2 - m) * r
    g = dy2 if gamma is None else dy2 * np.reshape(gamma, -1)
    dx = r * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    pshape = tshape[x.ndim - len(_norm_axes(x, axis)[0]):]
    dgamma = (dy2 * xhat).sum(axis=0).reshape(pshape).astype(x.dtype)
    dbeta = dy2.sum(axis=0).reshape(pshape).astype(x.dtype)
    return _finish(_untrail(dx, perm, tshape), x, out), dgamma, dbeta


def rms_norm(x, gamma=None, *, axis=-1, eps=1e-6, out=None, relu=False, residual=None):
    """RMS norm: x / sqrt(mean(x**2) + eps) * gamma over the axes ``axis``.

    The twin of :func:`fastbn.rms_norm` (same parameters and results), in NumPy; relu and
    residual as in :func:`batch_norm_train`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> reference.rms_norm(np.array([[2.0, 4.0]]), eps=6.0)[1]      # 1 / sqrt(10 + 6)
    array([0.25])
    """
    x2, perm, tshape = _trailing(x, axis)
    invrms = 1.0 / np.sqrt((x2 * x2).mean(axis=1, keepdims=True) + eps)
    y = x2 * invrms
    if gamma is not None:
        y = y * np.reshape(gamma, -1)
    stat_shape = tshape[:x.ndim - len(_norm_axes(x, axis)[0])]
    return (_finish(_untrail(y, perm, tshape), x, out, relu, residual),
            invrms.reshape(stat_shape).astype(x.dtype))


def rms_norm_backward(dy, x, invrms, gamma=None, *, axis=-1, out=None, y=None,
                      dresidual=None):
    """dx = invrms * g - x * invrms**3 * mean(g * x), g = dy * gamma; dgamma = sum(dy * x * invrms).

    The twin of :func:`fastbn.rms_norm_backward` (same parameters and results), in NumPy; y
    and dresidual as in :func:`batch_norm_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[3.0, 4.0]])
    >>> reference.rms_norm_backward(x, x, np.array([0.2]))[0]   # 0.2 x - 0.008 x * 12.5
    array([[0.3, 0.4]])
    """
    dy = _masked(dy, y, dresidual)
    x2, perm, tshape = _trailing(x, axis)
    dy2 = _trailing(dy, axis)[0]
    r = np.reshape(invrms, (-1, 1))
    g = dy2 if gamma is None else dy2 * np.reshape(gamma, -1)
    dx = r * g - x2 * r ** 3 * (g * x2).mean(axis=1, keepdims=True)
    pshape = tshape[x.ndim - len(_norm_axes(x, axis)[0]):]
    dgamma = (dy2 * x2 * r).sum(axis=0).reshape(pshape).astype(x.dtype)
    return _finish(_untrail(dx, perm, tshape), x, out), dgamma


def _grouped(x, num_groups, axis):
    """x as (N, mid, G, C/G, inner) and the per-channel shape (1, 1, G, C/G, 1)."""
    axis = axis % x.ndim
    C = x.shape[axis]
    view = (x.shape[0], int(np.prod(x.shape[1:axis])), num_groups, C // num_groups,
            int(np.prod(x.shape[axis + 1:])))
    return np.reshape(x, view), (1, 1, num_groups, C // num_groups, 1)


def group_norm(x, num_groups, gamma=None, beta=None, *, axis=1, eps=1e-5, out=None, relu=False,
               residual=None):
    """Group norm: statistics per (sample, group of consecutive channels along ``axis``).

    The twin of :func:`fastbn.group_norm` (same parameters and results), in NumPy; relu and
    residual as in :func:`batch_norm_train`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> reference.group_norm(np.array([[1.0, 3.0, 10.0, 30.0]]), 2, eps=1e-12)[0]
    array([[-1.,  1., -1.,  1.]])
    """
    x5, ch = _grouped(x, num_groups, axis)
    red = (1, 3, 4)
    mean = x5.mean(axis=red, keepdims=True)
    invstd = 1.0 / np.sqrt(((x5 - mean) ** 2).mean(axis=red, keepdims=True) + eps)
    y = (x5 - mean) * invstd
    if gamma is not None:
        y = y * np.reshape(gamma, ch)
    if beta is not None:
        y = y + np.reshape(beta, ch)
    stat = (x.shape[0], num_groups)
    return (_finish(y.reshape(x.shape), x, out, relu, residual), mean.reshape(stat).astype(x.dtype),
            invstd.reshape(stat).astype(x.dtype))


def group_norm_backward(dy, x, mean, invstd, num_groups, gamma=None, *, axis=1, out=None,
                        y=None, dresidual=None):
    """Layer norm's gradient per (sample, group); dgamma, dbeta per channel.

    The twin of :func:`fastbn.group_norm_backward` (same parameters and results), in NumPy; y
    and dresidual as in :func:`batch_norm_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[1.0, 3.0, 10.0, 30.0]])
    >>> y, m, s = reference.group_norm(x, 2)
    >>> reference.group_norm_backward(np.ones_like(x), x, m, s, 2)[2]
    array([1., 1., 1., 1.])
    >>> y = np.array([[0.0, 1.0, -1.0, 1.0]])          # a fused forward's output
    >>> reference.group_norm_backward(np.ones_like(x), x, m, s, 2, y=y)[2]
    array([0., 1., 0., 1.])
    """
    dy = _masked(dy, y, dresidual)
    x5, ch = _grouped(x, num_groups, axis)
    dy5 = np.reshape(dy, x5.shape)
    stat = (x.shape[0], 1, num_groups, 1, 1)
    xhat = (x5 - np.reshape(mean, stat)) * np.reshape(invstd, stat)
    g = dy5 if gamma is None else dy5 * np.reshape(gamma, ch)
    red = (1, 3, 4)
    dx = np.reshape(invstd, stat) * (g - g.mean(axis=red, keepdims=True)
                                     - xhat * (g * xhat).mean(axis=red, keepdims=True))
    dgamma = (dy5 * xhat).sum(axis=(0, 1, 4)).reshape(-1).astype(x.dtype)
    dbeta = dy5.sum(axis=(0, 1, 4)).reshape(-1).astype(x.dtype)
    return _finish(dx.reshape(x.shape), x, out), dgamma, dbeta


def instance_norm(x, gamma=None, beta=None, *, axis=1, eps=1e-5, out=None, relu=False,
                  residual=None):
    """Instance norm: group norm with one channel per group.

    The twin of :func:`fastbn.instance_norm` (same parameters and results), in NumPy; relu and
    residual as in :func:`batch_norm_train`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> reference.instance_norm(np.array([[[1.0, 3.0]]]), eps=1e-12)[0]
    array([[[-1.,  1.]]])
    """
    return group_norm(x, x.shape[axis], gamma, beta, axis=axis, eps=eps, out=out, relu=relu,
                      residual=residual)


def instance_norm_backward(dy, x, mean, invstd, gamma=None, *, axis=1, out=None, y=None,
                           dresidual=None):
    """Group norm's gradient with one channel per group.

    The twin of :func:`fastbn.instance_norm_backward` (same parameters and results), in NumPy; y
    and dresidual as in :func:`batch_norm_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbn import reference
    >>> x = np.array([[[1.0, 3.0]]])
    >>> y, m, s = reference.instance_norm(x)
    >>> reference.instance_norm_backward(np.ones_like(x), x, m, s)[2]
    array([2.])
    """
    return group_norm_backward(dy, x, mean, invstd, x.shape[axis], gamma, axis=axis, out=out,
                               y=y, dresidual=dresidual)


# ---- float16 and bfloat16 ------------------------------------------------------------------------

def _half_twin(fn):
    """``fn`` for half tensors (float16, bfloat16): every array of x's half dtype is computed in
    float64, the tensor result (y or dx, the first) rounded once to that dtype and the
    per-channel ones (statistics, parameter gradients) to float32, as fastbn's kernels return
    them.  Other dtypes go to ``fn`` unchanged."""
    @functools.wraps(fn)
    def twin(*args, **kw):
        arrays = [a for a in (*args, *kw.values()) if isinstance(a, np.ndarray)]
        half = next((a.dtype for a in arrays if a.dtype.itemsize == 2 and a.dtype.kind in "fV"),
                    None)
        if half is None:
            return fn(*args, **kw)
        out, dres = kw.pop("out", None), kw.pop("dresidual", None)

        def up(a):
            return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == half else a

        kw = {k: up(a) for k, a in kw.items()}
        if dres is not None:   # the masked dy: values of dy or zeros, exact in the half dtype
            kw["dresidual"] = np.empty(dres.shape, np.float64)
        res = fn(*map(up, args), **kw)
        if dres is not None:
            dres[...] = kw["dresidual"].astype(half)
        if isinstance(res, np.ndarray):
            res = res.astype(half)
            first = res
        else:
            parts = [None if r is None else r.astype(half if i == 0 else np.float32)
                     for i, r in enumerate(res)]
            first = parts[0]
            res = type(res)(*parts) if hasattr(res, "_fields") else tuple(parts)
        if out is not None:
            out[...] = first
            if isinstance(res, np.ndarray):
                return out
            res = type(res)(out, *res[1:]) if hasattr(res, "_fields") else (out, *res[1:])
        return res
    return twin


for _name in ("batch_norm_train", "batch_norm_infer", "batch_norm_backward", "batch_norm_apply",
              "batch_norm_backward_apply", "layer_norm", "layer_norm_backward", "rms_norm",
              "rms_norm_backward", "group_norm", "group_norm_backward", "instance_norm",
              "instance_norm_backward"):
    globals()[_name] = _half_twin(globals()[_name])
del _name


def _eps_none_twin(fn):
    """``fn`` with ``eps=None`` read as the machine epsilon of x's own dtype (before the half
    twin widens x): ``ml_dtypes.finfo`` for bfloat16, ``np.finfo`` otherwise."""
    @functools.wraps(fn)
    def twin(x, *args, eps=1e-6, **kw):
        if eps is None:
            x = np.asarray(x)
            info = np.finfo if x.dtype.kind == "f" else __import__("ml_dtypes").finfo
            eps = float(info(x.dtype).eps)
        return fn(x, *args, eps=eps, **kw)
    return twin


rms_norm = _eps_none_twin(rms_norm)
