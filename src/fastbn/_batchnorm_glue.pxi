"""Batch norm's part of fastbn._norm (included by _norm.pyx; fastbn._batchnorm re-exports it):
the glue between :mod:`fastbn.batchnorm` and the C kernels of ``csrc/batchnorm.h``.

Design
------
Three layers, called in one direction only:

1. ``fastbn.batchnorm`` (Python) validates every argument -- dtypes agree, shapes fit, outputs
   are writeable and overlap nothing but the one input they may replace in place -- and makes
   every array the kernel reads or writes C-contiguous and of native byte order (the running
   buffers are updated in place through their stride; they must be native already).
2. This module takes those ndarrays, reads their data pointers through the NumPy C API (no
   buffer acquisition: a call costs well under a microsecond here), releases the GIL and calls the
   ``_f32``, ``_f64``, ``_f16`` or ``_bf16`` kernel by the dtype of ``x`` (the half types'
   per-channel parameters are float32).  It re-checks the few facts memory safety
   and correct values rest on (dtype agreement, native byte order, contiguity, sizes), so a wrong
   call raises instead of reading out of bounds or reading swapped bytes as numbers.
3. The C kernels compute and return an ``fb_status``; they never raise, allocate Python objects
   or touch the GIL.  ``fastbn._util.check_status`` turns the status into a Python
   exception here.

Byte order: ``PyArray_TYPE`` is the type number of the dtype, NPY_FLOAT for ``'<f4'`` and
``'>f4'`` alike -- the byte order is a separate field of the descriptor.  Every check here
therefore also asks ``PyArray_ISNOTSWAPPED``, so a swapped array never reaches C.

Per-channel results (mean, var, invstd, dgamma, dbeta) come back in float64 arrays that the
caller owns.

Small calls
-----------
A (32, 64) batch costs about a microsecond in C, so checking ten arguments in Python would
dominate it.  ``train_plain``, ``infer_plain`` and ``backward_plain`` take the public functions'
arguments as they came and handle the plain case entirely here, in C-level checks: exact
ndarrays of the right dtype in native byte order and of the right shape (x, dy, gamma, beta
C-contiguous), a Python int axis and Python floats in range (eps > 0), no fused part, running
buffers whose memory does not meet the inputs', and ``out`` absent or a C-contiguous writeable
array of x's shape and type whose memory meets no input's (or that is x itself -- dy for the
backward -- in place).
Anything else -- including every bad argument -- makes them return None *before writing
anything*, and the public function then runs its full validation (which raises with the
argument's name) and the general path.  Both paths call the same kernels, so they give the same
bits (tests/test_batchnorm_paths.py checks that; tests/test_batchnorm_errors.py checks that
every bad argument is named and nothing is written).

Non-finite statistics: ``train_plain`` updates the running buffers itself only when every
channel's statistics are finite; otherwise it hands the statistics back, so that the public
function warns *before* the buffers are written (under ``-W error`` the warning is an exception
and the buffers stay as they were).
"""
cdef extern from "batchnorm.h":
    int64_t fb_bn_update_running_f32(float *rmean, int64_t rmean_stride, float *rvar,
                                     int64_t rvar_stride, const double *mean, const double *var,
                                     int64_t C, int64_t count, double momentum) nogil
    int64_t fb_bn_update_running_f64(double *rmean, int64_t rmean_stride, double *rvar,
                                     int64_t rvar_stride, const double *mean, const double *var,
                                     int64_t C, int64_t count, double momentum) nogil


