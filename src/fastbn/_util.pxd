# Declarations the Cython glue modules share (cimported from fastbn._util).

# The status every C kernel returns (csrc/fastbn.h); check_status turns it into an exception.
cdef extern from "fastbn.h":
    ctypedef enum fb_status:
        FB_OK
        FB_ENOMEM
        FB_EINVAL

cdef int check_status(int status) except -1

# The process's pool of threads is _util's (csrc/parallel.c); each kernel module installs it into
# its parallel_client.c when imported:  fb_parallel_install(parallel_impl())
cdef extern from "parallel.h":
    ctypedef struct fb_phase:
        pass
    ctypedef void (*fb_phases_impl)(const fb_phase *phases, int n_phases, int n_threads) noexcept nogil
    void fb_parallel_install(fb_phases_impl impl) noexcept nogil

cdef fb_phases_impl parallel_impl() noexcept
cimport numpy as cnp

# Whether the byte extents of two arrays meet (None or empty: never).
cdef bint extents_meet(object a, object b) except -1
