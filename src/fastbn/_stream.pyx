"""Cython glue of the benchmark report's memory floor (``csrc/stream.h``): passes over float32
arrays that do only the memory traffic of a batch-norm kernel, on fastbn's pool with the GIL
released.  Used by :mod:`fastbn.bench.floor`; not part of fastbn's API."""
from libc.stdint cimport int64_t

from fastbn._util cimport fb_status, check_status, fb_parallel_install, parallel_impl

import numpy as np

# The passes run their threads on _util's pool, like the kernels they are the floor of.
fb_parallel_install(parallel_impl())

cdef extern from "stream.h":
    enum:
        FB_STREAM_MAX_IN
        FB_STREAM_MAX_PASSES
    ctypedef struct fb_stream_pass:
        int n_in
        const float *in_ "in"[3]
        float *out
    fb_status fb_stream_passes(int n_passes, const fb_stream_pass *passes, int64_t n, int n_threads,
                        double *checksum) nogil
    int fb_stream_set_isa(int isa) nogil
    int fb_stream_get_isa() nogil

MAX_IN = FB_STREAM_MAX_IN
MAX_PASSES = FB_STREAM_MAX_PASSES


def set_isa(int isa):
    if fb_stream_set_isa(isa) != 0:
        raise ValueError(f"instruction set {isa} cannot run on this CPU or build")


def get_isa():
    return fb_stream_get_isa()


cdef float[::1] _flat(a, bint writable):
    """A 1-d float32 view of a C-contiguous float32 array (a ValueError otherwise)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or not a.flags.c_contiguous:
        raise ValueError("stream: arrays must be C-contiguous float32 ndarrays")
    if writable and not a.flags.writeable:
        raise ValueError("stream: the output must be writeable")
    return a.reshape(-1)


def passes(list spec, int n_threads):
    """Run each pass of ``spec`` -- ``(inputs, out)``: a tuple of 1 to MAX_IN arrays, and None (a
    read pass) or the array their element-wise sum is written to -- in order, every array of the
    same size, on up to ``n_threads`` threads.  Returns the sum of what the read passes read."""
    cdef fb_stream_pass c[4]
    cdef int n_passes = len(spec), p, k
    cdef int64_t n = -1
    cdef double checksum = 0.0
    cdef fb_status st
    cdef float[::1] v
    if n_passes < 1 or n_passes > FB_STREAM_MAX_PASSES:
        raise ValueError(f"stream: 1 to {FB_STREAM_MAX_PASSES} passes, got {n_passes}")
    held = []   # the views, alive until the call returns
    for p in range(n_passes):
        inputs, out = spec[p]
        if not 1 <= len(inputs) <= FB_STREAM_MAX_IN:
            raise ValueError(f"stream: 1 to {FB_STREAM_MAX_IN} inputs per pass")
        c[p].n_in = len(inputs)
        for k, a in enumerate(list(inputs) + ([out] if out is not None else [])):
            v = _flat(a, k == len(inputs))
            held.append(v)
            if n < 0:
                n = v.shape[0]
            elif v.shape[0] != n:
                raise ValueError("stream: every array must have the same size")
            if k < len(inputs):
                c[p].in_[k] = &v[0] if n else NULL
            else:
                c[p].out = &v[0] if n else NULL
        if out is None:
            c[p].out = NULL
    with nogil:
        st = fb_stream_passes(n_passes, c, n, n_threads, &checksum)
    check_status(st)
    return checksum
