"""Join kernel events to the RST segments on the wire, settle causes, and report the resets the
kernel sent that the capture never saw.

Traps handled here: a reset sent from a listener is traced as ADDR:port -> 0.0.0.0:0 (matched by
source port and time); an active reset is traced just after it leaves, a stateless one just before
(so both orders occur: events wait GRACE_S for their segment, segments are matched by nearest time
within TOLERANCE_S); the tracepoint sees every network namespace (only events from the watched
interfaces' addresses, or from a listener of this namespace, count).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analyze import explain
from ..engine.model import Rule
from ..sources.segments import RST, Segments, address_text
from .addrs import LocalAddresses, listening_ports
from .decide import settle
from .events import WILDCARDS, KernelEvent
from .table import kernel_causes

TOLERANCE_S = 0.5       # trace clock vs capture clock, and send vs trace order
GRACE_S = 3.0           # an event waits this long for its segment, then it is kernel-only
WIRE_KEEP_S = 10.0      # a segment with no event is forgotten after this long
MAX_WAITING = 100_000   # events held at once (a flood the capture misses cannot grow memory)

# Fields a finding gains when kernel reasons are joined (JSON Lines: added, never renamed).
KERNEL_FIELDS = ["kernel_match", "kernel_reason", "kernel_state", "kernel_context", "kernel_pid", "kernel_comm",
                 "decided_by", "wire_cause", "kernel_agrees"]
MATCHED, KERNEL_ONLY, NOT_TRACED = "matched", "kernel-only", "not-traced"


@dataclass(slots=True)
class WireRst:
    frame: int
    time: float
    src: str
    sport: int
    dst: str
    dport: int


def fits(ev: KernelEvent, w: WireRst) -> bool:
    if ev.listener:
        return w.sport == ev.sport and (ev.src in WILDCARDS or ev.src == w.src)
    return (ev.sport, ev.dport, ev.src, ev.dst) == (w.sport, w.dport, w.src, w.dst)


class KernelJoin:
    def __init__(self, local: LocalAddresses, rules: list[Rule], label: str,
                 tolerance_s: float = TOLERANCE_S, grace_s: float = GRACE_S) -> None:
        self.local, self.rules, self.label = local, rules, label
        self.by_name = {r.name: r for r in rules}
        self.tolerance_s, self.grace_s = tolerance_s, grace_s
        self.waiting: list[KernelEvent] = []
        self.wire: dict[int, list[WireRst]] = {}           # unmatched local RSTs by source port
        self.matched: dict[int, KernelEvent] = {}          # frame -> event, until its finding is out
        self.reasons: Counter = Counter()                  # our events by reason (matched + kernel-only)
        self.joined = self.kernel_only = self.foreign = 0
        self.on_match = None                               # (frame, event) of each reset joined: live --write keeps it

    # -------------------------------------------------------------- inputs
    def add_wire(self, seg: Segments) -> None:
        """Remember the RSTs this host sent (source = one of the watched interfaces' addresses)."""
        if not len(seg):
            return
        rst = (seg["flags"] & RST) != 0
        if not rst.any():
            return
        self.local.refresh()
        idx = np.flatnonzero(rst & self.local.mask(seg["v6"], seg["src_hi"], seg["src_lo"]))
        for i in idx.tolist():
            v6 = bool(seg["v6"][i])
            w = WireRst(int(seg["frame"][i]), int(seg["ts_ns"][i]) / 1e9,
                        address_text(v6, int(seg["src_hi"][i]), int(seg["src_lo"][i])), int(seg["sport"][i]),
                        address_text(v6, int(seg["dst_hi"][i]), int(seg["dst_lo"][i])), int(seg["dport"][i]))
            self.wire.setdefault(w.sport, []).append(w)

    def add_events(self, events: list[KernelEvent]) -> None:
        for ev in events:
            if ev.src in self.local.text or (ev.listener and ev.src in WILDCARDS):
                self.waiting.append(ev)
            else:
                self.foreign += 1                          # another namespace's or address's reset
        if len(self.waiting) > MAX_WAITING:
            self.waiting = self.waiting[-MAX_WAITING:]

    def unmatched_frames(self) -> list[int]:
        """This host's resets still waiting for their kernel event."""
        return [w.frame for ws in self.wire.values() for w in ws]

    # -------------------------------------------------------------- matching
    def match(self) -> None:
        still = []
        for ev in sorted(self.waiting, key=lambda e: e.time):
            cands = self.wire.get(ev.sport, [])
            best, best_dt = None, self.tolerance_s
            for w in cands:
                dt = abs(w.time - ev.time)
                if dt <= best_dt and fits(ev, w):
                    best, best_dt = w, dt
            if best is None:
                still.append(ev)
                continue
            cands.remove(best)
            self.matched[best.frame] = ev
            if self.on_match is not None:
                self.on_match(best.frame, ev)
            self.reasons[ev.reason] += 1
            self.joined += 1
        self.waiting = still

    def expire(self, now: float, final: bool = False) -> list[KernelEvent]:
        """Events whose segment never came: this host's kernel-only resets."""
        due = [e for e in self.waiting if final or now - e.time > self.grace_s]
        if not due:
            self._forget(now)
            return []
        self.waiting = [e for e in self.waiting if not (final or now - e.time > self.grace_s)]
        listening = listening_ports() if any(e.src in WILDCARDS for e in due) else set()
        ours = [e for e in due if e.src not in WILDCARDS or e.sport in listening]
        self.foreign += len(due) - len(ours)
        for e in ours:
            self.reasons[e.reason] += 1
        self.kernel_only += len(ours)
        self._forget(now)
        return ours

    def _forget(self, now: float) -> None:
        for sport in list(self.wire):
            kept = [w for w in self.wire[sport] if now - w.time <= WIRE_KEEP_S]
            if kept:
                self.wire[sport] = kept
            else:
                del self.wire[sport]
        if len(self.matched) > 10_000:                     # matched RSTs absorbed into a flood finding
            for frame in sorted(self.matched)[: len(self.matched) - 10_000]:
                del self.matched[frame]

    # -------------------------------------------------------------- findings
    def annotate(self, df: pd.DataFrame) -> pd.DataFrame:
        """Kernel fields on every finding; causes settled where the kernel knows better."""
        if not len(df):
            return df
        out = df.copy()
        cols: dict[str, list] = {f: [None] * len(out) for f in KERNEL_FIELDS}
        known = set(self.by_name)
        changed = []
        for i, (frame, src, sport, dport, cause, alts, conf) in enumerate(zip(
                out["frame"], out["src"], out["sport"], out["dport"], out["cause"], out["alternatives"], out["confidence"])):
            flood = sport == 0 and dport == 0
            ev = None if flood else self.matched.pop(int(frame), None)
            if ev is None:
                if not flood and src in self.local.text:
                    cols["kernel_match"][i] = NOT_TRACED
                continue
            s = settle(cause, list(alts), float(conf), ev.reason, ev.state, known)
            for f, v in (("kernel_match", MATCHED), ("kernel_reason", ev.reason), ("kernel_state", ev.state),
                         ("kernel_context", ev.context), ("kernel_pid", ev.pid), ("kernel_comm", ev.comm),
                         ("decided_by", s.decided_by), ("wire_cause", cause), ("kernel_agrees", s.kernel_agrees)):
                cols[f][i] = v
            if s.cause != cause or s.alternatives != list(alts) or s.confidence != conf:
                out.at[out.index[i], "cause"] = s.cause
                out.at[out.index[i], "alternatives"] = s.alternatives
                out.at[out.index[i], "confidence"] = s.confidence
                if s.cause != cause:
                    out.at[out.index[i], "rule"] = self.by_name[s.cause].id
                    changed.append(i)
        for f, values in cols.items():
            out[f] = pd.Series(values, index=out.index, dtype=object)
        if changed:                                        # summary, errno, remediation, title of the new rule
            idx = out.index[changed]
            out.loc[idx, ["summary", "errno", "remediation", "title"]] = \
                explain(out.loc[idx], self.rules)[["summary", "errno", "remediation", "title"]].values
        return out

    def kernel_only_rows(self, events: list[KernelEvent]) -> pd.DataFrame:
        if not events:
            return pd.DataFrame()
        rows = []
        for ev in events:
            kc = [c for c in kernel_causes(ev.reason, ev.state) if c in self.by_name]
            cause = kc[0] if kc else "unknown"
            rule = self.by_name.get(cause)
            rows.append({"file": self.label, "frame": 0, "time": ev.time, "src": ev.src, "sport": ev.sport,
                         "dst": ev.dst, "dport": ev.dport, "sender": "unknown", "cause": cause,
                         "rule": rule.id if rule else "", "confidence": 0.9 if len(kc) == 1 else 0.5,
                         "alternatives": kc[1:], "evidence": [], "conn_state": "", "history": "",
                         "wireshark_filter": "", "sender_inferred": False,
                         "kernel_match": KERNEL_ONLY, "kernel_reason": ev.reason, "kernel_state": ev.state,
                         "kernel_context": ev.context, "kernel_pid": ev.pid, "kernel_comm": ev.comm,
                         "decided_by": "kernel", "wire_cause": None, "kernel_agrees": None})
        df = explain(pd.DataFrame(rows), self.rules)
        df["summary"] = [f"Not in the capture; this host's kernel sent it ({ev.reason}): {s}"
                         for ev, s in zip(events, df["summary"])]
        return df

    def summary(self) -> str:
        reasons = ", ".join(f"{r} {n}" for r, n in self.reasons.most_common()) or "none"
        return (f"kernel: {self.joined + self.kernel_only:,} reset(s) sent from the watched addresses "
                f"({reasons}); {self.joined:,} joined to the wire, {self.kernel_only:,} kernel-only")


def now_wall() -> float:
    return time.time()
