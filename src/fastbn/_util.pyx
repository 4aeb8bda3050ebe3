"""Small helpers shared by the layers: which instruction sets can run here, memory extents for
overlap checks (which must be cheap), and -- for the other glue modules, through _util.pxd --
the translation of a kernel's status into an exception and the process's one pool of threads.

Design: ``extent_overlaps`` compares the byte extents [lowest, highest] of arrays read straight from
their NumPy headers (tens of nanoseconds per array), so the exact and costlier
``numpy.shares_memory`` only runs for pairs whose extents meet.
"""
cimport numpy as cnp

cnp.import_array()

cdef extern from "cpu.h":
    int fb_cpu_supports(int isa) nogil
    int fb_cpu_best_isa() nogil


cdef extern from "parallel.h":
    void fb_parallel_phases(const fb_phase *phases, int n_phases, int n_threads) noexcept nogil


cdef fb_phases_impl parallel_impl() noexcept:
    """The pool's fb_parallel_phases, for the kernel modules to install (see _util.pxd)."""
    return fb_parallel_phases


cdef int check_status(int status) except -1:
    """Turn a kernel's fb_status into a Python exception (every glue module calls this)."""
    if status == FB_ENOMEM:
        raise MemoryError("fastbn: could not allocate scratch memory for the kernel")
    if status != FB_OK:
        raise ValueError("fastbn: the kernel rejected the arguments it was given")
    return 0


def cpu_supports(int isa):
    """Whether the CPU (and this build) can run instruction set ``isa`` (an index of
    fastbn._config.ISA_NAMES)."""
    return bool(fb_cpu_supports(isa))


def best_isa():
    """The most capable instruction set that can run here."""
    return fb_cpu_best_isa()


cdef void _extent(cnp.ndarray a, Py_ssize_t *lo, Py_ssize_t *hi):
    """Lowest and one-past-highest byte address an array touches (size > 0)."""
    cdef Py_ssize_t start = <Py_ssize_t>cnp.PyArray_DATA(a), low = start, high = start
    cdef int i
    cdef Py_ssize_t span
    for i in range(cnp.PyArray_NDIM(a)):
        span = (cnp.PyArray_DIM(a, i) - 1) * cnp.PyArray_STRIDE(a, i)
        if span < 0:
            low += span
        else:
            high += span
    lo[0] = low
    hi[0] = high + cnp.PyArray_ITEMSIZE(a)


def byte_extent(cnp.ndarray a):
    """[lowest, one past highest) byte address a non-empty array touches."""
    cdef Py_ssize_t lo, hi
    _extent(a, &lo, &hi)
    return lo, hi


def same_view(a, b):
    """Whether ``a`` and ``b`` are the same view of memory: the same data address, shape, strides
    and dtype (an in-place elementwise operation on them is safe; any other overlap is not).
    In C: ``__array_interface__`` builds a dict per array, which cost more than the call."""
    if a is b:
        return True
    if not (isinstance(a, cnp.ndarray) and isinstance(b, cnp.ndarray)):
        return False
    cdef cnp.ndarray x = a, y = b
    cdef int i
    if cnp.PyArray_DATA(x) != cnp.PyArray_DATA(y) or cnp.PyArray_NDIM(x) != cnp.PyArray_NDIM(y):
        return False
    for i in range(cnp.PyArray_NDIM(x)):
        if (cnp.PyArray_DIMS(x)[i] != cnp.PyArray_DIMS(y)[i]
                or cnp.PyArray_STRIDES(x)[i] != cnp.PyArray_STRIDES(y)[i]):
            return False
    return x.dtype == y.dtype


cdef bint extents_meet(object a, object b) except -1:
    """Whether the byte extents of arrays a and b meet (None or an empty array: never)."""
    cdef Py_ssize_t alo, ahi, blo, bhi
    if a is None or b is None:
        return False
    if cnp.PyArray_SIZE(<cnp.ndarray>a) == 0 or cnp.PyArray_SIZE(<cnp.ndarray>b) == 0:
        return False
    _extent(<cnp.ndarray>a, &alo, &ahi)
    _extent(<cnp.ndarray>b, &blo, &bhi)
    return alo < bhi and blo < ahi


def extent_overlaps(list written, list others):
    """Pairs (i, j), j indexing written + others and j > i, such that the arrays of written[i]
    and of that entry (entries are (name, ndarray or None)) have meeting byte extents.  Entries
    whose array is None or empty are skipped."""
    cdef list pairs = []
    cdef list candidates = written + others
    cdef Py_ssize_t i, j, n_w = len(written), n = len(candidates)
    for i in range(n_w):
        for j in range(i + 1, n):
            if extents_meet((<tuple>written[i])[1], (<tuple>candidates[j])[1]):
                pairs.append((i, j))
    return pairs
