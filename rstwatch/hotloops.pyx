# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Every per-packet loop rstwatch has, compiled to C by Cython when the package is installed.

Why compiled: a pcap/pcapng file is a chain of variable-length records (finding record N+1
needs the length of record N), so the walk cannot be vectorised, and a Python loop costs
~0.5 us per packet. Why Cython rather than a JIT: the module loads in about a millisecond,
while numba needed ~0.35 s per process to import and load its cached code, as long as
reading a million packets. Everything else in rstwatch is numpy over columns.
"""
import numpy as np

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint64_t

# Status codes returned by the walkers.
cdef enum:
    C_NEED_MORE = 0   # stopped at an incomplete record at the end of the buffer (or exactly at the end)
    C_CORRUPT = 1     # a record header is impossible (absurd length, mismatched trailer)
NEED_MORE = C_NEED_MORE
CORRUPT = C_CORRUPT

MAX_CAPLEN = 262144          # Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD
MAX_BLOCK = 16 * 1024 * 1024 + 4096
SHB = 0x0A0D0D0A

cdef int64_t C_MAX_CAPLEN = MAX_CAPLEN
cdef int64_t C_MAX_BLOCK = MAX_BLOCK
cdef int64_t C_SHB = SHB


cdef inline int64_t _u32(const uint8_t* b, bint big) noexcept nogil:
    if big:
        return (<int64_t>b[0] << 24) | (<int64_t>b[1] << 16) | (<int64_t>b[2] << 8) | <int64_t>b[3]
    return (<int64_t>b[3] << 24) | (<int64_t>b[2] << 16) | (<int64_t>b[1] << 8) | <int64_t>b[0]


def walk_pcap(const uint8_t[::1] buf, Py_ssize_t start, bint big):
    """Offsets of complete pcap record headers from `start`; returns (offsets, stop, status)."""
    cdef Py_ssize_t end = buf.shape[0]
    out_arr = np.empty(max((end - start) // 16, 0), np.int64)
    cdef int64_t[::1] out = out_arr
    cdef Py_ssize_t n = 0, off = start
    cdef int64_t caplen
    cdef int status = C_NEED_MORE
    if end == 0:
        return out_arr[:0], off, status
    cdef const uint8_t* b = &buf[0]
    with nogil:
        while off + 16 <= end:
            caplen = _u32(b + off + 8, big)
            if caplen > C_MAX_CAPLEN:
                status = C_CORRUPT
                break
            if off + 16 + caplen > end:
                break
            out[n] = off
            n += 1
            off += 16 + caplen
    return out_arr[:n], off, status


def walk_pcapng(const uint8_t[::1] buf, Py_ssize_t start, bint big):
    """Complete pcapng blocks from `start`.

    Returns (offsets, types, big_endian_flags, stop, status, big_at_stop). A Section Header
    Block sets the byte order of the blocks that follow it.
    """
    cdef Py_ssize_t end = buf.shape[0]
    cdef Py_ssize_t n_max = max((end - start) // 12, 0)
    offs_arr = np.empty(n_max, np.int64)
    types_arr = np.empty(n_max, np.int64)
    bigs_arr = np.empty(n_max, np.bool_)
    cdef int64_t[::1] offs = offs_arr
    cdef int64_t[::1] types = types_arr
    cdef uint8_t[::1] bigs = bigs_arr.view(np.uint8)
    cdef Py_ssize_t n = 0, off = start
    cdef int64_t btype, blen
    cdef int status = C_NEED_MORE
    if end == 0:
        return offs_arr[:0], types_arr[:0], bigs_arr[:0], off, status, big
    cdef const uint8_t* b = &buf[0]
    with nogil:
        while off + 12 <= end:
            btype = _u32(b + off, big)
            if btype == C_SHB:
                # the byte-order magic 0x1A2B3C4D decides this section's endianness
                if b[off + 8] == 0x1A and b[off + 9] == 0x2B and b[off + 10] == 0x3C and b[off + 11] == 0x4D:
                    big = True
                elif b[off + 8] == 0x4D and b[off + 9] == 0x3C and b[off + 10] == 0x2B and b[off + 11] == 0x1A:
                    big = False
                else:
                    status = C_CORRUPT
                    break
            blen = _u32(b + off + 4, big)
            if blen < 12 or blen > C_MAX_BLOCK or (blen & 3) != 0:
                status = C_CORRUPT
                break
            if off + blen > end:
                break
            if _u32(b + off + blen - 4, big) != blen:
                status = C_CORRUPT
                break
            offs[n] = off
            types[n] = btype
            bigs[n] = big
            n += 1
            off += blen
    return offs_arr[:n], types_arr[:n], bigs_arr[:n], off, status, big


def read_uint(const uint8_t[::1] buf, const int64_t[::1] off, int width, bint big):
    """Unsigned `width`-byte fields at many offsets of one buffer, as uint64, in one pass with
    no per-byte temporaries. Offsets outside the buffer read as 0; callers mask them by caplen."""
    cdef Py_ssize_t n = off.shape[0], end = buf.shape[0], i, o
    cdef int k
    out_arr = np.zeros(n, np.uint64)
    cdef uint64_t[::1] out = out_arr
    cdef uint64_t v
    if end == 0:
        return out_arr
    cdef const uint8_t* b = &buf[0]
    with nogil:
        for i in range(n):
            o = off[i]
            if o < 0 or o + width > end:
                continue
            v = 0
            if big:
                for k in range(width):
                    v = (v << 8) | b[o + k]
            else:
                for k in range(width - 1, -1, -1):
                    v = (v << 8) | b[o + k]
            out[i] = v
    return out_arr


cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCDULL
    x ^= x >> 29
    return x


def flow_hash_columns(const uint64_t[:] sh, const uint64_t[:] sl, const uint64_t[:] dh,
                      const uint64_t[:] dl, const uint16_t[:] sp, const uint16_t[:] dp):
    """Direction-independent 64-bit key of each 4-tuple: the endpoint that sorts lower is
    always hashed first, so both directions of a connection get the same key."""
    cdef Py_ssize_t n = sh.shape[0], i
    out_arr = np.empty(n, np.uint64)
    cdef uint64_t[::1] out = out_arr
    cdef uint64_t ah, al, bh, bl, ap, bp, x, y
    cdef bint low
    with nogil:
        for i in range(n):
            low = sh[i] < dh[i] or (sh[i] == dh[i] and (sl[i] < dl[i] or (sl[i] == dl[i] and sp[i] <= dp[i])))
            if low:
                ah, al, bh, bl, ap, bp = sh[i], sl[i], dh[i], dl[i], sp[i], dp[i]
            else:
                ah, al, bh, bl, ap, bp = dh[i], dl[i], sh[i], sl[i], dp[i], sp[i]
            x = _mix(ah * 0x9E3779B97F4A7C15ULL + al)
            y = _mix(bh * 0x165667B19E3779F9ULL + bl)
            out[i] = _mix(x * 0xC2B2AE3D27D4EB4FULL + y * 0xD6E8FEB86659FD93ULL + ((ap << 16) | bp))
    return out_arr
