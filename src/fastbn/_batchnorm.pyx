"""Cython glue between :mod:`fastbn.batchnorm` and the C kernels of ``csrc/batchnorm.h``.

Design
------
Three layers, called in one direction only:

1. ``fastbn.batchnorm`` (Python) validates every argument -- dtypes agree, shapes fit, outputs
   are writeable and overlap nothing -- makes ``x`` C-contiguous, and flattens arrays to 1-d.
2. This module takes typed memoryviews (``const`` for inputs, so read-only arrays are
   accepted), releases the GIL and calls one C kernel.  The fused type ``floating`` picks the
   ``_f32`` or ``_f64`` kernel; callers have already made every array agree with ``x``.
3. The C kernels compute and return an ``fb_status``; they never raise, allocate Python objects
   or touch the GIL.  ``_check`` turns the status into a Python exception here.

Per-channel results (mean, var, invstd, dgamma, dbeta) come back in float64 buffers that the
caller owns.
"""
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "fastbn.h":
    ctypedef enum fb_status:
        FB_OK
        FB_ENOMEM
        FB_EINVAL

cdef extern from "cpu.h":
    int fb_cpu_supports(int isa) nogil
    int fb_cpu_best_isa() nogil
    const char *fb_isa_name(int isa) nogil

cdef extern from "batchnorm.h":
    fb_status fb_bn_train_f32(const float *x, float *y, int64_t outer, int64_t C, int64_t inner,
                              const float *gamma, const float *beta, double eps, double *mean,
                              double *var, double *invstd, int n_threads) nogil
    fb_status fb_bn_train_f64(const double *x, double *y, int64_t outer, int64_t C, int64_t inner,
                              const double *gamma, const double *beta, double eps, double *mean,
                              double *var, double *invstd, int n_threads) nogil
    fb_status fb_bn_infer_f32(const float *x, float *y, int64_t outer, int64_t C, int64_t inner,
                              const float *rmean, const float *rvar, const float *gamma,
                              const float *beta, double eps, int n_threads) nogil
    fb_status fb_bn_infer_f64(const double *x, double *y, int64_t outer, int64_t C, int64_t inner,
                              const double *rmean, const double *rvar, const double *gamma,
                              const double *beta, double eps, int n_threads) nogil
    fb_status fb_bn_backward_f32(const float *dy, const float *x, float *dx, int64_t outer,
                                 int64_t C, int64_t inner, const double *mean,
                                 const double *invstd, const float *gamma, double *dgamma,
                                 double *dbeta, int n_threads) nogil
    fb_status fb_bn_backward_f64(const double *dy, const double *x, double *dx, int64_t outer,
                                 int64_t C, int64_t inner, const double *mean,
                                 const double *invstd, const double *gamma, double *dgamma,
                                 double *dbeta, int n_threads) nogil
    int64_t fb_bn_update_running_f32(float *rmean, int64_t rmean_stride, float *rvar,
                                     int64_t rvar_stride, const double *mean, const double *var,
                                     int64_t C, int64_t count, double momentum) nogil
    int64_t fb_bn_update_running_f64(double *rmean, int64_t rmean_stride, double *rvar,
                                     int64_t rvar_stride, const double *mean, const double *var,
                                     int64_t C, int64_t count, double momentum) nogil
    int fb_bn_set_isa(int isa) nogil
    int fb_bn_get_isa() nogil

ISA_NAMES = ("scalar", "avx2", "avx512")


cdef int _check(fb_status status) except -1:
    if status == FB_ENOMEM:
        raise MemoryError("fastbn: could not allocate scratch memory for the kernel")
    if status != FB_OK:
        raise ValueError("fastbn: the kernel rejected the sizes it was given")
    return 0


cdef inline const floating *_opt(const floating[::1] a):
    """Pointer to an optional input, NULL for None."""
    return NULL if a is None else &a[0]


