"""One finding per flood, in the same shape as per-RST findings (plus counts). Its words (title,
summary, remediation, errno, confidence) come from the flood rule of its detector (rules/*.yaml).
The rows are a columns.Table (numbers as numpy arrays, the rest as lists), typed by pandas as
the DataFrame of those rows was: a flood written as JSON Lines, CSV, EVE, Zeek or the terminal
table needs no pandas (~0.25 s)."""
from __future__ import annotations

import numpy as np

from ..columns import Table
from ..track.storms import StormTracker


def storm_rows(file: str, tracker: StormTracker, keys=None, counted: dict | None = None) -> Table:
    """One row per flood (only those in `keys` when given). With `counted` (key -> resets and
    connections already reported, updated here), a row counts only what came since: live
    reports a flood when it is detected, then what it added, so that the `resets` of its rows
    add up to every reset it held."""
    rows = []
    for key, st in tracker.storms.items():
        if keys is not None and key not in keys:
            continue
        before_rsts, before_flows = counted.get(key, (0, 0)) if counted is not None else (0, 0)
        if counted is not None:
            counted[key] = (st.rsts, st.flows)
        rule = tracker.rules[st.kind]
        senders = sorted(st.senders)
        values = {"cause": rule.name, "target": st.target, "resets": f"{st.rsts:,}", "connections": f"{st.flows:,}",
                  "syns": f"{st.syns:,}", "ports": f"{len(st.ports):,}", "seconds": f"{(st.last_ns - st.first_ns) / 1e9:.3f}",
                  "sources": f"{len(senders)}{'+' if len(senders) >= 64 else ''}",
                  "first_frame": st.first_frame, "last_frame": st.last_frame}
        summary = rule.explain.format(**values)
        if (before_rsts or before_flows) and st.rsts == before_rsts:      # a SYN flood goes on: connections, no resets
            summary = f"{st.flows - before_flows:,} more connections ({st.flows:,} in all) of a {rule.name} against {st.target}: {summary}"
        elif before_rsts or before_flows:
            summary = f"{st.rsts - before_rsts:,} more resets ({st.rsts:,} in all) of a {rule.name} against {st.target}: {summary}"
        fam = "ipv6" if st.v6 else "ip"
        rows.append({
            "file": file, "frame": st.frames[0] if st.frames else st.first_frame, "time": st.first_ns / 1e9,
            "src": senders[0] if len(senders) == 1 else "*", "sport": 0,
            "dst": st.target, "dport": 0, "sender": "unknown", "cause": rule.name, "rule": rule.id,
            "confidence": rule.confidence, "alternatives": [],
            "summary": summary,
            "errno": {"receiver": list(rule.errno.get("receiver", [])), "sender": list(rule.errno.get("sender", []))},
            "evidence": st.frames, "conn_state": "", "history": "",
            "wireshark_filter": f"tcp && {fam}.addr=={st.target} && frame.number>={st.first_frame} && frame.number<={st.last_frame}",
            "title": rule.title, "remediation": [x.format(**values) for x in rule.remediation], "sender_inferred": False,
            "resets": st.rsts - before_rsts, "connections": st.flows - before_flows, "sources_sample": senders[:10],
        })
    names = list(rows[0]) if rows else []
    return Table({name: _column([row[name] for row in rows]) for name in names}, len(rows))


def _column(values: list) -> np.ndarray | list:
    """Numbers of one type as the numpy array pandas makes of them (the writers' fast kinds), any
    other column as its list (typed by pandas, when a DataFrame is made, as before)."""
    for kind, dtype in ((bool, np.bool_), (int, np.int64), (float, np.float64)):
        if all(type(v) is kind for v in values):
            return np.array(values, dtype)
    return values
