"""CSV made a column at a time (report/csvout.py csv_text) is byte for byte what csv.DictWriter
writes from one record per finding (reference_csv, the plain way it was written before): on the
findings of every bundled capture folder and the public traces, and on tables of hostile
values (formula starts, separators, quotes, line ends, missing values, flood counts as floats)."""
from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rstwatch
from conftest import CAPTURES, EXTERNAL
from rstwatch.report.csvout import CsvSink, _quoted_by_csv, csv_text, reference_csv, write_csv

FOLDERS = [CAPTURES, *sorted(p for p in CAPTURES.iterdir() if p.is_dir()), EXTERNAL]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_csv_is_the_record_by_record_csv_on_real_findings(folder):
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".pcap", ".pcapng", ".gz") and p.is_file())
    tables = [t for t in (rstwatch.read(p) for p in files) if len(t)]
    assert tables, folder
    df = pd.concat(tables, ignore_index=True)
    text = csv_text(df)
    assert text == reference_csv(df)
    assert len(list(csv.DictReader(io.StringIO(text)))) == len(df)


def test_live_sink_writes_the_same_rows():
    df = rstwatch.read(CAPTURES / "closed-port.pcap")
    out = io.StringIO()
    sink = CsvSink(out)
    sink.start("live")
    sink.write(df.iloc[:0])
    sink.write(df)
    sink.write(df)
    whole = io.StringIO()
    write_csv(pd.concat([df, df], ignore_index=True), whole)
    assert out.getvalue() == whole.getvalue() == reference_csv(pd.concat([df, df], ignore_index=True))


def test_quoting_follows_this_pythons_csv_writer():
    assert set(_quoted_by_csv()) >= {",", '"', "\n"}
    texts = ["a,b", 'say "x"', "two\nlines", "cr\ronly", "nul\x00", "tab\tx", " lead", "", "=1", "é"]
    df = pd.DataFrame({"file": texts, "summary": pd.array(texts, dtype="string")})
    assert csv_text(df) == reference_csv(df)
    # read back (a lone CR is left unquoted by 3.11's writer, and its reader ends a line there)
    kept = [t for t in texts if "\r" not in t]
    df = df[[("\r" not in t) for t in texts]]
    rows = list(csv.DictReader(io.StringIO(csv_text(df), newline="")))
    assert [r["summary"] for r in rows] == [("'" + t if t == "=1" else t) for t in kept]


TEXT = st.text(alphabet=st.sampled_from(list("ab;,\"\n\r\t=+-@ 1.\x00é'")), max_size=8)
MAYBE_TEXT = st.one_of(st.none(), TEXT)
TEXT_LIST = st.lists(st.one_of(TEXT, st.integers(-3, 3)), max_size=3)


@st.composite
def hostile_table(draw):
    n = draw(st.integers(1, 6))
    rows = st.lists
    col = {
        "file": draw(rows(TEXT, min_size=n, max_size=n)),
        "frame": draw(rows(st.integers(-5, 10**12), min_size=n, max_size=n)),
        "time": draw(rows(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)),
        "summary": pd.array(draw(rows(MAYBE_TEXT, min_size=n, max_size=n)), dtype="string"),
        "alternatives": draw(rows(TEXT_LIST, min_size=n, max_size=n)),
        "errno": draw(rows(st.one_of(st.none(), st.fixed_dictionaries({"receiver": TEXT_LIST, "sender": TEXT_LIST})),
                           min_size=n, max_size=n)),
        "evidence": draw(rows(st.lists(st.integers(0, 99), max_size=4), min_size=n, max_size=n)),
        "sender_inferred": draw(rows(st.booleans(), min_size=n, max_size=n)),
        "resets": pd.array(draw(rows(st.one_of(st.none(), st.integers(0, 9)), min_size=n, max_size=n)), dtype="Float64"),
        "sources_sample": draw(rows(st.one_of(st.none(), TEXT_LIST), min_size=n, max_size=n)),
        "tunnel": draw(rows(MAYBE_TEXT, min_size=n, max_size=n)),
        "follows_frame": pd.array(draw(rows(st.one_of(st.none(), st.integers(1, 9)), min_size=n, max_size=n)), dtype="Int64"),
    }
    shared = draw(TEXT_LIST)                  # rows sharing one list object, as a rule's remediation
    col["remediation"] = [shared if draw(st.booleans()) else list(shared) for _ in range(n)]
    keep = draw(st.sets(st.sampled_from(sorted(col)), min_size=1))
    return pd.DataFrame({k: v for k, v in col.items() if k in keep})


@settings(max_examples=300, deadline=None)
@given(hostile_table())
def test_csv_is_the_record_by_record_csv_on_hostile_values(df):
    assert csv_text(df) == reference_csv(df)


def test_numbers_and_missing_values_stay_as_they_were():
    df = pd.DataFrame({"frame": [1, 2], "time": [-1.5, np.nan], "resets": pd.array([3.0, None], dtype="Float64"),
                       "summary": pd.array(["-1", None], dtype="string"), "file": ["=x", "-1-1"]})
    rows = list(csv.DictReader(io.StringIO(csv_text(df))))
    assert [(r["frame"], r["time"], r["resets"], r["summary"], r["file"]) for r in rows] == \
        [("1", "-1.5", "3", "-1", "'=x"), ("2", "", "", "", "'-1-1")]
    assert csv_text(df) == reference_csv(df)