def train(cnp.ndarray x, cnp.ndarray y, int64_t outer, int64_t C, int64_t inner, gamma, beta,
          double eps, cnp.ndarray stats, int n_threads, residual=None, bint relu=False):
    """Training forward; see fb_bn_train_* in csrc/batchnorm.h.  stats: (3, C) float64 receiving
    mean, var, invstd.  residual (x's size and dtype, or None) and relu: the fused epilogue."""
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x), pt = _param_type(k, t)
    cdef Py_ssize_t n = outer * C * inner
    cdef void *px = _data(x, t, n, "x")
    cdef void *py = _data(y, t, n, "y")
    cdef void *pg = _data(gamma, pt, C, "gamma")
    cdef void *pb = _data(beta, pt, C, "beta")
    cdef double *ps = <double *>_data(stats, cnp.NPY_FLOAT64, 3 * C, "stats")
    cdef void *pr = _data(residual, t, n, "residual")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_bn_train_f32(<const float *>px, <float *>py, outer, C, inner,
                                 <const float *>pg, <const float *>pb, eps, ps, ps + C,
                                 ps + 2 * C, <const float *>pr, relu, n_threads)
        elif k == K_F64:
            st = fb_bn_train_f64(<const double *>px, <double *>py, outer, C, inner,
                                 <const double *>pg, <const double *>pb, eps, ps, ps + C,
                                 ps + 2 * C, <const double *>pr, relu, n_threads)
        elif k == K_F16:
            st = fb_bn_train_f16(<const uint16_t *>px, <uint16_t *>py, outer, C, inner,
                                 <const float *>pg, <const float *>pb, eps, ps, ps + C,
                                 ps + 2 * C, <const uint16_t *>pr, relu, n_threads)
        else:
            st = fb_bn_train_bf16(<const uint16_t *>px, <uint16_t *>py, outer, C, inner,
                                  <const float *>pg, <const float *>pb, eps, ps, ps + C,
                                  ps + 2 * C, <const uint16_t *>pr, relu, n_threads)
    check_status(st)


def infer(cnp.ndarray x, cnp.ndarray y, int64_t outer, int64_t C, int64_t inner, rmean, rvar,
          gamma, beta, double eps, int n_threads, residual=None, bint relu=False):
    """Inference forward with running statistics; see fb_bn_infer_*.  residual, relu: as
    train's."""
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x), pt = _param_type(k, t)
    cdef Py_ssize_t n = outer * C * inner
    cdef void *px = _data(x, t, n, "x")
    cdef void *py = _data(y, t, n, "y")
    cdef void *pm = _data(rmean, pt, C, "running_mean")
    cdef void *pv = _data(rvar, pt, C, "running_var")
    cdef void *pg = _data(gamma, pt, C, "gamma")
    cdef void *pb = _data(beta, pt, C, "beta")
    if pm == NULL or pv == NULL:
        raise ValueError("fastbn._batchnorm: running statistics are required")
    cdef void *pr = _data(residual, t, n, "residual")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_bn_infer_f32(<const float *>px, <float *>py, outer, C, inner,
                                 <const float *>pm, <const float *>pv, <const float *>pg,
                                 <const float *>pb, eps, <const float *>pr, relu, n_threads)
        elif k == K_F64:
            st = fb_bn_infer_f64(<const double *>px, <double *>py, outer, C, inner,
                                 <const double *>pm, <const double *>pv, <const double *>pg,
                                 <const double *>pb, eps, <const double *>pr, relu, n_threads)
        elif k == K_F16:
            st = fb_bn_infer_f16(<const uint16_t *>px, <uint16_t *>py, outer, C, inner,
                                 <const float *>pm, <const float *>pv, <const float *>pg,
                                 <const float *>pb, eps, <const uint16_t *>pr, relu, n_threads)
        else:
            st = fb_bn_infer_bf16(<const uint16_t *>px, <uint16_t *>py, outer, C, inner,
                                  <const float *>pm, <const float *>pv, <const float *>pg,
                                  <const float *>pb, eps, <const uint16_t *>pr, relu, n_threads)
    check_status(st)


