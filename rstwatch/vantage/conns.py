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


def _table(path: Path) -> pd.DataFrame:
    seg = read_segments(path, Diagnostics(str(path)))
    df = pd.DataFrame({k: seg[k] for k in ("frame", "ts_ns", "v6", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport",
                                           "dport", "seq", "ack", "flags", "plen", "ttl")})
    a = list(zip(df["src_hi"], df["src_lo"], df["sport"]))
    b = list(zip(df["dst_hi"], df["dst_lo"], df["dport"]))
    df["conn"] = pd.Series([min(x, y) + max(x, y) for x, y in zip(a, b)], index=df.index).factorize()[0] \
        if len(df) else pd.Series(dtype="int64")
    return df


def _endpoint(row, side: str) -> tuple[str, int]:
    return (address_text(bool(row.v6), int(getattr(row, f"{side}_hi")), int(getattr(row, f"{side}_lo"))),
            int(row.sport if side == "src" else row.dport))


def file_conns(host: str, path: Path) -> FileConns:
    df = _table(path)
    if df.empty:
        return FileConns(host, str(path), 0.0, 0.0, [], {})
    conns, by_frame = [], {}
    for _, g in df.groupby("conn", sort=False):
        conns.append(_conn(g, len(conns), by_frame))
    ts = df["ts_ns"].to_numpy()
    return FileConns(host, str(path), ts.min() / 1e9, ts.max() / 1e9, conns, by_frame)


def _conn(g: pd.DataFrame, index: int, by_frame: dict) -> Conn:
    flags = g["flags"].to_numpy()
    syn = g[(flags & (SYN | ACK)) == SYN]
    synack = g[(flags & (SYN | ACK)) == (SYN | ACK)]
    first = g.iloc[0]
    if len(syn):
        c_row, c_isn = syn.iloc[0], int(syn.iloc[0].seq)
        client, server = _endpoint(c_row, "src"), _endpoint(c_row, "dst")
    elif len(synack):
        s_row = synack.iloc[0]
        client, server, c_isn = _endpoint(s_row, "dst"), _endpoint(s_row, "src"), (int(s_row.ack) - 1) % (1 << 32)
    else:                           # no handshake: the lower port is taken as the server's
        x, y = _endpoint(first, "src"), _endpoint(first, "dst")
        client, server = (x, y) if x[1] >= y[1] else (y, x)
        c_isn = None
    s_isn = int(synack.iloc[0].seq) if len(synack) else None
    key = ("isn", c_isn, s_isn, server[1]) if c_isn is not None else \
        ("cid", community_id(client[0], server[0], client[1], server[1]))
    ts = g["ts_ns"].to_numpy() / 1e9
    conn = Conn(key, client, server, float(ts.min()), float(ts.max()))
    from_client = [(_endpoint(r, "src") == client) for r in g.itertuples(index=False)]
    for r, t, mine in zip(g.itertuples(index=False), ts, from_client):
        role = "c" if mine else "s"
        conn.segs.setdefault((role, int(r.seq), int(r.ack), int(r.flags), int(r.plen)), float(t))
        if r.flags & RST:
            ident = (role, int(r.seq), int(r.flags) & (RST | ACK))
            conn.rsts.setdefault(ident, (float(t), int(r.frame)))
            by_frame[int(r.frame)] = (index, ident)
        elif int(r.ttl) in INITIAL_TTLS:
            conn.initial_ttl_from.add(role)
    return conn
