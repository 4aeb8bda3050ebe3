"""Gradient clipping for NumPy arrays: by global norm, by value, by one array's norm.

``global_norm``, ``clip_grad_norm`` and ``clip_grad_value`` have PyTorch's semantics
(``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``) over a list of arrays;
``clip_by_norm`` has TensorFlow's (``tf.clip_by_norm``: it returns the clipped array).  Arrays are
float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16``, an optional dependency), mixed
freely; every norm is accumulated in float64 from the exact values.  The loops
are C (``csrc/clip*``) reached through the Cython module ``fastbn._clip``, one C call over the
whole list.  The plain-NumPy twin of every function is in :mod:`fastbn.reference`.

Arrays may have any strides and either byte order.  An array that NumPy can view as 1-d with
one stride, in native byte order, is handed to the kernel as such a view; any other is copied
to a contiguous native buffer, processed there and copied back -- the same arithmetic on the
same values in the same order, so the same bits.
"""
import math

import numpy as np

from fastbn import _clip, _config, _half
from fastbn import _validation as v

__all__ = ["global_norm", "clip_grad_norm", "clip_grad_value", "clip_by_norm"]


def __dir__():
    # dir() and tab completion list the API, not the modules imported to build it (PEP 562).
    # Hiding them here keeps the code in the usual np/math idiom instead of _np/_math aliases.
    return sorted(__all__ + [n for n in globals() if n.startswith("__")])


_config._register(_clip)


def _elements(grads, name):
    """``grads`` as a list of (label, ndarray): a bare array is a list of one."""
    if isinstance(grads, np.ndarray):
        return [(name, grads)]
    if isinstance(grads, (str, bytes, dict)) or not hasattr(grads, "__iter__"):
        raise TypeError(f"{name}: expected an ndarray or a sequence of ndarrays, "
                        f"got {type(grads).__name__}")
    return [(f"{name}[{k}]", a) for k, a in enumerate(grads)]


def _flat(a):
    """(1-d single-stride array over a's elements in C order, in native byte order, whether it
    is a copy).  A byte-swapped array is always copied: the kernels read native floats only.
    A subclass is taken as a plain view of its memory (np.matrix stays 2-d when reshaped)."""
    a = v.plain(a)
    if not a.dtype.isnative:
        return np.ascontiguousarray(a, dtype=v.native_dtype(a.dtype)).reshape(-1), True
    if a.flags.c_contiguous and a.flags.aligned:   # the kernels read elements as T: aligned
        return a.reshape(-1), False
    if a.flags.aligned:
        try:
            f = np.reshape(a, -1, copy=False)
            if f.strides[0] % a.itemsize == 0:
                return f, False
        except (ValueError, TypeError):   # a copy would be needed (TypeError: NumPy < 2.1)
            pass
    return np.array(a, order="C").reshape(-1), True   # a new array: aligned


def _prepare(grads, name, inplace):
    """Validate every array, then return (labels, originals, flat arrays, which are copies)."""
    items = _elements(grads, name)
    arrays = []
    for label, a in items:
        v.not_masked(a, label)
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{label}: expected a numpy ndarray, got {type(a).__name__}")
        native = v.native_dtype(a.dtype)
        if native not in v.FLOAT_DTYPES and _half.kind(native, label) is None:
            raise TypeError(f"{label}: expected a {_half.EXPECTED} array, got dtype {a.dtype}")
        if inplace and not a.flags.writeable:
            raise ValueError(f"{label}: expected a writeable array (it is updated in place), "
                             "got a read-only one")
        if inplace:
            v.distinct_elements(a, label)
        arrays.append(a)
    if inplace:
        v.disjoint([(label, a) for (label, _), a in zip(items, arrays)])
    flats, copied = [], []
    for a in arrays:
        f, c = _flat(a)
        flats.append(f)
        copied.append(c)
    return [label for label, _ in items], arrays, flats, copied


