"""The offline pipeline for one file: segments -> RST connections -> features -> verdicts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .engine.evaluate import classify
from .engine.model import Rule
from .features.extract import feature_table
from .interop import add_join_keys, frame_times
from .sources.capture import iter_segments
from .sources.readfilter import ReadFilter
from .sources.segments import Segments
from .sources.diagnostics import Diagnostics
from .track.flows import evict_oldest, forget_closed
from .track.storms import STORM_MIN_FLOWS, StormTracker
from .report.storms import storm_rows
from .track.tracker import rst_connections

@dataclass
class FileResult:
    path: str
    findings: pd.DataFrame
    diag: Diagnostics


# Forgetting closed flows costs a pass over what is kept, so it runs only once the kept
# segments pass this many rows (~25 MB); the bar doubles when little could be forgotten.
FORGET_ROWS = 400_000


MAX_KEPT_ROWS = 4_000_000    # hard cap (~250 MB of segments): beyond it the oldest flows without a RST go


def _read_bounded(path: Path, diag: Diagnostics, storms: StormTracker, progress=None,
                  keep: ReadFilter | None = None) -> Segments:
    parts: list[Segments] = []
    rows, bar = 0, FORGET_ROWS
    evicted = 0
    for chunk in iter_segments(path, diag, progress, keep.fresh() if keep else None):
        parts.append(chunk)
        rows += len(chunk)
        if rows > bar:
            kept = storms.absorb(forget_closed(Segments.concat(parts)))
            kept, n = evict_oldest(kept, MAX_KEPT_ROWS)
            evicted += n
            parts, rows = [kept], len(kept)
            bar = max(FORGET_ROWS, 2 * rows)
    if evicted:
        diag.warn(f"flow table full: {evicted} flow(s) without a RST were forgotten early; a RST arriving "
                  f"later on one of them is reported without its earlier context")
    return storms.absorb(Segments.concat(parts), final=True)


def analyze_file(path: Path, rules: list[Rule], label: str | None = None,
                 storm_min: int = STORM_MIN_FLOWS, progress=None, keep: ReadFilter | None = None) -> FileResult:
    label = label or str(path)
    diag = Diagnostics(label)
    storms = StormTracker(storm_min)
    seg = _read_bounded(path, diag, storms, progress, keep)
    findings = verdicts(label, seg, rules)
    if storms.storms:
        floods = add_join_keys(storm_rows(label, storms), [st.first_ns for st in storms.storms.values()])
        findings = pd.concat([findings, floods], ignore_index=True)
        findings = findings.sort_values("frame", kind="stable", ignore_index=True)
    return FileResult(label, findings, diag)


def verdicts(label: str, seg: Segments, rules: list[Rule]) -> pd.DataFrame:
    """One explained finding per RST in `seg` (which must hold whole connections)."""
    P, conns = rst_connections(seg)
    out = explain(classify(feature_table(label, P, conns), rules), rules)
    # join keys (community_id, ts with nanoseconds) for every finding, read and live alike
    return add_join_keys(out, frame_times(out["frame"].to_numpy(), seg["frame"], seg["ts_ns"]))


def explain(df: pd.DataFrame, rules: list[Rule]) -> pd.DataFrame:
    """Summary sentence, errno per side and remediation from each row's winning rule."""
    by_id = {r.id: r for r in rules}
    summaries, errnos, remedies, titles = [], [], [], []
    used = ["rule", "sender", "src", "sport", "dst", "dport", "frame", "conn_state", "history"]
    columns = [df[c].tolist() for c in used]          # only the columns the templates use
    for rule_id, sender, src, sport, dst, dport, frame, conn_state, history in zip(*columns):
        rule = by_id.get(rule_id)
        receiver = {"client": "server", "server": "client"}.get(sender, "unknown")
        client, server = ((src, sport), (dst, dport)) if sender == "client" else ((dst, dport), (src, sport))
        values = {"src": src, "sport": sport, "dst": dst, "dport": dport,
                  "sender": sender, "receiver": receiver, "frame": frame,
                  "conn_state": conn_state, "history": history,
                  "client": client[0], "client_port": client[1], "server": server[0], "server_port": server[1]}
        if rule is None:
            summaries.append(f"{src}:{sport} reset the connection to {dst}:{dport}; no rule matched")
            errnos.append({"receiver": ["ECONNRESET"], "sender": []})
            remedies.append([])
            titles.append("No rule explains this reset")
            continue
        summaries.append(rule.explain.format_map(values))
        errnos.append({"receiver": list(rule.errno.get("receiver", [])), "sender": list(rule.errno.get("sender", []))})
        remedies.append([r.format_map(values) for r in rule.remediation])
        titles.append(rule.title)
    out = df.copy()
    out["summary"] = summaries
    out["errno"] = errnos
    out["remediation"] = remedies
    out["title"] = titles
    return out
