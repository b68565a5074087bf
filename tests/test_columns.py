"""A read's verdicts are computed on columns.Table (no pandas) and JSON Lines, the terminal
table, CSV, EVE and the Zeek logs written from it; a DataFrame is made of it where one is asked
for. On every bundled and public capture: the lines written from the tables are json.dumps of
the DataFrame's records, the other formats are byte for byte what they write from the
DataFrames, the DataFrame has the types the findings always had, and every rule matches the
same rows on the table as on it."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import CAPTURES, EXTERNAL
from pcapgen import merge_pcaps
from rstwatch.analyze import analyze_file, findings_in_order
from rstwatch.columns import Masked, Table, Texts
from rstwatch.engine.evaluate import ColumnArrays, rule_array, rule_mask
from rstwatch.engine.loader import load_rules
from rstwatch.features.registry import FEATURES, PANDAS_DTYPE
from rstwatch.report.jsonl import jsonl_text, reference_lines
from rstwatch.report.formats import FORMATS
from rstwatch.report.table import TableBatches

ALL_CAPTURES = sorted(p for root in (CAPTURES, EXTERNAL) for p in root.rglob("*")
                      if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))

# The findings' own columns and the types pandas gave them when the pipeline was built on it
# (features: registry.PANDAS_DTYPE)
COLUMN_TYPES = {
    "file": "str", "frame": "int64", "time": "float64", "src": "str", "sport": "int64", "dst": "str",
    "dport": "int64", "sender": "str", "conn_state": "str", "history": "str", "evidence": "object",
    "wireshark_filter": "str", "conn_first_frame": "int64", "conn_last_frame": "int64",
    "sender_inferred": "bool", "conn_id": "int64", "conn_lineage": "int64", "rule": "str", "cause": "str",
    "confidence": "float64", "alternatives": "object", "follows_frame": "Int64", "summary": "str",
    "errno": "object", "remediation": "object", "title": "str", "ts": "object", "community_id": "object",
}


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # the LLC capture's tshark-engine notice
        return analyze_file(path, load_rules())


@pytest.fixture(scope="module")
def results():
    return [_read(p) for p in ALL_CAPTURES]


def test_lines_from_the_tables_are_json_dumps_of_the_dataframe(results):
    tables = 0
    for path, result in zip(ALL_CAPTURES, results):
        want = "".join(line + "\n" for line in reference_lines(result.findings))
        parts = list(findings_in_order([result], light=True))
        tables += sum(isinstance(t, Table) for t in parts)
        assert "".join(jsonl_text(t) for t in parts) == want, path
    assert tables >= 100          # the tables went to the writer as they are, not as DataFrames


def test_the_dataframe_has_the_types_findings_always_had(results):
    seen = set()
    for path, result in zip(ALL_CAPTURES, results):
        df = result.findings
        if not len(df) or "resets" in df.columns:
            continue                # a flood's rows join other columns (report/storms.py)
        for name, feature in FEATURES.items():
            assert str(df[name].dtype) == PANDAS_DTYPE[feature.kind], (path, name, df[name].dtype)
        for name, dtype in COLUMN_TYPES.items():
            assert str(df[name].dtype) == dtype, (path, name, df[name].dtype)
        seen.add(path)
    assert len(seen) >= 100


def test_every_rule_matches_the_same_rows_on_the_table_as_on_its_dataframe(results):
    rules = [r for r in load_rules() if r.flood is None]
    checked = 0
    for result in results:
        for table in findings_in_order([result], light=True):
            if not isinstance(table, Table) or not len(table):
                continue
            df, cols = table.to_pandas(), ColumnArrays(table)
            for rule in rules:
                assert np.array_equal(rule_array(cols, rule), rule_mask(df, rule).to_numpy(dtype=bool)), rule.id
            checked += len(table)
    assert checked >= 1_000


# The formats `read` writes from the verdicts' Tables (run.LIGHT), each written as `read` writes
# it (its batch writer, a table at a time); the terminal table at widths that drop columns and
# print one block per file
LIGHT_WRITERS = {
    "table-50": lambda out: TableBatches(out, width=50), "table-100": lambda out: TableBatches(out, width=100),
    "table-180": lambda out: TableBatches(out, width=180),
    **{fmt: FORMATS[fmt].batch_writer for fmt in ("csv", "eve", "zeek", "zeek-json")},
}


def _written(make, parts) -> str:
    out = io.StringIO()
    writer = make(out)
    writer.start("read")
    for part in parts:
        writer.write(part)
    writer.finish(None)
    # Zeek's header and footer carry the clock
    return "".join(line for line in out.getvalue().splitlines(True) if not line.startswith(("#open", "#close")))


@pytest.fixture(scope="module")
def fresh_results():
    """Results of their own: a result whose DataFrame was asked for keeps that, not the
    verdicts' arrays."""
    return [_read(p) for p in ALL_CAPTURES]


