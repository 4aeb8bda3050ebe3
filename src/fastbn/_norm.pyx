"""The normalization family's Cython module: batch norm and the core of layer, RMS, group and
instance norm, over one kernel list (``csrc/kernels.def``) and one instruction-set choice.

``fastbn.norm`` validates every argument (one plan per call, shared by all the norms) and hands
this module C-contiguous native arrays and the (outer, mid, G, Cg, inner) view (``norm_forward``,
``norm_backward``); ``fastbn.batchnorm`` does the same for batch norm's (outer, C, inner) view
(``_batchnorm_glue.pxi``, included below and re-exported as ``fastbn._batchnorm``).  This module
re-checks the facts memory safety rests on (dtype, byte order, contiguity, sizes), releases the
GIL and calls the ``_f32``, ``_f64``, ``_f16`` or ``_bf16`` kernel (half tensors: float32 parameters).  The kernels' declarations come from the one
kernel list through the generated ``_kernels_decl.pxi``.
"""
cimport numpy as cnp
from fastbn._util cimport fb_status, check_status, extents_meet, fb_parallel_install, parallel_impl
from libc.math cimport isfinite
from libc.stdint cimport int64_t, uint16_t

from fastbn import _validation as _val

cnp.import_array()

# Kernels run their threads on _util's pool: one pool per process.
fb_parallel_install(parallel_impl())

cdef extern from "kernels.h":
    ctypedef struct fb_norm_view:
        int64_t outer
        int64_t mid
        int64_t G
        int64_t Cg
        int64_t inner
    int fb_kernels_set_isa(int isa) nogil
    int fb_kernels_get_isa() nogil

include "_kernels_decl.pxi"

cdef extern from "norm.h":
    int FB_NORM_VAR

cdef extern from "cpu.h":
    int fb_alias_reverse
    int fb_narrow_sums
    int fb_grad_prefetch
    int fb_first_prefetch

ISA_NAMES = ("scalar", "avx2", "avx512")


def set_isa(int isa):
    """Choose the instruction set of every kernel of the family (an index into ISA_NAMES)."""
    if fb_kernels_set_isa(isa) != 0:
        raise ValueError(f"instruction set {ISA_NAMES[isa]!r} cannot run on this CPU or build")


def get_isa():
    return fb_kernels_get_isa()


def set_alias_reverse(bint on):
    """Whether streamed passes whose output lies just above an input (modulo 4 KB) run last
    element first (csrc/cpu.h's fb_alias_reverse; chosen per CPU when the module loads).  For
    the tests: the order changes no bit.  Not for use while kernels run."""
    global fb_alias_reverse
    fb_alias_reverse = on


def get_alias_reverse():
    return bool(fb_alias_reverse)


def set_narrow_sums(bint on):
    """Whether the AVX-512 kernels take float32 statistics sums in half-width vectors
    (csrc/cpu.h's fb_narrow_sums; chosen per CPU when the module loads).  For the tests: the
    width changes no bit.  Not for use while kernels run."""
    global fb_narrow_sums
    fb_narrow_sums = on


def get_narrow_sums():
    return bool(fb_narrow_sums)


def set_grad_prefetch(bint on):
    """Whether the rows layout's gradient apply prefetches its inputs into L2 (csrc/cpu.h's
    fb_grad_prefetch; chosen per CPU when the module loads).  For the tests: prefetching changes
    no bit.  Not for use while kernels run."""
    global fb_grad_prefetch
    fb_grad_prefetch = on


def get_grad_prefetch():
    return bool(fb_grad_prefetch)


def set_first_prefetch(bint on):
    """Whether, on one thread, the first pass over a channel-first channel or group also
    prefetches the next one (on more threads, group and instance norm's the group the thread takes
    next; csrc/cpu.h's fb_first_prefetch, chosen per CPU when the module loads).  For the tests:
    prefetching changes no bit.  Not for use while kernels run."""
    global fb_first_prefetch
    fb_first_prefetch = on


def get_first_prefetch():
    return bool(fb_first_prefetch)


