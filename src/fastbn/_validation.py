"""Argument checks shared by the public API.

Every check names the argument it rejects and says what was expected, and raises before anything
is written: TypeError for a wrong kind or dtype, ValueError for a wrong value or shape.
"""
import math
import numbers
import operator

import numpy as np

from fastbn import _half
from fastbn._util import byte_extent, extent_overlaps, same_view  # noqa: F401 (v.same_view)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
BATCH_LAYOUT = " (batch, channels, ...)"   # what batch norm's x holds, for input_array's message
_TooHardError = getattr(np, "exceptions", np).TooHardError
MAX_DIM = int(np.iinfo(np.intp).max)   # the largest length NumPy can give an axis


def integer(value, name, minimum=None, maximum=None):
    """``value`` as a Python int (bools rejected), at least ``minimum``, at most ``maximum``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got a bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {value}")
    return value


def real(value, name, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
    """``value`` as a Python float in [lo, hi] (or open bounds); NaN is rejected."""
    if type(value) is float and lo < value < hi:    # the common case, cheaply
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if math.isnan(value) or below or above:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ValueError(f"{name}: expected a number in {lb}{lo:g}, {hi:g}{rb}, got {value!r}")
    return value


def machine_eps(x):
    """The machine epsilon of x's dtype (2**-23 float32, 2**-52 float64, 2**-10 float16, 2**-7
    bfloat16): PyTorch's ``eps=None`` of RMS norm.  For an x that is not a float array, 1.0:
    x's own check rejects it afterwards."""
    try:
        dtype = x.dtype if isinstance(x, np.ndarray) else np.asarray(x).dtype
    except (ValueError, TypeError):
        return 1.0
    if dtype.kind == "f":
        return float(np.finfo(dtype).eps)
    return 2.0 ** -7 if _half.named_bfloat16(dtype) else 1.0


def not_masked(a, name):
    """Raise TypeError for a masked array: the kernels would read its data and ignore its mask."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{name}: expected an ndarray, got a masked array (its mask would be "
                        "ignored; pass a.filled(value) or a.data)")


def plain(a):
    """An ndarray subclass (np.matrix, whose ``*`` is a matrix product and whose reshape stays
    2-d) as a plain ndarray view of the same memory; anything else as given."""
    return a.view(np.ndarray) if isinstance(a, np.ndarray) and type(a) is not np.ndarray else a


def float_array(a, name, half=False):
    """``a`` as a float32 or float64 ndarray (or, with ``half``, float16 or bfloat16); other
    dtypes are a TypeError, never cast.  bfloat16 without ml_dtypes: a TypeError saying so."""
    expected = _half.EXPECTED if half else "float32 or float64"
    not_masked(a, name)
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name}: expected a {expected} array ({e})") from None
    if a.dtype not in FLOAT_DTYPES and not (half and _half.kind(native_dtype(a.dtype), name)):
        raise TypeError(f"{name}: expected a {expected} array, got dtype {a.dtype}")
    return a


def is_half(dtype):
    """True for float16 and bfloat16 (2-byte floats: the kernels store them; their parameters
    are float32)."""
    return dtype == _half.FLOAT16 or _half.named_bfloat16(dtype)


def param_dtype(dtype):
    """The dtype of the per-channel arrays (gamma, beta, running statistics, mean, invstd and the
    parameters' gradients) for tensors of ``dtype``: float32 for the half types, else ``dtype``."""
    return FLOAT_DTYPES[0] if is_half(dtype) else dtype


def same_dtype(a, name, dtype, of="x"):
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of {of}), got {a.dtype}")


