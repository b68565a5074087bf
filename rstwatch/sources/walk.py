"""Record and block walkers: the only per-packet loop, compiled with numba.

A pcap or pcapng file is a chain of variable-length records: finding record N+1 needs the
length of record N, so the walk is inherently sequential. Everything after it (field reads,
link/IP/TCP decoding) is vectorised with numpy over the offsets returned here.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Status codes returned by the walkers.
NEED_MORE = 0   # stopped at an incomplete record at the end of the buffer (or exactly at the end)
CORRUPT = 1     # a record header is impossible (absurd length, mismatched trailer)

MAX_CAPLEN = 262144          # Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD
MAX_BLOCK = 16 * 1024 * 1024 + 4096

SHB = 0x0A0D0D0A


@njit(cache=True, nogil=True)
def _u32(buf, off, big):
    if big:
        return (np.int64(buf[off]) << 24) | (np.int64(buf[off + 1]) << 16) | (np.int64(buf[off + 2]) << 8) | np.int64(buf[off + 3])
    return (np.int64(buf[off + 3]) << 24) | (np.int64(buf[off + 2]) << 16) | (np.int64(buf[off + 1]) << 8) | np.int64(buf[off])


@njit(cache=True, nogil=True)
def walk_pcap(buf, start, big):
    """Offsets of complete pcap record headers from `start`; returns (offsets, stop, status)."""
    n_max = max((len(buf) - start) // 16, 0)
    out = np.empty(n_max, np.int64)
    n = 0
    off = start
    end = len(buf)
    status = NEED_MORE
    while off + 16 <= end:
        caplen = _u32(buf, off + 8, big)
        if caplen > MAX_CAPLEN:
            status = CORRUPT
            break
        if off + 16 + caplen > end:
            break
        out[n] = off
        n += 1
        off += 16 + caplen
    return out[:n], off, status


@njit(cache=True, nogil=True)
def walk_pcapng(buf, start, big):
    """Complete pcapng blocks from `start`.

    Returns (offsets, types, big_endian_flags, stop, status, big_at_stop). A Section Header
    Block sets the byte order of the blocks that follow it.
    """
    n_max = max((len(buf) - start) // 12, 0)
    offs = np.empty(n_max, np.int64)
    types = np.empty(n_max, np.int64)
    bigs = np.empty(n_max, np.bool_)
    n = 0
    off = start
    end = len(buf)
    status = NEED_MORE
    while off + 12 <= end:
        btype = _u32(buf, off, big)
        if btype == SHB:
            # byte-order magic 0x1A2B3C4D decides this section's endianness
            if buf[off + 8] == 0x1A and buf[off + 9] == 0x2B and buf[off + 10] == 0x3C and buf[off + 11] == 0x4D:
                big = True
            elif buf[off + 8] == 0x4D and buf[off + 9] == 0x3C and buf[off + 10] == 0x2B and buf[off + 11] == 0x1A:
                big = False
            else:
                status = CORRUPT
                break
        blen = _u32(buf, off + 4, big)
        if blen < 12 or blen > MAX_BLOCK or (blen & 3) != 0:
            status = CORRUPT
            break
        if off + blen > end:
            break
        if _u32(buf, off + blen - 4, big) != blen:
            status = CORRUPT
            break
        offs[n] = off
        types[n] = btype
        bigs[n] = big
        n += 1
        off += blen
    return offs[:n], types[:n], bigs[:n], off, status, big