cdef void *_data(object a, int typenum, Py_ssize_t size, str name) except? NULL:
    """Data pointer of a C-contiguous, aligned, native-order array of `typenum` with `size`
    elements; NULL for None."""
    if a is None:
        return NULL
    cdef cnp.ndarray arr = <cnp.ndarray?>a
    if (cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr)
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr)
            or cnp.PyArray_SIZE(arr) != size):
        raise ValueError(f"{name}: must be a C-contiguous, aligned array of {size} elements of "
                         f"the expected dtype, in native byte order")
    return cnp.PyArray_DATA(arr)


cdef int _view(tuple shape, fb_norm_view *v) except -1:
    v.outer, v.mid, v.G, v.Cg, v.inner = shape
    if v.outer < 0 or v.mid < 0 or v.G < 0 or v.Cg < 0 or v.inner < 0:
        raise ValueError(f"fastbn._norm: negative extent in view {shape}")
    return 0


# The kernel dtypes: float32, float64, float16, bfloat16 (ml_dtypes' registered type).
cdef enum:
    K_F32 = 0
    K_F64 = 1
    K_F16 = 2
    K_BF16 = 3


cdef int _kind(cnp.ndarray x) except -1:
    """K_F32, K_F64, K_F16 or K_BF16 for x's dtype (native byte order); anything else is a
    caller's bug."""
    cdef int t = cnp.PyArray_TYPE(x)
    if not cnp.PyArray_ISNOTSWAPPED(x):
        raise TypeError(f"fastbn._norm: expected native byte order, got {x.dtype.str}")
    if t == cnp.NPY_FLOAT32:
        return K_F32
    if t == cnp.NPY_FLOAT64:
        return K_F64
    if t == cnp.NPY_FLOAT16:
        return K_F16
    if x.dtype.name == "bfloat16" and x.dtype.itemsize == 2:
        return K_BF16
    raise TypeError(f"fastbn._norm: expected float32, float64, float16 or bfloat16, "
                    f"got {x.dtype}")


cdef inline int _param_type(int kind, int t) noexcept:
    """The type number of the per-channel parameters for tensors of `kind` (type number t):
    float32 for the half types."""
    return cnp.NPY_FLOAT32 if kind >= K_F16 else t


def norm_forward(cnp.ndarray x, cnp.ndarray y, tuple view, gamma, beta, double eps, bint centered,
            cnp.ndarray mean, cnp.ndarray invstd, int n_threads, residual=None, bint relu=False,
            bint var_out=False):
    """Statistics per group and the affine step, then y = relu(y + residual) where asked; see
    fb_norm_forward_* in csrc/norm.h.  mean, invstd: float64, one per group (outer * G), written;
    residual (or None): x's dtype and size; var_out: invstd receives the variance instead."""
    cdef fb_norm_view v
    _view(view, &v)
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x), pt = _param_type(k, t)
    cdef Py_ssize_t n = v.outer * v.mid * v.G * v.Cg * v.inner, C = v.G * v.Cg
    cdef void *px = _data(x, t, n, "x")
    cdef void *py = _data(y, t, n, "y")
    cdef void *pg = _data(gamma, pt, C, "gamma")
    cdef void *pb = _data(beta, pt, C, "beta")
    cdef double *pm = <double *>_data(mean, cnp.NPY_FLOAT64, v.outer * v.G, "mean")
    cdef double *ps = <double *>_data(invstd, cnp.NPY_FLOAT64, v.outer * v.G, "invstd")
    cdef void *pr = _data(residual, t, n, "residual")
    cdef int mode = (1 if centered else 0) | (FB_NORM_VAR if var_out else 0)
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_norm_forward_f32(<const float *>px, <float *>py, &v, <const float *>pg,
                                     <const float *>pb, eps, mode, pm, ps,
                                     <const float *>pr, relu, n_threads)
        elif k == K_F64:
            st = fb_norm_forward_f64(<const double *>px, <double *>py, &v, <const double *>pg,
                                     <const double *>pb, eps, mode, pm, ps,
                                     <const double *>pr, relu, n_threads)
        elif k == K_F16:
            st = fb_norm_forward_f16(<const uint16_t *>px, <uint16_t *>py, &v, <const float *>pg,
                                     <const float *>pb, eps, mode, pm, ps,
                                     <const uint16_t *>pr, relu, n_threads)
        else:
            st = fb_norm_forward_bf16(<const uint16_t *>px, <uint16_t *>py, &v,
                                      <const float *>pg, <const float *>pb, eps, mode, pm, ps,
                                      <const uint16_t *>pr, relu, n_threads)
    check_status(st)


