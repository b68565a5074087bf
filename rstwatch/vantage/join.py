"""Join the same connection seen by several captures, order the captures along its path and
estimate the hosts' clock offsets.

A connection is the same one when its ISN pair and server port match (NAT rewrites addresses and
the client's port, never sequence numbers); without a handshake in view, its Community ID. The
same segment seen at two points, A then B, gives tB - tA = offset + one-way delay for segments
going one way and offset - delay for the other way: half their sum is B's clock offset (NTP's
formula, assuming a symmetric path), half their difference the delay, whose sign says which
capture sits nearer the client.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .conns import Conn, FileConns


@dataclass
class Member:
    file: FileConns
    conn: Conn
    position: float | None = None   # one-way delay from the first member toward the server (s)


@dataclass
class Joined:
    members: list[Member]
    across_nat: bool = False
    owner: dict = field(default_factory=dict)   # role "c"/"s" -> the Member at that endpoint, if captured there

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(m.file.host for m in self.members))


def join(files: list[FileConns]) -> list[Joined]:
    """Connections seen by at least two captures, each with its members ordered client to server."""
    groups: dict[tuple, list[Member]] = {}
    for f in files:
        for c in f.conns:
            groups.setdefault(c.key, []).append(Member(f, c))
    out = []
    for members in groups.values():
        members = _aligned(members)
        if len(members) < 2:
            continue
        j = Joined(members)
        views = {(m.conn.client, m.conn.server) for m in members}
        j.across_nat = len(views) > 1
        _order(j)
        out.append(j)
    return out


def _aligned(members: list[Member]) -> list[Member]:
    """The members that share at least one segment (direction, seq, ack, flags, length) with the
    first: a Community ID alone would also join a later connection that reused the 4-tuple."""
    if len(members) < 2:
        return members
    first = set(members[0].conn.segs)
    return [members[0]] + [m for m in members[1:] if first.intersection(m.conn.segs)]


def _deltas(a: Conn, b: Conn) -> tuple[list[float], list[float]]:
    """tB - tA of the segments both saw, client-to-server and server-to-client."""
    cs, sc = [], []
    for ident, ta in a.segs.items():
        tb = b.segs.get(ident)
        if tb is not None:
            (cs if ident[0] == "c" else sc).append(tb - ta)
    return cs, sc


def pair_estimate(a: Conn, b: Conn) -> tuple[float, float, int] | None:
    """(B's clock minus A's, one-way delay A to B toward the server, segment pairs) or None when
    the two captures share no segment in one of the directions."""
    cs, sc = _deltas(a, b)
    if not cs or not sc:
        return None
    up, down = statistics.median(cs), statistics.median(sc)
    return (up + down) / 2, (up - down) / 2, len(cs) + len(sc)


def _order(j: Joined) -> None:
    ref = j.members[0]
    ref.position = 0.0
    for m in j.members[1:]:
        est = pair_estimate(ref.conn, m.conn)
        m.position = est[1] if est else None
    placed = sorted((m for m in j.members if m.position is not None), key=lambda m: m.position)
    if len(placed) < 2:
        return
    # an endpoint's own capture sits at its end of the path and sees its packets at an initial TTL
    for role, end in (("c", placed[0]), ("s", placed[-1])):
        if role in end.conn.initial_ttl_from:
            j.owner[role] = end


def clock_offsets(joined: list[Joined], hosts: list[str]) -> dict[str, dict]:
    """Each host's clock relative to the first host's: the median over joined connections of the
    per-connection estimates (captures of the same host share its clock)."""
    ref = hosts[0]
    per_host: dict[str, list[tuple[float, float, int]]] = {}
    for j in joined:
        mine = [m for m in j.members if m.file.host == ref]
        if not mine:
            continue
        for m in j.members:
            if m.file.host == ref:
                continue
            est = pair_estimate(mine[0].conn, m.conn)
            if est is not None:
                per_host.setdefault(m.file.host, []).append(est)
    out = {ref: {"offset_s": 0.0, "connections": 0, "segment_pairs": 0, "one_way_delay_s": 0.0}}
    for host, ests in per_host.items():
        out[host] = {"offset_s": statistics.median(e[0] for e in ests), "connections": len(ests),
                     "segment_pairs": sum(e[2] for e in ests),
                     "one_way_delay_s": statistics.median(abs(e[1]) for e in ests)}
    return out
