"""What the join settles, written onto each capture's findings.

For every RST of a joined connection: the hosts that saw it (`seen_at`), the captures that should
have and did not (`missed_by`), and the host whose capture decided its cause (`settled_by`):
- the sender's own capture holds it: the sender's view decides (unread data is visible there);
- the sender's own capture covers the time and holds the connection but not the RST: nobody at
  that address sent it, a box on the path did: `middlebox-reset`, high confidence;
- otherwise the view nearest the RST's receiver decides, as one capture alone would.
`single_view_cause` keeps what each capture alone said; `copy_of` marks the rows of a RST that
another capture's row already stands for (a report counts each RST once).
"""
from __future__ import annotations

import pandas as pd

from .join import Joined, Member, with_most_history

INJECTED_CONFIDENCE = 0.97
VERDICT_COLUMNS = ("cause", "rule", "confidence", "alternatives", "summary", "errno", "remediation", "title")


def _towards_receiver(j: Joined, role: str) -> list[Member]:
    """Members ordered from the RST's sender end to its receiver end (unplaced ones last)."""
    placed = sorted((m for m in j.members if m.position is not None), key=lambda m: m.position)
    rest = [m for m in j.members if m.position is None]
    return (placed if role == "c" else placed[::-1]) + rest


def _where(m: Member) -> str:
    return f"{m.file.host} ({m.file.path.rsplit('/', 1)[-1]})"


def _injection_point(path: list[Member], present: set[int]) -> str:
    """Between the last capture on the sender's side without the RST and the first with it."""
    for before, after in zip(path, path[1:]):
        if id(before) not in present and id(after) in present:
            if before.file.host == after.file.host:
                return f"by {before.file.host} (between its captures {_where(before)} and {_where(after)})"
            return f"between {_where(before)} and {_where(after)}"
    return "on the path"


def settle(findings: pd.DataFrame, joined: list[Joined], host_of: dict[str, str], offsets: dict,
           middlebox_rule) -> pd.DataFrame:
    df = findings.copy()
    n = len(df)
    files, frames = df["file"].tolist(), df["frame"].tolist()
    hosts = [host_of.get(f) for f in files]
    seen_at = [[h] for h in hosts]
    settled_by = list(hosts)
    missed_by: list[list[str]] = [[] for _ in range(n)]
    across = [False] * n
    copy_of: list[str | None] = [None] * n
    single = df["cause"].tolist()
    row_of = {(f, int(fr)): i for i, (f, fr) in enumerate(zip(files, frames)) if fr == fr}
    overrides: dict[int, dict] = {}
    for j in joined:
        idents = {}
        for m in j.members:
            for ident, (t, frame) in m.conn.rsts.items():
                idents.setdefault(ident, {})[id(m)] = (m, t, frame)
        for ident, seen in idents.items():
            verdict, decider, missed = _decide(j, ident, seen, offsets, df, row_of, middlebox_rule)
            rows = [row_of[(m.file.path, frame)] for m, _, frame in seen.values() if (m.file.path, frame) in row_of]
            for i in rows[1:]:          # one RST in several captures: counted once (the first host's row)
                copy_of[i] = f"{files[rows[0]]}#{int(frames[rows[0]])}"
            for i in rows:
                seen_at[i] = list(dict.fromkeys(m.file.host for m, _, _ in seen.values()))
                settled_by[i] = decider
                missed_by[i] = missed
                across[i] = j.across_nat
                if verdict is not None:
                    overrides[i] = verdict
    for i, verdict in overrides.items():
        for col, value in verdict.items():
            df.at[df.index[i], col] = value
    df["host"] = hosts
    df["seen_at"] = seen_at
    df["settled_by"] = settled_by
    df["missed_by"] = missed_by
    df["joined_across_nat"] = across
    df["single_view_cause"] = single
    df["copy_of"] = copy_of
    return df


def _decide(j: Joined, ident: tuple, seen: dict, offsets: dict, df: pd.DataFrame, row_of: dict, middlebox_rule):
    """(verdict columns or None to keep each row's own, the deciding host, the hosts that missed it)."""
    role = ident[0]
    path = _towards_receiver(j, role)
    present = set(seen)
    first_m, t_first, _ = min(seen.values(), key=lambda x: x[1] - offsets.get(x[0].file.host, {}).get("offset_s", 0.0))
    t_ref = t_first - offsets.get(first_m.file.host, {}).get("offset_s", 0.0)     # on the first host's clock

    def covers(m: Member) -> bool:
        t = t_ref + offsets.get(m.file.host, {}).get("offset_s", 0.0)
        return m.file.first_ts <= t <= m.file.last_ts

    # captures past the first one that has it, toward the receiver, that cover the time and lack it
    idx_first = next((k for k, m in enumerate(path) if id(m) in present), 0)
    missed = list(dict.fromkeys(m.file.host for m in path[idx_first + 1:] if id(m) not in present and covers(m)))
    owner = j.owner.get(role)
    if owner is not None and id(owner) in present:
        row = row_of.get((owner.file.path, seen[id(owner)][2]))
        return (None if row is None else _row_verdict(df, row)), owner.file.host, missed
    if owner is not None and covers(owner) and middlebox_rule is not None:
        src = next(iter(seen.values()))
        row = row_of.get((src[0].file.path, src[2]))
        addr = f"{df['src'].iat[row]}:{df['sport'].iat[row]}" if row is not None else "its source"
        verdict = {"cause": middlebox_rule.name, "rule": middlebox_rule.id, "confidence": INJECTED_CONFIDENCE,
                   "alternatives": [], "title": middlebox_rule.title,
                   "errno": {"receiver": list(middlebox_rule.errno.get("receiver", [])), "sender": []},
                   "remediation": [t for t in middlebox_rule.remediation if "{" not in t],
                   "summary": (f"Injected {_injection_point(path, present)}: the RST in the name of {addr} is not in "
                               f"{owner.file.host}'s own capture, which holds the connection at that time")}
        return verdict, owner.file.host, missed
    holding = [m for m in path if id(m) in present]
    near = with_most_history(holding, holding[-1])
    row = row_of.get((near.file.path, seen[id(near)][2]))
    return (None if row is None else _row_verdict(df, row)), near.file.host, missed


def _row_verdict(df: pd.DataFrame, row: int) -> dict:
    return {c: df[c].iat[row] for c in VERDICT_COLUMNS if c in df.columns}
