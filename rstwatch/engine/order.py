"""The order in which rules are tried: named bands, then `before:` / `after:` between rules, then
`priority` (a tie-break inside a band, kept for older rule files), then id. The first matching rule
wins, so this order is what decides between two rules that both match a reset."""
from __future__ import annotations

import heapq
from typing import Any

from .model import Rule

# Earlier bands win. Floods come first: their detectors take whole groups of connections while
# reading, before any rule is tried on a single reset (flood rules live in that band only). A RST its receiver ignores is judged before anything else (what follows it is
# not its consequence); a middlebox's forged RST before the endpoint causes it imitates; the
# handshake's causes before those of an established connection; `unknown` last.
BANDS = ("flood", "spoofed", "middlebox", "handshake", "connection", "fallback")
DEFAULT_BAND = "connection"


def check_order_keys(data: dict[str, Any], base: str, ln, problems: list[str]) -> None:
    band = data.get("band", DEFAULT_BAND)
    if band not in BANDS:
        problems.append(f"{base}:{ln('band')}: band must be one of {', '.join(BANDS[1:])} "
                        f"(flood: only for flood rules), got {band!r}")
    for key in ("before", "after"):
        value = data.get(key, [])
        if not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
            problems.append(f"{base}:{ln(key)}: {key} must be a list of causes (rule names) or rule ids")


def order_rules(rules: list[Rule], known_causes: set[str], problems: list[str]) -> list[Rule]:
    """Rules in evaluation order. `before`/`after` naming a cause that is known but not loaded (a
    disabled built-in) is ignored; naming an unknown one, crossing bands the wrong way, or a cycle
    is a problem (`file:line: reason`)."""
    rank = {id(r): (BANDS.index(r.band), r.priority, r.id) for r in rules}
    base = sorted(rules, key=lambda r: rank[id(r)])
    pos = {id(r): k for k, r in enumerate(base)}
    lookup = {r.name: r for r in rules} | {r.id: r for r in rules}
    succ: dict[int, set[int]] = {k: set() for k in range(len(base))}
    for r in base:
        for key, first_is_r in (("before", True), ("after", False)):
            for n, ref in enumerate(getattr(r, key)):
                other = lookup.get(ref)
                where = f"{r.source}:{r.line_of(f'{key}[{n}]', key)}"
                if other is None:
                    if ref not in known_causes:
                        problems.append(f"{where}: {key} `{ref}`: no such cause or rule id")
                    continue
                if other.flood is not None:
                    problems.append(f"{where}: {key} `{ref}`: a flood rule is not tried reset by reset; nothing to order")
                    continue
                a, b = (r, other) if first_is_r else (other, r)
                if BANDS.index(a.band) > BANDS.index(b.band):
                    problems.append(f"{where}: {key} `{ref}`: {a.name} is in band {a.band}, which comes after "
                                    f"{b.name}'s band {b.band}; move one of them to another band")
                    continue
                succ[pos[id(a)]].add(pos[id(b)])
    # Kahn's algorithm, always taking the earliest rule (by band, priority, id) that is free to go.
    indegree = [0] * len(base)
    for k in succ:
        for m in succ[k]:
            indegree[m] += 1
    ready = [k for k in range(len(base)) if indegree[k] == 0]
    heapq.heapify(ready)
    out: list[Rule] = []
    while ready:
        k = heapq.heappop(ready)
        out.append(base[k])
        for m in succ[k]:
            indegree[m] -= 1
            if indegree[m] == 0:
                heapq.heappush(ready, m)
    if len(out) < len(base):
        stuck = sorted(base[k].name for k in range(len(base)) if indegree[k] > 0)
        problems.append(f"{base[min(k for k in range(len(base)) if indegree[k] > 0)].source}:1: "
                        f"before/after form a cycle among {', '.join(stuck)}")
        return base
    return out
