"""Cython glue between :mod:`fastbn.clip` and the C kernels of ``csrc/clip.h``.

Design
------
Three layers, called in one direction only:

1. ``fastbn.clip`` (Python) validates every argument -- each element of ``grads`` is a float32,
   float64, float16 or bfloat16 ndarray, writeable when it is updated in place, the arrays share no memory -- and
   turns each array into a 1-d array with a single stride in native byte order: a view when
   NumPy can make one, else a contiguous copy that it copies back after a write.
2. This module turns the list of 1-d arrays into C arrays of data pointers, sizes, element
   strides and dtype codes (through the buffer protocol: no NumPy headers, a few hundred
   nanoseconds per array), releases the GIL and makes ONE C call over the whole list.  The
   buffers are held until the call returns.  The dtype code comes from the buffer's format,
   which must be a native-order 'f', 'd', 'e' or 'H' (bfloat16's bits): NumPy's C type number is
   NPY_FLOAT for '>f4' too, so only the format keeps a byte-swapped array from reaching C.
3. The C kernels compute and return an ``fb_status``; they never raise, allocate Python objects
   or touch the GIL.  ``fastbn._util.check_status`` turns the status into a Python
   exception here.

Mixed-dtype lists need no fused types: the dtype travels per array as a code.
"""
from cpython.buffer cimport (PyBUF_FORMAT, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t

from fastbn._util cimport fb_status, check_status, fb_parallel_install, parallel_impl

import sys

# Kernels run their threads on _util's pool: one pool per process.
fb_parallel_install(parallel_impl())

cdef extern from "clip.h":
    enum:
        FB_CLIP_F32
        FB_CLIP_F64
        FB_CLIP_F16
        FB_CLIP_BF16
    fb_status fb_clip_norm(int64_t n, void **data, const int64_t *size, const int64_t *stride,
                           const int *dtype, double norm_type, int clip, double max_norm,
                           double *acc, double *total, int *scaled, int n_threads) nogil
    fb_status fb_clip_scale(int64_t n, void **data, const int64_t *size, const int64_t *stride,
                            const int *dtype, double coef, int n_threads) nogil
    fb_status fb_clip_value(int64_t n, void **data, const int64_t *size, const int64_t *stride,
                            const int *dtype, double clip_value, int n_threads) nogil
    int fb_clip_set_isa(int isa) nogil
    int fb_clip_get_isa() nogil

cdef extern from "fastbn.h":
    int FB_LANES

cdef extern from "clip.h":
    int FB_CLIP_BLOCK

ISA_NAMES = ("scalar", "avx2", "avx512")
LANES = FB_LANES          # virtual lanes of every reduction (csrc/fastbn.h)
BLOCK = FB_CLIP_BLOCK     # elements per block of a norm (csrc/clip.h)

# Buffer-format byte-order prefixes that mean this machine's order ('@' and '=' are native;
# '<', '>' and '!' are explicit, and only one of them matches this machine).
_NATIVE_ORDERS = (b"", b"@", b"=", b"<" if sys.byteorder == "little" else b">")


def set_isa(int isa):
    if fb_clip_set_isa(isa) != 0:
        raise ValueError(f"instruction set {ISA_NAMES[isa]!r} cannot run on this CPU or build")


def get_isa():
    return fb_clip_get_isa()


cdef int _float_code(bytes fmt, Py_ssize_t itemsize):
    """FB_CLIP_F32/F64/F16 for a native-order float32/float64/float16 buffer format, FB_CLIP_BF16
    for native uint16 (the bits of a bfloat16 array: NumPy cannot export bfloat16 through the
    buffer protocol, so fastbn.clip hands over ``a.view(numpy.uint16)``), else -1: the itemsize
    alone would let a big-endian or an int32 array reach the kernel as garbage."""
    order, char = (fmt[:1], fmt[1:]) if fmt[:1] in b"@=<>!" else (b"", fmt)
    if order not in _NATIVE_ORDERS:
        return -1
    if char == b"f" and itemsize == 4:
        return FB_CLIP_F32
    if char == b"d" and itemsize == 8:
        return FB_CLIP_F64
    if char == b"e" and itemsize == 2:
        return FB_CLIP_F16
    if char == b"H" and itemsize == 2:
        return FB_CLIP_BF16
    return -1


cdef class _ArrayList:
    """C arrays describing a list of 1-d float arrays, with their buffers held."""
    cdef Py_ssize_t n, held
    cdef Py_buffer *bufs
    cdef void **data
    cdef int64_t *size
    cdef int64_t *stride
    cdef int *dtype

    def __cinit__(self, list arrays, bint writable):
        cdef Py_ssize_t n = len(arrays), k
        cdef int code
        cdef Py_buffer *b
        self.n = n
        self.held = 0
        self.bufs = <Py_buffer *>PyMem_Malloc(max(n, 1) * sizeof(Py_buffer))
        self.data = <void **>PyMem_Malloc(max(n, 1) * sizeof(void *))
        self.size = <int64_t *>PyMem_Malloc(max(n, 1) * sizeof(int64_t))
        self.stride = <int64_t *>PyMem_Malloc(max(n, 1) * sizeof(int64_t))
        self.dtype = <int *>PyMem_Malloc(max(n, 1) * sizeof(int))
        if not (self.bufs and self.data and self.size and self.stride and self.dtype):
            raise MemoryError()
        flags = PyBUF_STRIDES | PyBUF_FORMAT | (PyBUF_WRITABLE if writable else 0)
        for k in range(n):
            b = &self.bufs[k]
            PyObject_GetBuffer(arrays[k], b, flags)
            self.held += 1
            code = _float_code(b.format if b.format != NULL else b"B", b.itemsize)
            if b.ndim != 1 or code < 0 or b.strides[0] % b.itemsize:
                raise ValueError(f"grads[{k}]: internal error: expected a 1-d float32, float64, "
                                 "float16 or bfloat16 (as uint16) array in native byte order")
            self.data[k] = b.buf
            self.size[k] = b.shape[0]
            self.stride[k] = b.strides[0] // b.itemsize
            self.dtype[k] = code

    def __dealloc__(self):
        cdef Py_ssize_t k
        for k in range(self.held):
            PyBuffer_Release(&self.bufs[k])
        PyMem_Free(self.bufs)
        PyMem_Free(self.data)
        PyMem_Free(self.size)
        PyMem_Free(self.stride)
        PyMem_Free(self.dtype)


def norm(list arrays, double norm_type, int clip, double max_norm, double[::1] acc, int n_threads):
    """Total norm of 1-d float arrays (float32/float64, any stride) and, if ``clip``, PyTorch's
    clipping in place (``clip == 2``: a non-finite total scales nothing).  ``acc`` receives each
    array's own accumulated value.  Returns ``(total, scaled)``; see fb_clip_norm."""
    cdef _ArrayList al = _ArrayList(arrays, clip != 0)
    cdef double total = 0.0
    cdef int scaled = 0
    cdef fb_status st
    cdef double *accp = &acc[0] if acc.shape[0] else NULL
    with nogil:
        st = fb_clip_norm(al.n, al.data, al.size, al.stride, al.dtype, norm_type, clip, max_norm,
                          accp, &total, &scaled, n_threads)
    check_status(st)
    return total, bool(scaled)


def scale(list arrays, double coef, int n_threads):
    """Scale 1-d float arrays in place by ``coef`` rounded to each array's dtype; see
    fb_clip_scale."""
    cdef _ArrayList al = _ArrayList(arrays, True)
    cdef fb_status st
    with nogil:
        st = fb_clip_scale(al.n, al.data, al.size, al.stride, al.dtype, coef, n_threads)
    check_status(st)


def value(list arrays, double clip_value, int n_threads):
    """Clamp 1-d float arrays in place to [-clip_value, clip_value]; see fb_clip_value."""
    cdef _ArrayList al = _ArrayList(arrays, True)
    cdef fb_status st
    with nogil:
        st = fb_clip_value(al.n, al.data, al.size, al.stride, al.dtype, clip_value, n_threads)
    check_status(st)
