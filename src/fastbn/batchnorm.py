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
``mean`` and ``invstd = 1/sqrt(var + eps)`` (1-d, one value per channel, dtype of x; float32
for a float16 or bfloat16 x)."""

BatchNormGrads = namedtuple("BatchNormGrads", ["dx", "dgamma", "dbeta"])
BatchNormGrads.__doc__ = """Result of :func:`batch_norm_backward`: gradients with respect to x,
gamma and beta."""

_config._register(_batchnorm)

__all__ = ["batch_norm_train", "batch_norm_infer", "batch_norm_backward", "BatchNormResult",
           "BatchNormGrads"]


def _fused_args(x, relu, residual):
    """A forward's fused part checked against the validated ``x``: (relu as a bool, residual as
    given or None)."""
    return v.flag(relu, "relu"), v.like_x(residual, "residual", x)


def _train_args(x, C, dtype, gamma, beta, running_mean, running_var, out, residual=None):
    """Check a training call's per-channel arrays and ``out`` against the validated ``x``, then
    that nothing written overlaps anything else: (gamma, beta, running_mean, running_var) as
    given (None where absent).  The per-channel arrays of a half ``x`` are float32."""
    pdtype = v.param_dtype(dtype)
    g = v.optional_vector_any_order(gamma, "gamma", C, pdtype)
    b = v.optional_vector_any_order(beta, "beta", C, pdtype)
    rm = rv = None
    if running_mean is not None:
        v.require_native(running_mean, "running_mean")
        rm = v.vector(running_mean, "running_mean", C, pdtype, inplace=True)
    if running_var is not None:
        v.require_native(running_var, "running_var")
        rv = v.vector(running_var, "running_var", C, pdtype, inplace=True)
    if out is not None:
        v.output_any_order(out, "out", x.shape, dtype)
    in_place = out is not None and v.same_view(out, x)
    v.no_overlap([("out", out), ("running_mean", rm), ("running_var", rv)],
                 [("x", None if in_place else x), ("gamma", g), ("beta", b),
                  ("residual", residual)])
    return g, b, rm, rv


def _update_running(rm, rv, stats, count, momentum, who="batch_norm_train", stacklevel=3):
    """Update the running buffers from stats (3, C), warning first about channels whose
    statistics are not finite (they are skipped): under ``-W error`` the warning raises before
    anything is written.  ``who`` names the public function in the warning, ``stacklevel``
    points it at that function's caller (3: 1 here, 2 the public function, 3 its caller)."""
    C = stats.shape[1]
    skipped = _batchnorm.count_nonfinite(stats)
    if skipped:
        warnings.warn(f"{who}: {skipped} of {C} channels have non-finite batch "
                      "statistics; their running statistics were not updated",
                      RuntimeWarning, stacklevel=stacklevel)
    typenum = (rm if rm is not None else rv).dtype.num
    # unaligned buffers: updated through aligned copies (see _validation.kernel_array)
    rmk, rvk = (None if a is None or a.flags.aligned else np.array(a) for a in (rm, rv))
    _batchnorm.update_running(rm if rmk is None else rmk, rv if rvk is None else rvk, stats, count,
                              momentum, typenum)
    for a, k in ((rm, rmk), (rv, rvk)):
        if k is not None:
            np.copyto(a, k)