def _kernel_views(flats):
    """The flat arrays as _clip takes them: bfloat16 as its uint16 bits (NumPy cannot export
    bfloat16 through the buffer protocol), the others as they are.  Validated 2-byte dtypes
    other than float16 are bfloat16; asking ``dtype.name`` costs 5 us per array."""
    return [f.view(np.uint16) if f.itemsize == 2 and f.dtype.char != "e" else f for f in flats]


def _copy_back(arrays, flats, copied):
    for a, f, c in zip(arrays, flats, copied):
        if c:
            np.copyto(a, f.reshape(a.shape))


def _norm_type(norm_type):
    return v.real(norm_type, "norm_type", lo=0.0, lo_open=True)


def _norm_call(grads, name, norm_type, clip, max_norm, inplace):
    labels, arrays, flats, copied = _prepare(grads, name, inplace)
    acc = np.empty(len(flats), dtype=np.float64)
    total, scaled = _clip.norm(_kernel_views(flats), norm_type, clip, max_norm, acc,
                               _config.get_num_threads())
    return labels, arrays, flats, copied, acc, total, scaled


def global_norm(grads, norm_type=2.0):
    """The p-norm of all elements of all arrays together.

    ``(sum over every element x of every array of |x|**p) ** (1/p)``, or ``max |x|`` for
    ``p = inf``: the norm of the arrays concatenated into one vector.

    Parameters
    ----------
    grads : ndarray or sequence of ndarrays
        float32, float64, float16 or bfloat16 arrays, mixed dtypes allowed, any shapes,
        strides and byte order
        (a byte-swapped array such as ``'>f4'`` on a little-endian machine is read through a
        native copy: the same result, bit for bit); read-only arrays are fine.  An empty
        sequence has norm 0.0.
    norm_type : float, default 2.0
        ``p > 0``, or ``math.inf`` for the max-abs norm.

    Returns
    -------
    float
        The norm, accumulated in float64 from the exact element values (so 1e8 float32 or
        bfloat16 values lose no precision).  NaN if any element is NaN; inf if any is infinite
        (and none is NaN).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message (``grads[3]: ...`` for an element).

    Notes
    -----
    Each array is cut into blocks of 16384 elements; block partials (sums over 32 float64 lanes,
    ``pow(|x|, p)`` terms for general ``p``) are merged in a fixed order, so the result is bitwise
    identical for any thread count and instruction set.

    Examples
    --------
    >>> import math, numpy as np, fastbn
    >>> grads = [np.array([3.0, 0.0]), np.array([[4.0]], dtype=np.float32)]
    >>> fastbn.global_norm(grads)
    5.0
    >>> fastbn.global_norm(grads, norm_type=1.0)
    7.0
    >>> fastbn.global_norm(grads, norm_type=math.inf)
    4.0
    >>> fastbn.global_norm([])
    0.0
    """
    p = _norm_type(norm_type)
    *_, total, _ = _norm_call(grads, "grads", p, 0, 0.0, inplace=False)
    return float(total)


