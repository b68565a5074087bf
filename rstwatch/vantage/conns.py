"""One capture's connections as the join needs them: who is client and server, the ISN pair, and
each segment's identity (direction, seq, ack, flags, length), which NAT leaves alone.

Reads the file's TCP headers again (the per-file analysis does not keep its packets).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..interop import community_id
from ..sources.capture import read_segments
from ..sources.diagnostics import Diagnostics
from ..sources.segments import address_text
from ..track.connection import split_connections

SYN, RST, ACK = 0x02, 0x04, 0x10
INITIAL_TTLS = (64, 128, 255)       # a packet captured on its sender's own link (or one hop before a router)


@dataclass
class Conn:
    """One connection in one capture file."""
    key: tuple                      # the join key: ("isn", client ISN, server ISN, server port) or ("cid", id)
    client: tuple[str, int]         # as this capture sees them (NAT changes them between views)
    server: tuple[str, int]
    first_ts: float
    last_ts: float
    # (role, seq, ack, flags, plen) -> first time seen; role "c" = sent by the client
    segs: dict = field(default_factory=dict)
    rsts: dict = field(default_factory=dict)            # (role, seq, flags) -> (time, frame)
    initial_ttl_from: set = field(default_factory=set)  # roles whose non-RST packets carry an initial TTL


@dataclass
class FileConns:
    host: str
    path: str
    first_ts: float
    last_ts: float
    conns: list[Conn]
    by_frame: dict                  # RST frame -> (conn index, RST identity)


COLUMNS = ("frame", "ts_ns", "v6", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "seq", "ack", "flags",
           "plen", "ttl")


def _columns(path: Path) -> dict[str, np.ndarray]:
    seg = read_segments(path, Diagnostics(str(path)))
    c = {k: np.asarray(seg[k]) for k in COLUMNS}
    # one id per connection: its two endpoints in a canonical order (vectorised, no tuple per packet)
    s_first = (c["src_hi"] < c["dst_hi"]) | ((c["src_hi"] == c["dst_hi"]) & (
        (c["src_lo"] < c["dst_lo"]) | ((c["src_lo"] == c["dst_lo"]) & (c["sport"] <= c["dport"]))))
    keys = pd.DataFrame({
        "ah": np.where(s_first, c["src_hi"], c["dst_hi"]), "al": np.where(s_first, c["src_lo"], c["dst_lo"]),
        "ap": np.where(s_first, c["sport"], c["dport"]), "bh": np.where(s_first, c["dst_hi"], c["src_hi"]),
        "bl": np.where(s_first, c["dst_lo"], c["src_lo"]), "bp": np.where(s_first, c["dport"], c["sport"]),
        "v6": c["v6"]})
    tuples = keys.groupby(list(keys.columns), sort=False).ngroup().to_numpy() if len(keys) else np.zeros(0, int)
    c["conn"] = _split_reused(c, tuples)
    return c


def _split_reused(c: dict, tuples: np.ndarray) -> np.ndarray:
    """One id per connection, not per 4-tuple: a 4-tuple used again (a fixed or recycled client
    port) is split where the per-file analysis splits it (a SYN with a new ISN or after a RST),
    so a capture that saw only the later connection still joins the one that saw both."""
    conn = np.asarray(tuples, dtype=np.int64).copy()
    if not len(conn):
        return conn
    P = {k: c[k].tolist() for k in ("flags", "seq", "ts_ns")}
    order = np.argsort(conn, kind="stable")
    bounds = np.flatnonzero(np.diff(conn[order])) + 1
    next_id = int(conn.max()) + 1
    for idx in np.split(order, bounds):
        if not np.any(c["flags"][idx] & (SYN | RST)):
            continue                 # nothing that could start another connection
        pieces = split_connections(P, idx.tolist())
        for piece, _ in pieces[1:]:
            conn[piece] = next_id
            next_id += 1
    return conn


def _endpoint(c: dict, i: int, side: str) -> tuple[str, int]:
    return (address_text(bool(c["v6"][i]), int(c[f"{side}_hi"][i]), int(c[f"{side}_lo"][i])),
            int(c["sport" if side == "src" else "dport"][i]))


def file_conns(host: str, path: Path, label: str | None = None) -> FileConns:
    """`label`: the file as its findings name it (the path as given, not normalised)."""
    c = _columns(path)
    label = label if label is not None else str(path)
    if not len(c["frame"]):
        return FileConns(host, label, 0.0, 0.0, [], {})
    order = np.argsort(c["conn"], kind="stable")         # each connection's packets together, in capture order
    bounds = np.flatnonzero(np.diff(c["conn"][order])) + 1
    conns, by_frame = [], {}
    for idx in np.split(order, bounds):
        conns.append(_conn(c, idx, len(conns), by_frame))
    return FileConns(host, label, c["ts_ns"].min() / 1e9, c["ts_ns"].max() / 1e9, conns, by_frame)


def _conn(c: dict, idx: np.ndarray, index: int, by_frame: dict) -> Conn:
    flags = c["flags"][idx]
    syn = idx[(flags & (SYN | ACK)) == SYN]
    synack = idx[(flags & (SYN | ACK)) == (SYN | ACK)]
    if len(syn):
        at, side, c_isn = syn[0], "src", int(c["seq"][syn[0]])
    elif len(synack):
        at, side, c_isn = synack[0], "dst", (int(c["ack"][synack[0]]) - 1) % (1 << 32)
    else:                           # no handshake: the lower port is taken as the server's
        at, c_isn = idx[0], None
        side = "src" if c["sport"][at] >= c["dport"][at] else "dst"
    other = "dst" if side == "src" else "src"
    client, server = _endpoint(c, at, side), _endpoint(c, at, other)
    s_isn = int(c["seq"][synack[0]]) if len(synack) else None
    key = ("isn", c_isn, s_isn, server[1]) if c_isn is not None else \
        ("cid", community_id(client[0], server[0], client[1], server[1]))
    ts = c["ts_ns"][idx] / 1e9
    conn = Conn(key, client, server, float(ts.min()), float(ts.max()))
    port = c["sport" if side == "src" else "dport"][at]
    mine = ((c["src_hi"][idx] == c[f"{side}_hi"][at]) & (c["src_lo"][idx] == c[f"{side}_lo"][at])
            & (c["sport"][idx] == port))
    cols = [c[k][idx].tolist() for k in ("seq", "ack", "flags", "plen", "ttl", "frame")]
    for is_c, t, seq, ack, fl, plen, ttl, frame in zip(mine.tolist(), ts.tolist(), *cols):
        role = "c" if is_c else "s"
        conn.segs.setdefault((role, seq, ack, fl, plen), t)
        if fl & RST:
            ident = (role, seq, fl & (RST | ACK))
            conn.rsts.setdefault(ident, (t, frame))
            by_frame[frame] = (index, ident)
        elif ttl in INITIAL_TTLS:
            conn.initial_ttl_from.add(role)
    return conn