def batch_norm_train(x, gamma=None, beta=None, *, axis=1, eps=1e-5, running_mean=None,
                     running_var=None, momentum=0.1, out=None, relu=False, residual=None):
    """Batch-normalize ``x`` with the statistics of the batch (training mode).

    For every channel ``c`` along ``axis``, over all other axes::

        mean[c]   = mean(x[..., c, ...])
        var[c]    = mean((x[..., c, ...] - mean[c])**2)          # biased
        invstd[c] = 1 / sqrt(var[c] + eps)
        y         = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]

    then, fused into the same pass, ``y = relu(y + residual)`` where asked (see Notes).

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 2
        The batch.  Any strides and either byte order; C-contiguous native arrays take the fast
        path, others are copied first (the results are bitwise those of the C-contiguous copy).
    gamma, beta : array_like, shape (C,), optional
        Scale and shift, same dtype as ``x`` (either byte order).  None means no affine part
        (1 and 0).
    axis : int, default 1
        The channel axis: 1 for (N, C, ...) layouts, -1 for channels-last.
    eps : float, default 1e-5
        Added to the variance, > 0 (as in PyTorch: with 0 a constant channel gives inf/NaN).
    running_mean, running_var : ndarray, shape (C,), optional
        Updated in place when given, PyTorch's way:
        ``r = (1 - momentum) * r + momentum * batch``, with the unbiased variance
        (``var * n / (n - 1)``) for ``running_var``.  Channels whose batch statistics are not
        finite are left unchanged, with a RuntimeWarning.  Any strides; native byte order.
    momentum : float in [0, 1], default 0.1
    out : ndarray, optional
        Where to write ``y``: same shape and dtype as ``x`` (either byte order), sharing no
        memory with any input -- except ``out=x`` exactly (the same array or an identical view),
        which normalizes ``x`` in place with bitwise the same result.
    relu : bool, default False
        Apply a ReLU to the output (after the residual add), as ``torch.relu``.
    residual : ndarray, optional
        Added to the normalized output before the ReLU: the shape and dtype of ``x`` (any
        strides, either byte order); it may not share memory with ``out``.

    Returns
    -------
    BatchNormResult
        Named tuple ``(y, mean, invstd)``; ``mean`` and ``invstd`` are 1-d of length C in the
        dtype of ``x``.  All in native byte order; a new ``y`` has the memory order of ``x``
        (as ``np.empty_like(x)``: a Fortran-ordered ``x`` gives a Fortran-ordered ``y``).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.  A running buffer
        of non-native byte order is a TypeError.

    Warns
    -----
    RuntimeWarning
        When running buffers are given and some channel's batch statistics are not finite.  The
        warning comes *before* the running buffers are updated, so when warnings are errors
        (``python -W error``, ``warnings.simplefilter("error")``) the exception leaves both
        running buffers unchanged.  ``out``, if given, then already holds ``y``: y is written by
        the same pass that computes the statistics.

    Notes
    -----
    Statistics are accumulated in float64 by shifted sums inside cache-sized segments merged by
    Chan's formula, so data whose mean is far from zero lose no digits (relative error of the
    variance within about 1e-12).  The elementwise pass runs in the dtype of ``x`` with the mean
    split into two parts, a few ulps of the largest term (docs/accuracy.rst).  Results are
    bitwise identical for any thread count, instruction set, strides and byte order.

    The fused output is bitwise the unfused composition in the dtype of ``x``: ``t`` the
    batch-normalized output, ``t + residual`` rounded once, then ``relu(s)``: ``0`` where
    ``s < 0``, else ``s`` (NaN and -0.0 pass unchanged, as ``torch.relu``).  For float16 and
    bfloat16 that is the half-precision composition as NumPy and PyTorch compute it: ``t`` the
    unfused half output, ``t`` and ``residual`` widened to float32 (exactly), added and the ReLU
    applied in float32, then one rounding to the half type, i.e.
    ``relu(t.astype(float32) + residual.astype(float32)).astype(x.dtype)`` (the correctly
    rounded half sum: float32 holds more than twice the half types' digits).  The statistics
    and ``mean``, ``invstd`` are those of ``x`` alone.  Its gradient is
    :func:`batch_norm_backward` with ``y=`` this output.

    float16 and bfloat16 (``ml_dtypes.bfloat16``, optional): ``x``, ``y``, ``out`` and
    ``residual`` are of the half type; ``gamma``, ``beta`` and the running buffers are float32
    (an ndarray of another dtype is a TypeError, a list is converted), and ``mean``, ``invstd``
    come back float32.  The kernel is the float64 one on the widened ``x``, each output rounded
    to float32 and then to the half type: within one ulp of the exact value (docs/accuracy.rst).
    A result beyond the half range is +-inf, as ``astype`` gives.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    >>> y, mean, invstd = fastbn.batch_norm_train(x)
    >>> y.round(4)                       # (x - mean) / sqrt(var + 1e-5), var = 1 and 100
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> mean
    array([ 2., 20.], dtype=float32)
    >>> y2, _, _ = fastbn.batch_norm_train(x, out=x)   # in place: x now holds y
    >>> y2 is x and bool(np.array_equal(x, y))
    True

    Fused with a residual add and a ReLU, as in a residual block:

    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    >>> r = np.array([[0.5, 2.0], [-2.0, 0.5]], dtype=np.float32)
    >>> fastbn.batch_norm_train(x, relu=True, residual=r).y.round(4)   # relu(y + r)
    array([[0. , 1. ],
           [0. , 1.5]], dtype=float32)

    In float16, the unfused half output and the residual added in float32, rounded once:

    >>> xh, rh = x.astype(np.float16), r.astype(np.float16)
    >>> t = fastbn.batch_norm_train(xh).y
    >>> y = fastbn.batch_norm_train(xh, relu=True, residual=rh).y
    >>> y
    array([[0. , 1. ],
           [0. , 1.5]], dtype=float16)
    >>> bool(np.array_equal(y, np.maximum(t.astype(np.float32) + rh.astype(np.float32), 0)
    ...                        .astype(np.float16)))
    True
    """
    if relu is False and residual is None:   # the plain case, in Cython
        plain = _batchnorm.train_plain(x, gamma, beta, axis, eps, running_mean, running_var,
                                       momentum, _config.get_num_threads(), out)
        if plain is not None:
            y, mean, invstd, pending = plain
            if pending is not None:   # a non-finite channel: warn, then update
                _update_running(running_mean, running_var, pending, y.size // mean.shape[0],
                                momentum)
            return BatchNormResult(y, mean, invstd)
    x = v.input_array(x, "x", 2, v.BATCH_LAYOUT, half=True)
    axis = v.normalize_axis(axis, x.ndim)
    dtype = v.native_dtype(x.dtype)
    pdtype = v.param_dtype(dtype)
    outer, C, inner = _batchnorm.layout(x, axis)
    eps = v.real(eps, "eps", lo=0.0, lo_open=True)
    momentum = v.real(momentum, "momentum", lo=0.0, hi=1.0)
    count = outer * inner
    if count < 2:
        raise ValueError(f"x: expected more than 1 value per channel in training, got {count} "
                         f"(shape {x.shape}, channel axis {axis})")
    relu, res = _fused_args(x, relu, residual)
    g, b, rm, rv = _train_args(x, C, dtype, gamma, beta, running_mean, running_var, out, res)
    xk, resk = v.kernel_array(x, dtype), v.kernel_array(res, dtype)
    buf, target = v.out_buffers(out, x, dtype, away=(xk, resk))

    stats = np.empty((3, C), dtype=np.float64)   # mean, var, invstd
    if C:
        _batchnorm.train(xk, buf, outer, C, inner, v.kernel_array(g, pdtype),
                         v.kernel_array(b, pdtype), eps, stats, _config.get_num_threads(), resk,
                         relu)
    y = v.deliver(buf, target)
    if (rm is not None or rv is not None) and C:
        _update_running(rm, rv, stats, count, momentum)
    return BatchNormResult(y, stats[0].astype(pdtype), stats[2].astype(pdtype))


