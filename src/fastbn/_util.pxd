# Declarations the Cython glue modules share (cimported from fastbn._util).

cdef int check_status(int status) except -1
cimport numpy as cnp

# Whether the byte extents of two arrays meet (None or empty: never).
cdef bint extents_meet(object a, object b) except -1