def cpu_supports(int isa):
    """Whether the CPU (and this build) can run instruction set ``isa`` (an index of ISA_NAMES)."""
    return bool(fb_cpu_supports(isa))


def best_isa():
    return fb_cpu_best_isa()


def set_isa(int isa):
    if fb_bn_set_isa(isa) != 0:
        raise ValueError(f"instruction set {ISA_NAMES[isa]!r} cannot run on this CPU or build")


def get_isa():
    return fb_bn_get_isa()


def train(const floating[::1] x, floating[::1] y, int64_t outer, int64_t C, int64_t inner,
          const floating[::1] gamma, const floating[::1] beta, double eps,
          double[::1] mean, double[::1] var, double[::1] invstd, int n_threads):
    """Training forward; see fb_bn_train_* in csrc/batchnorm.h."""
    cdef fb_status st
    cdef const floating *g = _opt(gamma)
    cdef const floating *b = _opt(beta)
    with nogil:
        if floating is float:
            st = fb_bn_train_f32(&x[0], &y[0], outer, C, inner, g, b, eps,
                                 &mean[0], &var[0], &invstd[0], n_threads)
        else:
            st = fb_bn_train_f64(&x[0], &y[0], outer, C, inner, g, b, eps,
                                 &mean[0], &var[0], &invstd[0], n_threads)
    _check(st)


def infer(const floating[::1] x, floating[::1] y, int64_t outer, int64_t C, int64_t inner,
          const floating[::1] rmean, const floating[::1] rvar,
          const floating[::1] gamma, const floating[::1] beta, double eps, int n_threads):
    """Inference forward with running statistics; see fb_bn_infer_*."""
    cdef fb_status st
    cdef const floating *g = _opt(gamma)
    cdef const floating *b = _opt(beta)
    with nogil:
        if floating is float:
            st = fb_bn_infer_f32(&x[0], &y[0], outer, C, inner, &rmean[0], &rvar[0],
                                 g, b, eps, n_threads)
        else:
            st = fb_bn_infer_f64(&x[0], &y[0], outer, C, inner, &rmean[0], &rvar[0],
                                 g, b, eps, n_threads)
    _check(st)


def backward(const floating[::1] dy, const floating[::1] x, floating[::1] dx, int64_t outer,
             int64_t C, int64_t inner, const double[::1] mean, const double[::1] invstd,
             const floating[::1] gamma, double[::1] dgamma, double[::1] dbeta, int n_threads):
    """Backward through the batch statistics; see fb_bn_backward_*."""
    cdef fb_status st
    cdef const floating *g = _opt(gamma)
    with nogil:
        if floating is float:
            st = fb_bn_backward_f32(&dy[0], &x[0], &dx[0], outer, C, inner, &mean[0], &invstd[0],
                                    g, &dgamma[0], &dbeta[0], n_threads)
        else:
            st = fb_bn_backward_f64(&dy[0], &x[0], &dx[0], outer, C, inner, &mean[0], &invstd[0],
                                    g, &dgamma[0], &dbeta[0], n_threads)
    _check(st)


def update_running(floating[:] rmean, floating[:] rvar, const double[::1] mean,
                   const double[::1] var, int64_t count, double momentum):
    """Momentum update of the running buffers (either may be None); returns the number of
    channels skipped because their batch statistics were not finite."""
    cdef int64_t C = mean.shape[0], skipped
    cdef floating *rm = NULL
    cdef floating *rv = NULL
    cdef int64_t sm = 0, sv = 0
    if rmean is not None:
        rm, sm = &rmean[0], rmean.strides[0]
    if rvar is not None:
        rv, sv = &rvar[0], rvar.strides[0]
    with nogil:
        if floating is float:
            skipped = fb_bn_update_running_f32(rm, sm, rv, sv, &mean[0], &var[0], C, count, momentum)
        else:
            skipped = fb_bn_update_running_f64(rm, sm, rv, sv, &mean[0], &var[0], C, count, momentum)
    return skipped