def norm_backward(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray dx, tuple view, mean,
             cnp.ndarray invstd, gamma, bint centered, cnp.ndarray dgamma, dbeta, int n_threads,
             y=None, dresidual=None):
    """Gradients through the group statistics; see fb_norm_backward_*.  mean (None when not
    centered), invstd: float64, one per group; dgamma, dbeta (or None): float64 (C,), written;
    y (or None): the fused forward's output, masking dy; dresidual (or None): receives the
    masked dy (both x's dtype and size)."""
    cdef fb_norm_view v
    _view(view, &v)
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x), pt = _param_type(k, t)
    cdef Py_ssize_t n = v.outer * v.mid * v.G * v.Cg * v.inner, C = v.G * v.Cg
    if centered and mean is None:
        raise ValueError("fastbn._norm: centered backward needs the mean")
    cdef void *pdy = _data(dy, t, n, "dy")
    cdef void *px = _data(x, t, n, "x")
    cdef void *pdx = _data(dx, t, n, "dx")
    cdef const double *pm = <const double *>_data(mean, cnp.NPY_FLOAT64, v.outer * v.G, "mean")
    cdef const double *ps = <const double *>_data(invstd, cnp.NPY_FLOAT64, v.outer * v.G, "invstd")
    cdef void *pg = _data(gamma, pt, C, "gamma")
    cdef double *pdg = <double *>_data(dgamma, cnp.NPY_FLOAT64, C, "dgamma")
    cdef double *pdb = <double *>_data(dbeta, cnp.NPY_FLOAT64, C, "dbeta")
    cdef void *pym = _data(y, t, n, "y")
    cdef void *pdr = _data(dresidual, t, n, "dresidual")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_norm_backward_f32(<const float *>pdy, <const float *>px, <float *>pdx, &v, pm,
                                      ps, <const float *>pg, centered, pdg, pdb,
                                      <const float *>pym, <float *>pdr, n_threads)
        elif k == K_F64:
            st = fb_norm_backward_f64(<const double *>pdy, <const double *>px, <double *>pdx, &v,
                                      pm, ps, <const double *>pg, centered, pdg, pdb,
                                      <const double *>pym, <double *>pdr, n_threads)
        elif k == K_F16:
            st = fb_norm_backward_f16(<const uint16_t *>pdy, <const uint16_t *>px,
                                      <uint16_t *>pdx, &v, pm, ps, <const float *>pg, centered,
                                      pdg, pdb, <const uint16_t *>pym, <uint16_t *>pdr, n_threads)
        else:
            st = fb_norm_backward_bf16(<const uint16_t *>pdy, <const uint16_t *>px,
                                       <uint16_t *>pdx, &v, pm, ps, <const float *>pg, centered,
                                       pdg, pdb, <const uint16_t *>pym, <uint16_t *>pdr,
                                       n_threads)
    check_status(st)


# ---- batch norm -------------------------------------------------------------------------------

include "_batchnorm_glue.pxi"


# ---- the family's plain case ------------------------------------------------------------------
# As batch norm's (the glue's "Small calls"): the public function's arguments as they came, taken
# here when x is a plain float32, float64, float16 or bfloat16 array -- layer and RMS norm over
# its last axis, group and instance norm on a channel axis other than 0 (a Python int axis;
# num_groups a Python int dividing the channels) -- gamma, beta and the statistics plain too
# (float32 beside half tensors), eps a Python float > 0, no fused part and out absent or plain
# (_plain_out); anything else returns None before writing, and the general path validates it.
# Both paths call norm_forward / norm_backward with the same view: the same bits.

