"""Floods are findings, not millions of rows: port scans, RST storms and SYN floods.

While reading, flows that are nothing but a RST (a storm of blind or spoofed resets), or a SYN
answered by RST|ACK (a scan of closed ports), or SYNs that got nothing (a SYN flood), are grouped
by the host they target. Once a group passes `min_flows` it is absorbed into one aggregate and
its segments are dropped: memory stays bounded and the report gets one row for the flood.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..sources.segments import ACK, RST, SYN, Segments, address_text
from .flows import flow_hash

STORM_MIN_FLOWS = 500
MIN_RATE_PER_S = 100      # a flood arrives fast; a slow trickle (or a RST-only capture filter) is not one


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


class StormTracker:
    def __init__(self, min_flows: int = STORM_MIN_FLOWS) -> None:
        self.min_flows = min_flows
        self.storms: dict[tuple, Storm] = {}

    def absorb(self, seg: Segments, final: bool = False, counted: np.ndarray | None = None) -> Segments:
        """Move flood flows out of `seg` into aggregates; return the rest. RSTs whose frames are in
        `counted` (live: already reported one by one) make a flood like any other but do not add
        to its count of resets."""
        if self.min_flows <= 0 or not len(seg):
            return seg
        if not self.storms and not final and int(((seg["flags"] & RST) != 0).sum()) < self.min_flows:
            return seg                                      # too few resets to hold a flood
        codes, uniq = pd.factorize(flow_hash(seg))
        n = len(uniq)
        f = seg["flags"]
        is_rst = (f & RST) != 0
        syn_only = ((f & SYN) != 0) & ((f & ACK) == 0) & ~is_rst
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
        drop = np.zeros(n, bool)
        for k, name in enumerate(("rst-storm", "port-scan", "syn-flood")):
            flows = np.flatnonzero(kind == k)
            known = any(key[0] == name for key in self.storms)
            if not len(flows) or (len(flows) < self.min_flows and not known):
                continue                  # too few such flows in all for a new flood of this kind
            # the target: receiver of the RST (storm), the scanned host (scan), the SYNs' destination
            rows = np.flatnonzero(np.isin(codes, flows) & (is_rst if k == 0 else syn_only))
            first_row = pd.Series(rows).groupby(codes[rows]).first().to_numpy()
            groups = pd.DataFrame({
                "flow": codes[first_row], "hi": seg["dst_hi"][first_row], "lo": seg["dst_lo"][first_row],
                # a scan is one source probing many ports; other floods are keyed by target only
                "src_hi": seg["src_hi"][first_row] if k == 1 else 0, "src_lo": seg["src_lo"][first_row] if k == 1 else 0,
                "port": seg["dport"][first_row], "ts": seg["ts_ns"][first_row]})
            by_target = groups.groupby(["hi", "lo", "src_hi", "src_lo"])
            # judge every group at once; only floods (new or already known) are visited one by one
            stats = by_target.agg(flows=("flow", "size"), ports=("port", "nunique"), t0=("ts", "min"), t1=("ts", "max"))
            size = stats["ports"] if k == 1 else stats["flows"]
            span_s = np.maximum((stats["t1"] - stats["t0"]).to_numpy() / 1e9, 1e-3)
            chosen = ((size >= self.min_flows) & (stats["flows"] / span_s >= MIN_RATE_PER_S)).to_numpy()
            keys = [(name, *map(int, idx)) for idx in stats.index]
            if known:
                chosen = chosen | np.array([key in self.storms for key in keys])
            if not chosen.any():
                continue
            group_of_row = by_target.ngroup().to_numpy()
            flow_col = groups["flow"].to_numpy()
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
            st.ports.update(int(p) for p in np.unique(seg["dport"][rows[syn_only[rows]]])[:100000])
        if len(st.frames) < 10:
            st.frames.extend(int(x) for x in seg["frame"][rst_rows[:10 - len(st.frames)]])
