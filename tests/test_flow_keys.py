"""The flow table's numbering (rstwatch/loops.py: factorize_keys, group_order, compiled in
hotloops.pyx, numpy/pandas in hotloops_py.py) must number and group exactly as pandas.factorize
and a stable argsort do: connection order, batches and therefore verdicts depend on it. Checked
on random keys (with repeats, collisions in the table's slots, a table larger than the one kept
between calls) and, through rst_flows_grouped, against the way it grouped before on every
bundled and public capture."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from conftest import CAPTURES, EXTERNAL, ROOT
from rstwatch import hotloops_py
from rstwatch.sources.capture import iter_segments
from rstwatch.sources.diagnostics import Diagnostics
from rstwatch.sources.segments import RST, Segments
from rstwatch.track.flows import flow_hash, forget_closed, rst_flows_grouped, src_is_low

hotloops = pytest.importorskip("rstwatch.hotloops", reason="the compiled loops were not built")
IMPLEMENTATIONS = [hotloops, hotloops_py]
ALL_CAPTURES = sorted(p for root in (CAPTURES, EXTERNAL) for p in root.rglob("*")
                      if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))


def _assert_factorized_like_pandas(mod, keys: np.ndarray) -> None:
    codes, uniques = mod.factorize_keys(keys)
    want_codes, want_uniques = pd.factorize(keys)
    assert codes.dtype == np.int64 and uniques.dtype == np.uint64
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(uniques, want_uniques)


@pytest.mark.parametrize("mod", IMPLEMENTATIONS, ids=lambda m: m.__name__)
@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15]) | st.integers(0, 2**64 - 1),
                max_size=300))
def test_factorize_keys_numbers_in_order_of_first_appearance(mod, values):
    _assert_factorized_like_pandas(mod, np.array(values, dtype=np.uint64))


@pytest.mark.parametrize("mod", IMPLEMENTATIONS, ids=lambda m: m.__name__)
def test_factorize_keys_on_large_tables_and_slot_collisions(mod):
    rng = np.random.default_rng(7)
    # keys that differ only above the bits the slot index is taken from collide in the table
    crowded = (rng.integers(0, 64, 50_000).astype(np.uint64) << np.uint64(40))
    _assert_factorized_like_pandas(mod, crowded)
    # past the table kept between calls (2**22 slots), then a small one that reuses it
    big = rng.integers(0, 2**64 - 1, 2_200_000, dtype=np.uint64, endpoint=True)
    _assert_factorized_like_pandas(mod, np.concatenate([big, big[::3]]))
    _assert_factorized_like_pandas(mod, big[:1000])
    _assert_factorized_like_pandas(mod, np.zeros(0, np.uint64))


@pytest.mark.parametrize("mod", IMPLEMENTATIONS, ids=lambda m: m.__name__)
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), max_size=400))))
def test_group_order_is_a_stable_argsort(mod, case):
    groups, codes = case
    codes = np.array(codes, dtype=np.int64)
    np.testing.assert_array_equal(mod.group_order(codes, groups), np.argsort(codes, kind="stable"))


def test_group_order_refuses_codes_outside_the_groups():
    with pytest.raises(ValueError):
        hotloops.group_order(np.array([0, 3], np.int64), 3)
    with pytest.raises(ValueError):
        hotloops.group_order(np.array([-1], np.int64), 3)


def _grouped_as_before(seg: Segments):
    """rst_flows_grouped as it was written before the flow table was numbered once: the RST
    flows' keys found by sorted search, numbered again by pandas, grouped by a stable argsort."""
    h = flow_hash(seg)
    rst_keys = np.unique(h[(seg["flags"] & RST) != 0])
    if not len(rst_keys):
        return seg.take(np.zeros(0, np.int64)), np.zeros(0, np.int64), np.zeros(1, np.int64)
    pos = np.minimum(np.searchsorted(rst_keys, h), len(rst_keys) - 1)
    keep = np.flatnonzero(rst_keys[pos] == h)
    codes, _ = pd.factorize(h[keep])
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return seg.take(keep), order, np.concatenate([[0], bounds, [len(order)]])


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: p.name)
def test_rst_flows_grouped_as_before(path):
    seg = Segments.concat(list(iter_segments(path, Diagnostics(path.name))))
    got, want = rst_flows_grouped(seg), _grouped_as_before(seg)
    assert len(got[0]) == len(want[0])
    for column in want[0].cols:
        np.testing.assert_array_equal(got[0][column], want[0][column], err_msg=column)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


def _codes_by_tuple(endpoints: np.ndarray) -> list[int]:
    seen: dict = {}
    return [seen.setdefault(tuple(row), len(seen)) for row in endpoints.tolist()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), max_size=60))
def test_server_endpoints_are_numbered_exactly(rows):
    """The server-burst feature groups resets by server endpoint: numbered through 64-bit hashes,
    and exactly as a dict of (family, address, port) tuples would number them."""
    from rstwatch.features.extract import _endpoint_codes
    endpoints = np.array(rows, dtype=np.uint64).reshape(-1, 4)
    assert _endpoint_codes(endpoints).tolist() == _codes_by_tuple(endpoints)