def backward(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray dx, int64_t outer, int64_t C,
             int64_t inner, cnp.ndarray mean, cnp.ndarray invstd, gamma, cnp.ndarray grads,
             int n_threads, y=None, dresidual=None):
    """Backward through the batch statistics; see fb_bn_backward_*.  mean, invstd: float64 (C,);
    grads: (2, C) float64 receiving dgamma, dbeta.  y (the fused forward's output, or None)
    masks dy; dresidual (or None) receives the masked dy."""
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x), pt = _param_type(k, t)
    cdef Py_ssize_t n = outer * C * inner
    cdef void *pdy = _data(dy, t, n, "dy")
    cdef void *px = _data(x, t, n, "x")
    cdef void *pdx = _data(dx, t, n, "dx")
    cdef const double *pm = <const double *>_data(mean, cnp.NPY_FLOAT64, C, "mean")
    cdef const double *ps = <const double *>_data(invstd, cnp.NPY_FLOAT64, C, "invstd")
    cdef void *pg = _data(gamma, pt, C, "gamma")
    cdef double *pgr = <double *>_data(grads, cnp.NPY_FLOAT64, 2 * C, "grads")
    cdef void *pym = _data(y, t, n, "y")
    cdef void *pdr = _data(dresidual, t, n, "dresidual")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_bn_backward_f32(<const float *>pdy, <const float *>px, <float *>pdx, outer,
                                    C, inner, pm, ps, <const float *>pg, pgr, pgr + C,
                                    <const float *>pym, <float *>pdr, n_threads)
        elif k == K_F64:
            st = fb_bn_backward_f64(<const double *>pdy, <const double *>px, <double *>pdx,
                                    outer, C, inner, pm, ps, <const double *>pg, pgr, pgr + C,
                                    <const double *>pym, <double *>pdr, n_threads)
        elif k == K_F16:
            st = fb_bn_backward_f16(<const uint16_t *>pdy, <const uint16_t *>px, <uint16_t *>pdx,
                                    outer, C, inner, pm, ps, <const float *>pg, pgr, pgr + C,
                                    <const uint16_t *>pym, <uint16_t *>pdr, n_threads)
        else:
            st = fb_bn_backward_bf16(<const uint16_t *>pdy, <const uint16_t *>px,
                                     <uint16_t *>pdx, outer, C, inner, pm, ps, <const float *>pg,
                                     pgr, pgr + C, <const uint16_t *>pym, <uint16_t *>pdr,
                                     n_threads)
    check_status(st)


# ---- the parts of train and backward (sync batch norm reduces their sums across processes) -----


def moments(cnp.ndarray x, int64_t outer, int64_t C, int64_t inner, cnp.ndarray mean,
            cnp.ndarray m2, int n_threads):
    """Per-channel mean and m2 = sum((x - mean)**2) into float64 (C,) arrays; see
    fb_bn_moments_*.  mean is train's bit for bit, m2 / (outer * inner) its var; with no values
    (outer or inner 0) both are 0."""
    cdef int k = _kind(x)
    cdef void *px = _data(x, cnp.PyArray_TYPE(x), outer * C * inner, "x")
    cdef double *pm = <double *>_data(mean, cnp.NPY_FLOAT64, C, "mean")
    cdef double *pq = <double *>_data(m2, cnp.NPY_FLOAT64, C, "m2")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_bn_moments_f32(<const float *>px, outer, C, inner, pm, pq, n_threads)
        elif k == K_F64:
            st = fb_bn_moments_f64(<const double *>px, outer, C, inner, pm, pq, n_threads)
        elif k == K_F16:
            st = fb_bn_moments_f16(<const uint16_t *>px, outer, C, inner, pm, pq, n_threads)
        else:
            st = fb_bn_moments_bf16(<const uint16_t *>px, outer, C, inner, pm, pq, n_threads)
    check_status(st)