def batch_norm_infer(x, running_mean, running_var, gamma=None, beta=None, *, axis=1, eps=1e-5,
                     out=None, relu=False, residual=None):
    """Batch-normalize ``x`` with fixed (running) statistics (inference mode).

    ``y = (x - running_mean[c]) / sqrt(running_var[c] + eps) * gamma[c] + beta[c]``, per-channel
    coefficients in float64, the elementwise pass in the dtype of ``x`` (error bound:
    docs/accuracy.rst); then, in the same pass, ``y = relu(y + residual)`` where asked, exactly
    as :func:`batch_norm_train` defines it.

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 2
        Any strides and either byte order (others than C-contiguous native are copied first).
    running_mean, running_var : array_like, shape (C,)
        Same dtype as ``x``, either byte order.
    gamma, beta : array_like, shape (C,), optional
        None means no affine part.
    axis : int, default 1
        The channel axis.
    eps : float, default 1e-5
        Added to the variance, > 0.
    out : ndarray, optional
        Where to write ``y`` (same shape and dtype as ``x``, either byte order); shares no
        memory with any input, except ``out=x`` exactly (in place, bitwise the same result).
    relu : bool, default False
        Apply a ReLU to the output (after the residual add), as ``torch.relu``.
    residual : ndarray, optional
        Added before the ReLU: the shape and dtype of ``x`` (any strides, either byte order).

    Returns
    -------
    y : ndarray, same shape and dtype as ``x``
        Native byte order; a new ``y`` has the memory order of ``x`` (as ``np.empty_like``).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> fastbn.batch_norm_infer(x, np.array([1.0, 2.0]), np.array([3.75, 0.75]), eps=0.25)
    array([[0., 0.],
           [1., 2.]])
    >>> fastbn.batch_norm_infer(x, np.array([1.0, 2.0]), np.array([3.75, 0.75]), eps=0.25,
    ...                         relu=True, residual=np.array([[-1.0, 0.5], [-2.0, -1.0]]))
    array([[0. , 0.5],
           [0. , 1. ]])
    """
    if relu is False and residual is None:   # the plain case, in Cython
        y = _batchnorm.infer_plain(x, running_mean, running_var, gamma, beta, axis, eps,
                                   _config.get_num_threads(), out)
        if y is not None:
            return y
    x = v.input_array(x, "x", 2, v.BATCH_LAYOUT, half=True)
    axis = v.normalize_axis(axis, x.ndim)
    dtype, C = v.native_dtype(x.dtype), x.shape[axis]
    pdtype = v.param_dtype(dtype)
    eps = v.real(eps, "eps", lo=0.0, lo_open=True)
    rm = v.vector_any_order(running_mean, "running_mean", C, pdtype)
    rv = v.vector_any_order(running_var, "running_var", C, pdtype)
    g = v.optional_vector_any_order(gamma, "gamma", C, pdtype)
    b = v.optional_vector_any_order(beta, "beta", C, pdtype)
    relu, res = _fused_args(x, relu, residual)
    if out is not None:
        v.output_any_order(out, "out", x.shape, dtype)
    in_place = out is not None and v.same_view(out, x)
    v.no_overlap([("out", out)], [("x", None if in_place else x), ("running_mean", rm),
                                  ("running_var", rv), ("gamma", g), ("beta", b),
                                  ("residual", res)])
    xk, resk = v.kernel_array(x, dtype), v.kernel_array(res, dtype)
    buf, target = v.out_buffers(out, x, dtype, away=(xk, resk))
    if x.size:
        outer, C, inner = _batchnorm.layout(x, axis)
        _batchnorm.infer(xk, buf, outer, C, inner, v.kernel_array(rm, pdtype),
                         v.kernel_array(rv, pdtype), v.kernel_array(g, pdtype),
                         v.kernel_array(b, pdtype), eps, _config.get_num_threads(), resk, relu)
    return v.deliver(buf, target)