def flag(value, name):
    """``value`` as a Python bool; anything but a bool (or numpy bool) is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def normalize_axis(axis, ndim, name="axis"):
    axis = integer(axis, name)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}] for a {ndim}-d array, "
                         f"got {axis}")
    return axis % ndim


def vector(v, name, length, dtype, *, inplace=False, of="x"):
    """A 1-d array of ``length`` elements of ``dtype``.

    Array-likes that are not ndarrays are converted, unless ``inplace`` (a buffer that is updated
    in place must be an ndarray and writeable).  An ndarray of another dtype is a TypeError.
    """
    not_masked(v, name)
    if not isinstance(v, np.ndarray):
        if inplace:
            raise TypeError(f"{name}: expected a writeable numpy array (it is updated in place), "
                            f"got {type(v).__name__}")
        try:
            v = np.asarray(v, dtype=dtype)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name}: expected a 1-d array of {length} numbers ({e})") from None
    same_dtype(v, name, dtype, of)
    if v.shape != (length,):
        raise ValueError(f"{name}: expected shape ({length},) (one value per channel), got {v.shape}")
    if inplace and not v.flags.writeable:
        raise ValueError(f"{name}: expected a writeable array (it is updated in place), "
                         "got a read-only one")
    if inplace:
        distinct_elements(v, name)
    return v


def output(out, name, shape, dtype):
    """Check a caller-provided output array."""
    not_masked(out, name)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: expected a writeable array, got a read-only one")
    distinct_elements(out, name)
    return out


# the largest array whose element offsets distinct_elements lists to decide exactly
_EXACT_OVERLAP_ELEMENTS = 1 << 22


def distinct_elements(a, name):
    """Raise ValueError if two elements of ``a`` (an array that will be written) share a byte,
    as a zero stride makes them (``as_strided``): each would receive several results.

    Strides sorted by size, each spanning the dimensions below it, prove the elements apart;
    other layouts are decided by listing their byte offsets (up to 2**22 elements; beyond,
    such an interleaving is rejected)."""
    if a.size <= 1 or a.flags.c_contiguous or a.flags.f_contiguous:
        return
    dims = sorted((abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1)
    reach = a.itemsize   # bytes spanned by the dimensions taken so far
    for s, n in dims:
        if s < reach:
            break
        reach = s * (n - 1) + reach
    else:
        return
    if a.size <= _EXACT_OVERLAP_ELEMENTS:
        offsets = np.zeros(1, np.int64)
        for s, n in dims:
            offsets = (offsets[:, None] + s * np.arange(n, dtype=np.int64)).reshape(-1)
        offsets.sort()
        if np.all(np.diff(offsets) >= a.itemsize):
            return
    raise ValueError(f"{name}: its elements overlap in memory (a zero or too small stride: "
                     f"strides {a.strides} for shape {a.shape}), so one element would receive "
                     "several results; expected an array whose elements are distinct")


def no_overlap(written, others):
    """Raise if an array that will be written shares memory with any other named array.

    ``written`` and ``others`` are sequences of (name, ndarray or None).  Memory extents are
    compared first (cheap, in Cython); only pairs whose extents meet are checked exactly.
    """
    written, others = list(written), list(others)
    candidates = written + others
    for i, j in extent_overlaps(written, others):
        (wname, w), (oname, o) = written[i], candidates[j]
        try:
            overlap = np.shares_memory(w, o, max_work=10000)
        except _TooHardError:
            overlap = True
        if overlap:
            raise ValueError(f"{wname}: must not share memory with {oname}")

def disjoint(named):
    """Raise if two of the named arrays share memory (``named``: sequence of (name, ndarray)).

    Arrays are sorted by their byte bounds, and only pairs whose bounds overlap are checked
    exactly, so a long list costs O(n log n) plus the exact checks of interleaved views.
    """
    spans = sorted((*byte_extent(a), k) for k, (_, a) in enumerate(named) if a.size)
    open_spans = []   # (hi, k) of arrays whose bounds may still overlap the next one
    for lo, hi, k in spans:
        open_spans = [(h, j) for h, j in open_spans if h > lo]
        for _, j in open_spans:
            try:
                overlap = np.shares_memory(named[j][1], named[k][1], max_work=10000)
            except _TooHardError:
                overlap = True
            if overlap:
                first, second = sorted((j, k))
                raise ValueError(f"{named[second][0]}: must not share memory with "
                                 f"{named[first][0]} (both are updated in place)")
        open_spans.append((hi, k))


# ---- byte order and in-place aliasing --------------------------------------------------------
# NumPy's ufuncs read arrays of either byte order ('<f4', '>f4') and return native ones; the C
# kernels take native order only.  An array that is only read may therefore have any byte order
# (checked here, converted by the caller on its copy path, e.g. with
# ``np.ascontiguousarray(a, dtype=native_dtype(a.dtype))``); one that is written in place must
# be native already (require_native).

def native_dtype(dtype):
    """``dtype`` in the machine's byte order (``'>f4'`` -> ``float32``; native ones unchanged)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def to_native(a):
    """``a`` (an ndarray) in native byte order: ``a`` itself, or a converted copy in the same
    memory order (as ``astype``)."""
    return a if a.dtype.isnative else a.astype(native_dtype(a.dtype))


