"""The compiled connection walk (rstwatch/track/walkloop.pyx) and the Python one it mirrors
(rstwatch/track/connection.py) must describe every connection identically: history, conn_state,
rtt, roles, and every feature and evidence frame of every RST. Checked on every bundled and
public capture and on random segment streams (flags, sequence numbers, windows, TTLs, both
directions, midstream starts, wrap-around) that reach the corners real captures rarely do."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CAPTURES, EXTERNAL
from rstwatch.sources.capture import iter_segments
from rstwatch.sources.diagnostics import Diagnostics
from rstwatch.sources.segments import SEGMENT_COLUMNS, Segments
from rstwatch.features import extract
from rstwatch.track import connection, tracker
from rstwatch.track.flows import rst_flows_grouped

walkloop = pytest.importorskip("rstwatch.track.walkloop", reason="the compiled walk was not built")

ALL_CAPTURES = sorted(p for root in (CAPTURES, EXTERNAL) for p in root.rglob("*")
                      if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))


def _same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_same_connection(P: dict, PN: dict, idx: list[int]) -> int:
    """P: the segment columns as lists (the Python walk's input), PN: as numpy arrays (the compiled one's)."""
    want, got = connection.walk(P, idx), walkloop.walk(PN, idx)
    where = f"connection starting at frame {P['frame'][idx[0]]}"
    for attr in ("idx", "flipped", "client_dir", "role_inferred", "history", "conn_state", "rtt_ns"):
        assert _same_value(getattr(got, attr), getattr(want, attr)), (where, attr, getattr(got, attr), getattr(want, attr))
    assert len(got.rsts) == len(want.rsts), where
    for g, w in zip(got.rsts, want.rsts):
        assert (g.pos, g.frame, g.sender, g.evidence) == (w.pos, w.frame, w.sender, w.evidence), (where, g.frame)
        assert g.features.keys() == w.features.keys(), (where, g.frame)
        for name, value in w.features.items():
            assert _same_value(g.features[name], value), (where, g.frame, name, g.features[name], value)
    return len(want.rsts)


def assert_same_split(P: dict, PN: dict, idx: list[int]) -> list:
    want = connection.split_connections(P, idx)
    assert walkloop.split_connections(PN, idx) == want
    return want


def assert_same_rows(seg: Segments) -> None:
    """What the feature table gets: every RST's features as typed columns, from both walks."""
    _, conns, got = tracker.rst_connections(seg)
    compiled, tracker.compiled_walk_groups = tracker.compiled_walk_groups, None
    try:
        _, want_conns, want = tracker.rst_connections(seg)
    finally:
        tracker.compiled_walk_groups = compiled
    assert [c.idx for c in conns] == [c.idx for c in want_conns]
    # what the feature table takes from each connection (first and last row, conn_state, history,
    # roles inferred, lineage), in C for the compiled walk's connections, and also for a list
    # that leaves out the first ones (a lineage stops at a piece not in the list)
    if conns:
        assert walkloop.connection_columns(conns) is not None
    for start in (0, 1):
        got_cols = extract.connection_columns(conns[start:])
        want_cols = extract.connection_columns_python(want_conns[start:])
        for name, g, w in zip(("first", "last", "conn_state", "history", "inferred", "lineage"), got_cols, want_cols):
            assert list(g) == list(w), name
    for field in ("conn", "row", "frame"):
        assert np.array_equal(getattr(got, field), getattr(want, field)), field
    assert got.evidence == want.evidence
    assert got.features.keys() == want.features.keys()
    for name, column in want.features.items():
        assert got.features[name].dtype == column.dtype, name
        assert got.features[name].equals(column), name


def every_connection(seg: Segments) -> int:
    assert_same_rows(seg)
    seg, order, bounds = rst_flows_grouped(seg)
    P = {k: v.tolist() for k, v in seg.cols.items()}
    PN = seg.cols
    order, bounds = order.tolist(), bounds.tolist()
    checked = 0
    for g in range(len(bounds) - 1):
        for part, _ in assert_same_split(P, PN, order[bounds[g]:bounds[g + 1]]):
            checked += assert_same_connection(P, PN, part)
    # and the pieces a 4-tuple's walk links together (`continues`)
    want, (got, _) = tracker.python_walk_groups(P, order, bounds), walkloop.walk_groups(PN, order, bounds)
    assert [c.idx for c in got] == [c.idx for c in want]
    assert [c.continues and c.continues.idx for c in got] == [c.continues and c.continues.idx for c in want]
    return checked


