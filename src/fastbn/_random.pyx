"""Cython glue between :mod:`fastbn.init` and the C kernels of ``csrc/init.h``.

Design
------
Random numbers come from Philox4x32-10 (``csrc/philox.h``), a counter-based generator: a block
of 128 random bits is a pure function of (key, counter).  A stream is named by four 32-bit words,
``seed = (key0, key1, stream0, stream1)``; the blocks of a stream are numbered by the two low
counter words.  So value ``i`` of an output depends only on the seed and ``i`` -- not on the
thread count, the instruction-set path, or whether the caller passed ``out`` -- and any block
of values can be computed on its own: the kernels fill fixed blocks of 4096 values as
independent tasks (``fb_parallel_for``).

Three layers, called in one direction only:

1. ``fastbn.init`` (Python) validates every argument, turns ``rng`` (None, an int, a
   ``numpy.random.Generator``) into a seed (:func:`fastbn.init._seed_words`), precomputes the
   law's constants in float64 (for the truncated normal: Phi(a), 1 - Phi(b) and their
   difference, from ``math.erfc``) and provides a contiguous 1-d buffer.
2. This module takes the typed memoryview, releases the GIL and calls one C kernel; the fused
   type ``floating`` picks the float32 or float64 kernel (both generate natively in their own
   type: no float64 detour for float32).  Typed memoryviews check the buffer's format, byte
   order included, so a byte-swapped array ('>f4' here) is a ValueError before any C runs;
   fastbn.init fills such an ``out`` through a native buffer instead.
3. The C kernels fill the buffer and return an ``fb_status``, which
   ``fastbn._util.check_status`` turns into an exception.  They never allocate Python objects
   or touch the GIL.

Also exposed for the tests: ``philox_words`` (raw generator output, checked against Random123's
known-answer vectors) and ``eval_math`` (the in-house log, sin, cos and normal quantile that
the kernels use per element, so that their stated accuracy can be checked).
"""
from cython cimport floating
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t

from fastbn._util cimport fb_status, check_status, fb_parallel_install, parallel_impl

import numpy as np

# Kernels run their threads on _util's pool: one pool per process.
fb_parallel_install(parallel_impl())

cdef extern from "init.h":
    int FB_LAW_UNIFORM, FB_LAW_NORMAL, FB_LAW_TRUNCNORM, FB_INIT_NPARAMS
    int FB_FN_LOG, FB_FN_SIN, FB_FN_COS, FB_FN_NDTRI_LOWER
    fb_status fb_init_fill_f32(float *out, int64_t n, int law, const uint32_t *seed,
                               const double *params, int n_threads) nogil
    fb_status fb_init_fill_f64(double *out, int64_t n, int law, const uint32_t *seed,
                               const double *params, int n_threads) nogil
    fb_status fb_init_fill_f16(uint16_t *out, int64_t n, int law, const uint32_t *seed,
                               const double *params, int n_threads) nogil
    fb_status fb_init_fill_bf16(uint16_t *out, int64_t n, int law, const uint32_t *seed,
                                const double *params, int n_threads) nogil
    fb_status fb_init_eval_f32(int fn, const float *x, float *y, int64_t n) nogil
    fb_status fb_init_eval_f64(int fn, const double *x, double *y, int64_t n) nogil
    fb_status fb_init_words(uint32_t *out, int64_t n_blocks, uint64_t block0,
                            const uint32_t *seed) nogil
    fb_status fb_init_orthogonal_f64(double *a, int64_t m, int64_t n, int n_threads) nogil
    int fb_init_set_isa(int isa) nogil
    int fb_init_get_isa() nogil

ISA_NAMES = ("scalar", "avx2", "avx512")
LAWS = {"uniform": FB_LAW_UNIFORM, "normal": FB_LAW_NORMAL, "truncnorm": FB_LAW_TRUNCNORM}
FUNCTIONS = {"log": FB_FN_LOG, "sin": FB_FN_SIN, "cos": FB_FN_COS,
             "ndtri_lower": FB_FN_NDTRI_LOWER}



def set_isa(int isa):
    if fb_init_set_isa(isa) != 0:
        raise ValueError(f"instruction set {ISA_NAMES[isa]!r} cannot run on this CPU or build")


