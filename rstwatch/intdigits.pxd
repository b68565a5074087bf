# The decimal digits of a 64-bit integer, as printf's %lld writes them, for the compiled writers
# that put numbers into text: the JSON Lines filler (report/jsonfill.pyx) and the per-row texts
# (rowtexts.pyx). Inline, so each module gets its own copy of the code from this one source.
cimport cython
from libc.stdint cimport int64_t, uint64_t


@cython.cdivision(True)
cdef inline int int64_digits(char *tmp, int64_t v) noexcept nogil:
    """Write v's digits (after a '-' when negative) into tmp (24 chars), ending at its last char;
    return the index of the first one: the text is tmp[i:24]."""
    cdef int i = 24
    cdef uint64_t u = <uint64_t>(-(v + 1)) + 1 if v < 0 else <uint64_t>v     # INT64_MIN too
    while True:
        i -= 1
        tmp[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        tmp[i] = b'-'
    return i