def float_array_any_order(a, name, half=False):
    """:func:`float_array` that also accepts float32/float64 (and with ``half`` float16) of
    non-native byte order.

    Returns the ndarray as given (not converted), so that overlap checks see the caller's memory.
    """
    if isinstance(a, np.ndarray) and native_dtype(a.dtype) in FLOAT_DTYPES:
        not_masked(a, name)
        return a
    return float_array(a, name, half)


def input_array(x, name, min_ndim, layout="", half=False):
    """:func:`float_array_any_order` of at least ``min_ndim`` dimensions; ``layout`` (such as
    BATCH_LAYOUT) follows the count in the message."""
    x = float_array_any_order(x, name, half)
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected an array with at least {min_ndim} dimension"
                         f"{'s' if min_ndim > 1 else ''}{layout}, got {x.ndim}-d shape {x.shape}")
    return x


def same_dtype_any_order(a, name, dtype, of="x"):
    """:func:`same_dtype` up to byte order: ``'>f4'`` matches ``float32``."""
    if a.dtype != dtype and native_dtype(a.dtype) != native_dtype(dtype):
        raise TypeError(f"{name}: expected dtype {native_dtype(dtype)} (the dtype of {of}), "
                        f"got {a.dtype}")


def vector_any_order(a, name, length, dtype):
    """:func:`vector` for an array that is only read: an ndarray of ``dtype`` in either byte
    order is accepted, and returned as given."""
    if isinstance(a, np.ndarray) and not a.dtype.isnative:
        same_dtype_any_order(a, name, dtype)
        if a.shape != (length,):
            raise ValueError(f"{name}: expected shape ({length},) (one value per channel), "
                             f"got {a.shape}")
        return a
    return vector(a, name, length, native_dtype(dtype))


def optional_vector_any_order(a, name, length, dtype):
    """None, or :func:`vector_any_order` (``a`` as given, for the overlap checks)."""
    return None if a is None else vector_any_order(a, name, length, dtype)


def output_any_order(out, name, shape, dtype):
    """:func:`output` up to byte order: the caller writes a non-native ``out`` through a copy."""
    if isinstance(out, np.ndarray) and not out.dtype.isnative:
        same_dtype_any_order(out, name, dtype, of="x")
        output(out.view(native_dtype(out.dtype)), name, shape, native_dtype(dtype))
        return out
    return output(out, name, shape, native_dtype(dtype))


def like_x(a, name, x, what="x"):
    """An optional input of the shape and dtype of ``x`` (either byte order, any strides): None,
    or ``a`` as given (for the overlap checks); ``what`` names ``x`` in the messages."""
    if a is None:
        return None
    a = float_array_any_order(a, name, half=is_half(native_dtype(x.dtype)))
    same_dtype_any_order(a, name, x.dtype, of=what)
    if a.shape != x.shape:
        raise ValueError(f"{name}: expected the shape of {what} {x.shape}, got {a.shape}")
    return a


def require_native(a, name):
    """Raise TypeError if ``a`` (an ndarray updated in place, or None) is not in native byte order."""
    if isinstance(a, np.ndarray) and not a.dtype.isnative:
        raise TypeError(f"{name}: expected native byte order (it is updated in place), "
                        f"got dtype {a.dtype.str!r}")


# ---- arrays as the C kernels take them ---------------------------------------------------------
# The kernels read and write C-contiguous, aligned arrays of a native dtype.  Aligned: the C code
# reads single elements as T, which at an odd address is undefined behaviour (UBSan stops there),
# however x86 takes it.

