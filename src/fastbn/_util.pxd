# Declarations the Cython glue modules share (cimported from fastbn._util).

cdef int check_status(int status) except -1