cdef int _plain_trailing(object x, object axis, int64_t *outer, int64_t *D) except -2:
    """The type of x when it is plain with ``axis`` its last axis and values to normalize, with
    (outer, D): x seen as rows of D values; else -1."""
    cdef int t = _float_type(x)
    if t < 0:
        return -1
    cdef cnp.ndarray xa = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(xa)
    if nd < 1 or _plain_axis(axis, nd) != nd - 1:
        return -1
    D[0] = cnp.PyArray_DIM(xa, nd - 1)
    if D[0] < 1 or cnp.PyArray_SIZE(xa) < 1:
        return -1
    outer[0] = cnp.PyArray_SIZE(xa) // D[0]
    return t


cdef cnp.ndarray _stat_of(cnp.ndarray src, int nd, cnp.npy_intp *dims, int t):
    """src (float64, as many values as dims[:nd] holds) as an array of type t and that shape."""
    return _array_of(<const double *>cnp.PyArray_DATA(src), nd, dims, t)


cdef tuple _plain_forward(cnp.ndarray xa, int t, tuple view, gamma, beta, eps, bint centered,
                          int n_threads, out):
    """(y, mean, invstd) of a plain forward whose x is checked, the statistics float64 (one per
    group, outer * G); eps, gamma and beta (C values each) and out checked here; else None."""
    if type(eps) is not float:
        return None
    cdef double e = eps
    cdef int64_t C = view[2] * view[3]
    cdef int pt = _params_type(t)
    if not (e > 0.0) or not (_plain_vector(gamma, pt, C, True, True, False)
                             and _plain_vector(beta, pt, C, True, True, False)):
        return None
    y = _plain_out(out, xa, t, (xa, gamma, beta), (xa,))
    if y is None:
        return None
    cdef cnp.npy_intp n = view[0] * view[2]
    cdef cnp.ndarray mean = cnp.PyArray_EMPTY(1, &n, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray invstd = cnp.PyArray_EMPTY(1, &n, cnp.NPY_FLOAT64, 0)
    norm_forward(xa, y, view, gamma, beta, e, centered, mean, invstd, n_threads)
    return y, mean, invstd


def trailing_forward_plain(x, gamma, beta, axis, eps, bint centered, int n_threads, out=None):
    """(y, mean, invstd) of layer_norm (centered) or rms_norm (mean None) in the plain case,
    else None."""
    cdef int64_t outer, D
    cdef int t = _plain_trailing(x, axis, &outer, &D)
    if t < 0:
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    r = _plain_forward(xa, t, (outer, 1, 1, D, 1), gamma, beta, eps, centered, n_threads, out)
    if r is None:
        return None
    cdef int nd = cnp.PyArray_NDIM(xa) - 1, pt = _params_type(t)   # x's shape but the last axis
    return (r[0], (_stat_of(r[1], nd, cnp.PyArray_DIMS(xa), pt) if centered else None),
            _stat_of(r[2], nd, cnp.PyArray_DIMS(xa), pt))


def trailing_backward_plain(dy, x, mean, invstd, gamma, axis, bint centered, int n_threads,
                            out=None):
    """(dx, dgamma, dbeta) of layer_norm_backward (centered) or rms_norm_backward (mean ignored,
    dbeta None) in the plain case, else None."""
    cdef int64_t outer, D
    cdef int t = _plain_trailing(x, axis, &outer, &D)
    if t < 0:
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(xa)
    if not _plain_shaped(dy, nd, cnp.PyArray_DIMS(xa), t):
        return None
    cdef int pt = _params_type(t)
    if not ((not centered or _plain_shaped(mean, nd - 1, cnp.PyArray_DIMS(xa), pt))
            and _plain_shaped(invstd, nd - 1, cnp.PyArray_DIMS(xa), pt)):
        return None
    return _plain_backward(<cnp.ndarray>dy, xa, t, mean if centered else None, invstd, gamma,
                           (outer, 1, 1, D, 1), centered, n_threads, out)


cdef object _plain_backward(cnp.ndarray dya, cnp.ndarray xa, int t, mean, invstd, gamma,
                            tuple view, bint centered, int n_threads, out):
    """(dx, dgamma, dbeta) of a plain backward whose dy, x, mean (None when not centered) and
    invstd are checked; gamma (C values) and out checked here; else None."""
    cdef int64_t C = view[2] * view[3]
    cdef int pt = _params_type(t)
    if not _plain_vector(gamma, pt, C, True, True, False):
        return None
    dx = _plain_out(out, xa, t, (dya, xa, mean, invstd, gamma), (dya, xa))
    if dx is None:
        return None
    m = None if mean is None else cnp.PyArray_Cast(<cnp.ndarray>mean, cnp.NPY_FLOAT64)
    s = cnp.PyArray_Cast(<cnp.ndarray>invstd, cnp.NPY_FLOAT64)
    cdef cnp.npy_intp d = C
    cdef cnp.ndarray dgamma = cnp.PyArray_EMPTY(1, &d, cnp.NPY_FLOAT64, 0)
    dbeta = cnp.PyArray_EMPTY(1, &d, cnp.NPY_FLOAT64, 0) if centered else None
    norm_backward(dya, xa, dx, view, m, s, gamma, centered, dgamma, dbeta, n_threads)
    return (dx, _vector_of(<const double *>cnp.PyArray_DATA(dgamma), C, pt),
            None if dbeta is None else
            _vector_of(<const double *>cnp.PyArray_DATA(<cnp.ndarray>dbeta), C, pt))


cdef int _plain_group(object x, object num_groups, object axis, int64_t view[5]) except -2:
    """The type of x when it is plain, with a Python int channel axis other than 0 whose C
    channels num_groups (a Python int; None: instance norm, one group a channel) divides, and
    values in every group, with view: x as (N, mid, G, Cg, inner); else -1."""
    cdef int t = _float_type(x)
    if t < 0:
        return -1
    cdef cnp.ndarray xa = <cnp.ndarray>x
    cdef int i, nd = cnp.PyArray_NDIM(xa), ax = _plain_axis(axis, nd)
    if nd < 2 or ax < 1:
        return -1
    cdef int64_t C = cnp.PyArray_DIM(xa, ax), G
    if num_groups is None:
        G = C
    elif type(num_groups) is int and 1 <= num_groups <= C:
        G = num_groups
    else:
        return -1
    if C < 1 or C % G:
        return -1
    view[0], view[1], view[2], view[3], view[4] = cnp.PyArray_DIM(xa, 0), 1, G, C // G, 1
    for i in range(1, ax):
        view[1] *= cnp.PyArray_DIM(xa, i)
    for i in range(ax + 1, nd):
        view[4] *= cnp.PyArray_DIM(xa, i)
    if view[0] < 1 or view[1] * view[4] < 1:
        return -1
    return t


def group_forward_plain(x, num_groups, gamma, beta, axis, eps, int n_threads, out=None):
    """(y, mean, invstd) of group_norm (instance_norm: num_groups None) in the plain case, else
    None."""
    cdef int64_t view[5]
    cdef int t = _plain_group(x, num_groups, axis, view)
    if t < 0:
        return None
    r = _plain_forward(<cnp.ndarray>x, t, (view[0], view[1], view[2], view[3], view[4]), gamma,
                       beta, eps, True, n_threads, out)
    if r is None:
        return None
    cdef cnp.npy_intp sdims[2]
    sdims[0], sdims[1] = view[0], view[2]
    cdef int pt = _params_type(t)
    return r[0], _stat_of(r[1], 2, sdims, pt), _stat_of(r[2], 2, sdims, pt)


def group_backward_plain(dy, x, mean, invstd, num_groups, gamma, axis, int n_threads, out=None):
    """(dx, dgamma, dbeta) of group_norm_backward (instance_norm_backward: num_groups None) in
    the plain case, else None."""
    cdef int64_t view[5]
    cdef int t = _plain_group(x, num_groups, axis, view)
    if t < 0:
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    if not _plain_shaped(dy, cnp.PyArray_NDIM(xa), cnp.PyArray_DIMS(xa), t):
        return None
    cdef cnp.npy_intp sdims[2]
    sdims[0], sdims[1] = view[0], view[2]
    cdef int pt = _params_type(t)
    if not (_plain_shaped(mean, 2, sdims, pt) and _plain_shaped(invstd, 2, sdims, pt)):
        return None
    return _plain_backward(<cnp.ndarray>dy, xa, t, mean, invstd, gamma,
                           (view[0], view[1], view[2], view[3], view[4]), True, n_threads, out)