def clip_grad_norm(grads, max_norm, *, norm_type=2.0, error_if_nonfinite=False):
    """Scale the arrays in place so that their global norm is at most ``max_norm``.

    PyTorch's ``clip_grad_norm_``: with ``total = global_norm(grads, norm_type)`` and
    ``coef = max_norm / (total + 1e-6)``, every array is multiplied by ``coef`` when
    ``coef < 1``; otherwise nothing is written.  Each element becomes ``x * T(coef)``: the
    coefficient is rounded to the array's dtype ``T`` (as PyTorch does for float32 tensors), then
    one multiply rounded once to ``T`` -- the bits of ``T(float64(x) * float64(T(coef)))``
    (float16 and bfloat16 included).

    Parameters
    ----------
    grads : ndarray or sequence of ndarrays
        Writeable float32, float64, float16 or bfloat16 arrays (mixed allowed, any strides) that
        share no memory.  Either byte order: a byte-swapped array is scaled on a native copy
        that is then written back, so its bits are those a native array would get.
    max_norm : float
        ``>= 0`` (``inf`` never clips).
    norm_type : float, default 2.0
        ``p > 0``, or ``math.inf``.
    error_if_nonfinite : bool, default False
        If True and the total norm is NaN or infinite, raise a ValueError naming the first array
        whose own norm is non-finite, and change nothing.  If False, do what PyTorch does: a NaN
        total makes ``coef`` NaN and every element NaN; an infinite total makes ``coef`` 0, so
        finite elements become 0 (with their sign) and infinite ones NaN.

    Returns
    -------
    float
        The total norm before clipping.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> g = [np.array([3.0, 0.0]), np.array([4.0])]
    >>> fastbn.clip_grad_norm(g, 1.0)
    5.0
    >>> np.round(g[0], 6), np.round(g[1], 6)      # each scaled by 1 / (5 + 1e-6)
    (array([0.6, 0. ]), array([0.8]))
    >>> before = g[1].copy()
    >>> round(fastbn.clip_grad_norm(g, 10.0), 6)   # within the bound: left unchanged
    1.0
    >>> bool(g[1][0] == before[0])
    True
    """
    max_norm = v.real(max_norm, "max_norm", lo=0.0)
    p = _norm_type(norm_type)
    if not isinstance(error_if_nonfinite, (bool, np.bool_)):
        raise TypeError(f"error_if_nonfinite: expected a bool, got {type(error_if_nonfinite).__name__}")
    clip = 2 if error_if_nonfinite else 1
    labels, arrays, flats, copied, acc, total, scaled = _norm_call(grads, "grads", p, clip,
                                                                   max_norm, inplace=True)
    if error_if_nonfinite and not math.isfinite(total):
        bad = [k for k in range(len(arrays)) if not math.isfinite(acc[k])]
        where = labels[bad[0]] if bad else "grads"
        raise ValueError(f"{where}: the total norm of order {p:g} is non-finite ({total}), so "
                         "nothing was scaled (this is the first array whose norm is non-finite); "
                         "pass error_if_nonfinite=False to scale anyway")
    if scaled:
        _copy_back(arrays, flats, copied)
    return float(total)


def clip_grad_value(grads, clip_value):
    """Clamp every element of the arrays in place to ``[-clip_value, clip_value]``.

    PyTorch's ``clip_grad_value_``: ``x < -c -> -c``, ``x > c -> c``, otherwise (NaN included)
    ``x``.  The bound ``c`` is first rounded to each array's dtype (to nearest; a float32
    bound beyond the largest float32 is infinite), so the result is exact: every element is
    either itself or the rounded bound.

    Parameters
    ----------
    grads : ndarray or sequence of ndarrays
        Writeable float32, float64, float16 or bfloat16 arrays (mixed allowed, any strides) that
        share no memory.  Either byte order: a byte-swapped array is clamped on a native copy
        that is then written back, so its bits are those a native array would get.
    clip_value : float
        ``>= 0`` (``inf`` leaves everything as is).

    Returns
    -------
    None

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> g = np.array([-3.0, 0.5, 2.0, np.nan])
    >>> fastbn.clip_grad_value(g, 1.0)
    >>> g
    array([-1. ,  0.5,  1. ,  nan])
    """
    clip_value = v.real(clip_value, "clip_value", lo=0.0)
    _, arrays, flats, copied = _prepare(grads, "grads", inplace=True)
    _clip.value(_kernel_views(flats), clip_value, _config.get_num_threads())
    _copy_back(arrays, flats, copied)


