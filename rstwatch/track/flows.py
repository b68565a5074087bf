"""Vectorised flow keys: one 64-bit key per 4-tuple regardless of direction, and the filter
that keeps only the segments of 4-tuples that contain a RST."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..loops import factorize_keys, flow_hash_columns, group_order
from ..sources.segments import ACK, FIN, RST, SYN, Segments

def src_is_low(seg: Segments, rows: np.ndarray | None = None) -> np.ndarray:
    """True where (src, sport) sorts before (dst, dport): the canonical 'A' endpoint; of the
    rows `rows` only, when given."""
    cols = [seg[c] if rows is None else seg[c][rows] for c in ("src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport")]
    sh, sl, dh, dl, sp, dp = cols
    return (sh < dh) | ((sh == dh) & ((sl < dl) | ((sl == dl) & (sp <= dp))))


def flow_hash(seg: Segments) -> np.ndarray:
    """Direction-independent 64-bit key of each segment's 4-tuple (collisions ~n^2/2^65); the
    tunnel key joins it for tunnelled segments (one 4-tuple in two VNIs: two connections).
    Kept on the table (Segments.flow_keys), which is never changed in place."""
    if seg.flow_keys is not None and len(seg.flow_keys) == len(seg):
        return seg.flow_keys
    h = flow_hash_columns(seg["src_hi"], seg["src_lo"], seg["dst_hi"], seg["dst_lo"], seg["sport"], seg["dport"])
    tunnel = seg.cols.get("tunnel")
    if tunnel is not None and tunnel.any():
        with np.errstate(over="ignore"):
            h = np.where(tunnel != 0, (h ^ tunnel) * np.uint64(0xFF51AFD7ED558CCD), h)
    seg.flow_keys = h
    return h


def flows_holding_rst(seg: Segments) -> tuple[np.ndarray, np.ndarray]:
    """(flow code of each row, whether each flow holds a RST)."""
    codes, flows = factorize_keys(flow_hash(seg))
    has_rst = np.zeros(len(flows), bool)
    has_rst[codes[(seg["flags"] & RST) != 0]] = True
    return codes, has_rst


def rst_flows_grouped(seg: Segments) -> tuple[Segments, np.ndarray, np.ndarray]:
    """Keep only the 4-tuples that hold a RST and group them: returns (segments, order,
    boundaries) where group g is order[boundaries[g]:boundaries[g + 1]], capture order kept
    inside each group, groups in order of their first segment. One pass of the flow keys
    through a hash table numbers the flows; the kept ones are renumbered in the same order."""
    codes, has_rst = flows_holding_rst(seg)
    if not has_rst.any():
        return seg.take(np.zeros(0, np.int64)), np.zeros(0, np.int64), np.zeros(1, np.int64)
    keep = np.flatnonzero(has_rst[codes])
    renumber = np.cumsum(has_rst) - 1
    kept = renumber[codes[keep]]
    groups = int(renumber[-1]) + 1
    bounds = np.zeros(groups + 1, np.int64)
    np.cumsum(np.bincount(kept, minlength=groups), out=bounds[1:])
    return seg.take(keep), group_order(kept, groups), bounds


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
    return _summarize([seg])


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _summarize(parts: list[Segments]) -> FlowSummary:
    """The flow summary of the parts' concatenation, built from the few columns it needs: the
    whole table is copied only for the rows that are kept (Segments.gather)."""
    codes, uniq = factorize_keys(_joined([flow_hash(p) for p in parts]))
    n = len(uniq)
    flags = _joined([p["flags"] for p in parts])
    rst = np.zeros(n, bool)
    rst[codes[(flags & RST) != 0]] = True
    # which way each FIN went: compared on the FIN rows only (a few per flow), not every row
    fin_a, fin_b = np.zeros(n, bool), np.zeros(n, bool)
    start = 0
    for p in parts:
        fins = np.flatnonzero(p["flags"] & FIN)
        low = src_is_low(p, fins)
        fin_a[codes[start + fins[low]]] = True
        fin_b[codes[start + fins[~low]]] = True
        start += len(p)
    last = np.full(n, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, codes, _joined([p["ts_ns"] for p in parts]))
    return FlowSummary(codes, rst, fin_a & fin_b & ~rst, last, np.bincount(codes, minlength=n))


def forget_closed(parts: list[Segments], idle_ns: int | None = None) -> Segments:
    """The parts as one table without the segments of flows that closed cleanly (FIN both ways,
    no RST) and have been idle for `idle_ns`: this is what keeps memory bounded on long
    captures. Flows that are still open, or hold a RST, are kept whole. Most rows of a long
    capture go here, so they are never copied into the joined table (a copy of every column of
    every row was a third of reading a plain pcap)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Segments.empty()
    idle_ns = FORGET_AFTER_NS if idle_ns is None else idle_ns
    f = _summarize(parts)
    done = f.closed & (f.last.max() - f.last > idle_ns)      # the newest flow's last time is the newest
    if not done.any():
        return Segments.concat(parts)
    return Segments.gather(parts, np.flatnonzero(~done[f.codes]))


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


