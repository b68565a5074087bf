"""Floods are findings, not millions of rows: port scans, RST storms and SYN floods.

While reading, flows that are nothing but a RST (a storm of blind or spoofed resets), or a SYN
answered by RST|ACK (a scan of closed ports), or SYNs that got nothing (a SYN flood), are grouped
by the host they target. Once a group passes its rule's `min_connections` (and arrives at
`min_rate_per_s`) it is absorbed into one aggregate and its segments are dropped: memory stays
bounded and the report gets one row for the flood.

The detectors are code (grouping connections is not a per-row condition); what they report,
their thresholds, and whether they run at all come from flood rules (rules/port-scan.yaml ...,
a `flood:` mapping instead of `when:`), so a user folder overrides or disables them by id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..arrays import distinct
from ..sources.segments import ACK, RST, SYN, SEGMENT_COLUMNS, Segments, address_text
from ..loops import factorize_keys
from .flows import flow_hash

# The detectors, in the order they claim flows. A flood rule names one in `flood.detector`.
DETECTORS = ("rst-storm", "port-scan", "syn-flood")
# --storm-min not given: each flood rule's own min_connections. A number overrides them all.
STORM_MIN_FLOWS: int | None = None
# A SYN nothing answered for this long (behind the newest packet) counts toward a SYN flood while
# the capture is read, not only at its end: Linux retransmits an unanswered SYN after 1 s and 3 s,
# answered ones get their SYN-ACK or RST within a round trip. Kept to the end, a SYN flood's flows
# filled the flow table (3 M SYNs: 1.2 GB) and `live` reported the flood only at exit, for what its
# flow table still held.
SYN_UNANSWERED_NS = 3_000_000_000
# What a flood rule's `flood:` mapping holds (required keys first) and its templates may use.
FLOOD_REQUIRED = ("detector", "min_connections", "min_rate_per_s")
FLOOD_KEYS = FLOOD_REQUIRED + ("groups", "receiver_sees")
SUMMARY_FIELDS = {"cause", "target", "resets", "connections", "syns", "ports", "seconds", "sources",
                  "first_frame", "last_frame"}


def check_flood(flood: Any) -> list[tuple[str, str]]:
    """Problems of a `flood:` mapping as (key path for the line, reason)."""
    if not isinstance(flood, dict):
        return [("flood", "flood must be a mapping {detector, min_connections, min_rate_per_s}")]
    out = [(f"flood.{k}", f"unknown key `{k}` in flood (use {', '.join(FLOOD_KEYS)})") for k in flood if k not in FLOOD_KEYS]
    missing = [k for k in FLOOD_REQUIRED if k not in flood]
    if missing:
        out.append(("flood", f"flood is missing {', '.join(missing)}"))
    if "detector" in flood and flood["detector"] not in DETECTORS:
        out.append(("flood.detector", f"detector must be one of {', '.join(DETECTORS)}, got {flood['detector']!r}"))
    n = flood.get("min_connections", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        out.append(("flood.min_connections", f"min_connections must be a whole number >= 0 (0: never), got {n!r}"))
    rate = flood.get("min_rate_per_s", 0)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
        out.append(("flood.min_rate_per_s", f"min_rate_per_s must be a number >= 0, got {rate!r}"))
    for k in ("groups", "receiver_sees"):
        if k in flood and not isinstance(flood[k], str):
            out.append((f"flood.{k}", f"{k} must be text"))
    return out


def check_group(group: Any) -> str | None:
    """Why a flood rule's test example is not {connections: N, per_second: R}, or None."""
    if not isinstance(group, dict) or set(group) != {"connections", "per_second"}:
        return "a flood rule's test needs expect: match|no_match and group: {connections: N, per_second: R}"
    n, rate = group["connections"], group["per_second"]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 100_000:
        return f"group.connections must be a whole number in 1..100000, got {n!r}"
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
        return f"group.per_second must be a number > 0, got {rate!r}"
    return None


