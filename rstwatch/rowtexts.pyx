# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The texts each finding carries, for many findings at once, in C: its addresses and Wireshark
display filter (features/extract.py), the Community ID (v1, seed 0) of its flow and its ISO 8601
UTC time with nanoseconds (interop.py). Those modules keep the Python versions as the fallback
and the reference (tests/test_rowtexts.py compares them over random inputs).

Per row the Python versions cost ~2.5 us (an address packed by socket.inet_pton, a hash object,
base64, string joins) and ~0.8 us; here each is a few hundred nanoseconds: the address text is
parsed by the C library's own inet_pton (what socket.inet_pton calls), the 40-byte message is
hashed by the SHA-1 below (FIPS 180-4; a message this short is one 64-byte block), and the texts
are written into a stack buffer."""
import numpy as np

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset, strlen
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from rstwatch.intdigits cimport int64_digits

cdef extern from "sys/socket.h":
    int AF_INET
    int AF_INET6

cdef extern from "arpa/inet.h":
    int inet_pton(int af, const char *src, void *dst) nogil


cdef inline uint32_t _rotl(uint32_t x, int n) noexcept nogil:
    return (x << n) | (x >> (32 - n))


cdef extern from "dlfcn.h" nogil:
    void *dlopen(const char *filename, int flags)
    void *dlsym(void *handle, const char *symbol)
    int RTLD_NOW
    int RTLD_LOCAL

# OpenSSL's SHA_CTX (openssl/sha.h, the same in 1.1 and 3): its block function reads and writes h0-h4
ctypedef struct _ShaCtx:
    uint32_t h0, h1, h2, h3, h4, Nl, Nh
    uint32_t data[16]
    uint32_t num
ctypedef void (*_block_fn)(_ShaCtx *c, const uint8_t *block) noexcept nogil

# libcrypto's one-block SHA-1 (SHA1_Transform) when the process can load it: it uses the CPU's
# SHA instructions where there are some (~45 ns a hash here against ~250 ns for the one below,
# measured). The C library's loader finds the same libcrypto that Python's hashlib uses.
cdef _block_fn _libcrypto_block = NULL
cdef _block_fn _block = NULL
cdef void *_libcrypto = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL)
if _libcrypto == NULL:
    _libcrypto = dlopen("libcrypto.so.1.1", RTLD_NOW | RTLD_LOCAL)
if _libcrypto != NULL:
    _libcrypto_block = <_block_fn> dlsym(_libcrypto, "SHA1_Transform")
    _block = _libcrypto_block


cdef inline void _digest_bytes(uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint32_t e,
                               uint8_t *digest) noexcept nogil:
    """The five state words as the digest's 20 bytes, big-endian."""
    cdef uint32_t h[5]
    cdef int i
    h[0], h[1], h[2], h[3], h[4] = a, b, c, d, e
    for i in range(5):
        digest[4 * i] = <uint8_t>(h[i] >> 24)
        digest[4 * i + 1] = <uint8_t>(h[i] >> 16)
        digest[4 * i + 2] = <uint8_t>(h[i] >> 8)
        digest[4 * i + 3] = <uint8_t>h[i]


def sha1_backend(own=None):
    """Which SHA-1 the Community IDs use: "libcrypto" or "own" (the one below). With own=True or
    False, switch (the tests compare both); own=False keeps ours where libcrypto was not found."""
    global _block
    if own is not None:
        _block = NULL if own else _libcrypto_block
    return "own" if _block == NULL else "libcrypto"


