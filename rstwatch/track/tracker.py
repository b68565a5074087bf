"""From TCP segment columns to the connections that hold a RST."""
from __future__ import annotations

import os

from ..gcpause import gc_paused
from ..sources.segments import Segments
from .connection import Connection, split_connections, walk
from .flows import rst_flows_grouped


def python_walk_groups(P: dict[str, list], order: list[int], bounds: list[int]) -> list[Connection]:
    """The connections holding a RST in each 4-tuple group order[bounds[g]:bounds[g + 1]], each
    linked to the earlier piece of its 4-tuple it continues (split by time, no new SYN)."""
    conns: list[Connection] = []
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
    return conns


# The compiled twin (walkloop.pyx) when it was built, as for the packet loops (loops.py);
# RSTWATCH_PURE_PYTHON=1 keeps the Python one above, the reference (tests/test_walk_twin.py).
walk_groups = python_walk_groups
if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
    try:
        from .walkloop import walk_groups
    except ImportError:
        pass


def rst_connections(seg: Segments) -> tuple[dict[str, list], list[Connection]]:
    """Walk every connection that contains a RST; returns the column lists and connections
    (connections in order of their first frame)."""
    seg, order, bounds = rst_flows_grouped(seg)
    P = {k: v.tolist() for k, v in seg.cols.items()}
    if not len(seg):
        return P, []
    # The walk makes a few dozen objects per connection, all kept until the verdicts: a
    # collection in the middle finds no garbage and rescans them all (~25% of the walk)
    with gc_paused():
        conns = walk_groups(P, order.tolist(), bounds.tolist())
    frames = P["frame"]
    conns.sort(key=lambda c: frames[c.idx[0]])
    return P, conns