def test_server_endpoints_sharing_a_hash_are_told_apart(monkeypatch):
    from rstwatch.features import extract
    rng = np.random.default_rng(3)
    endpoints = rng.integers(0, 4, (500, 4)).astype(np.uint64)
    # every endpoint given the same hash: the check against each code's first row must notice
    monkeypatch.setattr(extract, "factorize_keys", lambda keys: (np.zeros(len(keys), np.int64), keys[:1]))
    assert extract._endpoint_codes(endpoints).tolist() == _codes_by_tuple(endpoints)


@pytest.mark.parametrize("path", [EXTERNAL / "zeek/tunnels/gre-aruba.pcap", EXTERNAL / "tcpdump/tcp_rst_data.pcap",
                                  CAPTURES / "closed-port.pcap"], ids=lambda p: p.name)
def test_flow_keys_carried_by_concat_and_take_are_the_recomputed_ones(path):
    """Tables keep their rows' flow keys (Segments.flow_keys) through concat and take: the same
    keys as hashing the rows afresh, tunnelled ones included."""
    from rstwatch.track.flows import flow_hash
    parts = list(iter_segments(path, Diagnostics("t")))
    for part in parts:
        flow_hash(part)
    table = Segments.concat(parts)
    if len(parts) == 1:                    # one chunk: make two, as a larger capture would
        half = len(table) // 2
        table = Segments.concat([table.take(np.arange(half)), table.take(np.arange(half, len(table)))])
    fresh = lambda seg: flow_hash(Segments(seg.cols))         # noqa: E731 (a table without kept keys)
    assert table.flow_keys is not None and np.array_equal(table.flow_keys, fresh(table))
    pick = np.flatnonzero(table["flags"] & RST)[::-1]
    taken = table.take(pick)
    assert np.array_equal(taken.flow_keys, fresh(taken)) and np.array_equal(flow_hash(taken), fresh(taken))
    mixed = Segments.concat([taken, Segments(table.cols)])      # one part without keys: none kept
    assert mixed.flow_keys is None and np.array_equal(flow_hash(mixed), fresh(mixed))


@pytest.mark.parametrize("path", [EXTERNAL / "zeek/tunnels/gre-aruba.pcap", CAPTURES / "closed-port.pcap",
                                  EXTERNAL / "tcpdump/tcp_rst_data.pcap"], ids=lambda p: p.name)
def test_gather_is_take_of_the_concatenation(path):
    """Segments.gather copies rows of several parts at once: every column, and the flow keys,
    as concatenating the parts and taking the rows would give them."""
    table = Segments.concat(list(iter_segments(path, Diagnostics("t"))))
    flow_hash(table)
    n = len(table)
    cuts = [0, n // 3, n // 3, 2 * n // 3, n]              # three parts and an empty one
    parts = [table.take(np.arange(a, b)) for a, b in zip(cuts, cuts[1:])]
    rng = np.random.default_rng(5)
    for pick in (np.arange(n), np.zeros(0, np.int64), np.flatnonzero(rng.random(n) < 0.4), np.array([n - 1])):
        got, want = Segments.gather(parts, pick), table.take(pick)
        for column in want.cols:
            assert got[column].dtype == want[column].dtype
            np.testing.assert_array_equal(got[column], want[column], err_msg=column)
        np.testing.assert_array_equal(got.flow_keys, want.flow_keys)
    no_keys = Segments.gather([Segments(p.cols) for p in parts], pick)
    assert no_keys.flow_keys is None and len(no_keys) == len(pick)


def test_forget_closed_over_parts_keeps_what_the_whole_table_rule_keeps(tmp_path):
    """forget_closed decides on the parts' flows as one table: the rows kept are those of flows
    that are open, hold a RST or closed too recently, whatever the parts' cut."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import synth
    path = tmp_path / "s.pcap"
    synth.write(path, synth.build(20_000, 0.05))
    table = Segments.concat(list(iter_segments(path, Diagnostics("t"))))
    # the rule spelled out row by row: flow -> (FIN from A, FIN from B, RST, newest time)
    key = list(zip(*(table[c].tolist() for c in ("src_hi", "src_lo", "sport", "dst_hi", "dst_lo", "dport"))))
    low = src_is_low(table).tolist()
    flows: dict = {}
    for (sh, sl, sp, dh, dl, dp), lo, fl, ts in zip(key, low, table["flags"].tolist(), table["ts_ns"].tolist()):
        k = ((sh, sl, sp), (dh, dl, dp)) if lo else ((dh, dl, dp), (sh, sl, sp))
        a, b, r, t = flows.get(k, (False, False, False, ts))
        flows[k] = (a or (fl & 1 and lo), b or (fl & 1 and not lo), r or fl & RST, max(t, ts))
    newest = int(table["ts_ns"].max())
    idle = 10_000_000
    gone = {k for k, (a, b, r, t) in flows.items() if a and b and not r and newest - t > idle}
    want = [i for i, ((sh, sl, sp, dh, dl, dp), lo) in enumerate(zip(key, low))
            if (((sh, sl, sp), (dh, dl, dp)) if lo else ((dh, dl, dp), (sh, sl, sp))) not in gone]
    assert 0 < len(want) < len(table) // 2             # the rule forgets most of this capture
    n = len(table)
    for cuts in ([0, n], [0, 1000, 1000, n // 2, n - 7, n]):
        parts = [table.take(np.arange(a, b)) for a, b in zip(cuts, cuts[1:])]
        kept = forget_closed(parts, idle)
        np.testing.assert_array_equal(kept["frame"], table["frame"][want])