# A flow holding a RST is settled, and can be classified before the end of the file, once no later
# packet can change its verdict: every connection of it after its last RST would be a new one
# (Zeek's reset delay, 5 s, has passed since that RST), plus this margin for capture timestamps
# that go backwards a little (merged interfaces).
SETTLE_MARGIN_NS = 5 * 1_000_000_000
# Features compare resets from one endpoint this close: the server-RST burst counts those within
# 1 s of each other, conn.server_alive_in_burst chains runs with gaps up to 2 s (RUN_GAP_S). Flows
# whose resets chain this close are classified together, and files this close are not mixed.
BURST_WINDOW_NS = 2_001_000_000


def reset_components(seg: Segments) -> tuple[np.ndarray, np.ndarray]:
    """(flow code of each row, component of each flow). Resets from one endpoint (src, sport)
    chained by gaps of at most BURST_WINDOW_NS are compared by the features (server-RST burst), so the
    flows holding them must be classified together: a component is such a closure of flows
    (-1 for flows without a RST). A key collision only joins components: safe."""
    codes, uniq = factorize_keys(flow_hash(seg))
    n = len(uniq)
    comp = np.full(n, -1, np.int64)
    rst_rows = np.flatnonzero((seg["flags"] & RST) != 0)
    if not len(rst_rows):
        return codes, comp
    key = seg["src_hi"][rst_rows] * np.uint64(0x9E3779B97F4A7C15) ^ seg["src_lo"][rst_rows] \
        ^ (seg["sport"][rst_rows].astype(np.uint64) << np.uint64(48))
    t = seg["ts_ns"][rst_rows]
    order = np.lexsort((t, key))
    new = np.ones(len(order), bool)
    new[1:] = (key[order][1:] != key[order][:-1]) | (np.diff(t[order]) > BURST_WINDOW_NS)
    cluster = np.empty(len(order), np.int64)
    cluster[order] = np.cumsum(new) - 1
    flow_of = codes[rst_rows]
    label = np.arange(n, dtype=np.int64)
    for _ in range(100):                 # smallest flow code over flows linked through clusters
        low = np.full(int(cluster.max()) + 1, n, np.int64)
        np.minimum.at(low, cluster, label[flow_of])
        nxt = label.copy()
        np.minimum.at(nxt, flow_of, low[cluster])
        if np.array_equal(nxt, label):
            break
        label = nxt
    else:
        label[:] = 0                     # a chain too long to resolve: one component (always safe)
    comp[flow_of] = label[flow_of]
    return codes, comp


def settled(seg: Segments, reset_delay_ns: int, margin_ns: int = SETTLE_MARGIN_NS) -> np.ndarray:
    """Row mask of the flows whose verdicts are final now (see SETTLE_MARGIN_NS): their last
    connection holds their last RST, that RST is older than the reset delay plus the margin,
    and so is every flow of their reset component (see reset_components)."""
    if not ((seg["flags"] & RST) != 0).any():
        return np.zeros(len(seg), bool)
    codes, comp = reset_components(seg)
    ok = _final_flows(seg, codes, len(comp), reset_delay_ns, margin_ns)
    # a component settles whole or not at all
    has = comp >= 0
    comp_ok = np.ones(len(comp), bool)
    comp_ok[comp[has & ~ok]] = False
    ok &= has & comp_ok[np.maximum(comp, 0)]
    return ok[codes]