@dataclass
class Storm:
    kind: str                 # rst-storm | port-scan | syn-flood
    target: str               # the host under attack (receiver of the RSTs / SYNs)
    rsts: int = 0
    syns: int = 0
    flows: int = 0
    first_frame: int = 0
    last_frame: int = 0
    first_ns: int = 0
    last_ns: int = 0
    senders: set = field(default_factory=set)       # bounded sample
    ports: set = field(default_factory=set)         # bounded sample
    frames: list = field(default_factory=list)      # first RST frames as evidence
    v6: bool = False


class TargetGroups:
    """Rows grouped by equal values of several key columns, the groups in ascending key order
    (as a sorted group-by): numpy only, so reading a large capture never imports pandas for it."""

    def __init__(self, columns: tuple[np.ndarray, ...]) -> None:
        self.columns = columns
        self.order = np.lexsort(columns[::-1])              # lexsort's last key is the primary one
        ordered = [c[self.order] for c in columns]
        starts = np.ones(len(self.order), bool)
        if len(self.order):
            starts[1:] = np.logical_or.reduce([c[1:] != c[:-1] for c in ordered])
        self.starts = np.flatnonzero(starts)
        self.group = np.empty(len(self.order), np.int64)   # each row's group number
        self.group[self.order] = np.cumsum(starts) - 1

    def keys(self) -> list[tuple[int, ...]]:
        first = self.order[self.starts]
        return list(zip(*(map(int, c[first].tolist()) for c in self.columns)))

    def sizes(self) -> np.ndarray:
        return np.bincount(self.group, minlength=len(self.starts))

    def min_max(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ordered = values[self.order]
        return np.minimum.reduceat(ordered, self.starts), np.maximum.reduceat(ordered, self.starts)

    def distinct(self, values: np.ndarray) -> np.ndarray:
        """How many different `values` each group holds."""
        width = int(values.max()) + 1 if len(values) else 1
        pairs = distinct(self.group * width + values.astype(np.int64))    # one per (group, value)
        return np.bincount(pairs // width, minlength=len(self.starts))


class StormTracker:
    def __init__(self, rules: list | None = None, storm_min: int | None = STORM_MIN_FLOWS) -> None:
        """`rules`: any rules; those with a `flood` mapping switch their detector on (a detector
        whose rule is disabled or missing leaves its resets to be reported row by row).
        `storm_min` (--storm-min), when given, replaces every flood rule's min_connections."""
        self.rules: dict[str, Any] = {}             # detector -> its flood rule (texts for the report)
        self.limits: dict[str, tuple[int, float]] = {}
        for r in rules or []:
            flood = getattr(r, "flood", None)
            if flood is None:
                continue
            n = flood["min_connections"] if storm_min is None else storm_min
            if n > 0:                                   # 0: this detector never groups
                self.rules[flood["detector"]] = r
                self.limits[flood["detector"]] = (n, float(flood["min_rate_per_s"]))
        self.min_flows = min((n for n, _ in self.limits.values()), default=0)
        self.storms: dict[tuple, Storm] = {}

    def absorb(self, seg: Segments, final: bool = False, counted: np.ndarray | None = None) -> Segments:
        """Move flood flows out of `seg` into aggregates; return the rest. RSTs whose frames are in
        `counted` (live: already reported one by one) make a flood like any other but do not add
        to its count of resets."""
        if self.min_flows <= 0 or not len(seg):
            return seg
        f = seg["flags"]
        is_rst = (f & RST) != 0
        syn_only = ((f & SYN) != 0) & ((f & ACK) == 0) & ~is_rst
        if not self.storms and max(int(is_rst.sum()), int(syn_only.sum())) < self.min_flows:
            return seg      # too few resets or SYNs to hold a flood (a flood's flows each hold one)
        codes, uniq = factorize_keys(flow_hash(seg))
        n = len(uniq)
        synack = ((f & SYN) != 0) & ((f & ACK) != 0) & ~is_rst
        bare_rst = is_rst & ((f & ACK) == 0)
        count = np.bincount(codes, minlength=n)
        rst_n, syn_n, sa_n, bare_n = (np.bincount(codes[m], minlength=n) for m in (is_rst, syn_only, synack, bare_rst))
        kind = np.full(n, -1)
        kind[rst_n == count] = 0                                              # lone RSTs
        kind[(syn_n > 0) & (rst_n > 0) & (syn_n + rst_n == count)] = 1        # SYN -> RST|ACK: closed port
        # SYN -> SYN-ACK -> bare RST: the spoofed "client" never asked (SYN-flood backscatter)
        kind[(syn_n > 0) & (sa_n > 0) & (bare_n > 0) & (syn_n + sa_n + bare_n == count)] = 2
        if final:
            kind[syn_n == count] = 2                                          # SYNs nobody answered
        elif syn_only.any():                                                  # ... for long enough already
            last = np.full(n, np.iinfo(np.int64).min, np.int64)
            np.maximum.at(last, codes, seg["ts_ns"])
            kind[(syn_n == count) & (last < int(seg["ts_ns"].max()) - SYN_UNANSWERED_NS)] = 2
        drop = np.zeros(n, bool)
        for k, name in enumerate(DETECTORS):
            if name not in self.limits:
                continue                  # no flood rule for this detector: its flows stay rows
            min_flows, min_rate = self.limits[name]
            flows = np.flatnonzero(kind == k)
            known = any(key[0] == name for key in self.storms)
            if not len(flows) or (len(flows) < min_flows and not known):
                continue                  # too few such flows in all for a new flood of this kind
            # the target: receiver of the RST (storm), the scanned host (scan), the SYNs' destination
            rows = np.flatnonzero(np.isin(codes, flows) & (is_rst if k == 0 else syn_only))
            # each flow's first such row (flows in code order), then the flows grouped by target
            flow_col, first_at = np.unique(codes[rows], return_index=True)
            first_row = rows[first_at]
            zero = np.zeros(len(first_row), np.uint64)
            # a scan is one source probing many ports; other floods are keyed by target only
            targets = TargetGroups((seg["dst_hi"][first_row], seg["dst_lo"][first_row],
                                    seg["src_hi"][first_row] if k == 1 else zero,
                                    seg["src_lo"][first_row] if k == 1 else zero))
            flows_n = targets.sizes()
            t0, t1 = targets.min_max(seg["ts_ns"][first_row])
            size = targets.distinct(seg["dport"][first_row]) if k == 1 else flows_n
            span_s = np.maximum((t1 - t0) / 1e9, 1e-3)
            # judge every group at once; only floods (new or already known) are visited one by one
            chosen = (size >= min_flows) & (flows_n / span_s >= min_rate)
            keys = [(name, *key) for key in targets.keys()]
            if known:
                chosen = chosen | np.array([key in self.storms for key in keys])
            if not chosen.any():
                continue
            group_of_row = targets.group
            for g in np.flatnonzero(chosen):
                group_flows = flow_col[group_of_row == g]
                self._add(keys[g], name, seg, codes, group_flows, is_rst, syn_only, counted)
                drop[group_flows] = True
        if not drop.any():
            return seg
        return seg.take(np.flatnonzero(~drop[codes]))

    def _add(self, key, name, seg, codes, flows, is_rst, syn_only, counted=None) -> None:
        rows = np.flatnonzero(np.isin(codes, flows))
        v6 = bool(seg["v6"][rows[0]])
        st = self.storms.get(key)
        if st is None:
            target = address_text(v6, key[1], key[2])
            st = self.storms[key] = Storm(kind=name, target=target, v6=v6,
                                          first_frame=int(seg["frame"][rows[0]]), first_ns=int(seg["ts_ns"][rows[0]]))
        rst_rows = rows[is_rst[rows]]
        st.rsts += len(rst_rows)
        if counted is not None and len(counted):
            st.rsts -= int(np.isin(seg["frame"][rst_rows], counted).sum())
        st.syns += int(syn_only[rows].sum())
        st.flows += len(flows)
        st.first_frame = min(st.first_frame, int(seg["frame"][rows].min()))
        st.last_frame = max(st.last_frame, int(seg["frame"][rows].max()))
        st.first_ns = min(st.first_ns, int(seg["ts_ns"][rows].min()))
        st.last_ns = max(st.last_ns, int(seg["ts_ns"][rows].max()))
        src_rows = rst_rows if name == "rst-storm" else rows[syn_only[rows]]
        for r in src_rows[:64]:
            if len(st.senders) < 64:
                st.senders.add(address_text(bool(seg["v6"][r]), int(seg["src_hi"][r]), int(seg["src_lo"][r])))
        if name == "port-scan":
            st.ports.update(int(p) for p in distinct(seg["dport"][rows[syn_only[rows]]])[:100000])
        if len(st.frames) < 10:
            st.frames.extend(int(x) for x in seg["frame"][rst_rows[:10 - len(st.frames)]])


# ---------------------------------------------------------------- a flood rule's examples
# A flood rule's `tests:` are groups of connections ({connections: N, per_second: R}). They are
# judged by the detector itself: the group is built as the segments that detector looks for
# (lone RSTs; SYN -> RST|ACK on distinct ports; SYN -> SYN-ACK -> bare RST), and it must (or
# must not) come out as a flood of that rule with every flood rule loaded.

def example_segments(detector: str, connections: int, per_second: float) -> Segments:
    """`connections` of the kind `detector` groups, one starting every 1/per_second s, at 10.0.0.1."""
    n = connections
    shape = {"rst-storm": [(RST, False)], "port-scan": [(SYN, False), (RST | ACK, True)],
             "syn-flood": [(SYN, False), (SYN | ACK, True), (RST, False)]}[detector]
    k = len(shape)
    conn = np.repeat(np.arange(n), k)
    step = np.tile(np.arange(k), n)
    start_ns = (np.arange(n) * (1e9 / per_second)).astype(np.int64)
    peer = 0x0B000000 + conn                              # 11.x.y.z: one address per connection ...
    if detector == "port-scan":
        peer = np.full(n * k, 0x0A000002)                 # ... except a scan: one scanner
    target = np.full(n * k, 0x0A000001)
    from_target = np.array([t for _, t in shape] * n)
    cols = {c: np.zeros(n * k, dtype=t) for c, t in SEGMENT_COLUMNS.items()}
    cols["frame"] = np.arange(1, n * k + 1)
    cols["ts_ns"] = 1_700_000_000_000_000_000 + start_ns[conn] + step * 1000
    mapped = np.uint64(0xFFFF << 32)
    cols["src_lo"] = np.where(from_target, target, peer).astype(np.uint64) | mapped
    cols["dst_lo"] = np.where(from_target, peer, target).astype(np.uint64) | mapped
    peer_port = (1024 + conn % 60000).astype(np.uint16)
    target_port = (1 + conn % 65535).astype(np.uint16) if detector == "port-scan" else np.full(n * k, 80, np.uint16)
    cols["sport"] = np.where(from_target, target_port, peer_port)
    cols["dport"] = np.where(from_target, peer_port, target_port)
    cols["flags"] = np.array([f for f, _ in shape] * n, dtype=np.uint16)
    cols["hlen"][:], cols["ttl"][:], cols["ipid"][:] = 20, 64, -1
    return Segments(cols)


def example_verdict(rules: list, detector: str, group: dict) -> str | None:
    """The flood cause (rule name) this group comes out as with `rules` loaded, or None."""
    tracker = StormTracker(rules)
    tracker.absorb(example_segments(detector, group["connections"], group["per_second"]), final=True)
    kinds = {st.kind for st in tracker.storms.values()}
    return tracker.rules[kinds.pop()].name if len(kinds) == 1 else None
