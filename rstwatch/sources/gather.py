"""Vectorised reads of fixed-width fields at many offsets of one byte buffer."""
from __future__ import annotations

import numpy as np

_AR = {w: np.arange(w, dtype=np.int64) for w in (2, 4, 8)}


def _clip(buf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    # Out-of-range offsets read the last byte; callers mask them out by caplen checks.
    return np.minimum(idx, len(buf) - 1) if len(buf) else idx


def u8(buf: np.ndarray, off: np.ndarray) -> np.ndarray:
    return buf[_clip(buf, off)]


def _uint(buf: np.ndarray, off: np.ndarray, width: int, big: bool) -> np.ndarray:
    if len(off) == 0:
        return np.zeros(0, dtype=f"u{width}")
    idx = _clip(buf, off[:, None] + _AR[width])
    raw = np.ascontiguousarray(buf[idx])
    return raw.view((">" if big else "<") + f"u{width}").ravel().astype(f"u{width}")


def be16(buf, off):
    return _uint(buf, off, 2, True)


def be32(buf, off):
    return _uint(buf, off, 4, True)


def be64(buf, off):
    return _uint(buf, off, 8, True)


def uint(buf, off, width: int, big: np.ndarray | bool) -> np.ndarray:
    """Unsigned read whose byte order may differ per offset (pcapng sections)."""
    if isinstance(big, (bool, np.bool_)):
        return _uint(buf, off, width, bool(big)).astype(np.uint64)
    out = np.empty(len(off), np.uint64)
    for flag in (True, False):
        sel = big == flag
        if sel.any():
            out[sel] = _uint(buf, off[sel], width, flag)
    return out
