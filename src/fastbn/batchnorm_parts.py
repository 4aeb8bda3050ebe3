"""Batch norm split into its parts, for statistics computed over several processes.

:func:`~fastbn.batch_norm_train` is one fused call: statistics of ``x``, then the normalization.
Data-parallel training needs the statistics of the *global* batch, whose shards live in other
processes, so here the two are separate calls, with the communication (any engine: mpi4py,
Dask, Ray, torch.distributed; :mod:`fastbn.distributed` does it on MPI) in between::

    local = batch_norm_stats(x)                       # per channel: count, mean, M2 (float64)
    gathered = <every process's local stats>          # (P, C) each, in rank order
    count, mean, m2 = merge_stats(*gathered)          # the same bits on every process
    invstd = 1 / np.sqrt(m2 / count + eps)
    y = batch_norm_apply(x, mean, invstd, gamma, beta)

and backward::

    sums = batch_norm_backward_reduce(dy, x, mean, invstd)   # sum(dy), sum(dy * xhat)
    sum_dy, sum_dy_xhat = <the sums of every process, added in rank order>
    dx = batch_norm_backward_apply(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, count)

On one process these compose to bitwise the results of :func:`~fastbn.batch_norm_train` and
:func:`~fastbn.batch_norm_backward` (the same kernels, the same float64 coefficients).  Statistics
are merged as (count, mean, M2), not (mean, invstd) nor (E[x], E[x^2]): no precision is lost at
a variance near ``eps`` or a mean far from zero.  float16 and bfloat16 ``x`` and ``dy`` take
float32 ``gamma`` and ``beta`` (the statistics and sums are float64 as for any dtype).
"""
import numpy as np

from fastbn import _batchnorm, _config
from fastbn import _validation as v
from fastbn.batchnorm import _update_running

__all__ = ["batch_norm_stats", "merge_stats", "batch_norm_apply", "update_running_stats",
           "batch_norm_backward_reduce", "batch_norm_backward_apply"]

_k = _batchnorm   # the kernels: moments, apply, grad_sums, grad_apply


def _stats_vector(a, name, C):
    """A per-channel statistic (float32 or float64, shape (C,), either byte order) as the
    kernels read it: float64, C-contiguous, aligned."""
    a = v.float_array_any_order(a, name)
    if a.shape != (C,):
        raise ValueError(f"{name}: expected shape ({C},) (one value per channel), got {a.shape}")
    return v.kernel_array(a, np.float64)


def _nd(a):
    """``a`` if it is an ndarray (caller memory that ``out`` could overlap), else None."""
    return a if isinstance(a, np.ndarray) else None


_MAX_COUNT = 2.0 ** 53   # counts are float64 here and int64 in C: every whole one up to here


