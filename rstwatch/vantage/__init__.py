"""Several vantage points of one incident (issue #23 item 1): `rstwatch read --host NAME=PATH ...`.

Each host's captures are analysed as today (the same per-file code); then the connections they
share are joined (hosts.py -> conns.py -> join.py), the hosts' clock offsets estimated, and what
the join settles written onto the findings (settle.py). Without --host nothing here runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .hosts import Host, parse_hosts

__all__ = ["Host", "parse_hosts", "read_hosts", "VantageRun"]


@dataclass
class VantageRun:
    findings: pd.DataFrame
    results: list
    errors: list[str]
    offsets: dict = field(default_factory=dict)
    joined: int = 0
    across_nat: int = 0
    notes: list[str] = field(default_factory=list)
    groups: list = field(default_factory=list)      # join.Joined: the report's vantage section draws them


def read_hosts(hosts: list[Host], rules, jobs: int = 1, debug: bool = False, storm_min=None, keep=None) -> VantageRun:
    from ..analyze import all_findings
    from ..run import analyze_paths
    from ..sources.capture import Skipped, expand_inputs
    from .conns import file_conns
    from .join import clock_offsets, join
    from .settle import settle

    results, errors, host_of, files = [], [], {}, []
    for h in hosts:
        skipped: list[Skipped] = []
        paths = expand_inputs(h.paths, skipped)
        errors += [f"{h.name}={s.path}: {s.reason}" for s in skipped if s.error]
        res, errs = analyze_paths(paths, rules, jobs, debug, storm_min, keep) if paths else ([], [])
        errors += [f"{h.name}={e}" for e in errs]
        for r in res:
            host_of[str(r.path)] = h.name
            files.append(file_conns(h.name, Path(r.path), str(r.path)))
        results += res
    findings = all_findings(results) if results else pd.DataFrame()
    joined = join(files)
    names = [h.name for h in hosts if any(f.host == h.name for f in files)]
    offsets = clock_offsets(joined, names) if names else {}
    middlebox = next((r for r in rules if r.name == "middlebox-reset"), None)
    if len(findings):
        findings = settle(findings, joined, host_of, offsets, middlebox)
    run = VantageRun(findings, results, errors, offsets, len(joined), sum(j.across_nat for j in joined),
                     groups=joined)
    run.notes = _notes(run, names)
    return run


def _notes(run: VantageRun, names: list[str]) -> list[str]:
    """The run's summary for stderr: hosts, joins, clock offsets and how they were estimated."""
    notes = [f"{len(names)} host(s), {run.joined} connection(s) seen by more than one capture"
             f" ({run.across_nat} joined across NAT)"]
    if names:
        ref = names[0]
        parts = []
        for h in names[1:]:
            o = run.offsets.get(h)
            parts.append(f"{h} not joined with {ref}" if o is None else
                         f"{h} {o['offset_s']:+.6f} s (one-way delay {o['one_way_delay_s'] * 1e3:.3f} ms, "
                         f"{o['segment_pairs']} segment pairs in {o['connections']} connection(s)"
                         + (f", through {', '.join(o['via'])})" if o.get("via") else ")"))
        if parts:
            notes.append(f"clock offsets relative to {ref}: " + "; ".join(parts))
    return notes
