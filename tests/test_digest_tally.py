"""The report's digest tallies each cause's alternatives and senders a distinct value at a time
(report/digest._tally_group); it must give what tallying every finding in turn gave: the same
counts, the same first keys (the order the report lists them in) and the same order of first
appearance, on the findings of every bundled capture and the public traces, added whole and in
batches out of order (a streamed report)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import CAPTURES, EXTERNAL, findings_of
from rstwatch.report import digest as digest_module
from rstwatch.report.digest import SORT, Digest, _tally


def _tally_each_row(st, grp: pd.DataFrame) -> None:
    """The tally as it was: a key tuple and a _tally call per finding (the oracle)."""
    keys = list(zip(grp["time"].tolist(), grp["file"].astype(str).tolist(), grp["frame"].tolist(), grp["_seq"].tolist()))
    for key, alts, sender, w in zip(keys, grp["alternatives"].tolist(), grp["sender"].tolist(), grp["_w"].tolist()):
        for pos, a in enumerate(alts or []):
            _tally(st.alternatives, a, key + (pos,))
        _tally(st.senders, sender, key, int(w))


def _tallies(d: Digest) -> dict:
    return {cause: (list(st.alternatives.items()), list(st.senders.items())) for cause, st in d.causes.items()}


@pytest.fixture(scope="module")
def findings() -> pd.DataFrame:
    df = pd.concat([findings_of(CAPTURES), findings_of(EXTERNAL)], ignore_index=True)
    assert df["alternatives"].map(len).gt(0).sum() > 50 and df["sender"].nunique() >= 3
    return df


@pytest.mark.parametrize("batches", [1, 7], ids=["whole", "7 batches out of order"])
def test_tallies_by_distinct_value_are_the_tallies_row_by_row(findings, batches, monkeypatch):
    parts = np.array_split(np.arange(len(findings)), batches)[::-1]       # later findings first
    got, want = Digest(), Digest()
    for part in parts:
        got.add(findings.iloc[part])
    monkeypatch.setattr(digest_module, "_tally_group", _tally_each_row)
    for part in parts:
        want.add(findings.iloc[part])
    assert _tallies(got) == _tallies(want)
    assert sum(len(a) for a, _ in _tallies(got).values()) > 10      # alternatives were tallied
    assert list(got.cause_names) == list(want.cause_names)
    assert SORT[0] == "time"


def test_connections_are_counted_as_one_key_a_row_counted_them(findings):
    """A connection's findings (its two directions, its several RSTs) count once: the keys made a
    column at a time tell apart exactly the connections that hashing each row's tuple did, in
    one batch or split over several."""
    from rstwatch.report.digest import connection_keys
    single = findings
    cols = [single[c] for c in ("file", "src", "sport", "dst", "dport", "conn_first_frame")]
    by_row = set()
    for f, a, p, b, q, s in zip(*(c.tolist() for c in cols)):
        x, y = (str(a), int(p)), (str(b), int(q))
        by_row.add((f, min(x, y), max(x, y), str(s)))
    keys = connection_keys(*cols)
    assert len(np.unique(keys)) == len(by_row) < len(single)       # some connections hold several findings
    halves = np.array_split(np.arange(len(single)), 2)
    split = np.concatenate([connection_keys(*(c.iloc[h] for c in cols)) for h in halves])
    assert np.array_equal(np.sort(split), np.sort(keys))
    swapped = connection_keys(cols[0], cols[3], cols[4], cols[1], cols[2], cols[5])     # the other direction
    assert np.array_equal(swapped, keys)


def _kept_by_groups(rows: pd.DataFrame) -> np.ndarray:
    """The rows kept whole, picked as they were: a groupby per cause and drop_duplicates (the oracle)."""
    keep = np.zeros(len(rows), bool)
    keep[:digest_module.TABLE_ROWS] = True
    for _, grp in rows.groupby("cause", sort=False):
        keep[grp.index[:2 * digest_module.SAMPLES]] = True
        keep[grp.drop_duplicates(["file", "_server"]).index[:digest_module.SAMPLES]] = True
    return keep


@pytest.mark.parametrize("holes", [False, True], ids=["all known", "some causes and files missing"])
@pytest.mark.parametrize("batches", [1, 7, 60], ids=["whole", "7 batches out of order", "60 batches out of order"])
def test_rows_kept_from_batches_are_those_kept_from_all_findings_at_once(findings, batches, holes, monkeypatch):
    """Each batch is cut to its own candidates and they are merged a few at a time (_keep): the
    rows kept whole (the report's findings table and its samples per cause) must be those picked
    from every finding at once, sorted, by the groupby rule, in the same order and dtypes; a
    finding without a cause is in no cause's group, findings without a file share one."""
    if holes:
        findings = findings.copy()
        rng = np.random.default_rng(7)
        findings.loc[rng.random(len(findings)) < 0.1, "cause"] = None
        findings.loc[rng.random(len(findings)) < 0.05, "file"] = None
    parts = np.array_split(np.arange(len(findings)), batches)[::-1]       # later findings first
    monkeypatch.setattr(digest_module, "TABLE_ROWS", 40)       # the cut and the samples both matter
    monkeypatch.setattr(digest_module, "_MERGE_ROWS", 50)      # merged many times on the way
    got = Digest()
    for part in parts:
        got.add(findings.iloc[part])
    monkeypatch.setattr(digest_module, "_kept", _kept_by_groups)
    want = Digest.of(pd.concat([findings.iloc[p] for p in parts]))
    assert len(want.rows) > 40 and want.rows["cause"].nunique() > 5
    pd.testing.assert_frame_equal(got.rows, want.rows)


def test_a_table_ordered_by_its_categories_is_not_cut_alone():
    """A categorical `file` orders its own table by its categories (b before a here); with another
    table's categories the kept rows' `file` becomes text and all rows sort by it. Cut alone, the
    table would keep its first six X findings in category order (four from b.pcap); kept whole and
    merged, the X samples are the first six in the report's order: a.pcap's three, then b.pcap's."""
    def table(n, cause, files, times, cats):
        return pd.DataFrame({"file": pd.Categorical(files, categories=cats), "frame": np.arange(1, n + 1),
                             "time": np.asarray(times, float), "src": "10.0.0.1", "sport": 40000, "dst": "10.0.0.2",
                             "dport": 80, "sender": "server", "cause": cause, "confidence": 0.9,
                             "alternatives": [[] for _ in range(n)], "remediation": [[] for _ in range(n)],
                             "summary": "s"})
    cats = ["b.pcap", "a.pcap"]
    many = pd.concat([table(500, "Y", ["b.pcap"] * 500, np.arange(500.0), cats),
                      table(7, "X", ["b.pcap"] * 4 + ["a.pcap"] * 3, [1000.0] * 7, cats)], ignore_index=True)
    d = Digest()
    d.add(table(1, "Z", ["c.pcap"], [2000.0], ["c.pcap"]))
    d.add(many)
    x = d.rows[d.rows["cause"] == "X"]
    assert list(zip(x["file"].astype(str), x["frame"])) == [("a.pcap", 5), ("a.pcap", 6), ("a.pcap", 7),
                                                            ("b.pcap", 1), ("b.pcap", 2), ("b.pcap", 3)]