def kernel_ready(a):
    """True if the kernels can write ``a`` (an ndarray) directly: C-contiguous, native, aligned."""
    return a.flags.c_contiguous and a.dtype.isnative and a.flags.aligned


def kernel_array(a, dtype, perm=None):
    """``a`` as the kernels read it: C-contiguous, aligned, native ``dtype``, transposed by
    ``perm`` first if given.  ``a`` itself when it already is; None stays None."""
    if a is None:
        return None
    if perm is not None:
        a = a.transpose(perm)
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.aligned else a.copy()


# NumPy's large arrays start 16 bytes into a page, so each row or slab of an output ends in a
# partial 64-byte line that the streamed stores cannot take (docs/performance.rst).
_LINE = 64
LINE_MIN_BYTES = 1 << 16   # smaller results stay plain np.empty: their calls are overhead-bound


# A streamed output that starts above an input modulo 4 KB is met by that input's loads, which
# wait for its stores in flight (4K aliasing; docs/performance.rst): new streamed outputs
# (csrc/norm_common.h's FB_STREAM_MIN_BYTES) start at their first input's line, below the others.
_PAGE = 4096
_NEAR = 128
STREAM_MIN_BYTES = 4 << 20


def below_offset(arrays):
    """The 64-byte line of a 4 KB page at or just below where the first of ``arrays`` (None: left
    out) starts, modulo 4 KB, moved below each other one starting up to _NEAR bytes under it."""
    offs = [a.__array_interface__["data"][0] % _PAGE for a in arrays if a is not None]
    if not offs:
        return 0
    line = offs[0] // _LINE * _LINE
    for _ in offs:
        under = [(line - o) % _PAGE for o in offs if 0 < (line - o) % _PAGE <= _NEAR]
        if not under:
            break
        line = (line - max(under)) % _PAGE // _LINE * _LINE
    return line


def empty_aligned(shape, dtype, order="C", away=()):
    """``np.empty``, starting on a 64-byte line when it is large (its ``base``: the buffer), and
    when streamed at or just below the arrays ``away`` modulo 4 KB (:func:`below_offset`)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < LINE_MIN_BYTES:
        return np.empty(shape, dtype=dtype, order=order)
    page = nbytes >= STREAM_MIN_BYTES and any(a is not None for a in away)
    buf = np.empty(nbytes + (_PAGE if page else _LINE), dtype=np.uint8)
    want = below_offset(away) if page else 0
    off = (want - buf.__array_interface__["data"][0]) % (_PAGE if page else _LINE)
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=off, order=order)


def empty_aligned_like(x, dtype, away=()):
    """``np.empty_like(x, dtype)`` (the memory order of ``x``), placed as empty_aligned where
    ``x`` is C- or Fortran-contiguous."""
    if x.flags.c_contiguous or x.flags.f_contiguous:
        return empty_aligned(x.shape, dtype, "C" if x.flags.c_contiguous else "F", away)
    return np.empty_like(x, dtype=dtype, subok=False)


def out_buffers(out, x, dtype, perm=None, away=()):
    """(buf, target) for a kernel that writes an array shaped like ``x``, reading ``away`` (the
    arrays it reads in step with its output, as it reads them).

    The caller gets ``target``: ``out``, or a new array in the memory order of ``x`` (as
    ``np.empty_like``, line-aligned and at or below those inputs: :func:`empty_aligned_like`).  The
    kernel writes ``buf``: the shape of ``x`` transposed by ``perm`` if given, C-contiguous,
    native ``dtype``; ``target`` itself when that needs no transpose and is :func:`kernel_ready`,
    else scratch, placed the same way, that :func:`deliver` copies into ``target``.
    """
    target = empty_aligned_like(x, dtype, away) if out is None else out
    if perm is None and kernel_ready(target):
        return target, target
    shape = x.shape if perm is None else tuple(x.shape[i] for i in perm)
    return empty_aligned(shape, dtype, away=away), target


def deliver(buf, target, perm=None):
    """``target`` holding what the kernel wrote into ``buf`` (see :func:`out_buffers`)."""
    if buf is not target:
        np.copyto(target, buf if perm is None else buf.transpose(np.argsort(perm)))
    return target