def apply(cnp.ndarray x, cnp.ndarray y, int64_t outer, int64_t C, int64_t inner,
          cnp.ndarray mean, cnp.ndarray invstd, gamma, beta, int n_threads, residual=None,
          bint relu=False):
    """y = (x - mean) * invstd * gamma + beta from float64 (C,) mean and invstd; see
    fb_bn_apply_*.  y may be x.  With train's own mean and invstd, train's y bit for bit (also
    with the same residual and relu)."""
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x), pt = _param_type(k, t)
    cdef Py_ssize_t n = outer * C * inner
    cdef void *px = _data(x, t, n, "x")
    cdef void *py = _data(y, t, n, "y")
    cdef const double *pm = <const double *>_data(mean, cnp.NPY_FLOAT64, C, "mean")
    cdef const double *ps = <const double *>_data(invstd, cnp.NPY_FLOAT64, C, "invstd")
    cdef void *pg = _data(gamma, pt, C, "gamma")
    cdef void *pb = _data(beta, pt, C, "beta")
    cdef void *pr = _data(residual, t, n, "residual")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_bn_apply_f32(<const float *>px, <float *>py, outer, C, inner, pm, ps,
                                 <const float *>pg, <const float *>pb, <const float *>pr, relu,
                                 n_threads)
        elif k == K_F64:
            st = fb_bn_apply_f64(<const double *>px, <double *>py, outer, C, inner, pm, ps,
                                 <const double *>pg, <const double *>pb, <const double *>pr, relu,
                                 n_threads)
        elif k == K_F16:
            st = fb_bn_apply_f16(<const uint16_t *>px, <uint16_t *>py, outer, C, inner, pm, ps,
                                 <const float *>pg, <const float *>pb, <const uint16_t *>pr, relu,
                                 n_threads)
        else:
            st = fb_bn_apply_bf16(<const uint16_t *>px, <uint16_t *>py, outer, C, inner, pm, ps,
                                  <const float *>pg, <const float *>pb, <const uint16_t *>pr, relu,
                                  n_threads)
    check_status(st)


def grad_sums(cnp.ndarray dy, cnp.ndarray x, int64_t outer, int64_t C, int64_t inner,
              cnp.ndarray mean, cnp.ndarray invstd, cnp.ndarray sum_dy, cnp.ndarray sum_dy_xmu,
              int n_threads, y=None):
    """Per-channel sum(dy) (backward's dbeta) and sum(dy * (x - mean)) (times invstd,
    backward's dgamma) into float64 (C,) arrays; see fb_bn_grad_sums_*.  No values: 0.  y (or
    None): dy masked by the fused forward's output."""
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t n = outer * C * inner
    cdef void *pdy = _data(dy, t, n, "dy")
    cdef void *px = _data(x, t, n, "x")
    cdef const double *pm = <const double *>_data(mean, cnp.NPY_FLOAT64, C, "mean")
    cdef const double *ps = <const double *>_data(invstd, cnp.NPY_FLOAT64, C, "invstd")
    cdef double *p1 = <double *>_data(sum_dy, cnp.NPY_FLOAT64, C, "sum_dy")
    cdef double *p2 = <double *>_data(sum_dy_xmu, cnp.NPY_FLOAT64, C, "sum_dy_xmu")
    cdef void *pym = _data(y, t, n, "y")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_bn_grad_sums_f32(<const float *>pdy, <const float *>px, outer, C, inner, pm,
                                     ps, p1, p2, <const float *>pym, n_threads)
        elif k == K_F64:
            st = fb_bn_grad_sums_f64(<const double *>pdy, <const double *>px, outer, C, inner,
                                     pm, ps, p1, p2, <const double *>pym, n_threads)
        elif k == K_F16:
            st = fb_bn_grad_sums_f16(<const uint16_t *>pdy, <const uint16_t *>px, outer, C,
                                     inner, pm, ps, p1, p2, <const uint16_t *>pym, n_threads)
        else:
            st = fb_bn_grad_sums_bf16(<const uint16_t *>pdy, <const uint16_t *>px, outer, C,
                                      inner, pm, ps, p1, p2, <const uint16_t *>pym, n_threads)
    check_status(st)


