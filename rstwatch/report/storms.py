"""One finding per flood, in the same shape as per-RST findings (plus counts)."""
from __future__ import annotations

import pandas as pd

from ..track.storms import StormTracker

STORM_TEXT = {
    "rst-storm": ("RST001S", "A storm of resets not belonging to any connection seen (blind or spoofed RST flood)",
                  ["Find the source: the TTLs and sender sample show whether it is spoofed; rate-limit or filter at the edge.",
                   "Keep RFC 5961 protections on (net.ipv4.tcp_challenge_ack_limit) so blind RSTs do not land."]),
    "port-scan": ("RST002S", "Port scan: SYNs to many closed ports answered by RST|ACK",
                  ["Identify the scanner; if it is not your own inventory tool, block it and check what it found open."]),
    "syn-flood": ("RST003S", "SYN flood: half-open connections never completed (backscatter RSTs or no answer)",
                  ["Enable SYN cookies (net.ipv4.tcp_syncookies=1), raise tcp_max_syn_backlog, filter at the edge."]),
}


def storm_rows(file: str, tracker: StormTracker, keys=None, counted: dict | None = None) -> pd.DataFrame:
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
        rule, title, fixes = STORM_TEXT[st.kind]
        secs = (st.last_ns - st.first_ns) / 1e9
        fam = "ipv6" if st.v6 else "ip"
        what = {"rst-storm": f"{st.rsts:,} resets on {st.flows:,} unknown connections to {st.target}",
                "port-scan": f"{len(st.ports):,} ports of {st.target} probed, {st.rsts:,} refused",
                "syn-flood": f"{st.syns:,} SYNs to {st.target} on {st.flows:,} connections never completed"}[st.kind]
        senders = sorted(st.senders)
        if before_rsts or before_flows:
            what = f"{st.rsts - before_rsts:,} more resets ({st.rsts:,} in all) of a {st.kind} against {st.target}: {what}"
        rows.append({
            "file": file, "frame": st.frames[0] if st.frames else st.first_frame, "time": st.first_ns / 1e9,
            "src": senders[0] if len(senders) == 1 else "*", "sport": 0,
            "dst": st.target, "dport": 0, "sender": "unknown", "cause": st.kind, "rule": rule,
            "confidence": 0.9, "alternatives": [],
            "summary": f"{what} in {secs:.3f} s from {len(senders)}{'+' if len(senders) >= 64 else ''} source(s) "
                       f"(frames {st.first_frame}-{st.last_frame}); reported once instead of row by row",
            "errno": {"receiver": ["ECONNRESET / ECONNREFUSED on affected connections"], "sender": []},
            "evidence": st.frames, "conn_state": "", "history": "",
            "wireshark_filter": f"tcp && {fam}.addr=={st.target} && frame.number>={st.first_frame} && frame.number<={st.last_frame}",
            "title": title, "remediation": fixes, "sender_inferred": False,
            "resets": st.rsts - before_rsts, "connections": st.flows - before_flows, "sources_sample": senders[:10],
        })
    return pd.DataFrame(rows)