def final_by_themselves(seg: Segments, reset_delay_ns: int, margin_ns: int = SETTLE_MARGIN_NS) -> np.ndarray:
    """Row mask of the flows holding a RST that `settled` finds final by themselves, whether or
    not the rest of their reset component is: walked early, their burst features computed later
    with the component's (analyze.VerdictBatch.stash)."""
    if not ((seg["flags"] & RST) != 0).any():
        return np.zeros(len(seg), bool)
    codes, uniq = factorize_keys(flow_hash(seg))
    return _final_flows(seg, codes, len(uniq), reset_delay_ns, margin_ns)[codes]


def _final_flows(seg: Segments, codes: np.ndarray, n: int, reset_delay_ns: int, margin_ns: int) -> np.ndarray:
    """Per flow: it holds a RST, its last connection holds its last RST, and that RST is older
    than the reset delay plus the margin."""
    flags, ts = seg["flags"], seg["ts_ns"]
    rst_rows = np.flatnonzero((flags & RST) != 0)
    last_rst = np.full(n, -1, np.int64)                 # row of each flow's last RST (rows are in capture order)
    np.maximum.at(last_rst, codes[rst_rows], rst_rows)
    ok = last_rst >= 0
    rst_ts = ts[np.maximum(last_rst, 0)]
    # a SYN, or a packet past the reset delay, after the last RST opened a connection without a RST
    after = np.arange(len(seg)) > last_rst[codes]
    syn_only = ((flags & SYN) != 0) & ((flags & ACK) == 0)
    opened = after & (syn_only | (ts - rst_ts[codes] > reset_delay_ns))
    ok[codes[opened]] = False
    ok &= int(ts.max()) - rst_ts > reset_delay_ns + margin_ns
    return ok


def split_components(seg: Segments, max_resets: int) -> list[np.ndarray]:
    """Row indexes of `seg` cut into pieces of about `max_resets` resets, whole reset components
    each, in order of their first row."""
    codes, comp = reset_components(seg)
    rst = (seg["flags"] & RST) != 0
    if int(rst.sum()) <= max_resets:
        return [np.arange(len(seg))]
    return _cut(comp[codes], rst, len(comp), max_resets)


def split_flows(seg: Segments, max_resets: int) -> list[np.ndarray]:
    """Row indexes of the flows of `seg` that hold a RST, cut into pieces of about `max_resets`
    resets, whole flows (4-tuples) each, in order of their first row. For a reset component too
    big to classify at once: its pieces are walked one at a time, and the features that compare
    connections are computed over all of them (analyze.VerdictBatch._add_piece)."""
    codes, has_rst = flows_holding_rst(seg)
    return _cut(np.where(has_rst[codes], codes, -1), (seg["flags"] & RST) != 0, len(has_rst), max_resets)


def _cut(group: np.ndarray, rst: np.ndarray, groups: int, max_resets: int) -> list[np.ndarray]:
    """Rows cut into pieces of about `max_resets` resets, whole groups each (`group` of each row,
    -1 for rows left out), the groups in order of their first row, capture order kept."""
    resets_per = np.bincount(group[rst], minlength=groups)
    first = np.full(groups, len(group), np.int64)
    counted = np.flatnonzero(group >= 0)
    np.minimum.at(first, group[counted], counted)
    ids = np.flatnonzero(resets_per)
    ids = ids[np.argsort(first[ids], kind="stable")]
    piece = np.zeros(groups, np.int64)
    piece[ids] = np.cumsum(resets_per[ids]) // max_resets
    row_piece = np.where(group >= 0, piece[np.maximum(group, 0)], -1)
    order = np.argsort(row_piece, kind="stable")
    bounds = np.flatnonzero(np.diff(row_piece[order])) + 1
    return [p for p in np.split(order, bounds) if len(p) and row_piece[p[0]] >= 0]