def grad_apply(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray dx, int64_t outer, int64_t C,
               int64_t inner, cnp.ndarray mean, cnp.ndarray invstd, gamma, cnp.ndarray sum_dy,
               cnp.ndarray sum_dy_xmu, int64_t count, int n_threads, y=None, dresidual=None):
    """dx through the batch statistics from given per-channel sums (grad_sums', e.g. summed
    across processes) over ``count`` >= outer * inner values; see fb_bn_grad_apply_*.  dx may be
    dy.  With the local sums and count = outer * inner, backward's dx bit for bit.  y, dresidual:
    as backward's."""
    cdef int k = _kind(x)
    cdef int t = cnp.PyArray_TYPE(x), pt = _param_type(k, t)
    cdef Py_ssize_t n = outer * C * inner
    cdef void *pdy = _data(dy, t, n, "dy")
    cdef void *px = _data(x, t, n, "x")
    cdef void *pdx = _data(dx, t, n, "dx")
    cdef const double *pm = <const double *>_data(mean, cnp.NPY_FLOAT64, C, "mean")
    cdef const double *ps = <const double *>_data(invstd, cnp.NPY_FLOAT64, C, "invstd")
    cdef void *pg = _data(gamma, pt, C, "gamma")
    cdef const double *p1 = <const double *>_data(sum_dy, cnp.NPY_FLOAT64, C, "sum_dy")
    cdef const double *p2 = <const double *>_data(sum_dy_xmu, cnp.NPY_FLOAT64, C, "sum_dy_xmu")
    cdef void *pym = _data(y, t, n, "y")
    cdef void *pdr = _data(dresidual, t, n, "dresidual")
    if count < outer * inner:
        raise ValueError(f"count: must be at least outer * inner = {outer * inner}, got {count}")
    cdef fb_status st
    with nogil:
        if k == K_F32:
            st = fb_bn_grad_apply_f32(<const float *>pdy, <const float *>px, <float *>pdx, outer,
                                      C, inner, pm, ps, <const float *>pg, p1, p2, count,
                                      <const float *>pym, <float *>pdr, n_threads)
        elif k == K_F64:
            st = fb_bn_grad_apply_f64(<const double *>pdy, <const double *>px, <double *>pdx,
                                      outer, C, inner, pm, ps, <const double *>pg, p1, p2, count,
                                      <const double *>pym, <double *>pdr, n_threads)
        elif k == K_F16:
            st = fb_bn_grad_apply_f16(<const uint16_t *>pdy, <const uint16_t *>px,
                                      <uint16_t *>pdx, outer, C, inner, pm, ps, <const float *>pg,
                                      p1, p2, count, <const uint16_t *>pym, <uint16_t *>pdr,
                                      n_threads)
        else:
            st = fb_bn_grad_apply_bf16(<const uint16_t *>pdy, <const uint16_t *>px,
                                       <uint16_t *>pdx, outer, C, inner, pm, ps,
                                       <const float *>pg, p1, p2, count,
                                       <const uint16_t *>pym, <uint16_t *>pdr, n_threads)
    check_status(st)


cdef char *_buffer_1d(object a, int typenum, Py_ssize_t C, int64_t *stride) except? NULL:
    """Data pointer and byte stride of a writeable native-order 1-d array of C elements; NULL
    for None."""
    if a is None:
        return NULL
    cdef cnp.ndarray arr = <cnp.ndarray?>a
    if (cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr)
            or cnp.PyArray_NDIM(arr) != 1 or cnp.PyArray_DIM(arr, 0) != C
            or not cnp.PyArray_ISWRITEABLE(arr)):
        raise ValueError("fastbn._batchnorm: running buffers must be writeable 1-d arrays of C "
                         "elements of the dtype of x, in native byte order")
    stride[0] = cnp.PyArray_STRIDE(arr, 0)
    return <char *>cnp.PyArray_DATA(arr)


def update_running(rmean, rvar, cnp.ndarray stats, int64_t count, double momentum, int typenum):
    """Momentum update of the running buffers (either may be None) from stats (3, C) float64;
    returns the number of channels skipped because their batch statistics were not finite."""
    cdef Py_ssize_t C = cnp.PyArray_DIM(stats, 1)
    cdef int64_t sm = 0, sv = 0, skipped
    cdef char *rm = _buffer_1d(rmean, typenum, C, &sm)
    cdef char *rv = _buffer_1d(rvar, typenum, C, &sv)
    cdef const double *ps = <const double *>_data(stats, cnp.NPY_FLOAT64, 3 * C, "stats")
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("fastbn._batchnorm: running buffers must be float32 or float64")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            skipped = fb_bn_update_running_f32(<float *>rm, sm, <float *>rv, sv, ps, ps + C, C,
                                               count, momentum)
        else:
            skipped = fb_bn_update_running_f64(<double *>rm, sm, <double *>rv, sv, ps, ps + C, C,
                                               count, momentum)
    return skipped


cdef int64_t _nonfinite(const double *mean, const double *var, Py_ssize_t C) noexcept nogil:
    """Channels whose mean or var is not finite: those update_running leaves as they are."""
    cdef int64_t n = 0
    cdef Py_ssize_t c
    for c in range(C):
        if not (isfinite(mean[c]) and isfinite(var[c])):
            n += 1
    return n


