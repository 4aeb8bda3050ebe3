"""Layer, RMS, group and instance normalization for NumPy arrays, on one core.

Every function here is statistics per group of an (outer, mid, G, Cg, inner) view of ``x`` and an
affine step per channel (``csrc/norm.h``).  One validator per public function builds a plan -- the
view, the axes, the dtype, the shapes of the statistics and the parameters -- with the checks
written once in this module and shared by all the norms; the kernels are reached through the
Cython module ``fastbn._norm``.  The plain-NumPy twins are in :mod:`fastbn.reference`.

float16 and bfloat16 ``x`` (and ``dy``, ``out``): gamma, beta, mean and invstd are float32, as
are the returned statistics and parameter gradients; the work is the float64 kernel's, each
output rounded to float32 and then to the half type: within one ulp (docs/accuracy.rst).
"""
import math
from collections import namedtuple

import numpy as np

from fastbn import _config, _norm
from fastbn import _validation as v

_config._register(_norm)

__all__ = ["layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "group_norm",
           "group_norm_backward", "instance_norm", "instance_norm_backward"]

# view: (outer, mid, G, Cg, inner) of the kernel array; perm: the transpose of x that the kernel
# array is (None: x itself); stat_shape, param_shape: of mean/invstd and of gamma/beta; what: how
# param_shape is described in messages.
_Plan = namedtuple("_Plan", ["dtype", "view", "perm", "stat_shape", "param_shape", "what"])


def _axes(axis, ndim):
    """The normalized axes: an int or a tuple (or list) of ints, each in range, none twice;
    returned in increasing order."""
    if not isinstance(axis, (tuple, list)):   # one axis: the common case, no set or sort
        return [v.normalize_axis(axis, ndim)]
    items = list(axis)
    if not items:
        raise ValueError("axis: expected at least one axis, got an empty sequence")
    axes = [v.normalize_axis(a, ndim) for a in items]
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis: expected distinct axes, got {axis!r} (for a {ndim}-d array)")
    return sorted(axes)


def _trailing_plan(x, axis):
    """Layer and RMS norm: statistics over the axes `axis`, per index of the others."""
    x = v.input_array(x, "x", 1, half=True)
    nd, shape = x.ndim, x.shape
    axes = _axes(axis, nd)
    k = nd - len(axes)
    if axes[0] == k:   # the trailing axes (sorted, distinct): x as it is, no transpose
        rest, perm, param_shape, stat_shape = None, None, shape[k:], shape[:k]
    else:
        rest = [i for i in range(nd) if i not in axes]
        perm = tuple(rest + axes)
        param_shape = tuple([shape[a] for a in axes])
        stat_shape = tuple([shape[i] for i in rest])
    D = math.prod(param_shape)
    if D == 0:
        raise ValueError(f"x: the normalized axes {tuple(axes)} hold no values (shape {shape})")
    plan = _Plan(v.native_dtype(x.dtype), (math.prod(stat_shape), 1, 1, D, 1), perm, stat_shape,
                 param_shape, "the shape of the normalized axes of x")
    return x, plan


def _group_plan(x, num_groups, axis, instance=False):
    """Group norm (instance norm: ``instance``, one channel per group): statistics per
    (sample along axis 0, group of channels along `axis`)."""
    x = v.input_array(x, "x", 2, half=True)
    axis = v.normalize_axis(axis, x.ndim)
    if axis == 0:
        raise ValueError("axis: expected a channel axis other than 0 (axis 0 is the samples)")
    C = x.shape[axis]
    if instance:   # not num_groups=None: group_norm(x, None) is refused, not instance norm
        G = C
    else:
        G = v.integer(num_groups, "num_groups", minimum=1)
        if C % G:
            raise ValueError(f"num_groups: expected a divisor of the {C} channels along axis "
                             f"{axis}, got {G}")
    mid, inner = math.prod(x.shape[1:axis]), math.prod(x.shape[axis + 1:])
    if C == 0 or mid * inner == 0:
        raise ValueError(f"x: the groups hold no values (shape {x.shape}, channel axis {axis})")
    plan = _Plan(v.native_dtype(x.dtype), (x.shape[0], mid, G, C // G, inner), None,
                 (x.shape[0], G), (C,), "one value per channel")
    return x, plan


def _shaped(a, name, dtype, shape, what):
    """``a`` checked to be of ``dtype`` (either byte order) and ``shape``, as given (for the
    overlap checks); ``what`` says in a message where the shape comes from."""
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a, dtype=dtype)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name}: expected an array of shape {shape} ({e})") from None
    v.same_dtype_any_order(a, name, dtype)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} ({what}), got {a.shape}")
    return a


