"""From TCP segment columns to the connections that hold a RST."""
from __future__ import annotations

import os

from ..sources.segments import Segments
from .connection import Connection, split_connections, walk
from .flows import rst_flows_grouped

# The compiled twin of connection.walk (walkloop.pyx) when it was built, as the packet loops
# (loops.py); RSTWATCH_PURE_PYTHON=1 keeps the Python walk.
if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
    try:
        from .walkloop import walk   # noqa: F811
    except ImportError:
        pass


def rst_connections(seg: Segments) -> tuple[dict[str, list], list[Connection]]:
    """Walk every connection that contains a RST; returns the column lists and connections
    (connections in order of their first frame)."""
    seg, order, bounds = rst_flows_grouped(seg)
    P = {k: v.tolist() for k, v in seg.cols.items()}
    conns: list[Connection] = []
    if not len(seg):
        return P, conns
    order = order.tolist()
    for g in range(len(bounds) - 1):
        idx = order[bounds[g]:bounds[g + 1]]
        prev = None                      # the last piece of this 4-tuple that holds a RST
        for part, continues in split_connections(P, idx):
            if any(P["flags"][i] & 4 for i in part):
                conn = walk(P, part)
                conn.continues = prev if continues else None
                conns.append(conn)
                prev = conn
            elif not continues:
                prev = None
    conns.sort(key=lambda c: P["frame"][c.idx[0]])
    return P, conns