def count_nonfinite(cnp.ndarray stats):
    """How many channels update_running would skip, from stats (3, C) float64; writes nothing."""
    cdef Py_ssize_t C = cnp.PyArray_DIM(stats, 1)
    cdef const double *ps = <const double *>_data(stats, cnp.NPY_FLOAT64, 3 * C, "stats")
    return _nonfinite(ps, ps + C, C)


# ---- the plain case of the public functions (see "Small calls" above) ------------------------

cdef int _bf16_type = -1   # ml_dtypes' bfloat16 type number, once a bfloat16 array was seen


cdef int _float_type(object a):
    """The type number of a C-contiguous, aligned plain ndarray of float32, float64, float16 or
    bfloat16 in native byte order, else -1 (the Python path copies the others: the C code reads
    elements as T, which at an unaligned address is undefined behaviour)."""
    global _bf16_type
    if type(a) is not cnp.ndarray:
        return -1
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int t = cnp.PyArray_TYPE(arr)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64 and t != cnp.NPY_FLOAT16
            and t != _bf16_type):
        if _bf16_type >= 0 or not (arr.dtype.name == "bfloat16" and arr.dtype.itemsize == 2):
            return -1
        _bf16_type = t
    if not cnp.PyArray_ISNOTSWAPPED(arr):
        return -1
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr):
        return -1
    return t


cdef inline int _params_type(int t) noexcept:
    """The type number of the per-channel arrays and statistics beside tensors of type t:
    float32 for the half types."""
    return t if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64 else cnp.NPY_FLOAT32


cdef bint _plain_vector(object a, int t, Py_ssize_t C, bint optional, bint contiguous,
                        bint writeable):
    """a is a plain 1-d ndarray of type t, native byte order and length C (or None when
    optional); one that is written has distinct elements (a zero stride: the slow path's
    ValueError)."""
    if a is None:
        return optional
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == t and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_NDIM(arr) == 1
            and cnp.PyArray_DIM(arr, 0) == C
            and (not contiguous or cnp.PyArray_IS_C_CONTIGUOUS(arr))
            and (not writeable or (cnp.PyArray_ISWRITEABLE(arr)
                                   and (C <= 1 or cnp.PyArray_STRIDE(arr, 0) != 0))))


cdef bint _plain_shaped(object a, int nd, const cnp.npy_intp *dims, int t):
    """a is a plain array of type t and shape dims[:nd] (dy, a statistic)."""
    if _float_type(a) != t:
        return False
    cdef cnp.ndarray s = <cnp.ndarray>a
    cdef int i
    if cnp.PyArray_NDIM(s) != nd:
        return False
    for i in range(nd):
        if cnp.PyArray_DIM(s, i) != dims[i]:
            return False
    return True


cdef int _plain_axis(object axis, int ndim):
    """The normalized channel axis, or -1 if axis is not a plain int in range."""
    if type(axis) is not int or not -ndim <= axis < ndim:   # compared as Python ints: any size
        return -1
    cdef long a = axis
    if a < -ndim or a >= ndim:
        return -1
    return <int>(a + ndim if a < 0 else a)


cdef bint _layout(cnp.ndarray x, int axis, int64_t *outer, int64_t *C, int64_t *inner):
    """(outer, C, inner) of x seen as C-contiguous with channel axis ``axis`` (normalized)."""
    cdef int i
    outer[0] = 1
    inner[0] = 1
    for i in range(axis):
        outer[0] *= cnp.PyArray_DIM(x, i)
    for i in range(axis + 1, cnp.PyArray_NDIM(x)):
        inner[0] *= cnp.PyArray_DIM(x, i)
    C[0] = cnp.PyArray_DIM(x, axis)
    return True


def layout(cnp.ndarray x, int axis):
    """(outer, C, inner): the products of x's dimensions before, at and after ``axis`` (in
    [0, x.ndim)), the three extents every kernel takes."""
    if not 0 <= axis < cnp.PyArray_NDIM(x):
        raise ValueError("fastbn._batchnorm: axis out of range")
    cdef int64_t outer, C, inner
    _layout(x, axis, &outer, &C, &inner)
    return outer, C, inner