def _param(a, name, plan):
    """``a`` (gamma or beta, or None) checked against the plan."""
    return None if a is None else _shaped(a, name, v.param_dtype(plan.dtype), plan.param_shape,
                                          plan.what)


def _stat(a, name, plan):
    """A statistic of the forward pass (mean, invstd, invrms): the plan's stat_shape, x's dtype
    (float32 for a half x)."""
    return _shaped(a, name, v.param_dtype(plan.dtype), plan.stat_shape,
                   "as the forward pass returns it")


def _forward(x, plan, gamma, beta, eps, out, centered, relu=False, residual=None, var_out=False):
    """Validate the rest of a forward call, then run it: (y, mean, invstd) in x's dtype (mean,
    invstd float32 for a half x); y = relu(norm(x) + residual) where asked (batch norm's fused
    epilogue).  var_out: also the float64 mean and variance, (y, mean, invstd, mean64, var64)."""
    pdtype = v.param_dtype(plan.dtype)
    g = _param(gamma, "gamma", plan)
    b = _param(beta, "beta", plan)
    eps = v.real(eps, "eps", lo=0.0, lo_open=True)
    relu = v.flag(relu, "relu")
    res = v.like_x(residual, "residual", x)
    if out is not None:
        v.output_any_order(out, "out", x.shape, plan.dtype)
    in_place = out is not None and v.same_view(out, x)
    v.no_overlap([("out", out)], [("x", None if in_place else x), ("gamma", g), ("beta", b),
                                  ("residual", res)])
    xk = v.kernel_array(x, plan.dtype, plan.perm)
    resk = v.kernel_array(res, plan.dtype, plan.perm)
    buf, target = v.out_buffers(out, x, plan.dtype, plan.perm, away=(xk, resk))
    n_stats = plan.view[0] * plan.view[2]
    mean, invstd = np.empty(n_stats), np.empty(n_stats)
    if x.size:
        _norm.norm_forward(xk, buf, plan.view, v.kernel_array(g, pdtype),
                           v.kernel_array(b, pdtype), eps, centered, mean, invstd,
                           _config.get_num_threads(), resk, relu, var_out)
    y = v.deliver(buf, target, plan.perm)
    if var_out:   # the kernel stored var in invstd's place; invstd as the kernel computes it
        var, invstd = invstd, 1.0 / np.sqrt(invstd + eps)
    result = (y, mean.reshape(plan.stat_shape).astype(pdtype),
              invstd.reshape(plan.stat_shape).astype(pdtype))
    if var_out:
        return result + (mean.reshape(plan.stat_shape), var.reshape(plan.stat_shape))
    return result