def clip_by_norm(grad, max_norm, *, out=None):
    """``grad`` scaled so that its 2-norm is at most ``max_norm``: TensorFlow's ``clip_by_norm``.

    The rule is ``grad * max_norm / max(norm, max_norm)``, with ``norm = global_norm(grad)``
    (the 2-norm of the whole array, accumulated in float64).  When ``norm <= max_norm`` the
    values are returned unchanged (copied bit for bit).  Otherwise the scale
    ``s = max_norm / norm`` is computed in float64 and rounded once to the array's dtype ``T``,
    and each element becomes ``x * T(s)`` rounded to ``T`` -- the bits of
    ``T(float64(x) * float64(T(s)))``.  (TensorFlow rounds ``x * max_norm`` and then the
    quotient: the two agree to within a rounding of ``T``.)

    Parameters
    ----------
    grad : ndarray
        A float32, float64, float16 or bfloat16 array, any shape, strides and byte order; only
        read unless ``out`` is ``grad``.
    max_norm : float
        ``>= 0``.  0 gives zeros (signed like ``grad``); ``inf`` never clips.
    out : ndarray, optional
        Where to write the result: the same shape and dtype as ``grad`` (either byte order)
        and writeable.  ``out=grad`` clips in place; any other overlap with ``grad`` is
        rejected.

    Returns
    -------
    ndarray
        ``out`` if given, else a new array of ``grad``'s dtype in native byte order, laid out
        like ``grad`` (as ``np.empty_like``: a Fortran-ordered input gives a Fortran-ordered
        result).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message; nothing is written then.

    Notes
    -----
    Non-finite norms follow TensorFlow (whose ``maximum`` propagates NaN): a NaN element makes
    the norm NaN, so ``s`` is NaN and every element NaN; an infinite element (and no NaN) makes
    the norm infinite, so ``s = 0``: finite elements become zeros (with their sign) and
    infinite ones NaN.  Two cases where TensorFlow's formula divides 0 by 0 or inf by inf are
    defined here instead: an all-zero ``grad`` with ``max_norm = 0`` gives zeros, and
    ``max_norm = inf`` returns the values unchanged (even with an infinite norm).

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> g = np.array([6.0, 8.0])                   # norm 10
    >>> fastbn.clip_by_norm(g, 5.0)                # scaled by 5 / 10
    array([3., 4.])
    >>> g                                          # unchanged
    array([6., 8.])
    >>> fastbn.clip_by_norm(g, 20.0)               # within the bound: the same values
    array([6., 8.])
    >>> g = fastbn.clip_by_norm(g, 1.0, out=g)     # in place
    >>> g
    array([0.6, 0.8])
    """
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"grad: expected a numpy ndarray, got {type(grad).__name__}")
    max_norm = v.real(max_norm, "max_norm", lo=0.0)
    dtype = v.native_dtype(grad.dtype)
    half = _half.kind(dtype, "grad")
    if dtype not in v.FLOAT_DTYPES and half is None:
        raise TypeError(f"grad: expected a {_half.EXPECTED} array, got dtype {grad.dtype}")
    if out is not None:
        _check_out(out, grad, dtype)
    *_, total, _ = _norm_call(grad, "grad", 2.0, 0, 0.0, inplace=False)
    total = float(total)
    if out is None:
        out = v.empty_aligned_like(grad, dtype, away=(grad,))
    if total <= max_norm:
        if not v.same_view(out, grad):
            np.copyto(out, grad)
        return out
    if half is not None:   # in C, which rounds T(float64(x) * float64(T(s))) once
        if not v.same_view(out, grad):
            np.copyto(out, grad)
        _, arrays, flats, copied = _prepare(out, "out", inplace=True)
        _clip.scale(_kernel_views(flats), max_norm / total, _config.get_num_threads())
        _copy_back(arrays, flats, copied)
        return out
    with np.errstate(invalid="ignore"):          # inf * 0 -> NaN, as documented
        np.multiply(grad, dtype.type(max_norm / total), out=out)
    return out


def _check_out(out, grad, dtype):
    v.not_masked(out, "out")
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy ndarray, got {type(out).__name__}")
    if v.native_dtype(out.dtype) != dtype:
        raise TypeError(f"out: expected dtype {dtype} (the dtype of grad), got {out.dtype}")
    if out.shape != grad.shape:
        raise ValueError(f"out: expected shape {grad.shape} (the shape of grad), got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out: expected a writeable array, got a read-only one")
    v.distinct_elements(out, "out")
    if not v.same_view(out, grad):
        v.no_overlap([("out", out)], [("grad", grad)])