cdef void _sha1_short(const uint8_t *msg, int n, uint8_t *digest) noexcept nogil:
    """SHA-1 of a message of at most 55 bytes (one padded block)."""
    cdef uint8_t block[64]
    cdef uint32_t w[80]
    cdef uint32_t a, b, c, d, e, f, k, t
    cdef uint32_t h0 = 0x67452301, h1 = 0xEFCDAB89, h2 = 0x98BADCFE, h3 = 0x10325476, h4 = 0xC3D2E1F0
    cdef int i
    cdef unsigned long long bits = <unsigned long long>n * 8
    memset(block, 0, 64)
    memcpy(block, msg, n)
    block[n] = 0x80
    for i in range(8):                      # the message length in bits, big-endian, at the end
        block[63 - i] = <uint8_t>(bits >> (8 * i))
    cdef _ShaCtx ctx
    if _block != NULL:
        ctx.h0, ctx.h1, ctx.h2, ctx.h3, ctx.h4 = h0, h1, h2, h3, h4
        _block(&ctx, block)
        _digest_bytes(ctx.h0, ctx.h1, ctx.h2, ctx.h3, ctx.h4, digest)
        return
    for i in range(16):
        w[i] = ((<uint32_t>block[4 * i] << 24) | (<uint32_t>block[4 * i + 1] << 16)
                | (<uint32_t>block[4 * i + 2] << 8) | <uint32_t>block[4 * i + 3])
    for i in range(16, 80):
        w[i] = _rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1)
    a, b, c, d, e = h0, h1, h2, h3, h4
    for i in range(80):
        if i < 20:
            f = (b & c) | (~b & d)
            k = 0x5A827999
        elif i < 40:
            f = b ^ c ^ d
            k = 0x6ED9EBA1
        elif i < 60:
            f = (b & c) | (b & d) | (c & d)
            k = 0x8F1BBCDC
        else:
            f = b ^ c ^ d
            k = 0xCA62C1D6
        t = _rotl(a, 5) + f + e + k + w[i]
        e = d
        d = c
        c = _rotl(b, 30)
        b = a
        a = t
    _digest_bytes(h0 + a, h1 + b, h2 + c, h3 + d, h4 + e, digest)


cdef const char *_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


cdef int _base64_20(const uint8_t *d, char *out) noexcept nogil:
    """Standard base64 of 20 bytes (28 characters, one '=' of padding); returns the length."""
    cdef int i, j = 0
    cdef uint32_t v
    for i in range(0, 18, 3):
        v = (<uint32_t>d[i] << 16) | (<uint32_t>d[i + 1] << 8) | d[i + 2]
        out[j] = _B64[(v >> 18) & 63]
        out[j + 1] = _B64[(v >> 12) & 63]
        out[j + 2] = _B64[(v >> 6) & 63]
        out[j + 3] = _B64[v & 63]
        j += 4
    v = (<uint32_t>d[18] << 16) | (<uint32_t>d[19] << 8)
    out[j] = _B64[(v >> 18) & 63]
    out[j + 1] = _B64[(v >> 12) & 63]
    out[j + 2] = _B64[(v >> 6) & 63]
    out[j + 3] = b'='
    return j + 4


cdef int _pack(object text, uint8_t *out) except -2:
    """The address bytes of an IPv4 or IPv6 address written as text (4 or 16), or 0 when it is
    neither (as socket.inet_pton refusing both families, or not a str at all)."""
    cdef Py_ssize_t size
    cdef const char *s
    if type(text) is not str:
        return 0
    s = PyUnicode_AsUTF8AndSize(text, &size)
    if <Py_ssize_t>strlen(s) != size:           # an embedded NUL is no address
        return 0
    if inet_pton(AF_INET, s, out) == 1:
        return 4
    if inet_pton(AF_INET6, s, out) == 1:
        return 16
    return 0


