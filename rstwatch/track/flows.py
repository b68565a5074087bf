"""Vectorised flow keys: one 64-bit key per 4-tuple regardless of direction, and the filter
that keeps only the segments of 4-tuples that contain a RST."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..loops import flow_hash_columns
from ..sources.segments import FIN, RST, Segments

def src_is_low(seg: Segments) -> np.ndarray:
    """True where (src, sport) sorts before (dst, dport): the canonical 'A' endpoint."""
    sh, sl, dh, dl = seg["src_hi"], seg["src_lo"], seg["dst_hi"], seg["dst_lo"]
    return (sh < dh) | ((sh == dh) & ((sl < dl) | ((sl == dl) & (seg["sport"] <= seg["dport"]))))


def flow_hash(seg: Segments) -> np.ndarray:
    """Direction-independent 64-bit key of each segment's 4-tuple (collisions ~n^2/2^65)."""
    return flow_hash_columns(seg["src_hi"], seg["src_lo"], seg["dst_hi"], seg["dst_lo"], seg["sport"], seg["dport"])


def rst_flows_grouped(seg: Segments) -> tuple[Segments, np.ndarray, np.ndarray]:
    """Keep only the 4-tuples that hold a RST and group them: returns (segments, order,
    boundaries) where group g is order[boundaries[g]:boundaries[g+1]], capture order kept
    inside each group. The flow key is computed once."""
    h = flow_hash(seg)
    rst_keys = np.unique(h[(seg["flags"] & RST) != 0])
    if not len(rst_keys):
        return seg.take(np.zeros(0, np.int64)), np.zeros(0, np.int64), np.zeros(1, np.int64)
    pos = np.minimum(np.searchsorted(rst_keys, h), len(rst_keys) - 1)   # sorted keys: O(n log k)
    keep = np.flatnonzero(rst_keys[pos] == h)
    codes, _ = pd.factorize(h[keep])
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return seg.take(keep), order, np.concatenate([[0], bounds, [len(order)]])


FORGET_AFTER_NS = 2 * 1_000_000_000    # a cleanly closed flow idle this long is forgotten (a later RST on it is rare)


@dataclass
class FlowSummary:
    """Per-flow facts the memory bounds decide on; `codes` maps each segment to its flow."""
    codes: np.ndarray
    rst: np.ndarray          # the flow holds a RST
    closed: np.ndarray       # FIN seen both ways and no RST
    last: np.ndarray         # newest timestamp (ns)
    size: np.ndarray         # segments

    def __len__(self) -> int:
        return len(self.rst)


def summarize_flows(seg: Segments) -> FlowSummary:
    codes, uniq = pd.factorize(flow_hash(seg))
    n = len(uniq)
    flags = seg["flags"]
    rst = np.zeros(n, bool)
    rst[codes[(flags & RST) != 0]] = True
    fin = (flags & FIN) != 0
    low = src_is_low(seg)
    fin_a, fin_b = np.zeros(n, bool), np.zeros(n, bool)
    fin_a[codes[fin & low]] = True
    fin_b[codes[fin & ~low]] = True
    last = np.full(n, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, codes, seg["ts_ns"])
    return FlowSummary(codes, rst, fin_a & fin_b & ~rst, last, np.bincount(codes, minlength=n))


def forget_closed(seg: Segments, idle_ns: int | None = None) -> Segments:
    """Drop the segments of flows that closed cleanly (FIN both ways, no RST) and have been
    idle for `idle_ns`: this is what keeps memory bounded on long captures. Flows that are
    still open, or hold a RST, are kept whole."""
    if not len(seg):
        return seg
    idle_ns = FORGET_AFTER_NS if idle_ns is None else idle_ns
    f = summarize_flows(seg)
    done = f.closed & (seg["ts_ns"].max() - f.last > idle_ns)
    if not done.any():
        return seg
    return seg.take(np.flatnonzero(~done[f.codes]))


def oldest_flows(last: np.ndarray, size: np.ndarray, protected: np.ndarray, excess: int) -> np.ndarray:
    """Flows to drop so that at least `excess` segments go: least recently active first, never
    a protected one (fewer if the unprotected ones do not hold that many)."""
    candidates = np.flatnonzero(~protected & (size > 0))
    candidates = candidates[np.argsort(last[candidates], kind="stable")]
    cut = min(int(np.searchsorted(np.cumsum(size[candidates]), excess)) + 1, len(candidates))
    return candidates[:cut]


def evict_oldest(seg: Segments, max_rows: int) -> tuple[Segments, int]:
    """Hard cap: drop whole flows without a RST, least recently active first, until at most
    `max_rows` segments remain. Returns (kept, flows evicted)."""
    if len(seg) <= max_rows:
        return seg, 0
    f = summarize_flows(seg)
    # leave room so this does not run on every chunk
    victims = oldest_flows(f.last, f.size, f.rst, len(seg) - max_rows // 2)
    drop = np.zeros(len(f), bool)
    drop[victims] = True
    return seg.take(np.flatnonzero(~drop[f.codes])), len(victims)