cdef cnp.ndarray _array_of(const double *src, int nd, cnp.npy_intp *dims, int t):
    """A new array of type t (float32 or float64) and shape dims[:nd] holding src, in order."""
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(nd, dims, t, 0)
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(out)
    cdef float *o32
    cdef double *o64
    if t == cnp.NPY_FLOAT32:
        o32 = <float *>cnp.PyArray_DATA(out)
        for i in range(n):
            o32[i] = <float>src[i]
    else:
        o64 = <double *>cnp.PyArray_DATA(out)
        for i in range(n):
            o64[i] = src[i]
    return out


cdef cnp.ndarray _vector_of(const double *src, Py_ssize_t C, int t):
    """A new 1-d array of type t holding src[0..C)."""
    cdef cnp.npy_intp n = C
    return _array_of(src, 1, &n, t)


cdef cnp.ndarray _empty_like_x(cnp.ndarray xa, int t, tuple away):
    """A C-ordered array of x's shape and type t; a large one placed as empty_aligned places it,
    at or below the arrays the kernel reads with it (``away``)."""
    cdef cnp.dtype d = cnp.PyArray_DescrFromType(t)
    if cnp.PyArray_SIZE(xa) * d.itemsize < _val.LINE_MIN_BYTES:
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(xa), cnp.PyArray_DIMS(xa), t, 0)
    return _val.empty_aligned((<object>xa).shape, d, "C", away)


cdef object _plain_out(object out, cnp.ndarray xa, int t, tuple others, tuple away):
    """What a plain call writes: a new array when out is None (placed at or below ``away``, the
    arrays the kernel reads with it: _empty_like_x); else out itself when it is a plain
    C-contiguous, aligned, writeable ndarray of x's shape and type t whose memory meets none of
    ``others`` -- but for ``others[0]`` (x or dy, plain too), which out may be exactly (in place:
    the same address, shape and type); else None (the general path checks it, or raises)."""
    if out is None:
        return _empty_like_x(xa, t, away)
    if _float_type(out) != t or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
        return None
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef int i, nd = cnp.PyArray_NDIM(xa)
    if cnp.PyArray_NDIM(o) != nd:
        return None
    for i in range(nd):
        if cnp.PyArray_DIM(o, i) != cnp.PyArray_DIM(xa, i):
            return None
    cdef cnp.ndarray first = <cnp.ndarray>others[0]
    if cnp.PyArray_DATA(o) != cnp.PyArray_DATA(first) and extents_meet(o, first):
        return None
    for a in others[1:]:
        if extents_meet(o, a):
            return None
    return o


cdef int _plain_x(object x, object axis, int64_t min_count, int64_t *outer, int64_t *C,
                  int64_t *inner) except -2:
    """The type of x (_float_type) and its layout when x is a plain C-contiguous float array of
    ndim >= 2 with a plain int axis, at least one channel and min_count values per channel;
    else -1."""
    cdef int t = _float_type(x)
    if t < 0 or cnp.PyArray_NDIM(<cnp.ndarray>x) < 2:
        return -1
    cdef int ax = _plain_axis(axis, cnp.PyArray_NDIM(<cnp.ndarray>x))
    if ax < 0:
        return -1
    _layout(<cnp.ndarray>x, ax, outer, C, inner)
    if C[0] < 1 or outer[0] * inner[0] < min_count:
        return -1
    return t


