"""Cython glue between :mod:`fastbn.norm` and the normalization core (``csrc/norm.h``).

``fastbn.norm`` validates every argument (one plan per call, shared by all the norms) and hands
this module C-contiguous native arrays and the (outer, mid, G, Cg, inner) view.  This module
re-checks the facts memory safety rests on (dtype, byte order, contiguity, sizes), releases the
GIL and calls the ``_f32`` or ``_f64`` kernel.  The kernels' declarations come from the one kernel
list, csrc/norm_kernels.def, through the generated ``_norm_decl.pxi``.
"""
cimport numpy as cnp
from fastbn._util cimport check_status, fb_parallel_install, parallel_impl
from libc.stdint cimport int64_t

cnp.import_array()

# Kernels run their threads on _util's pool: one pool per process.
fb_parallel_install(parallel_impl())

cdef extern from "fastbn.h":
    ctypedef enum fb_status:
        FB_OK
        FB_ENOMEM
        FB_EINVAL

cdef extern from "norm.h":
    ctypedef struct fb_norm_view:
        int64_t outer
        int64_t mid
        int64_t G
        int64_t Cg
        int64_t inner
    int fb_norm_set_isa(int isa) nogil
    int fb_norm_get_isa() nogil

include "_norm_decl.pxi"

ISA_NAMES = ("scalar", "avx2", "avx512")


def set_isa(int isa):
    if fb_norm_set_isa(isa) != 0:
        raise ValueError(f"instruction set {ISA_NAMES[isa]!r} cannot run on this CPU or build")


def get_isa():
    return fb_norm_get_isa()


cdef void *_data(object a, int typenum, Py_ssize_t size, str name) except? NULL:
    """Data pointer of a C-contiguous, aligned, native-order array of `typenum` with `size`
    elements; NULL for None."""
    if a is None:
        return NULL
    cdef cnp.ndarray arr = <cnp.ndarray?>a
    if (cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr)
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr)
            or cnp.PyArray_SIZE(arr) != size):
        raise ValueError(f"fastbn._norm: {name} must be a C-contiguous, aligned native array of "
                         f"{size} elements of the expected dtype")
    return cnp.PyArray_DATA(arr)


cdef int _view(tuple shape, fb_norm_view *v) except -1:
    v.outer, v.mid, v.G, v.Cg, v.inner = shape
    if v.outer < 0 or v.mid < 0 or v.G < 0 or v.Cg < 0 or v.inner < 0:
        raise ValueError(f"fastbn._norm: negative extent in view {shape}")
    return 0


cdef int _typenum(cnp.ndarray x) except -1:
    cdef int t = cnp.PyArray_TYPE(x)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"fastbn._norm: expected float32 or float64, got {x.dtype}")
    return t


def forward(cnp.ndarray x, cnp.ndarray y, tuple view, gamma, beta, double eps, bint centered,
            cnp.ndarray mean, cnp.ndarray invstd, int n_threads):
    """Statistics per group and the affine step; see fb_norm_forward_* in csrc/norm.h.
    mean, invstd: float64, one per group (outer * G), written."""
    cdef fb_norm_view v
    _view(view, &v)
    cdef int t = _typenum(x)
    cdef Py_ssize_t n = v.outer * v.mid * v.G * v.Cg * v.inner, C = v.G * v.Cg
    cdef void *px = _data(x, t, n, "x")
    cdef void *py = _data(y, t, n, "y")
    cdef void *pg = _data(gamma, t, C, "gamma")
    cdef void *pb = _data(beta, t, C, "beta")
    cdef double *pm = <double *>_data(mean, cnp.NPY_FLOAT64, v.outer * v.G, "mean")
    cdef double *ps = <double *>_data(invstd, cnp.NPY_FLOAT64, v.outer * v.G, "invstd")
    cdef fb_status st
    with nogil:
        if t == cnp.NPY_FLOAT32:
            st = fb_norm_forward_f32(<const float *>px, <float *>py, &v, <const float *>pg,
                                     <const float *>pb, eps, centered, pm, ps, n_threads)
        else:
            st = fb_norm_forward_f64(<const double *>px, <double *>py, &v, <const double *>pg,
                                     <const double *>pb, eps, centered, pm, ps, n_threads)
    check_status(st)


def backward(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray dx, tuple view, mean,
             cnp.ndarray invstd, gamma, bint centered, cnp.ndarray dgamma, dbeta, int n_threads):
    """Gradients through the group statistics; see fb_norm_backward_*.  mean (None when not
    centered), invstd: float64, one per group; dgamma, dbeta (or None): float64 (C,), written."""
    cdef fb_norm_view v
    _view(view, &v)
    cdef int t = _typenum(x)
    cdef Py_ssize_t n = v.outer * v.mid * v.G * v.Cg * v.inner, C = v.G * v.Cg
    if centered and mean is None:
        raise ValueError("fastbn._norm: centered backward needs the mean")
    cdef void *pdy = _data(dy, t, n, "dy")
    cdef void *px = _data(x, t, n, "x")
    cdef void *pdx = _data(dx, t, n, "dx")
    cdef const double *pm = <const double *>_data(mean, cnp.NPY_FLOAT64, v.outer * v.G, "mean")
    cdef const double *ps = <const double *>_data(invstd, cnp.NPY_FLOAT64, v.outer * v.G, "invstd")
    cdef void *pg = _data(gamma, t, C, "gamma")
    cdef double *pdg = <double *>_data(dgamma, cnp.NPY_FLOAT64, C, "dgamma")
    cdef double *pdb = <double *>_data(dbeta, cnp.NPY_FLOAT64, C, "dbeta")
    cdef fb_status st
    with nogil:
        if t == cnp.NPY_FLOAT32:
            st = fb_norm_backward_f32(<const float *>pdy, <const float *>px, <float *>pdx, &v, pm,
                                      ps, <const float *>pg, centered, pdg, pdb, n_threads)
        else:
            st = fb_norm_backward_f64(<const double *>pdy, <const double *>px, <double *>pdx, &v,
                                      pm, ps, <const double *>pg, centered, pdg, pdb, n_threads)
    check_status(st)