@pytest.mark.parametrize("fmt", list(LIGHT_WRITERS))
def test_formats_written_from_the_tables_are_those_of_the_dataframes(fresh_results, fmt):
    """`read` writes these formats from the verdicts' Tables, without pandas: byte for byte what
    they write from the DataFrames, files one at a time and several together."""
    from rstwatch.run import LIGHT
    assert fmt.split("-")[0] in LIGHT or fmt in LIGHT
    results, tables = fresh_results, 0
    groups = [results[k:k + 9] for k in range(0, len(results), 9)] + [[r] for r in results]
    for group in groups:
        light = list(findings_in_order(group, light=True))
        tables += sum(isinstance(t, Table) for t in light)
        frames = list(findings_in_order(group))
        assert _written(LIGHT_WRITERS[fmt], light) == _written(LIGHT_WRITERS[fmt], frames), [r.path for r in group]
    assert tables >= 100


# Floods and other resets in one capture, moved in time so that their rows alternate (no
# bundled capture holds both): a flood's row is joined with the other findings' rows
# (analyze._joined), as Tables where `read` writes light
INTERLEAVED = [("port-scan.pcap", 0), ("closed-port.pcap", 51.6), ("rst-storm.pcap", 0),
               ("data-after-close.pcap", 31.0), ("syn-flood.pcap", 0), ("accept-queue-overflow.pcap", 42.0)]


@pytest.mark.parametrize("rows", [1, 2, 3, 1000])
def test_floods_among_other_findings_are_written_from_tables_as_from_dataframes(tmp_path, rows):
    path = merge_pcaps(tmp_path / "floods-among.pcap", [(CAPTURES / name, shift) for name, shift in INTERLEAVED])
    findings = _read(path).findings
    assert findings["cause"].tolist() == ["port-scan", "rst-storm", "data-after-close", "syn-flood",
                                          "accept-queue-overflow"]
    light = list(findings_in_order([_read(path)], rows=rows, light=True))
    assert all(isinstance(t, Table) for t in light) and sum(map(len, light)) == 5
    assert "".join(jsonl_text(t) for t in light) == "".join(line + "\n" for line in reference_lines(findings))
    frames = list(findings_in_order([_read(path)], rows=rows))
    for fmt, make in LIGHT_WRITERS.items():
        assert _written(make, light) == _written(make, frames), fmt


def test_a_table_slice_and_join_keep_the_values():
    t = Table({"n": np.arange(5, dtype=np.int64),
               "m": Masked(np.arange(5, dtype=np.int64), np.array([0, 1, 0, 0, 1], bool), "Int64"),
               "t": Texts(coded=(["a", "b"], np.array([0, 1, 1, 0, 1])), how="arrow"),
               "l": [[k] for k in range(5)]}, 5)
    parts = [t.rows(0, 2), t.rows(2, 5)]
    joined = Table.concat(parts)
    assert joined.to_pandas().equals(t.to_pandas())
    taken = t.take(np.array([4, 0]))
    assert taken["m"].tolist() == [None, 0] and taken["t"].tolist() == ["b", "a"] and taken["l"] == [[4], [0]]
    frame = t.to_pandas()
    assert [str(d) for d in frame.dtypes] == ["int64", "Int64", "str", "object"]
    assert isinstance(frame, pd.DataFrame) and frame["m"].isna().tolist() == [False, True, False, False, True]