def _backward(dy, x, plan, mean, invstd, gamma, out, centered, y=None, dresidual=None):
    """Validate the rest of a backward call, then run it: (dx, dgamma, dbeta) in x's dtype
    (dbeta None when not ``centered``: RMS norm has no shift; float32 for a half x).  With ``y``
    (a fused forward's output) dy is masked by threshold_backward(dy, y, 0) first; ``dresidual``
    receives the masked dy."""
    pdtype = v.param_dtype(plan.dtype)
    dy = v.float_array_any_order(dy, "dy", half=True)
    v.same_dtype_any_order(dy, "dy", plan.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    mean = _stat(mean, "mean", plan) if centered else None
    invstd = _stat(invstd, "invstd" if centered else "invrms", plan)
    g = _param(gamma, "gamma", plan)
    y = v.like_x(y, "y", x)
    if out is not None:
        v.output_any_order(out, "out", x.shape, plan.dtype)
    if dresidual is not None:
        v.output_any_order(dresidual, "dresidual", x.shape, plan.dtype)
    in_place = out is not None and v.same_view(out, dy)
    v.no_overlap([("out", out), ("dresidual", dresidual)],
                 [("dy", None if in_place else dy), ("x", x), ("mean", mean), ("invstd", invstd),
                  ("gamma", g), ("y", y)])
    dyk = v.kernel_array(dy, plan.dtype, plan.perm)
    xk = v.kernel_array(x, plan.dtype, plan.perm)
    yk = v.kernel_array(y, plan.dtype, plan.perm)
    buf, target = v.out_buffers(out, x, plan.dtype, plan.perm, away=(dyk, xk, yk))
    dbuf, dtarget = ((None, None) if dresidual is None
                     else v.out_buffers(dresidual, x, plan.dtype, plan.perm, away=(dyk, xk, yk)))
    C = plan.view[2] * plan.view[3]
    dgamma, dbeta = np.empty(C), (np.empty(C) if centered else None)
    _norm.norm_backward(dyk, xk, buf, plan.view, v.kernel_array(mean, np.float64),
                        v.kernel_array(invstd, np.float64), v.kernel_array(g, pdtype), centered,
                        dgamma, dbeta, _config.get_num_threads(), yk, dbuf)
    if dresidual is not None:
        v.deliver(dbuf, dtarget, plan.perm)
    dx = v.deliver(buf, target, plan.perm)
    dgamma = dgamma.reshape(plan.param_shape).astype(pdtype)
    return dx, dgamma, (None if dbeta is None else dbeta.reshape(plan.param_shape).astype(pdtype))


def layer_norm(x, gamma=None, beta=None, *, axis=-1, eps=1e-5, out=None, relu=False,
               residual=None):
    """Layer normalization (Ba, Kiros & Hinton 2016): statistics over the axes ``axis``.

    For every index of the other axes, over the values along ``axis``::

        mean   = mean(x)
        invstd = 1 / sqrt(mean((x - mean)**2) + eps)         # biased variance
        y      = (x - mean) * invstd * gamma + beta

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 1
        Any strides and byte order (others than C-contiguous native are copied first).
    gamma, beta : array_like, optional
        Scale and shift of the shape of the normalized axes of ``x`` (in increasing axis
        order), dtype of ``x``.  None means no affine part (1 and 0).
    axis : int or tuple of ints, default -1
        The normalized axes (Keras's convention): PyTorch's ``normalized_shape=(D,)`` is
        ``axis=-1``, ``(H, W)`` is ``axis=(-2, -1)``.  Distinct and in range.
    eps : float > 0, default 1e-5
        Added to the variance.
    out : ndarray, optional
        Where to write ``y`` (shape and dtype of ``x``); shares no memory with an input except
        ``out=x`` exactly (in place, bitwise the same result).
    relu : bool, default False
        Apply a ReLU to the output (after the residual add), as ``torch.relu``.
    residual : ndarray, optional
        Added to the output before the ReLU: shape and dtype of ``x``, any strides, either byte
        order; shares no memory with ``out``.  ``y = relu(t + residual)`` with ``t`` the plain
        output as stored, added and rounded once (float16/bfloat16: in float32, as
        :func:`fastbn.batch_norm_train`'s fused output).

    Returns
    -------
    y : ndarray
        Shape and dtype of ``x``.
    mean, invstd : ndarray
        Shape of ``x`` with the normalized axes removed, dtype of ``x``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument (an axis out of range or repeated, a ``gamma`` of the wrong shape,
        ``eps <= 0``, normalized axes holding no values), named in the message; nothing is
        written then.

    Notes
    -----
    Statistics in float64 (shifted sums, Chan's merge), so data whose mean is far from zero
    lose no digits (float32 at mean/std 1e6: within 1e-4 of float64).  Per element,
    ``|y - y*| <= 4u |(x - mean) s| + 2u |c| + 4u^2 |mean s|`` with ``s = invstd * gamma``,
    ``c = beta`` and u the unit roundoff of the dtype (csrc/norm.h); the same bound holds for
    every function here.  Bitwise identical results for any thread count and instruction set.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 3.0], [10.0, 30.0]], dtype=np.float32)
    >>> y, mean, invstd = fastbn.layer_norm(x, eps=1e-12)
    >>> y
    array([[-1.,  1.],
           [-1.,  1.]], dtype=float32)
    >>> mean
    array([ 2., 20.], dtype=float32)
    >>> fastbn.layer_norm(np.ones((2, 3, 4)), np.ones((3, 4)), axis=(1, 2))[1].shape
    (2,)

    Fused with a residual add and a ReLU (``relu(layer_norm(x) + r)``, one call):

    >>> r = np.array([[0.5, -2.0], [-0.5, 0.5]], dtype=np.float32)
    >>> fastbn.layer_norm(x, eps=1e-12, relu=True, residual=r)[0]
    array([[0. , 0. ],
           [0. , 1.5]], dtype=float32)
    """
    if relu is False and residual is None:   # the plain case, in Cython
        plain = _norm.trailing_forward_plain(x, gamma, beta, axis, eps, True,
                                             _config.get_num_threads(), out)
        if plain is not None:
            return plain
    x, plan = _trailing_plan(x, axis)
    return _forward(x, plan, gamma, beta, eps, out, True, relu, residual)


def layer_norm_backward(dy, x, mean, invstd, gamma=None, *, axis=-1, out=None, y=None,
                        dresidual=None):
    """Gradients of :func:`layer_norm` with respect to x, gamma and beta.

    With ``xhat = (x - mean) * invstd``, ``g = dy * gamma`` and n values per group::

        dx     = invstd * (g - mean(g) - xhat * mean(g * xhat))
        dgamma = sum(dy * xhat)          # over every index of the other axes
        dbeta  = sum(dy)

    Parameters
    ----------
    dy : ndarray
        Gradient of the loss with respect to ``y``: shape and dtype of ``x``.
    x : ndarray of float32, float64, float16 or bfloat16
        The input of the forward pass (any strides and byte order).
    mean, invstd : array_like
        As :func:`layer_norm` returned them.
    gamma : array_like, optional
        The forward pass's scale; None means 1.
    axis : int or tuple of ints, default -1
    out : ndarray, optional
        Where to write ``dx``; shares no memory with an input except ``out=dy`` exactly.
    y : ndarray, optional
        The output of a forward with ``relu=True`` (shape and dtype of ``x``, any strides, either
        byte order): ``dy`` is first replaced by 0 where ``y <= 0`` (PyTorch's
        ``threshold_backward(dy, y, 0)``: ``-0.0`` masked, a NaN ``y`` keeps ``dy``), and every
        result is bitwise that of the plain call on the masked ``dy``.
    dresidual : ndarray, optional
        An output (shape and dtype of ``x``, writeable, either byte order, sharing no memory
        with any other argument) receiving the residual's gradient: the masked ``dy`` (``dy``
        itself without ``y``).

    Returns
    -------
    dx : ndarray
        Shape and dtype of ``x``.
    dgamma, dbeta : ndarray
        Shape of the normalized axes (also when ``gamma`` is None), dtype of ``x``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 3.0], [10.0, 30.0]])
    >>> y, mean, invstd = fastbn.layer_norm(x)
    >>> dx, dgamma, dbeta = fastbn.layer_norm_backward(np.ones_like(x), x, mean, invstd)
    >>> dx                       # a constant shift of y has no gradient
    array([[0., 0.],
           [0., 0.]])
    >>> dbeta
    array([2., 2.])

    Through a fused ReLU, the residual's gradient in ``dresidual``:

    >>> y, mean, invstd = fastbn.layer_norm(x, relu=True)
    >>> dres = np.empty_like(x)
    >>> dx, dgamma, dbeta = fastbn.layer_norm_backward(np.ones_like(x), x, mean, invstd, y=y,
    ...                                                dresidual=dres)
    >>> dres                     # dy where y > 0
    array([[0., 1.],
           [0., 1.]])
    """
    if y is None and dresidual is None:   # the plain case, in Cython
        plain = _norm.trailing_backward_plain(dy, x, mean, invstd, gamma, axis, True,
                                              _config.get_num_threads(), out)
        if plain is not None:
            return plain
    x, plan = _trailing_plan(x, axis)
    return _backward(dy, x, plan, mean, invstd, gamma, out, True, y, dresidual)


def rms_norm(x, gamma=None, *, axis=-1, eps=1e-6, out=None, relu=False, residual=None):
    """RMS normalization (Zhang & Sennrich 2019): ``y = x * invrms * gamma``.

    ``invrms = 1 / sqrt(mean(x**2) + eps)`` over the axes ``axis``, per index of the others; no
    centring and no shift.

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 1
        Any strides and byte order.
    gamma : array_like, optional
        Scale of the shape of the normalized axes, dtype of ``x``; None means 1.
    axis : int or tuple of ints, default -1
        The normalized axes, as in :func:`layer_norm`.
    eps : float > 0 or None, default 1e-6
        None: the machine epsilon of x's dtype (``np.finfo(x.dtype).eps``; 2**-7 for bfloat16),
        PyTorch's default for ``rms_norm``.
    out : ndarray, optional
        Where to write ``y``; ``out=x`` exactly normalizes in place.
    relu : bool, default False
        Apply a ReLU to the output (after the residual add), as ``torch.relu``.
    residual : ndarray, optional
        Added to the output before the ReLU: shape and dtype of ``x``, any strides, either byte
        order; shares no memory with ``out``.  ``y = relu(t + residual)`` with ``t`` the plain
        output as stored, added and rounded once (float16/bfloat16: in float32, as
        :func:`fastbn.batch_norm_train`'s fused output).

    Returns
    -------
    y : ndarray
        Shape and dtype of ``x``.
    invrms : ndarray
        Shape of ``x`` with the normalized axes removed, dtype of ``x``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[3.0, 4.0], [0.0, 2.0]])
    >>> y, invrms = fastbn.rms_norm(x, eps=1e-12)
    >>> invrms                   # 1 / sqrt((9 + 16) / 2), 1 / sqrt(4 / 2)
    array([0.28284271, 0.70710678])
    >>> y.round(6)
    array([[0.848528, 1.131371],
           [0.      , 1.414214]])

    Fused with a residual add and a ReLU:

    >>> fastbn.rms_norm(x, eps=1e-12, relu=True, residual=-np.ones_like(x))[0].round(6)
    array([[0.      , 0.131371],
           [0.      , 0.414214]])
    """
    if eps is None:
        eps = v.machine_eps(x)
    if relu is False and residual is None:   # the plain case, in Cython
        plain = _norm.trailing_forward_plain(x, gamma, None, axis, eps, False,
                                             _config.get_num_threads(), out)
        if plain is not None:
            return plain[0], plain[2]
    x, plan = _trailing_plan(x, axis)
    y, _, invrms = _forward(x, plan, gamma, None, eps, out, False, relu, residual)
    return y, invrms


def rms_norm_backward(dy, x, invrms, gamma=None, *, axis=-1, out=None, y=None,
                      dresidual=None):
    """Gradients of :func:`rms_norm` with respect to x and gamma.

    With ``g = dy * gamma`` and n values per group::

        dx     = invrms * g - x * invrms**3 * mean(g * x)
        dgamma = sum(dy * x * invrms)    # over every index of the other axes

    Parameters
    ----------
    dy : ndarray
        Shape and dtype of ``x``.
    x : ndarray of float32, float64, float16 or bfloat16
        The input of the forward pass.
    invrms : array_like
        As :func:`rms_norm` returned it.
    gamma : array_like, optional
        None means 1.
    axis : int or tuple of ints, default -1
    out : ndarray, optional
        Where to write ``dx``; ``out=dy`` exactly is allowed.
    y : ndarray, optional
        The output of a forward with ``relu=True`` (shape and dtype of ``x``, any strides, either
        byte order): ``dy`` is first replaced by 0 where ``y <= 0`` (PyTorch's
        ``threshold_backward(dy, y, 0)``: ``-0.0`` masked, a NaN ``y`` keeps ``dy``), and every
        result is bitwise that of the plain call on the masked ``dy``.
    dresidual : ndarray, optional
        An output (shape and dtype of ``x``, writeable, either byte order, sharing no memory
        with any other argument) receiving the residual's gradient: the masked ``dy`` (``dy``
        itself without ``y``).

    Returns
    -------
    dx : ndarray
        Shape and dtype of ``x``.
    dgamma : ndarray
        Shape of the normalized axes, dtype of ``x``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[3.0, 4.0]])
    >>> y, invrms = fastbn.rms_norm(x)
    >>> dx, dgamma = fastbn.rms_norm_backward(y, x, invrms)   # d(|y|^2 / 2)/dx
    >>> bool(np.allclose(dx, 0, atol=1e-6))                  # |y| does not depend on |x|
    True

    Through a fused ReLU (``y`` given), ``dy`` counts only where ``y > 0``:

    >>> x = np.array([[-3.0, 4.0]])
    >>> y, invrms = fastbn.rms_norm(x, relu=True)
    >>> dres = np.empty_like(x)
    >>> _ = fastbn.rms_norm_backward(np.ones_like(x), x, invrms, y=y, dresidual=dres)
    >>> dres
    array([[0., 1.]])
    """
    if y is None and dresidual is None:   # the plain case, in Cython
        plain = _norm.trailing_backward_plain(dy, x, None, invrms, gamma, axis, False,
                                              _config.get_num_threads(), out)
        if plain is not None:
            return plain[0], plain[1]
    x, plan = _trailing_plan(x, axis)
    dx, dgamma, _ = _backward(dy, x, plan, None, invrms, gamma, out, False, y, dresidual)
    return dx, dgamma


def group_norm(x, num_groups, gamma=None, beta=None, *, axis=1, eps=1e-5, out=None, relu=False,
               residual=None):
    """Group normalization (Wu & He 2018).

    The C channels along ``axis`` are split into ``num_groups`` groups of consecutive channels
    (PyTorch's rule); for every sample (index along axis 0) and group, over the group's channels
    and every other axis::

        mean   = mean(x[n, group])
        invstd = 1 / sqrt(mean((x[n, group] - mean)**2) + eps)
        y      = (x - mean) * invstd * gamma[c] + beta[c]

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 2
        Samples along axis 0; any strides and byte order.
    num_groups : int >= 1
        Divides the number of channels.
    gamma, beta : array_like, shape (C,), optional
        Per channel, dtype of ``x``; None means no affine part.
    axis : int, default 1
        The channel axis (1 for NCHW, -1 for NHWC); not 0.
    eps : float > 0, default 1e-5
    out : ndarray, optional
        Where to write ``y``; ``out=x`` exactly normalizes in place.
    relu : bool, default False
        Apply a ReLU to the output (after the residual add), as ``torch.relu``.
    residual : ndarray, optional
        Added to the output before the ReLU: shape and dtype of ``x``, any strides, either byte
        order; shares no memory with ``out``.  ``y = relu(t + residual)`` with ``t`` the plain
        output as stored, added and rounded once (float16/bfloat16: in float32, as
        :func:`fastbn.batch_norm_train`'s fused output).

    Returns
    -------
    y : ndarray
        Shape and dtype of ``x``.
    mean, invstd : ndarray, shape (N, num_groups)
        Dtype of ``x``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument (``num_groups`` not dividing C or < 1, ``axis=0``, ...), named in
        the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 3.0, 10.0, 30.0]])          # (N, C) = (1, 4)
    >>> y, mean, invstd = fastbn.group_norm(x, 2, eps=1e-12)
    >>> y
    array([[-1.,  1., -1.,  1.]])
    >>> mean
    array([[ 2., 20.]])

    Fused with a residual add and a ReLU:

    >>> fastbn.group_norm(x, 2, eps=1e-12, relu=True, residual=np.full_like(x, 0.5))[0]
    array([[0. , 1.5, 0. , 1.5]])
    """
    if relu is False and residual is None and num_groups is not None:   # plain, in Cython
        plain = _norm.group_forward_plain(x, num_groups, gamma, beta, axis, eps,
                                          _config.get_num_threads(), out)
        if plain is not None:
            return plain
    x, plan = _group_plan(x, num_groups, axis)
    return _forward(x, plan, gamma, beta, eps, out, True, relu, residual)


def group_norm_backward(dy, x, mean, invstd, num_groups, gamma=None, *, axis=1, out=None,
                        y=None, dresidual=None):
    """Gradients of :func:`group_norm` with respect to x, gamma and beta.

    The layer-norm formulas per (sample, group), ``dgamma[c] = sum(dy * xhat)`` and
    ``dbeta[c] = sum(dy)`` over every axis but the channel axis.

    Parameters
    ----------
    dy : ndarray
        Shape and dtype of ``x``.
    x : ndarray of float32, float64, float16 or bfloat16
        The input of the forward pass.
    mean, invstd : array_like, shape (N, num_groups)
        As :func:`group_norm` returned them.
    num_groups : int
    gamma : array_like, shape (C,), optional
    axis : int, default 1
    out : ndarray, optional
        Where to write ``dx``; ``out=dy`` exactly is allowed.
    y : ndarray, optional
        The output of a forward with ``relu=True`` (shape and dtype of ``x``, any strides, either
        byte order): ``dy`` is first replaced by 0 where ``y <= 0`` (PyTorch's
        ``threshold_backward(dy, y, 0)``: ``-0.0`` masked, a NaN ``y`` keeps ``dy``), and every
        result is bitwise that of the plain call on the masked ``dy``.
    dresidual : ndarray, optional
        An output (shape and dtype of ``x``, writeable, either byte order, sharing no memory
        with any other argument) receiving the residual's gradient: the masked ``dy`` (``dy``
        itself without ``y``).

    Returns
    -------
    dx : ndarray
        Shape and dtype of ``x``.
    dgamma, dbeta : ndarray, shape (C,)

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[1.0, 3.0, 10.0, 30.0]])
    >>> y, mean, invstd = fastbn.group_norm(x, 2)
    >>> dx, dgamma, dbeta = fastbn.group_norm_backward(np.ones_like(x), x, mean, invstd, 2)
    >>> dx
    array([[0., 0., 0., 0.]])
    >>> dbeta
    array([1., 1., 1., 1.])

    Through a fused ReLU, the residual's gradient in ``dresidual``:

    >>> y, mean, invstd = fastbn.group_norm(x, 2, relu=True)
    >>> dres = np.empty_like(x)
    >>> _ = fastbn.group_norm_backward(np.ones_like(x), x, mean, invstd, 2, y=y, dresidual=dres)
    >>> dres
    array([[0., 1., 0., 1.]])
    """
    if y is None and dresidual is None and num_groups is not None:   # plain, in Cython
        plain = _norm.group_backward_plain(dy, x, mean, invstd, num_groups, gamma, axis,
                                           _config.get_num_threads(), out)
        if plain is not None:
            return plain
    x, plan = _group_plan(x, num_groups, axis)
    return _backward(dy, x, plan, mean, invstd, gamma, out, True, y, dresidual)


def instance_norm(x, gamma=None, beta=None, *, axis=1, eps=1e-5, out=None, relu=False,
                  residual=None):
    """Instance normalization (Ulyanov et al. 2016): group norm with one channel per group.

    Statistics per (sample along axis 0, channel along ``axis``) over every other axis.

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 2
        Any strides and byte order.
    gamma, beta : array_like, shape (C,), optional
        None means no affine part.
    axis : int, default 1
        The channel axis; not 0.
    eps : float > 0, default 1e-5
    out : ndarray, optional
        Where to write ``y``; ``out=x`` exactly normalizes in place.
    relu : bool, default False
        Apply a ReLU to the output (after the residual add), as ``torch.relu``.
    residual : ndarray, optional
        Added to the output before the ReLU: shape and dtype of ``x``, any strides, either byte
        order; shares no memory with ``out``.  ``y = relu(t + residual)`` with ``t`` the plain
        output as stored, added and rounded once (float16/bfloat16: in float32, as
        :func:`fastbn.batch_norm_train`'s fused output).

    Returns
    -------
    y : ndarray
        Shape and dtype of ``x``.
    mean, invstd : ndarray, shape (N, C)

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[[1.0, 3.0], [10.0, 30.0]]])      # (N, C, L) = (1, 2, 2)
    >>> y, mean, invstd = fastbn.instance_norm(x, eps=1e-12)
    >>> y
    array([[[-1.,  1.],
            [-1.,  1.]]])
    >>> mean
    array([[ 2., 20.]])

    Fused with a residual add and a ReLU:

    >>> fastbn.instance_norm(x, eps=1e-12, relu=True, residual=np.full_like(x, 0.5))[0]
    array([[[0. , 1.5],
            [0. , 1.5]]])
    """
    if relu is False and residual is None:   # the plain case, in Cython
        plain = _norm.group_forward_plain(x, None, gamma, beta, axis, eps,
                                          _config.get_num_threads(), out)
        if plain is not None:
            return plain
    x, plan = _group_plan(x, None, axis, instance=True)
    return _forward(x, plan, gamma, beta, eps, out, True, relu, residual)


def _instance_norm_var(x, gamma, beta, axis, eps, relu, residual):
    """instance_norm's (y, mean, invstd), bitwise, and its float64 mean and variance, (N, C)
    each (InstanceNorm's running statistics)."""
    x, plan = _group_plan(x, None, axis, instance=True)
    return _forward(x, plan, gamma, beta, eps, None, True, relu, residual, var_out=True)


def instance_norm_backward(dy, x, mean, invstd, gamma=None, *, axis=1, out=None, y=None,
                           dresidual=None):
    """Gradients of :func:`instance_norm` with respect to x, gamma and beta.

    Parameters
    ----------
    dy : ndarray
        Shape and dtype of ``x``.
    x : ndarray of float32, float64, float16 or bfloat16
        The input of the forward pass.
    mean, invstd : array_like, shape (N, C)
        As :func:`instance_norm` returned them.
    gamma : array_like, shape (C,), optional
    axis : int, default 1
    out : ndarray, optional
        Where to write ``dx``; ``out=dy`` exactly is allowed.
    y : ndarray, optional
        The output of a forward with ``relu=True`` (shape and dtype of ``x``, any strides, either
        byte order): ``dy`` is first replaced by 0 where ``y <= 0`` (PyTorch's
        ``threshold_backward(dy, y, 0)``: ``-0.0`` masked, a NaN ``y`` keeps ``dy``), and every
        result is bitwise that of the plain call on the masked ``dy``.
    dresidual : ndarray, optional
        An output (shape and dtype of ``x``, writeable, either byte order, sharing no memory
        with any other argument) receiving the residual's gradient: the masked ``dy`` (``dy``
        itself without ``y``).

    Returns
    -------
    dx : ndarray
        Shape and dtype of ``x``.
    dgamma, dbeta : ndarray, shape (C,)

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> x = np.array([[[1.0, 3.0], [10.0, 30.0]]])
    >>> y, mean, invstd = fastbn.instance_norm(x)
    >>> dx, dgamma, dbeta = fastbn.instance_norm_backward(np.ones_like(x), x, mean, invstd)
    >>> dbeta
    array([2., 2.])

    Through a fused ReLU, the residual's gradient in ``dresidual``:

    >>> y, mean, invstd = fastbn.instance_norm(x, relu=True)
    >>> dres = np.empty_like(x)
    >>> _ = fastbn.instance_norm_backward(np.ones_like(x), x, mean, invstd, y=y, dresidual=dres)
    >>> dres
    array([[[0., 1.],
            [0., 1.]]])
    """
    if y is None and dresidual is None:   # the plain case, in Cython
        plain = _norm.group_backward_plain(dy, x, mean, invstd, None, gamma, axis,
                                           _config.get_num_threads(), out)
        if plain is not None:
            return plain
    x, plan = _group_plan(x, None, axis, instance=True)
    return _backward(dy, x, plan, mean, invstd, gamma, out, True, y, dresidual)
