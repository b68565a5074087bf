"""Vectorised flow keys: one 64-bit key per 4-tuple regardless of direction, and the filter
that keeps only the segments of 4-tuples that contain a RST."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..sources.segments import RST, Segments

_P = [np.uint64(x) for x in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                            0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)]


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * _P[4]
    return x ^ (x >> np.uint64(29))


def src_is_low(seg: Segments) -> np.ndarray:
    """True where (src, sport) sorts before (dst, dport): the canonical 'A' endpoint."""
    sh, sl, dh, dl = seg["src_hi"], seg["src_lo"], seg["dst_hi"], seg["dst_lo"]
    return (sh < dh) | ((sh == dh) & ((sl < dl) | ((sl == dl) & (seg["sport"] <= seg["dport"]))))


def flow_hash(seg: Segments) -> np.ndarray:
    """Direction-independent 64-bit key of each segment's 4-tuple (collisions ~n^2/2^65)."""
    low = src_is_low(seg)
    a_hi = np.where(low, seg["src_hi"], seg["dst_hi"])
    a_lo = np.where(low, seg["src_lo"], seg["dst_lo"])
    b_hi = np.where(low, seg["dst_hi"], seg["src_hi"])
    b_lo = np.where(low, seg["dst_lo"], seg["src_lo"])
    a_port = np.where(low, seg["sport"], seg["dport"]).astype(np.uint64)
    b_port = np.where(low, seg["dport"], seg["sport"]).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(a_hi * _P[0] + a_lo) * _P[1] + _mix(b_hi * _P[2] + b_lo) * _P[3]
        h = _mix(h + ((a_port << np.uint64(16)) | b_port))
    return h


def rst_flow_hashes(seg: Segments) -> np.ndarray:
    """Sorted unique keys of 4-tuples with at least one RST segment."""
    if not len(seg):
        return np.zeros(0, np.uint64)
    rst = (seg["flags"] & RST) != 0
    return np.unique(flow_hash(seg.take(np.flatnonzero(rst))))


def keep_flows(seg: Segments, hashes: np.ndarray) -> Segments:
    """Only the segments whose 4-tuple key is in `hashes` (vectorised)."""
    if not len(seg) or not len(hashes):
        return seg.take(np.zeros(0, np.int64))
    return seg.take(np.flatnonzero(np.isin(flow_hash(seg), hashes)))


def group_by_tuple(seg: Segments) -> tuple[np.ndarray, np.ndarray]:
    """Return (order, boundaries): segment indices grouped by 4-tuple, capture order kept
    inside each group; group g is order[boundaries[g]:boundaries[g+1]]."""
    codes, _ = pd.factorize(flow_hash(seg))
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return order, np.concatenate([[0], bounds, [len(order)]])
