"""From TCP segment columns to the connections that hold a RST, and their RSTs as columns."""
from __future__ import annotations

import os

import numpy as np

from ..gcpause import gc_paused
from ..sources.segments import SEGMENT_COLUMNS, Segments
from .connection import Connection, split_connections, walk
from .flows import rst_flows_grouped
from .rstrows import RstRows, from_compiled_walk, from_python_walk


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
compiled_walk_groups = None
if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
    try:
        from .walkloop import first_rows as compiled_first_rows, walk_groups as compiled_walk_groups
    except ImportError:
        pass


def rst_connections(seg: Segments) -> tuple[dict[str, np.ndarray], list[Connection], RstRows]:
    """Walk every connection that contains a RST; returns the segment columns, the connections
    (in order of their first frame) and their RSTs as columns (in connection order)."""
    seg, order, bounds = rst_flows_grouped(seg)
    P = {k: np.ascontiguousarray(v, dtype=SEGMENT_COLUMNS.get(k, v.dtype)) for k, v in seg.cols.items()}  # the walk reads these types
    if not len(seg):
        return P, [], from_python_walk([])
    # The walk makes a few objects per connection, all kept until the verdicts: a collection in
    # the middle finds no garbage and rescans them all (~25% of the walk)
    with gc_paused():
        if compiled_walk_groups is not None:
            conns, out = compiled_walk_groups(P, order, bounds)
        else:
            conns = python_walk_groups({k: v.tolist() for k, v in P.items()}, order.tolist(), bounds.tolist())
    frames = P["frame"]
    if compiled_walk_groups is not None:
        firsts = frames[compiled_first_rows(conns)].astype(np.int64, copy=False)
    else:
        firsts = np.array([frames[c.idx[0]] for c in conns], np.int64) if conns else np.zeros(0, np.int64)
    by_first = np.argsort(firsts, kind="stable")
    conns = [conns[k] for k in by_first.tolist()]
    if compiled_walk_groups is None:
        return P, conns, from_python_walk(conns)
    new_place = np.empty(len(by_first), np.int64)
    new_place[by_first] = np.arange(len(by_first))
    return P, conns, from_compiled_walk(out, new_place)