def batch_norm_backward(dy, x, mean, invstd, gamma=None, *, axis=1, out=None, y=None,
                        dresidual=None):
    """Gradients of training-mode batch norm, through the batch statistics.

    With ``xhat = (x - mean) * invstd`` and ``n`` values per channel::

        dbeta  = sum(dy)
        dgamma = sum(dy * xhat)
        dx     = gamma * invstd * (dy - dbeta / n - xhat * dgamma / n)

    Through a fused ReLU (``y`` given), ``dy`` is first replaced by 0 where ``y <= 0``, in the
    same passes (see Notes), and ``dresidual`` receives it.

    Parameters
    ----------
    dy : ndarray of float32, float64, float16 or bfloat16
        Gradient of the loss with respect to ``y``; same shape and dtype as ``x``.
    x : ndarray
        The input of the forward pass.  ``dy`` and ``x``: any strides, either byte order.
    mean, invstd : array_like, shape (C,)
        As returned by :func:`batch_norm_train`; same dtype as ``x``, either byte order.
    gamma : array_like, shape (C,), optional
        The scale of the forward pass; None means 1.
    axis : int, default 1
    out : ndarray, optional
        Where to write ``dx`` (same shape and dtype as ``x``, either byte order); shares no
        memory with any input, except ``out=dy`` exactly (``dy`` is then overwritten by ``dx``,
        bitwise the same result).
    y : ndarray, optional
        The output of a forward with ``relu=True`` (shape and dtype of ``x``, any strides, either
        byte order): ``dy`` is masked by it, the gradient through the ReLU.  Without a ReLU in
        the forward (only a residual), leave it None.
    dresidual : ndarray, optional
        An output (shape and dtype of ``x``, writeable, either byte order, sharing no memory
        with any other argument) that receives the gradient of the residual: the masked ``dy``
        (``dy`` itself without ``y``).

    Returns
    -------
    BatchNormGrads
        Named tuple ``(dx, dgamma, dbeta)``; ``dgamma`` and ``dbeta`` are 1-d of length C (also
        when ``gamma`` is None: they are then the gradients an affine layer would get).  All in
        native byte order; a new ``dx`` has the memory order of ``x`` (as ``np.empty_like``).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Notes
    -----
    The mask is PyTorch's ``threshold_backward(dy, y, 0)`` exactly: ``0`` where ``y <= 0``
    (``0.0`` and ``-0.0`` included) and ``dy`` elsewhere -- also where ``y`` is NaN.  The
    results are bitwise those of the unfused call on the masked ``dy``.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> y, mean, invstd = fastbn.batch_norm_train(x)
    >>> dx, dgamma, dbeta = fastbn.batch_norm_backward(np.ones_like(x), x, mean, invstd)
    >>> dx
    array([[0., 0.],
           [0., 0.]])
    >>> dbeta
    array([2., 2.])

    Through a fused ReLU and residual add, the residual's gradient in ``dresidual``:

    >>> r = np.array([[0.5, 2.0], [-2.0, 0.5]])
    >>> y, mean, invstd = fastbn.batch_norm_train(x, relu=True, residual=r)
    >>> dres = np.empty_like(x)
    >>> grads = fastbn.batch_norm_backward(np.ones_like(x), x, mean, invstd, y=y, dresidual=dres)
    >>> dres                             # dy where y > 0
    array([[0., 1.],
           [0., 1.]])
    >>> grads.dbeta
    array([0., 2.])
    """
    if y is None and dresidual is None:   # the plain case, in Cython
        plain = _batchnorm.backward_plain(dy, x, mean, invstd, gamma, axis,
                                          _config.get_num_threads(), out)
        if plain is not None:
            return BatchNormGrads(*plain)
    x = v.input_array(x, "x", 2, v.BATCH_LAYOUT, half=True)
    dy = v.float_array_any_order(dy, "dy", half=True)
    v.same_dtype_any_order(dy, "dy", x.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    axis = v.normalize_axis(axis, x.ndim)
    dtype = v.native_dtype(x.dtype)
    pdtype = v.param_dtype(dtype)
    outer, C, inner = _batchnorm.layout(x, axis)
    mean = v.vector_any_order(mean, "mean", C, pdtype)
    invstd = v.vector_any_order(invstd, "invstd", C, pdtype)
    g = v.optional_vector_any_order(gamma, "gamma", C, pdtype)
    y = v.like_x(y, "y", x)
    if outer * inner < 1:
        raise ValueError(f"x: expected a non-empty batch, got shape {x.shape}")
    if out is not None:
        v.output_any_order(out, "out", x.shape, dtype)
    if dresidual is not None:
        v.output_any_order(dresidual, "dresidual", x.shape, dtype)
    in_place = out is not None and v.same_view(out, dy)
    v.no_overlap([("out", out), ("dresidual", dresidual)],
                 [("dy", None if in_place else dy), ("x", x), ("mean", mean), ("invstd", invstd),
                  ("gamma", g), ("y", y)])
    dyk, xk, yk = v.kernel_array(dy, dtype), v.kernel_array(x, dtype), v.kernel_array(y, dtype)
    buf, target = v.out_buffers(out, x, dtype, away=(dyk, xk, yk))
    dbuf, dtarget = ((None, None) if dresidual is None
                     else v.out_buffers(dresidual, x, dtype, away=(dyk, xk, yk)))
    grads = np.empty((2, C), dtype=np.float64)   # dgamma, dbeta
    if C:
        m = v.kernel_array(mean, np.float64)
        s = v.kernel_array(invstd, np.float64)
        _batchnorm.backward(dyk, xk, buf, outer, C, inner, m, s, v.kernel_array(g, pdtype), grads,
                            _config.get_num_threads(), yk, dbuf)
    if dresidual is not None:
        v.deliver(dbuf, dtarget)
    return BatchNormGrads(v.deliver(buf, target), grads[0].astype(pdtype), grads[1].astype(pdtype))