def test_compiled_walk_is_the_python_walk_on_every_capture():
    checked = 0
    for path in ALL_CAPTURES:
        diag = Diagnostics(str(path))
        try:
            chunks = [c for c in iter_segments(path, diag) if len(c)]
        except Exception:           # captures the fast reader refuses are another test's business
            continue
        if chunks:
            checked += every_connection(Segments.concat(chunks))
    assert checked >= 3_000          # every RST of the bundled and public captures


FLAGS = [2, 18, 16, 24, 17, 25, 4, 20, 1, 3, 6, 22, 28, 5]        # SYN, SYN|ACK, ACK, data, FIN, RST...
APP_CODES = [0, 0, 1, 1 | (150 << 4), 2 | (120 << 4), 2 | (5000 << 4), 3 | (90 << 4), 3, 2, 8, 2 | 8, 4]


@st.composite
def segment_streams(draw):
    n = draw(st.integers(1, 40))
    base_seq = [draw(st.sampled_from([0, 1000, 2**32 - 50, 2**31])), draw(st.integers(0, 2**32 - 1))]
    rows = []
    nxt = list(base_seq)
    for k in range(n):
        d = draw(st.integers(0, 1))
        flags = draw(st.sampled_from(FLAGS))
        plen = draw(st.sampled_from([0, 0, 1, 100, 1448]))
        jitter = draw(st.sampled_from([0, 0, 0, -1, 1, -100, 70000]))
        seq = (nxt[d] + jitter) % 2**32
        ack = (nxt[1 - d] + draw(st.sampled_from([0, 0, 1, -1, 5000]))) % 2**32
        nxt[d] = (seq + plen + (1 if flags & 3 else 0)) % 2**32
        rows.append(dict(frame=k + 1, ts_ns=1_700_000_000_000_000_000 + k * draw(st.sampled_from([1000, 10**6, 2 * 10**9])),
                         v6=False, src_hi=0, src_lo=(10 << 24) | (1 + d), dst_hi=0, dst_lo=(10 << 24) | (2 - d),
                         sport=(40000, 80)[d], dport=(80, 40000)[d], seq=seq, ack=ack, flags=flags,
                         win=draw(st.sampled_from([0, 0, 512, 65535])), hlen=draw(st.sampled_from([20, 32])),
                         plen=plen, ttl=draw(st.sampled_from([64, 64, 63, 128, 255])),
                         ipid=draw(st.sampled_from([0, -1, 7])),
                         # application framing (sources/framing.py): requests, replies, errors with and
                         # without a length, last chunks; on data segments only, as the readers write it
                         app=draw(st.sampled_from(APP_CODES)) if plen else 0))
    if not any(r["flags"] & 4 for r in rows):
        rows[-1]["flags"] = draw(st.sampled_from([4, 20]))
    return rows


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segment_streams())
def test_compiled_walk_is_the_python_walk_on_random_streams(rows):
    cols = {k: np.array([r.get(k, 0) for r in rows], dtype=t) for k, t in SEGMENT_COLUMNS.items()}
    P = {k: v.tolist() for k, v in cols.items()}
    for part, _ in assert_same_split(P, cols, list(range(len(rows)))):
        assert_same_connection(P, cols, part)
    assert_same_rows(Segments(cols))
    want, (got, _) = tracker.python_walk_groups(P, list(range(len(rows))), [0, len(rows)]), \
        walkloop.walk_groups(cols, list(range(len(rows))), [0, len(rows)])
    assert [(c.idx, c.continues and c.continues.idx) for c in got] == \
        [(c.idx, c.continues and c.continues.idx) for c in want]


@pytest.mark.parametrize("first", ["rstwatch.track.tracker", "rstwatch.track.walkloop", "rstwatch.features.extract",
                                   "rstwatch.live.tracker"])
def test_feature_table_uses_the_compiled_columns_whatever_is_imported_first(first):
    # walkloop imports the feature registry, which imports extract: a lookup of walkloop made
    # while extract loaded failed when the walk came first, and the Python twin ran unseen
    code = (f"import {first}\nfrom rstwatch.features import extract\nfrom rstwatch.track import walkloop\n"
            "assert extract._walk_columns() is walkloop.connection_columns, extract._walk_columns()\n")
    env = {k: v for k, v in os.environ.items() if k != "RSTWATCH_PURE_PYTHON"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