def _count(count, name, C, minimum):
    """``count`` (a number, or one per channel, all equal, as :func:`merge_stats` returns it)
    as a Python float: a whole number >= ``minimum``."""
    if isinstance(count, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a number or an array of {C} numbers, got a bool")
    try:
        a = np.asarray(count, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a number or an array of {C} numbers ({e})") from None
    if a.shape not in ((), (C,)):
        raise ValueError(f"{name}: expected a number or shape ({C},), got shape {a.shape}")
    if a.size == 0:       # C == 0: no channel, nothing is counted
        return float(minimum)
    n = float(a.flat[0])
    if not np.all(a == n):
        raise ValueError(f"{name}: expected the same count for every channel, got {a.min():g} "
                         f"to {a.max():g}")
    if not (np.isfinite(n) and n == np.floor(n) and minimum <= n <= _MAX_COUNT):
        raise ValueError(f"{name}: expected a whole number >= {minimum} and <= 2**53, got {n!r}")
    return n


def _layout(x, axis):
    """(x, axis, dtype, outer, C, inner) of a validated batch."""
    x = v.input_array(x, "x", 2, v.BATCH_LAYOUT, half=True)
    axis = v.normalize_axis(axis, x.ndim)
    return x, axis, v.native_dtype(x.dtype), *_batchnorm.layout(x, axis)


def batch_norm_stats(x, *, axis=1):
    """Per-channel count, mean and M2 (sum of squared deviations) of a batch, in float64.

    The first half of :func:`~fastbn.batch_norm_train`: the same kernel computes the same
    statistics (``var = m2 / count``).  A shard with no rows is allowed: its count is 0 (and
    its mean and M2 are 0), so :func:`merge_stats` skips it.

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 2
        The (local shard of the) batch; any strides and either byte order.
    axis : int, default 1
        The channel axis: 1 for (N, C, ...) layouts, -1 for channels-last.

    Returns
    -------
    count, mean, m2 : ndarray of float64, shape (C,)
        ``count`` is the number of values per channel (the same for every channel, kept per
        channel so that the three travel as one (3, C) message).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    >>> count, mean, m2 = fastbn.batch_norm_stats(x)
    >>> count, mean, m2
    (array([3., 3.]), array([ 3., 30.]), array([  8., 800.]))
    >>> fastbn.batch_norm_stats(x[:0])               # an empty shard
    (array([0., 0.]), array([0., 0.]), array([0., 0.]))
    """
    x, axis, dtype, outer, C, inner = _layout(x, axis)
    mean, m2 = np.zeros(C), np.zeros(C)
    count = outer * inner
    if C and count:
        _k.moments(v.kernel_array(x, dtype), outer, C, inner, mean, m2, _config.get_num_threads())
    return np.full(C, float(count)), mean, m2


def _shard_array(a, name, shape=None):
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected an array of numbers, shape (shards, C) ({e})") from None
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array (shards, C), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name}: expected the shape of counts {shape}, got {a.shape}")
    return a


def merge_stats(counts, means, m2s):
    """Merge per-shard statistics into those of the union, shard by shard in order.

    Chan, Golub and LeVeque's pairwise update, per channel in float64: folding shard ``k`` into
    the running ``(n, mean, m2)``::

        delta = mean_k - mean
        mean += delta * (n_k / (n + n_k))
        m2   += m2_k + delta**2 * (n * n_k / (n + n_k))
        n    += n_k

    Shards with count 0 are skipped (the first non-empty one is taken as it is), so empty shards
    never produce a NaN.  The order is fixed, so every process that merges the same inputs gets
    bitwise the same result.  A NaN in one shard's channel makes that channel NaN only.

    Parameters
    ----------
    counts, means, m2s : array_like, shape (shards, C)
        As returned by :func:`batch_norm_stats`, one row per shard (converted to float64).
        ``counts`` are whole numbers >= 0 (and at most 2**53, float64's last exact one).

    Returns
    -------
    count, mean, m2 : ndarray of float64, shape (C,)
        The statistics of all shards together; ``var = m2 / count``.  With no non-empty shard
        in a channel its count, mean and m2 are 0.

    Raises
    ------
    TypeError, ValueError
        For arguments that are not numbers, of other shapes, or negative or fractional counts.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0], [2.0], [4.0], [8.0], [16.0]])
    >>> shards = [fastbn.batch_norm_stats(s) for s in (x[:2], x[2:2], x[2:])]
    >>> count, mean, m2 = fastbn.merge_stats(*(np.stack(s) for s in zip(*shards)))
    >>> count, mean, m2 / count                     # as numpy on the whole batch
    (array([5.]), array([6.2]), array([29.76]))
    >>> bool(np.isclose(mean[0], x.mean()) and np.isclose(m2[0] / count[0], x.var()))
    True
    """
    counts = _shard_array(counts, "counts")
    means = _shard_array(means, "means", counts.shape)
    m2s = _shard_array(m2s, "m2s", counts.shape)
    if not np.all((counts >= 0) & (counts == np.floor(counts)) & (counts <= _MAX_COUNT)):
        raise ValueError("counts: expected whole numbers >= 0 and <= 2**53")
    n, mean, m2 = (np.zeros(counts.shape[1]) for _ in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):   # the skipped lanes only
        for nk, mk, qk in zip(counts, means, m2s):
            first, add = (n == 0) & (nk > 0), (n > 0) & (nk > 0)
            nt = n + nk
            delta = mk - mean
            step_mean = mean + delta * (nk / nt)
            # finite means more than DBL_MAX apart: delta is inf, the weighted average is not
            # (M2, beyond float64's range there, is inf)
            wide = ~np.isfinite(delta) & np.isfinite(mk) & np.isfinite(mean)
            if wide.any():
                step_mean = np.where(wide, mean * (n / nt) + mk * (nk / nt), step_mean)
            step_m2 = m2 + (qk + delta * delta * (n * nk / nt))
            mean = np.where(first, mk, np.where(add, step_mean, mean))
            # a first shard with a NaN or inf mean spoils its m2 too, as a later one does
            m2 = np.where(first, np.where(np.isfinite(mk), qk, np.nan), np.where(add, step_m2, m2))
            n = nt
    return n, mean, m2


def batch_norm_apply(x, mean, invstd, gamma=None, beta=None, *, axis=1, out=None):
    """Normalize ``x`` with given statistics: ``y = (x - mean) * invstd * gamma + beta``.

    The second half of :func:`~fastbn.batch_norm_train`, the same elementwise pass (float64
    coefficients, the dtype of ``x`` per element; error bound: docs/accuracy.rst).  With the
    statistics of ``x`` itself, ``invstd = 1 / np.sqrt(m2 / count + eps)`` in float64, ``y`` is
    bitwise that of ``batch_norm_train``.

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 2
        Any strides, either byte order; may be empty.
    mean, invstd : array_like, shape (C,)
        float32 or float64 (used in float64), e.g. from :func:`merge_stats`.
    gamma, beta : array_like, shape (C,), optional
        Same dtype as ``x``; None means 1 and 0.
    axis : int, default 1
    out : ndarray, optional
        Where to write ``y`` (same shape and dtype as ``x``); shares no memory with any input,
        except ``out=x`` exactly (in place).

    Returns
    -------
    y : ndarray, same shape and dtype as ``x``
        Native byte order; a new ``y`` has the memory order of ``x``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> fastbn.batch_norm_apply(x, mean=[2.0, 20.0], invstd=[1.0, 0.1], beta=[0.0, 5.0])
    array([[-1.,  4.],
           [ 1.,  6.]])
    """
    x, axis, dtype, outer, C, inner = _layout(x, axis)
    m = _stats_vector(mean, "mean", C)
    s = _stats_vector(invstd, "invstd", C)
    pdtype = v.param_dtype(dtype)   # float32 for half x
    g = v.optional_vector_any_order(gamma, "gamma", C, pdtype)
    b = v.optional_vector_any_order(beta, "beta", C, pdtype)
    if out is not None:
        v.output_any_order(out, "out", x.shape, dtype)
    in_place = out is not None and v.same_view(out, x)
    v.no_overlap([("out", out)], [("x", None if in_place else x), ("mean", _nd(mean)),
                                  ("invstd", _nd(invstd)), ("gamma", g), ("beta", b)])
    xk = v.kernel_array(x, dtype)
    buf, target = v.out_buffers(out, x, dtype, away=(xk,))
    if x.size:
        _k.apply(xk, buf, outer, C, inner, m, s, v.kernel_array(g, pdtype),
                 v.kernel_array(b, pdtype), _config.get_num_threads())
    return v.deliver(buf, target)


def update_running_stats(running_mean, running_var, count, mean, m2, *, momentum=0.1):
    """Update running statistics in place from (merged) batch statistics, PyTorch's way.

    ``r = (1 - momentum) * r + momentum * batch``, with ``mean`` for ``running_mean`` and the
    unbiased variance ``m2 / (count - 1)`` for ``running_var``: bitwise the update
    :func:`~fastbn.batch_norm_train` makes from the same statistics.  Channels whose statistics
    are not finite are left unchanged, with a RuntimeWarning (issued before anything is
    written).

    Parameters
    ----------
    running_mean, running_var : ndarray of float32 or float64, shape (C,), or None
        Updated in place (None: not updated); native byte order, any strides, same dtype.
    count : int or array_like of shape (C,)
        Values per channel, >= 2 (as :func:`merge_stats` returns it: all entries equal); one
        value has no unbiased variance, and batch norm refuses to train on it.
    mean, m2 : array_like, shape (C,)
        Mean and sum of squared deviations, e.g. from :func:`merge_stats`.
    momentum : float in [0, 1], default 0.1

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Warns
    -----
    RuntimeWarning
        When some channel's statistics are not finite.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> rm, rv = np.zeros(1), np.ones(1)
    >>> fastbn.update_running_stats(rm, rv, [3.0], [2.0], [8.0], momentum=0.5)
    >>> rm, rv                                 # 0.5 * 0 + 0.5 * 2, 0.5 * 1 + 0.5 * 8 / 2
    (array([1.]), array([2.5]))
    """
    if running_mean is None and running_var is None:
        raise ValueError("running_mean: expected a buffer to update (running_mean and "
                         "running_var are both None)")
    first = running_mean if running_mean is not None else running_var
    name = "running_mean" if running_mean is not None else "running_var"
    if not isinstance(first, np.ndarray):
        raise TypeError(f"{name}: expected a writeable numpy array (it is updated in place), "
                        f"got {type(first).__name__}")
    v.require_native(first, name)
    if first.dtype not in v.FLOAT_DTYPES or first.ndim != 1:
        raise TypeError(f"{name}: expected a 1-d float32 or float64 array, got dtype "
                        f"{first.dtype} and shape {first.shape}")
    dtype, C = first.dtype, first.shape[0]
    rm = rv = None
    if running_mean is not None:
        rm = v.vector(running_mean, "running_mean", C, dtype, inplace=True, of=name)
    if running_var is not None:
        v.require_native(running_var, "running_var")
        rv = v.vector(running_var, "running_var", C, dtype, inplace=True, of=name)
        if rm is not None and np.shares_memory(rm, rv):
            raise ValueError("running_var: must not share memory with running_mean")
    n = _count(count, "count", C, 2)
    mu = _stats_vector(mean, "mean", C)
    q = _stats_vector(m2, "m2", C)
    momentum = v.real(momentum, "momentum", lo=0.0, hi=1.0)
    if not C:
        return
    stats = np.empty((3, C))   # mean, var, (invstd: unused) as batch_norm_train's kernel gives
    stats[0], stats[1], stats[2] = mu, q / n, 0.0
    _update_running(rm, rv, stats, int(n), momentum, who="update_running_stats")


def _grad_inputs(dy, x, mean, invstd, axis):
    x, axis, dtype, outer, C, inner = _layout(x, axis)
    dy = v.float_array_any_order(dy, "dy", half=True)
    v.same_dtype_any_order(dy, "dy", x.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    return (x, dy, axis, dtype, outer, C, inner, _stats_vector(mean, "mean", C),
            _stats_vector(invstd, "invstd", C))


def batch_norm_backward_reduce(dy, x, mean, invstd, *, axis=1):
    """The per-channel sums of the batch-norm backward pass: ``sum(dy)`` and ``sum(dy * xhat)``.

    With ``xhat = (x - mean) * invstd`` and the batch's ``mean`` and ``invstd``.  These are
    ``dbeta`` and ``dgamma`` of the local shard; summed over all shards they are the global
    ``dbeta`` and ``dgamma``, and the input of :func:`batch_norm_backward_apply`.

    Parameters
    ----------
    dy, x : ndarray of float32, float64, float16 or bfloat16, same shape and dtype
        The output gradient and the input of the forward pass (any strides, either byte order;
        may be empty: the sums are then 0).
    mean, invstd : array_like, shape (C,)
        The statistics the forward pass used (float32 or float64).
    axis : int, default 1

    Returns
    -------
    sum_dy, sum_dy_xhat : ndarray of float64, shape (C,)

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0], [3.0]])
    >>> dy = np.array([[1.0], [2.0]])
    >>> fastbn.batch_norm_backward_reduce(dy, x, mean=[2.0], invstd=[1.0])   # xhat = -1, 1
    (array([3.]), array([1.]))
    """
    x, dy, axis, dtype, outer, C, inner, m, s = _grad_inputs(dy, x, mean, invstd, axis)
    sum_dy, sum_dy_xmu = _grad_sums(dy, x, dtype, outer, C, inner, m, s)
    if not outer * inner:           # no values: both sums are 0, whatever invstd is
        return sum_dy, sum_dy_xmu
    return sum_dy, sum_dy_xmu * s   # exactly how batch_norm_backward makes dgamma


def _grad_sums(dy, x, dtype, outer, C, inner, m, s):
    """The kernel's sums of validated inputs: sum(dy) and sum(dy * (x - mean)), float64.  (The
    second times invstd is sum(dy * xhat); the kernels take it unscaled, which is what makes
    their dx bitwise batch_norm_backward's.)"""
    sum_dy, sum_dy_xmu = np.zeros(C), np.zeros(C)
    if x.size:
        _k.grad_sums(v.kernel_array(dy, dtype), v.kernel_array(x, dtype), outer, C, inner, m, s,
                     sum_dy, sum_dy_xmu, _config.get_num_threads())
    return sum_dy, sum_dy_xmu


def _grad_apply(dy, x, dtype, outer, C, inner, m, s, g, sum_dy, sum_dy_xmu, count, out):
    """dx from validated inputs and the (global) sums of _grad_sums over ``count`` values."""
    dyk, xk = v.kernel_array(dy, dtype), v.kernel_array(x, dtype)
    buf, target = v.out_buffers(out, x, dtype, away=(dyk, xk))
    if x.size:
        _k.grad_apply(dyk, xk, buf, outer, C, inner, m, s, v.kernel_array(g, v.param_dtype(dtype)),
                      sum_dy, sum_dy_xmu, int(count), _config.get_num_threads())
    return v.deliver(buf, target)


def batch_norm_backward_apply(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, count, *, axis=1,
                              out=None):
    """dL/dx of batch norm from the (global) sums of :func:`batch_norm_backward_reduce`.

    ``dx = gamma * invstd * (dy - sum_dy / count - xhat * sum_dy_xhat / count)``, the elementwise
    pass of :func:`~fastbn.batch_norm_backward` (float64 coefficients; error bound:
    docs/accuracy.rst).  With the sums of ``x`` itself and ``count`` its values per channel,
    ``dx`` equals that of ``batch_norm_backward`` up to the rounding of
    ``sum_dy_xhat / invstd`` (the kernel's coefficients are formed from the unscaled sum
    ``sum(dy * (x - mean))``; :func:`fastbn.distributed.sync_batch_norm_backward` reduces that
    one and is bitwise ``batch_norm_backward`` on one process).

    Parameters
    ----------
    dy, x : ndarray of float32, float64, float16 or bfloat16, same shape and dtype
        Any strides, either byte order; may be empty.
    mean, invstd : array_like, shape (C,)
        The statistics the forward pass used (float32 or float64).
    gamma : array_like, shape (C,), or None
        The scale of the forward pass (dtype of ``x``); None means 1.
    sum_dy, sum_dy_xhat : array_like, shape (C,)
        The sums over the whole (global) batch.
    count : int or array_like of shape (C,)
        Values per channel in the whole batch (all entries equal), at least those of ``x``
        and at least 1.
    axis : int, default 1
    out : ndarray, optional
        Where to write ``dx``; shares no memory with any input, except ``out=dy`` exactly.

    Returns
    -------
    dx : ndarray, same shape and dtype as ``x``

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x, dy = np.array([[1.0], [3.0]]), np.array([[1.0], [2.0]])
    >>> fastbn.batch_norm_backward_apply(dy, x, [2.0], [1.0], None, [3.0], [1.0], 2)
    array([[0.],
           [0.]])
    """
    x, dy, axis, dtype, outer, C, inner, m, s = _grad_inputs(dy, x, mean, invstd, axis)
    g = v.optional_vector_any_order(gamma, "gamma", C, v.param_dtype(dtype))
    sdy = _stats_vector(sum_dy, "sum_dy", C)
    sdyx = _stats_vector(sum_dy_xhat, "sum_dy_xhat", C)
    n = _count(count, "count", C, max(1, outer * inner))
    if out is not None:
        v.output_any_order(out, "out", x.shape, dtype)
    in_place = out is not None and v.same_view(out, dy)
    v.no_overlap([("out", out)], [("dy", None if in_place else dy), ("x", x),
                                  ("mean", _nd(mean)), ("invstd", _nd(invstd)), ("gamma", g),
                                  ("sum_dy", _nd(sum_dy)), ("sum_dy_xhat", _nd(sum_dy_xhat))])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sum_dy_xmu = sdyx / s
    # invstd 0 (an infinite variance): the xhat term is 0, and 0/0 or x/0 here must not make dx NaN
    sum_dy_xmu[(s == 0) & np.isfinite(sdyx)] = 0.0
    # an invstd so small that sum_dy_xhat / invstd overflows (a caller's value: no finite variance
    # gives one below 7e-155), or above 1 with sum_dy_xhat / invstd below the normal range (its
    # digits lost, the kernel multiplies it back by invstd**2): those channels are formed from
    # sum_dy_xhat itself, before the kernel may write over dy; the others keep the kernel's bits
    lost = (np.abs(sum_dy_xmu) < np.finfo(np.float64).tiny) & (sdyx != 0) & (np.abs(s) > 1)
    tiny = np.flatnonzero((~np.isfinite(sum_dy_xmu) | lost) & np.isfinite(sdyx) & np.isfinite(s))
    fixed = [_tiny_invstd_dx(dy, x, axis, c, m, s, g, sdy, sdyx, n, dtype) for c in tiny]
    sum_dy_xmu[tiny] = 0.0
    dx = _grad_apply(dy, x, dtype, outer, C, inner, m, s, g, sdy, sum_dy_xmu, n, out)
    for c, vals in zip(tiny, fixed):
        dx[(slice(None),) * axis + (c,)] = vals
    return dx


def _tiny_invstd_dx(dy, x, axis, c, m, s, g, sdy, sdyx, n, dtype):
    """dx of channel ``c`` as gamma invstd ((dy - sum_dy / n) - xhat * sum_dy_xhat / n), xhat =
    (x - mean) invstd, in float64 with every factor split by frexp into a mantissa and a power
    of two, so that no product over- or underflows before the result (xhat * sum_dy_xhat / n
    may pass DBL_MAX where gamma invstd brings dx back), rounded once to ``dtype``."""
    at = (slice(None),) * axis + (c,)
    d64, x64 = np.asarray(dy[at], np.float64), np.asarray(x[at], np.float64)
    gi = (1.0 if g is None else float(g[c])) * s[c]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        a, xm = d64 - sdy[c] / n, x64 - m[c]
        k = 0 if np.all(np.isfinite(a) & np.isfinite(xm)) else 32   # beyond DBL_MAX: 2**-32 of them
        fa, ea = np.frexp(np.ldexp(d64, -k) - np.ldexp(sdy[c] / n, -k) if k else a)
        fx, ex = np.frexp(np.ldexp(x64, -k) - np.ldexp(m[c], -k) if k else xm)
        fi, ei = np.frexp(s[c])
        fq, eq = np.frexp(sdyx[c])          # / n after the split: a subnormal sum stays exact
        fg, eg = np.frexp(gi)
        fb, eb = fx * (fi * (fq / n)), ex + ei + eq     # xhat * sum_dy_xhat / n, times 2**-k
        e = np.maximum(ea, eb)
        diff = np.ldexp(fa, ea - e) - np.ldexp(fb, eb - e)
        return np.ldexp(fg * diff, eg + e + k).astype(dtype)