def community_ids(list src, list dst, const int64_t[:] sport, const int64_t[:] dport, int proto):
    """interop.community_id_column's values: the Community ID of each row, None for a row whose
    ends are not one address each, whose ports are both 0 (a flood finding) or out of range."""
    cdef Py_ssize_t n = len(src), r
    cdef uint8_t a[16]
    cdef uint8_t b[16]
    cdef uint8_t msg[40]
    cdef uint8_t digest[20]
    cdef char text[32]
    cdef int la, lb, m, cmp, swap
    cdef int64_t sp, dp
    if len(dst) != n or sport.shape[0] != n or dport.shape[0] != n:
        raise ValueError("columns of different lengths")
    if proto < 0 or proto > 255:
        return [None] * n
    out = [None] * n
    text[0] = b'1'
    text[1] = b':'
    for r in range(n):
        sp, dp = sport[r], dport[r]
        if (sp == 0 and dp == 0) or sp < 0 or dp < 0 or sp > 65535 or dp > 65535:
            continue
        la = _pack(src[r], a)
        lb = _pack(dst[r], b)
        if la == 0 or lb == 0:
            continue
        cmp = memcmp(a, b, la if la < lb else lb)
        if cmp == 0:
            cmp = la - lb
        swap = not (cmp < 0 or (cmp == 0 and sp < dp))      # the smaller end goes first
        msg[0] = 0                                          # seed 0, two bytes
        msg[1] = 0
        m = 2
        if swap:
            memcpy(msg + m, b, lb)
            m += lb
            memcpy(msg + m, a, la)
            m += la
            sp, dp = dp, sp
        else:
            memcpy(msg + m, a, la)
            m += la
            memcpy(msg + m, b, lb)
            m += lb
        msg[m] = <uint8_t>proto
        msg[m + 1] = 0
        msg[m + 2] = <uint8_t>(sp >> 8)
        msg[m + 3] = <uint8_t>sp
        msg[m + 4] = <uint8_t>(dp >> 8)
        msg[m + 5] = <uint8_t>dp
        _sha1_short(msg, m + 6, digest)
        out[r] = text[:2 + _base64_20(digest, text + 2)].decode("ascii")
    return out