def train_plain(x, gamma, beta, axis, eps, running_mean, running_var, momentum, int n_threads,
                out=None):
    """(y, mean, invstd, pending) of batch_norm_train in the plain case, else None.

    pending is None when nothing is left to do (no running buffers, or they were updated), else
    the (3, C) float64 statistics: some channel is not finite, and the caller warns, then updates
    the running buffers with update_running."""
    cdef int64_t outer, C, inner
    cdef int t = _plain_x(x, axis, 2, &outer, &C, &inner), pt = _params_type(t)
    if t < 0 or type(eps) is not float or type(momentum) is not float:
        return None
    cdef double e = eps, mom = momentum
    if not (e > 0.0) or not (0.0 <= mom <= 1.0):
        return None
    if not (_plain_vector(gamma, pt, C, True, True, False)
            and _plain_vector(beta, pt, C, True, True, False)
            and _plain_vector(running_mean, pt, C, True, False, True)
            and _plain_vector(running_var, pt, C, True, False, True)):
        return None
    for w in (running_mean, running_var):
        if w is not None and (extents_meet(w, x) or extents_meet(w, gamma)
                              or extents_meet(w, beta)):
            return None
    if extents_meet(running_mean, running_var):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    y = _plain_out(out, xa, t, (x, gamma, beta, running_mean, running_var), (x,))
    if y is None:
        return None
    cdef cnp.npy_intp sdims[2]
    sdims[0] = 3
    sdims[1] = C
    cdef cnp.ndarray stats = cnp.PyArray_EMPTY(2, sdims, cnp.NPY_FLOAT64, 0)
    train(xa, y, outer, C, inner, gamma, beta, e, stats, n_threads)
    cdef const double *ps = <const double *>cnp.PyArray_DATA(stats)
    pending = None
    if running_mean is not None or running_var is not None:
        if _nonfinite(ps, ps + C, C):
            pending = stats     # the caller warns first: nothing is written before the warning
        else:
            update_running(running_mean, running_var, stats, outer * inner, mom, pt)
    return y, _vector_of(ps, C, pt), _vector_of(ps + 2 * C, C, pt), pending


def infer_plain(x, running_mean, running_var, gamma, beta, axis, eps, int n_threads, out=None):
    """y of batch_norm_infer in the plain case, else None."""
    cdef int64_t outer, C, inner
    cdef int t = _plain_x(x, axis, 1, &outer, &C, &inner), pt = _params_type(t)
    if t < 0 or type(eps) is not float:
        return None
    cdef double e = eps
    if not (e > 0.0):
        return None
    if not (_plain_vector(running_mean, pt, C, False, True, False)
            and _plain_vector(running_var, pt, C, False, True, False)
            and _plain_vector(gamma, pt, C, True, True, False)
            and _plain_vector(beta, pt, C, True, True, False)):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    y = _plain_out(out, xa, t, (x, running_mean, running_var, gamma, beta), (x,))
    if y is None:
        return None
    infer(xa, y, outer, C, inner, running_mean, running_var, gamma, beta, e, n_threads)
    return y


def backward_plain(dy, x, mean, invstd, gamma, axis, int n_threads, out=None):
    """(dx, dgamma, dbeta) of batch_norm_backward in the plain case, else None."""
    cdef int64_t outer, C, inner
    cdef int t = _plain_x(x, axis, 1, &outer, &C, &inner), pt = _params_type(t)
    if t < 0:
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    if not _plain_shaped(dy, cnp.PyArray_NDIM(xa), cnp.PyArray_DIMS(xa), t):
        return None
    cdef cnp.ndarray dya = <cnp.ndarray>dy
    if not (_plain_vector(mean, pt, C, False, True, False)
            and _plain_vector(invstd, pt, C, False, True, False)
            and _plain_vector(gamma, pt, C, True, True, False)):
        return None
    dx = _plain_out(out, xa, t, (dy, x, mean, invstd, gamma), (dy, x))
    if dx is None:
        return None
    cdef cnp.npy_intp gdims[2]
    gdims[0] = 2
    gdims[1] = C
    cdef cnp.ndarray grads = cnp.PyArray_EMPTY(2, gdims, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray m, s
    if pt == cnp.NPY_FLOAT64:
        m, s = mean, invstd
    else:
        m = cnp.PyArray_Cast(<cnp.ndarray>mean, cnp.NPY_FLOAT64)
        s = cnp.PyArray_Cast(<cnp.ndarray>invstd, cnp.NPY_FLOAT64)
    backward(dya, xa, dx, outer, C, inner, m, s, gamma, grads, n_threads)
    cdef const double *pg = <const double *>cnp.PyArray_DATA(grads)
    return dx, _vector_of(pg, C, pt), _vector_of(pg + C, C, pt)
