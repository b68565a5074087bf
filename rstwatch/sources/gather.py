"""Reads of fixed-width fields at many offsets of one byte buffer (the loop is in hotloops).
Out-of-range offsets read as 0; callers mask them by caplen."""
from __future__ import annotations

import numpy as np

from ..hotloops import read_uint


_DTYPE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _uint(buf: np.ndarray, off: np.ndarray, width: int, big: bool) -> np.ndarray:
    if len(off) == 0:
        return np.zeros(0, dtype=_DTYPE[width])
    return read_uint(buf, np.ascontiguousarray(off, dtype=np.int64), width, big).astype(_DTYPE[width])


def u8(buf, off):
    return _uint(buf, off, 1, True)


def be16(buf, off):
    return _uint(buf, off, 2, True)


def be32(buf, off):
    return _uint(buf, off, 4, True)


def be64(buf, off):
    return _uint(buf, off, 8, True)


def uint(buf, off, width: int, big: np.ndarray | bool) -> np.ndarray:
    """Unsigned read as uint64 whose byte order may differ per offset (pcapng sections)."""
    if isinstance(big, (bool, np.bool_)):
        return _uint(buf, off, width, bool(big)).astype(np.uint64)
    out = np.empty(len(off), np.uint64)
    for flag in (True, False):
        sel = big == flag
        if sel.any():
            out[sel] = _uint(buf, off[sel], width, flag)
    return out
