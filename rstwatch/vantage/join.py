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
            j.owner[role] = with_most_history([m for m in placed if role in m.conn.initial_ttl_from], end)


SAME_POINT_S = 1e-6     # one host's captures this close saw the packets at one point (the lab's
                        # interfaces of one path are 3-9 us apart; a copy of a capture, 0)


def with_most_history(members: list[Member], at: Member) -> Member:
    """Of `at`'s host's captures at `at`'s point of the path (a second capture started later on
    the same interface), the one that began first: it has seen more of what came before (an
    older connection on the same 4-tuple, the port's earlier refusals)."""
    same = [m for m in members if m.file.host == at.file.host and m.position is not None
            and at.position is not None and abs(m.position - at.position) <= SAME_POINT_S]
    return min(same, key=lambda m: m.file.first_ts, default=at)


def clock_offsets(joined: list[Joined], hosts: list[str]) -> dict[str, dict]:
    """Each host's clock relative to the first host's: the median over joined connections of the
    per-connection estimates (captures of the same host share its clock). A host that shares no
    connection with the first is placed through the hosts it does share connections with (a
    client and a backend seen together only by the load balancer's capture): the offsets along
    the shortest chain add up, and `via` names the hosts in between."""
    pairs: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for j in joined:
        first_of: dict[str, Member] = {}
        for m in j.members:
            first_of.setdefault(m.file.host, m)
        for a, ma in first_of.items():          # each capture of b against a's first one
            for mb in j.members:
                if mb.file.host != a:
                    est = pair_estimate(ma.conn, mb.conn)
                    if est is not None:
                        pairs.setdefault((a, mb.file.host), []).append(est)
    ref = hosts[0]
    out = {ref: {"offset_s": 0.0, "connections": 0, "segment_pairs": 0, "one_way_delay_s": 0.0, "via": []}}
    frontier = [ref]
    while frontier:                     # breadth first: the fewest hops, then the most connections
        reached: dict[str, tuple[str, list]] = {}
        for a in frontier:
            for (x, b), ests in pairs.items():
                if x == a and b not in out and (b not in reached or len(ests) > len(reached[b][1])):
                    reached[b] = (a, ests)
        for b, (a, ests) in reached.items():
            out[b] = {"offset_s": out[a]["offset_s"] + statistics.median(e[0] for e in ests),
                      "connections": len(ests), "segment_pairs": sum(e[2] for e in ests),
                      "one_way_delay_s": statistics.median(abs(e[1]) for e in ests),
                      "via": out[a]["via"] + ([a] if a != ref else [])}
        frontier = list(reached)
    return out
