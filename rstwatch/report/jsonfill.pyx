# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""JSON Lines rows joined in C from typed columns (report/jsonl.py decides what goes where).

Each column comes as one of:
  ("i", int64[:])                 integers, none missing
  ("n", int64[:], uint8[:])       integers, null where the mask is set (nullable Int64)
  ("b", uint8[:])                 true / false
  ("c", int64[:], list[str])      a code per row into texts already encoded (-1: null)
  ("t", list[str])                a text per row already encoded
  ("l", list[list[int]])          lists of plain ints (evidence frames), written without spaces
Floats come as codes or texts (report/jsonl.py: Python's repr costs as much in C). Every text
handed in is ASCII (json's ensure_ascii encoder made it). The rows come back as one
ASCII bytes, each row followed by a newline: no Python object per value or per row.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLong
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL


cdef struct Buf:
    char *data
    Py_ssize_t size
    Py_ssize_t cap


cdef int grow(Buf *b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap
    cdef char *p
    if b.size + need <= cap:
        return 0
    while b.size + need > cap:
        cap = cap * 2 + 4096
    p = <char *> realloc(b.data, cap)
    if p == NULL:
        raise MemoryError()
    b.data, b.cap = p, cap
    return 0


cdef inline int put(Buf *b, const char *s, Py_ssize_t n) except -1:
    if b.size + n > b.cap:
        grow(b, n)
    memcpy(b.data + b.size, s, n)
    b.size += n
    return 0


cdef inline int put_text(Buf *b, object text) except -1:
    cdef Py_ssize_t n
    cdef const char *s = PyUnicode_AsUTF8AndSize(text, &n)
    return put(b, s, n)


cdef int put_int(Buf *b, int64_t v) except -1:
    cdef char tmp[24]
    cdef int i = 23
    cdef unsigned long long u
    if v < 0:
        u = <unsigned long long> (-(v + 1)) + 1      # INT64_MIN too
    else:
        u = <unsigned long long> v
    while True:
        tmp[i] = <char> (48 + u % 10)
        u //= 10
        i -= 1
        if u == 0:
            break
    if v < 0:
        tmp[i] = b'-'
        i -= 1
    return put(b, tmp + i + 1, 23 - i)


cdef int put_int_list(Buf *b, list values) except -1:
    cdef Py_ssize_t k, n = PyList_GET_SIZE(values)
    put(b, b"[", 1)
    for k in range(n):
        if k:
            put(b, b",", 1)
        put_int(b, PyLong_AsLongLong(<object> PyList_GET_ITEM(values, k)))
    put(b, b"]", 1)
    return 0


cdef enum Kind:
    K_INT, K_NULLABLE_INT, K_BOOL, K_CODES, K_TEXTS, K_INT_LISTS


cdef const int64_t *int_data(object a) except? NULL:
    cdef const int64_t[::1] mv = a
    return &mv[0] if mv.shape[0] else NULL


cdef const uint8_t *byte_data(object a) except? NULL:
    cdef const uint8_t[::1] mv = a
    return &mv[0] if mv.shape[0] else NULL


def fill_rows(list prefixes, list columns, Py_ssize_t n):
    """The rows: `prefixes[k]` (`{"name":` or `,"name":`, ASCII bytes) then column k's value, then
    `}` and a newline. Numeric columns must be C-contiguous numpy arrays of n values."""
    cdef Py_ssize_t ncols = len(columns)
    cdef Py_ssize_t row, k
    cdef int64_t code
    cdef Buf b
    cdef Kind *kinds = <Kind *> malloc(ncols * sizeof(Kind))
    cdef const int64_t **ints = <const int64_t **> malloc(ncols * sizeof(void *))
    cdef const uint8_t **masks = <const uint8_t **> malloc(ncols * sizeof(void *))
    cdef const char **pre = <const char **> malloc(ncols * sizeof(void *))
    cdef Py_ssize_t *pre_len = <Py_ssize_t *> malloc(ncols * sizeof(Py_ssize_t))
    cdef list lists = [None] * ncols          # the Python lists of "c", "t" and "l" columns
    cdef list texts
    b.data, b.size, b.cap = NULL, 0, 0
    try:
        if not (kinds and ints and masks and pre and pre_len):
            raise MemoryError()
        for k in range(ncols):
            pre[k] = PyBytes_AS_STRING(prefixes[k])
            pre_len[k] = len(prefixes[k])
            col = columns[k]
            kind = col[0]
            if kind != "l" and kind != "t" and len(col[1]) != n:
                raise ValueError("a column of another length")
            if kind == "i":
                kinds[k], ints[k] = K_INT, int_data(col[1])
            elif kind == "n":
                kinds[k], ints[k], masks[k] = K_NULLABLE_INT, int_data(col[1]), byte_data(col[2])
            elif kind == "b":
                kinds[k], masks[k] = K_BOOL, byte_data(col[1])
            elif kind == "c":
                kinds[k], ints[k] = K_CODES, int_data(col[1])
                lists[k] = col[2]
            elif kind == "t" or kind == "l":
                kinds[k] = K_TEXTS if kind == "t" else K_INT_LISTS
                if len(col[1]) != n:
                    raise ValueError("a column of another length")
                lists[k] = col[1]
            else:
                raise ValueError(f"unknown column kind {kind!r}")
        grow(&b, n * 512 + 64)
        for row in range(n):
            for k in range(ncols):
                put(&b, pre[k], pre_len[k])
                if kinds[k] == K_INT:
                    put_int(&b, ints[k][row])
                elif kinds[k] == K_TEXTS:
                    put_text(&b, <object> PyList_GET_ITEM(lists[k], row))
                elif kinds[k] == K_CODES:
                    code = ints[k][row]
                    if code < 0:
                        put(&b, b"null", 4)
                    else:
                        texts = lists[k]
                        put_text(&b, texts[code])
                elif kinds[k] == K_BOOL:
                    if masks[k][row]:
                        put(&b, b"true", 4)
                    else:
                        put(&b, b"false", 5)
                elif kinds[k] == K_NULLABLE_INT:
                    if masks[k][row]:
                        put(&b, b"null", 4)
                    else:
                        put_int(&b, ints[k][row])
                else:
                    put_int_list(&b, <list> PyList_GET_ITEM(lists[k], row))
            put(&b, b"}\n", 2)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        free(b.data)
        free(kinds)
        free(ints)
        free(masks)
        free(pre)
        free(pre_len)