def get_isa():
    return fb_init_get_isa()


def fill(floating[::1] out, str law, const uint32_t[::1] seed, params, int n_threads):
    """Fill ``out`` with values of ``law`` ('uniform', 'normal', 'truncnorm') from the stream
    ``seed`` (4 uint32); ``params`` as documented at FB_INIT_NPARAMS in csrc/init.h."""
    cdef double p[8]
    cdef int i, code = LAWS[law]
    cdef int64_t n = out.shape[0]
    if seed.shape[0] != 4 or len(params) > FB_INIT_NPARAMS:
        raise ValueError("fill: expected 4 seed words and at most 8 parameters")
    for i in range(8):
        p[i] = params[i] if i < len(params) else 0.0
    if n == 0:
        return
    cdef fb_status st
    with nogil:
        if floating is float:
            st = fb_init_fill_f32(&out[0], n, code, &seed[0], p, n_threads)
        else:
            st = fb_init_fill_f64(&out[0], n, code, &seed[0], p, n_threads)
    check_status(st)


def fill_half(uint16_t[::1] out, str kind, str law, const uint32_t[::1] seed, params,
              int n_threads):
    """``fill`` for float16 (``kind`` 'f16') or bfloat16 ('bf16') output, given as the uint16
    bits (NumPy cannot export bfloat16 through the buffer protocol): the float32 values of the
    same stream and parameters, each rounded once to the half type."""
    cdef double p[8]
    cdef int i, code = LAWS[law], bf16
    cdef int64_t n = out.shape[0]
    if kind not in ("f16", "bf16"):
        raise ValueError(f"fill_half: expected kind 'f16' or 'bf16', got {kind!r}")
    bf16 = kind == "bf16"
    if seed.shape[0] != 4 or len(params) > FB_INIT_NPARAMS:
        raise ValueError("fill_half: expected 4 seed words and at most 8 parameters")
    for i in range(8):
        p[i] = params[i] if i < len(params) else 0.0
    if n == 0:
        return
    cdef fb_status st
    with nogil:
        if bf16:
            st = fb_init_fill_bf16(&out[0], n, code, &seed[0], p, n_threads)
        else:
            st = fb_init_fill_f16(&out[0], n, code, &seed[0], p, n_threads)
    check_status(st)


def orthogonal_q(double[:, ::1] a, int n_threads):
    """Replace ``a`` (m x n, m >= n >= 1) by the Q of its QR, column k times the sign of R[k, k]
    (+1 where 0): a blocked Householder QR whose bits depend on nothing but ``a``."""
    if a.shape[0] < a.shape[1] or a.shape[1] < 1:
        raise ValueError("a: expected m >= n >= 1")
    cdef fb_status st
    with nogil:
        st = fb_init_orthogonal_f64(&a[0, 0], a.shape[0], a.shape[1], n_threads)
    check_status(st)


def eval_math(str name, const floating[::1] x, floating[::1] y):
    """y = f(x) for the in-house function ``name`` (log, sin, cos, ndtri_lower)."""
    cdef int code = FUNCTIONS[name]
    cdef int64_t n = x.shape[0]
    cdef fb_status st
    if y.shape[0] != n:
        raise ValueError("y: expected the length of x")
    if n == 0:
        return
    with nogil:
        if floating is float:
            st = fb_init_eval_f32(code, &x[0], &y[0], n)
        else:
            st = fb_init_eval_f64(code, &x[0], &y[0], n)
    check_status(st)


def philox_words(const uint32_t[::1] seed, uint64_t block0, int64_t n_blocks):
    """The raw words of blocks block0 .. block0 + n_blocks - 1: an (n_blocks, 4) uint32 array;
    block b has counter (lo32(b), hi32(b), seed[2], seed[3]) and key (seed[0], seed[1])."""
    if seed.shape[0] != 4:
        raise ValueError("seed: expected 4 words")
    out = np.empty((n_blocks, 4), dtype=np.uint32)
    cdef uint32_t[:, ::1] o = out
    cdef fb_status st
    if n_blocks == 0:
        return out
    with nogil:
        st = fb_init_words(&o[0, 0], n_blocks, block0, &seed[0])
    check_status(st)
    return out
