"""The live flow table: the recent TCP segments of every flow, kept only as long as a RST on
that flow could still need them, with a hard cap so no traffic pattern grows it without bound.

The table is the same `Segments` columns the offline reader produces (75 bytes per segment),
so live verdicts come from exactly the code that classifies files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..sources.segments import RST, SEGMENT_COLUMNS, Segments
from ..track.connection import RESET_DELAY_NS
from ..track.flows import FORGET_AFTER_NS, oldest_flows, summarize_flows

SEGMENT_BYTES = sum(np.dtype(t).itemsize for t in SEGMENT_COLUMNS.values())


@dataclass
class Limits:
    max_segments: int = 1_000_000      # hard cap on segments held (x 75 bytes)
    flow_idle_s: float = 600.0         # a flow silent this long is forgotten (idle-timeout resets come later than most)
    head: int = 16                     # a long flow keeps its first segments (handshake, options) ...
    tail: int = 240                    # ... and its latest ones; the middle goes


@dataclass
class PruneStats:
    flows: int = 0
    forgotten: int = 0       # flows dropped as done (closed, reset and reported, idle)
    evicted: int = 0         # flows dropped by the hard cap
    trimmed: int = 0         # segments cut out of the middle of long flows


def prune(seg: Segments, now_ns: int, pending_frames: np.ndarray, limits: Limits,
          take: Callable[[Segments, np.ndarray], Segments] = Segments.take) -> tuple[Segments, PruneStats]:
    """Forget what no verdict can need any more, trim long flows, then enforce the cap; the rows
    kept are taken by `take` (the live table gathers them into its growing store).

    Flows holding a RST still waiting for its verdict are never dropped."""
    st = PruneStats()
    if not len(seg):
        return seg, st
    f = summarize_flows(seg)
    codes, size, last = f.codes, f.size, f.last
    pending = np.zeros(len(f), bool)
    if len(pending_frames):
        pending[codes[np.isin(seg["frame"], pending_frames)]] = True
    idle = now_ns - last
    done = ~pending & ((f.closed & (idle > FORGET_AFTER_NS))                 # closed cleanly
                       | (f.rst & (idle > RESET_DELAY_NS))                   # reset, reported, quiet
                       | (idle > limits.flow_idle_s * 1e9))                  # silent too long
    st.forgotten = int(done.sum())
    keep_row = ~done[codes]

    # Trim: rank of each row inside its flow, from the front and from the back.
    if size.max() > limits.head + limits.tail:
        order = np.argsort(codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        rank = np.empty(len(codes), np.int64)
        rank[order] = np.arange(len(codes)) - starts[codes[order]]
        middle = (rank >= limits.head) & (rank < size[codes] - limits.tail) & ((seg["flags"] & RST) == 0)
        st.trimmed = int((middle & keep_row).sum())
        keep_row &= ~middle

    # Hard cap: least recently active flows first, never one with a verdict pending.
    kept_rows = int(keep_row.sum())
    if kept_rows > limits.max_segments:
        alive = np.bincount(codes, weights=keep_row, minlength=len(f)).astype(np.int64)
        excess = kept_rows - int(limits.max_segments * 0.9)      # headroom: the cap is not hit every tick
        victims = oldest_flows(last, alive, pending, excess)
        st.evicted = len(victims)
        drop = np.zeros(len(f), bool)
        drop[victims] = True
        keep_row &= ~drop[codes]
    st.flows = len(f) - st.forgotten - st.evicted
    if keep_row.all():
        return seg, st
    return take(seg, np.flatnonzero(keep_row)), st