cdef inline int64_t _floordiv(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef inline void _digits(char *out, int64_t v, int width) noexcept nogil:
    cdef int i
    for i in range(width - 1, -1, -1):
        out[i] = <char>(48 + v % 10)
        v //= 10


cdef int64_t _NAT = -9223372036854775807 - 1


def iso_ns_texts(const int64_t[:] ts):
    """interop.iso_ns_column's values: '2026-11-21T06:19:12.737123456Z' for each epoch nanosecond
    time (what numpy writes for datetime64[ns], and 'NaTZ' for its not-a-time, INT64_MIN)."""
    cdef Py_ssize_t n = ts.shape[0], r
    cdef int64_t t, days, ns, secs, z, era, doe, yoe, y, doy, mp, d, m
    cdef char text[32]
    out = [None] * n
    text[4] = b'-'
    text[7] = b'-'
    text[10] = b'T'
    text[13] = b':'
    text[16] = b':'
    text[19] = b'.'
    text[29] = b'Z'
    for r in range(n):
        t = ts[r]
        if t == _NAT:
            out[r] = "NaTZ"
            continue
        days = _floordiv(t, 86400000000000)
        ns = t - days * 86400000000000              # nanoseconds into the day, 0 <= ns < 86400e9
        secs = ns // 1000000000
        # the proleptic Gregorian date of a day count from 1970-01-01, by 400-year eras
        z = days + 719468
        era = _floordiv(z, 146097)
        doe = z - era * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        y = yoe + era * 400
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        d = doy - (153 * mp + 2) // 5 + 1
        m = mp + 3 if mp < 10 else mp - 9
        if m <= 2:
            y += 1
        _digits(text, y, 4)
        _digits(text + 5, m, 2)
        _digits(text + 8, d, 2)
        _digits(text + 11, secs // 3600, 2)
        _digits(text + 14, (secs // 60) % 60, 2)
        _digits(text + 17, secs % 60, 2)
        _digits(text + 20, ns % 1000000000, 9)
        out[r] = text[:30].decode("ascii")
    return out


cdef inline int _octet(unsigned int v, char *out) noexcept nogil:
    """v (0-255) in decimal at out; returns the digits written."""
    if v >= 100:
        out[0] = <char>(48 + v // 100)
        out[1] = <char>(48 + (v // 10) % 10)
        out[2] = <char>(48 + v % 10)
        return 3
    if v >= 10:
        out[0] = <char>(48 + v // 10)
        out[1] = <char>(48 + v % 10)
        return 2
    out[0] = <char>(48 + v)
    return 1


cdef int _v4_text(uint32_t a, char *out) noexcept nogil:
    """Dotted quad, NUL-terminated, as "%u.%u.%u.%u" (written by hand: printf costs ~5x)."""
    cdef int n = _octet((a >> 24) & 255, out)
    out[n] = b'.'
    n += 1 + _octet((a >> 16) & 255, out + n + 1)
    out[n] = b'.'
    n += 1 + _octet((a >> 8) & 255, out + n + 1)
    out[n] = b'.'
    n += 1 + _octet(a & 255, out + n + 1)
    out[n] = 0
    return n


cdef inline int _hex_group(unsigned int v, char *out) noexcept nogil:
    """v (0-0xffff) in lowercase hex without leading zeros, as "%x"; returns the digits written."""
    cdef int n = 1, i
    while n < 4 and (v >> (4 * n)):
        n += 1
    for i in range(n):
        out[i] = b"0123456789abcdef"[(v >> (4 * (n - 1 - i))) & 15]
    return n


cdef int _v6_text(uint64_t hi, uint64_t lo, char *out) noexcept nogil:
    """RFC 5952 text as Python 3.11's ipaddress writes it: lowercase groups without leading
    zeros, the longest run of two or more zero groups (the first of equal runs) as '::'."""
    cdef unsigned int g[8]
    cdef int i, run = 0, start = -1, best = 0, best_start = -1, n = 0
    for i in range(4):
        g[i] = (hi >> (48 - 16 * i)) & 0xFFFF
        g[i + 4] = (lo >> (48 - 16 * i)) & 0xFFFF
    for i in range(8):
        if g[i] == 0:
            if run == 0:
                start = i
            run += 1
            if run > best:
                best = run
                best_start = start
        else:
            run = 0
    if best < 2:
        best_start = -1
    i = 0
    while i < 8:
        if i == best_start:
            out[n] = b':'
            n += 1
            if i == 0:
                out[n] = b':'
                n += 1
            i += best
            continue
        n += _hex_group(g[i], out + n)
        i += 1
        if i < 8:
            out[n] = b':'
            n += 1
    out[n] = 0
    return n


def address_texts(const uint8_t[:] v6, const uint64_t[:] hi, const uint64_t[:] lo, fallback):
    """sources.segments.address_text of each row; IPv4-mapped IPv6 addresses (which Python
    versions write differently) are left to `fallback(v6, hi, lo)`, the interpreter's own."""
    cdef Py_ssize_t n = v6.shape[0], r
    cdef char text[48]
    cdef int k
    if hi.shape[0] != n or lo.shape[0] != n:
        raise ValueError("columns of different lengths")
    out = [None] * n
    last = None                 # the previous row's text: one end of a batch is often one server
    for r in range(n):
        if r and last is not None and v6[r] == v6[r - 1] and hi[r] == hi[r - 1] and lo[r] == lo[r - 1]:
            out[r] = last
            continue
        if not v6[r]:
            k = _v4_text(<uint32_t>(lo[r] & 0xFFFFFFFF), text)
        elif hi[r] == 0 and (lo[r] >> 32) == 0xFFFF:
            out[r] = last = fallback(True, int(hi[r]), int(lo[r]))
            continue
        else:
            k = _v6_text(hi[r], lo[r], text)
        out[r] = last = text[:k].decode("ascii")
    return out


cdef inline Py_ssize_t _put(char *out, Py_ssize_t at, const char *s, Py_ssize_t n) noexcept nogil:
    memcpy(out + at, s, n)
    return at + n


cdef Py_ssize_t _put_int(char *out, Py_ssize_t at, int64_t v) noexcept nogil:
    """The decimal digits of v (as %lld writes them) at out + at; returns the new end."""
    cdef char tmp[24]
    cdef int i = int64_digits(tmp, v)
    memcpy(out + at, tmp + i, 24 - i)
    return at + 24 - i


def display_filter_buffers(const uint8_t[:] v6, list srcs, list dsts, const int64_t[:] sports,
                           const int64_t[:] dports, const int64_t[:] firsts, const int64_t[:] lasts):
    """features.extract._display_filter of each row (the connection's packets in Wireshark), as an
    Arrow string column's buffers: (offsets, n + 1 int64; UTF-8 data), no Python text per row."""
    cdef Py_ssize_t n = v6.shape[0], r, la, lb, used = 0
    cdef const char *a
    cdef const char *b
    cdef char *out
    cdef Py_ssize_t k
    if not (len(srcs) == len(dsts) == sports.shape[0] == dports.shape[0] == firsts.shape[0] == lasts.shape[0] == n):
        raise ValueError("columns of different lengths")
    offsets_arr = np.empty(n + 1, np.int64)
    cdef int64_t[::1] offsets = offsets_arr
    data_arr = np.empty(max(n * 160, 16), np.uint8)
    cdef uint8_t[::1] data = data_arr
    offsets[0] = 0
    for r in range(n):
        a = PyUnicode_AsUTF8AndSize(srcs[r], &la)
        b = PyUnicode_AsUTF8AndSize(dsts[r], &lb)
        if data.shape[0] - used < 200 + 2 * (la + lb):
            data_arr = np.concatenate([data_arr[:used], np.empty(max(data.shape[0], 200 + 2 * (la + lb)), np.uint8)])
            data = data_arr
        # written piece by piece: snprintf with eight conversions took glibc's slow positional
        # path, ~0.35 us a row (perf), more than the rest of the row's texts
        out = <char *>&data[used]
        k = 0
        if v6[r]:
            k = _put(out, k, "ipv6.addr==", 11)
        else:
            k = _put(out, k, "ip.addr==", 9)
        k = _put(out, k, a, la)
        if v6[r]:
            k = _put(out, k, " && ipv6.addr==", 15)
        else:
            k = _put(out, k, " && ip.addr==", 13)
        k = _put(out, k, b, lb)
        k = _put(out, k, " && tcp.port==", 14)
        k = _put_int(out, k, sports[r])
        k = _put(out, k, " && tcp.port==", 14)
        k = _put_int(out, k, dports[r])
        k = _put(out, k, " && frame.number>=", 18)
        k = _put_int(out, k, firsts[r])
        k = _put(out, k, " && frame.number<=", 18)
        k = _put_int(out, k, lasts[r])
        used += k
        offsets[r + 1] = used
    return offsets_arr, data_arr[:used]


cdef extern from "Python.h":
    object PyObject_Format(object obj, object format_spec)


cdef class _Texts:
    """A growing UTF-8 buffer and the offsets of the texts in it (an Arrow string column's)."""
    cdef object data_arr
    cdef uint8_t[::1] data
    cdef Py_ssize_t used

    def __cinit__(self, Py_ssize_t guess):
        self.data_arr = np.empty(max(guess, 64), np.uint8)
        self.data = self.data_arr
        self.used = 0

    cdef int reserve(self, Py_ssize_t size) except -1:
        """Room for `size` more bytes."""
        if self.data.shape[0] - self.used < size:
            self.data_arr = np.concatenate([self.data_arr[:self.used],
                                            np.empty(max(self.data.shape[0], size), np.uint8)])
            self.data = self.data_arr
        return 0

    cdef int put(self, object text) except -1:
        cdef Py_ssize_t size
        cdef const char *s
        if type(text) is bytes:
            s, size = text, len(text)
        else:
            s = PyUnicode_AsUTF8AndSize(text, &size)
        self.reserve(size)
        if size:
            memcpy(&self.data[self.used], s, size)
        self.used += size
        return 0

    cdef int put_value(self, object value) except -1:
        """format(value, ""): an int's digits written here (no text object made), a str as it is."""
        cdef int overflow
        cdef long long v
        if type(value) is int:
            v = PyLong_AsLongLongAndOverflow(value, &overflow)
            if not overflow:
                self.reserve(24)                    # any int64's digits
                self.used = _put_int(<char *>&self.data[0], self.used, v)
                return 0
        elif type(value) is str:
            return self.put(value)
        return self.put(PyObject_Format(value, ""))


def template_buffers(const int64_t[:] template_of, list templates, list fields, list given):
    """explain's sentences as an Arrow string column's buffers (offsets, n + 1 int64; UTF-8
    data). Row k is templates[template_of[k]] filled from row k of `fields`, or given[k] (a
    text made in Python) where template_of[k] < 0. A template is (literals, field numbers): the
    texts literals[0], format(fields[f[0]][k], ""), literals[1], ... joined, as str.format and
    f-strings fill a plain {} field. The Python twin is analyze.fill_templates_python."""
    cdef Py_ssize_t n = template_of.shape[0], r, t, k
    cdef list literals, numbers, column
    if len(given) != n or any(len(column) != n for column in fields):
        raise ValueError("columns of different lengths")
    encoded = [([lit.encode("utf-8") for lit in lits], list(nums)) for lits, nums in templates]
    for lits, nums in encoded:
        if len(lits) != len(nums) + 1 or any(not 0 <= f < len(fields) for f in nums):
            raise ValueError("a template that does not fit its fields")
    offsets_arr = np.empty(n + 1, np.int64)
    cdef int64_t[::1] offsets = offsets_arr
    cdef _Texts out = _Texts(n * 128)
    offsets[0] = 0
    for r in range(n):
        t = template_of[r]
        if t < 0:
            out.put(given[r])
        elif t >= len(encoded):
            raise ValueError("a row's template is out of range")
        else:
            literals, numbers = encoded[t]
            out.put(literals[0])
            for k in range(len(numbers)):
                column = fields[<Py_ssize_t>numbers[k]]
                out.put_value(column[r])
                out.put(literals[k + 1])
        offsets[r + 1] = out.used
    return offsets_arr, out.data_arr[:out.used]


def str_buffers(list values):
    """An Arrow string column's buffers (offsets, n + 1 int64; UTF-8 data) holding `values`, or None when one of them is not a str (or has no UTF-8 form): what pandas' conversion
    of the list into its Arrow-held "str" column writes, without its Python pass over every value."""
    cdef Py_ssize_t n = len(values), r, size, total = 0
    cdef const char *s
    for r in range(n):
        v = values[r]
        if type(v) is not str:
            return None
        try:
            PyUnicode_AsUTF8AndSize(v, &size)
        except UnicodeEncodeError:          # a lone surrogate: left to pandas
            return None
        total += size
    offsets_arr = np.empty(n + 1, np.int64)
    data_arr = np.empty(total, np.uint8)
    cdef int64_t[::1] offsets = offsets_arr
    cdef uint8_t[::1] data = data_arr
    cdef Py_ssize_t used = 0
    offsets[0] = 0
    for r in range(n):
        s = PyUnicode_AsUTF8AndSize(values[r], &size)
        if used + size > total:
            raise ValueError("texts changed while being copied")
        if size:
            memcpy(&data[used], s, size)
        used += size
        offsets[r + 1] = used
    return offsets_arr, data_arr


def code_buffers(list texts, const int64_t[:] codes):
    """An Arrow string column's buffers (offsets, n + 1 int64; UTF-8 data) whose row k is
    texts[codes[k]]: a column that repeats a few texts, copied without a take over Python texts."""
    cdef Py_ssize_t m = len(texts), n = codes.shape[0], r, total = 0, used = 0
    cdef int64_t code
    cdef int64_t[::1] offsets
    cdef uint8_t[::1] data
    for r in range(m):
        if type(texts[r]) is not str:
            raise TypeError("texts must be str")
    cdef const char **starts = <const char **> PyMem_Malloc(max(m, 1) * sizeof(char *))
    cdef Py_ssize_t *lengths = <Py_ssize_t *> PyMem_Malloc(max(m, 1) * sizeof(Py_ssize_t))
    try:
        if starts == NULL or lengths == NULL:
            raise MemoryError()
        for r in range(m):              # each text's UTF-8 bytes, kept by the text itself
            starts[r] = PyUnicode_AsUTF8AndSize(texts[r], &lengths[r])
        for r in range(n):
            code = codes[r]
            if code < 0 or code >= m:
                raise IndexError("a code outside the texts")
            total += lengths[code]
        offsets_arr = np.empty(n + 1, np.int64)
        data_arr = np.empty(total, np.uint8)
        offsets, data = offsets_arr, data_arr
        offsets[0] = 0
        for r in range(n):
            code = codes[r]
            if lengths[code]:
                memcpy(&data[used], starts[code], lengths[code])
            used += lengths[code]
            offsets[r + 1] = used
    finally:
        PyMem_Free(starts)
        PyMem_Free(lengths)
    return offsets_arr, data_arr


def connection_digests(list cids, list bases, list firsts, fallback):
    """interop.connection_digests' values: SHA-1 of "cid|base|first" for each row, hashed here when
    the row is a str Community ID, a str base name and an int (or None) first frame whose message
    fits one block (55 bytes: almost every one); any other row is fallback(row)'s (Python's)."""
    cdef Py_ssize_t n = len(cids), r, lc, lb
    cdef const char *c
    cdef const char *b
    cdef uint8_t msg[56]
    cdef uint8_t digest[20]
    cdef char tmp[24]
    cdef int m, start, overflow
    cdef long long first
    if len(bases) != n or len(firsts) != n:
        raise ValueError("columns of different lengths")
    out = [None] * n
    for r in range(n):
        cid, base, f = cids[r], bases[r], firsts[r]
        if type(cid) is not str or type(base) is not str or not (f is None or type(f) is int):
            out[r] = fallback(r)
            continue
        if f is None:
            memcpy(tmp + 20, b"None", 4)
            start = 20
        else:
            first = PyLong_AsLongLongAndOverflow(f, &overflow)
            if overflow:
                out[r] = fallback(r)
                continue
            start = int64_digits(tmp, first)
        c = PyUnicode_AsUTF8AndSize(cid, &lc)
        b = PyUnicode_AsUTF8AndSize(base, &lb)
        if lc + lb + 2 + (24 - start) > 55:
            out[r] = fallback(r)
            continue
        memcpy(msg, c, lc)
        m = lc
        msg[m] = b'|'
        memcpy(msg + m + 1, b, lb)
        m += lb + 1
        msg[m] = b'|'
        memcpy(msg + m + 1, tmp + start, 24 - start)
        m += 1 + 24 - start
        _sha1_short(msg, m, digest)
        out[r] = (<char *> digest)[:20]
    return out


cdef const char *_BASE62_DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def zeek_uids(list digests, int places):
    """interop.zeek_uids' values: 'C' and `places` base-62 digits of each digest's first 96 bits
    (None stays None), by long division of three 32-bit limbs."""
    cdef Py_ssize_t n = len(digests), r
    cdef uint32_t limbs[3]
    cdef uint64_t cur, rest
    cdef const uint8_t *d
    cdef char text[64]
    cdef int place, j
    if places < 1 or places > 62:
        raise ValueError("1 to 62 digits")
    out = [None] * n
    text[0] = b'C'
    for r in range(n):
        digest = digests[r]
        if digest is None:
            continue
        if type(digest) is not bytes or len(<bytes> digest) < 12:
            raise ValueError("a digest of at least 12 bytes")
        d = <const uint8_t *> (<bytes> digest)
        for j in range(3):
            limbs[j] = ((<uint32_t>d[4 * j] << 24) | (<uint32_t>d[4 * j + 1] << 16)
                        | (<uint32_t>d[4 * j + 2] << 8) | <uint32_t>d[4 * j + 3])
        for place in range(places, 0, -1):          # the least significant digit first
            rest = 0
            for j in range(3):
                cur = (rest << 32) | limbs[j]
                limbs[j] = <uint32_t>(cur // 62)
                rest = cur % 62
            text[place] = _BASE62_DIGITS[rest]
        out[r] = text[:places + 1].decode("ascii")
    return out
