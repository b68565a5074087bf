"""The offline pipeline for one file: segments -> RST connections -> features -> verdicts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .engine.evaluate import classify
from .engine.model import Rule
from .features.extract import feature_table
from .sources.capture import iter_segments, read_segments
from .sources.diagnostics import Diagnostics
from .track.flows import keep_flows, rst_flow_hashes
from .track.tracker import rst_connections

# Files above this size are read twice (first pass: which 4-tuples hold a RST) so memory
# holds only the segments of those flows instead of every segment of the file.
TWO_PASS_BYTES = 256 * 1024 * 1024


@dataclass
class FileResult:
    path: str
    findings: pd.DataFrame
    diag: Diagnostics


def _estimated_size(path: Path) -> int:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            return size * 4 if fh.read(2) == b"\x1f\x8b" else size
    except OSError:
        return 0          # open_stream reports the problem with the right words


def _rst_hashes(path: Path, label: str) -> np.ndarray:
    """First pass of a large file: the keys of 4-tuples holding a RST (warnings come in pass two)."""
    parts = [rst_flow_hashes(seg) for seg in iter_segments(path, Diagnostics(label))]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)


def analyze_file(path: Path, rules: list[Rule], label: str | None = None) -> FileResult:
    label = label or str(path)
    diag = Diagnostics(label)
    if _estimated_size(path) > TWO_PASS_BYTES:
        hashes = _rst_hashes(path, label)
        seg = read_segments(path, diag, keep=lambda s: keep_flows(s, hashes))
    else:
        seg = read_segments(path, diag)
    P, conns = rst_connections(seg)
    table = feature_table(label, P, conns)
    findings = explain(classify(table, rules), rules)
    return FileResult(label, findings, diag)


def explain(df: pd.DataFrame, rules: list[Rule]) -> pd.DataFrame:
    """Summary sentence, errno per side and remediation from each row's winning rule."""
    by_id = {r.id: r for r in rules}
    summaries, errnos, remedies, titles = [], [], [], []
    for row in df.itertuples(index=False):
        rule = by_id.get(row.rule)
        receiver = {"client": "server", "server": "client"}.get(row.sender, "unknown")
        client, server = ((row.src, row.sport), (row.dst, row.dport)) if row.sender == "client" else \
                         ((row.dst, row.dport), (row.src, row.sport))
        values = {"src": row.src, "sport": row.sport, "dst": row.dst, "dport": row.dport,
                  "sender": row.sender, "receiver": receiver, "frame": row.frame,
                  "conn_state": row.conn_state, "history": row.history,
                  "client": client[0], "client_port": client[1], "server": server[0], "server_port": server[1]}
        if rule is None:
            summaries.append(f"{row.src}:{row.sport} reset the connection to {row.dst}:{row.dport}; no rule matched")
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
