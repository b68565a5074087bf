"""The writers that work a column at a time give, byte for byte, what they wrote a record at a
time (each keeps that way as its oracle): CSV (csv_text / reference_csv: csv.DictWriter over
iter_records), Zeek's TSV and JSON logs (tsv_text, json_text / reference_*_lines) and EVE
(eve_text / reference_eve_lines). On the findings of every bundled capture folder and the public
traces, and on tables of hostile values (formula starts, separators, quotes, tabs, backslashes,
line ends, Zeek's own markers, missing values, floods, flood counts as floats)."""
from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rstwatch
from conftest import CAPTURES, EXTERNAL, findings_of
from rstwatch.interop import flow_id, flow_ids, zeek_uid, zeek_uids
from rstwatch.report import zeeklog
from rstwatch.report.csvout import CsvSink, _quoted_by_csv, csv_text, reference_csv, write_csv
from rstwatch.report.eve import eve_text, reference_eve_lines

FOLDERS = [CAPTURES, *sorted(p for p in CAPTURES.iterdir() if p.is_dir()), EXTERNAL]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_writer_is_its_record_by_record_self_on_real_findings(folder):
    df = findings_of(folder)
    text = csv_text(df)
    assert text == reference_csv(df)
    assert len(list(csv.DictReader(io.StringIO(text)))) == len(df)
    _same_in_every_writer(df)


def test_every_writer_without_the_compiled_filler(monkeypatch):
    """Where jsonfill.pyx was not built (no C compiler at install), every writer joins its rows in
    Python, to the same bytes: the CSV and Zeek writers failed there (objects numbered through
    the compiled object_ids)."""
    from rstwatch.report import jsonl
    df = findings_of(CAPTURES)
    compiled = {"csv": csv_text(df), "tsv": zeeklog.tsv_text(df), "json": zeeklog.json_text(df), "eve": eve_text(df)}
    for name in ("fill_rows", "int_list_texts", "join_texts", "object_ids", "plain_int_lists", "value_types"):
        monkeypatch.setattr(jsonl, name, None)
    _same_in_every_writer(df)
    assert compiled == {"csv": csv_text(df), "tsv": zeeklog.tsv_text(df), "json": zeeklog.json_text(df),
                        "eve": eve_text(df)}


def _same_in_every_writer(df):
    assert csv_text(df) == reference_csv(df)
    assert zeeklog.tsv_text(df) == "".join(line + "\n" for line in zeeklog.reference_tsv_lines(df))
    assert zeeklog.json_text(df) == "".join(line + "\n" for line in zeeklog.reference_json_lines(df))
    assert eve_text(df) == "".join(line + "\n" for line in reference_eve_lines(df))


def test_zeek_uids_and_flow_ids_are_those_of_each():
    digests = [bytes([k]) * 20 for k in range(256)] + [None, b"\x00" * 20, b"\xff" * 20] + \
        [np.random.default_rng(7).bytes(20) for _ in range(2000)]
    from rstwatch.interop import zeek_uids_python
    assert zeek_uids(digests) == zeek_uids_python(digests) == [None if d is None else zeek_uid(d) for d in digests]
    assert zeek_uids([]) == [] == zeek_uids_python([]) and zeek_uids([None]) == [None] == zeek_uids_python([None])
    ids = flow_ids(digests)
    assert ids == [None if d is None else flow_id(d) for d in digests] and ids[257] == 1     # 0 is no flow
    assert all(type(v) is int for v in ids if v is not None)
    assert flow_ids([]) == [] and flow_ids([None]) == [None]


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
        # Arrow texts none of which is missing: CSV writes them from their buffers, quoting in C
        "wireshark_filter": pd.array(draw(rows(TEXT, min_size=n, max_size=n)), dtype="string"),
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


ZEEK_TEXT = st.one_of(st.text(alphabet=st.sampled_from(list("ab,\t\\-()empty\x00\x7fé\u2028 ")), max_size=6),
                      st.sampled_from(["-", "(empty)", ""]))


@st.composite
def hostile_findings(draw):
    """Findings with every column the Zeek and EVE writers read, of hostile values."""
    n = draw(st.integers(1, 5))
    rows = st.lists
    flood = draw(rows(st.booleans(), min_size=n, max_size=n))
    col = {
        "file": draw(rows(ZEEK_TEXT, min_size=n, max_size=n)),
        "frame": draw(rows(st.integers(1, 10**9), min_size=n, max_size=n)),
        "time": draw(rows(st.floats(0, 2e9), min_size=n, max_size=n)),
        "src": ["*" if f and draw(st.booleans()) else draw(st.sampled_from(["10.0.0.1", "fd00::1", "", "-", None])) for f in flood],
        "sport": [0 if f else draw(st.integers(0, 65535)) for f in flood],
        "dst": draw(rows(st.sampled_from(["10.0.0.2", "fd00::2", "(empty)", None]), min_size=n, max_size=n)),
        "dport": [0 if f else draw(st.integers(0, 65535)) for f in flood],
        "sender": draw(rows(st.sampled_from(["client", "server", "unknown"]), min_size=n, max_size=n)),
        "cause": draw(rows(ZEEK_TEXT, min_size=n, max_size=n)),
        "rule": draw(rows(st.sampled_from(["RST001", "RST0,2"]), min_size=n, max_size=n)),
        "confidence": draw(rows(st.sampled_from([0.0, 0.5, 0.95, 1.0, 0.123456789]), min_size=n, max_size=n)),
        "alternatives": draw(rows(rows(ZEEK_TEXT, max_size=3), min_size=n, max_size=n)),
        "summary": pd.array(draw(rows(ZEEK_TEXT, min_size=n, max_size=n)), dtype="string"),
        "errno": draw(rows(st.one_of(st.none(), st.fixed_dictionaries({"receiver": rows(ZEEK_TEXT, max_size=2)}),
                                     st.fixed_dictionaries({"receiver": rows(ZEEK_TEXT, max_size=2),
                                                            "sender": rows(ZEEK_TEXT, max_size=2)})), min_size=n, max_size=n)),
        "evidence": draw(rows(rows(st.integers(0, 99), max_size=3), min_size=n, max_size=n)),
        "conn_state": draw(rows(st.sampled_from(["", "REJ", "RSTO"]), min_size=n, max_size=n)),
        "history": draw(rows(st.sampled_from(["", "ShAr", "Sr"]), min_size=n, max_size=n)),
        "wireshark_filter": draw(rows(ZEEK_TEXT, min_size=n, max_size=n)),
        "title": draw(rows(ZEEK_TEXT, min_size=n, max_size=n)),
        "remediation": draw(rows(rows(ZEEK_TEXT, max_size=2), min_size=n, max_size=n)),
        "sender_inferred": draw(rows(st.booleans(), min_size=n, max_size=n)),
        "resets": pd.array([draw(st.integers(2, 9)) if f else None for f in flood], dtype="Float64"),
        "connections": pd.array([draw(st.integers(2, 9)) if f else None for f in flood], dtype="Int64"),
        "sources_sample": [draw(rows(st.sampled_from(["10.0.0.9", "a,b"]), max_size=2)) if f else None for f in flood],
        "ts": [draw(st.one_of(st.none(), st.just(""), st.just("2026-11-21T06:19:12.737123456Z"))) for _ in range(n)],
        "community_id": [None if f else draw(st.one_of(st.none(), st.just("1:abc="))) for f in flood],
        "follows_frame": pd.array(draw(rows(st.one_of(st.none(), st.integers(1, 9)), min_size=n, max_size=n)), dtype="Int64"),
    }
    keep = draw(st.sets(st.sampled_from(["ts", "community_id", "resets", "connections", "sources_sample", "follows_frame"])))
    return pd.DataFrame({k: v for k, v in col.items() if k in keep or k not in
                         ("ts", "community_id", "resets", "connections", "sources_sample", "follows_frame")})


@settings(max_examples=200, deadline=None)
@given(hostile_findings())
def test_zeek_eve_and_csv_are_their_record_by_record_selves_on_hostile_findings(df):
    _same_in_every_writer(df)


def test_numbers_and_missing_values_stay_as_they_were():
    df = pd.DataFrame({"frame": [1, 2], "time": [-1.5, np.nan], "resets": pd.array([3.0, None], dtype="Float64"),
                       "summary": pd.array(["-1", None], dtype="string"), "file": ["=x", "-1-1"]})
    rows = list(csv.DictReader(io.StringIO(csv_text(df))))
    assert [(r["frame"], r["time"], r["resets"], r["summary"], r["file"]) for r in rows] == \
        [("1", "-1.5", "3", "-1", "'=x"), ("2", "", "", "", "'-1-1")]
    assert csv_text(df) == reference_csv(df)


def test_writers_through_the_output_stream_write_what_they_make(tmp_path):
    """The CLI's output stream takes the compiled rows as bytes, in pieces (write_ascii): the
    file holds what the writers make as text, tables written one after another included."""
    from rstwatch.report.eve import write_eve
    from rstwatch.report.jsonl import jsonl_text, write_jsonl
    from rstwatch.report.output import open_output
    df = findings_of(CAPTURES)
    halves = [df.iloc[:len(df) // 2], df.iloc[len(df) // 2:]]
    for write, text in ((write_eve, eve_text), (zeeklog.write_zeek_json, zeeklog.json_text), (write_jsonl, jsonl_text),
                        (write_csv, csv_text)):
        path = tmp_path / f"{write.__name__}.out"
        with open_output(path, force=False) as out:
            out.write("before\n")                   # text written before the bytes stays first
            for half in halves:
                write(half, out)
        want = "before\n" + "".join(text(h) for h in halves)
        assert path.read_text() == want, write.__name__
        assert len(want) > 100_000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**63) + 1, 2**63 - 1),
                          st.integers(1_700_000_000 * 10**9, 1_800_000_000 * 10**9),
                          st.sampled_from([0, -1, 1, 999_999_500, 1_764_000_000_999_999_500, 10**9 - 1])),
                min_size=1, max_size=40))
def test_zeek_times_read_from_iso_texts_are_each_rows_own(nanos):
    """Zeek's `ts` from the ISO texts of a table (nanoseconds read from their bytes, each distinct
    second parsed once) is _ts of each row: the same float, rounding at half a microsecond
    included; a column with any other text is left to the row-by-row loop."""
    from rstwatch.interop import iso_ns_column
    isos = iso_ns_column(nanos)
    want = [zeeklog._ts({"ts": iso, "time": 0.0}) for iso in isos]
    got = zeeklog._ts_of_iso_ns_texts(isos)
    assert got == want and all(type(v) is float for v in got)
    assert zeeklog._ts_column(isos + [None], [0.0] * len(isos) + [1.5]) == want + [1.5]
    assert zeeklog._ts_of_iso_ns_texts(isos + ["2026-11-21T06:19:12.73712345Z"]) is None
    assert zeeklog._ts_of_iso_ns_texts(isos + ["2026-11-21T06:19:12.7371234x5Z"]) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-(2**70), 2**70) | st.integers(0, 10**6), max_size=6), max_size=12),
       st.sampled_from([";", ",", " :: "]), st.sampled_from(["", "(empty)"]))
def test_evidence_cells_in_c_are_pythons(frames, sep, empty):
    # the evidence frames of CSV (";", empty "") and Zeek's TSV (",", "(empty)"): the C join of
    # each row's ints against the Python one, numbers beyond 64 bits and negative ones included
    from rstwatch.report.joinrows import int_lists_joined, python_int_lists_joined
    from rstwatch.report.jsonl import int_list_texts
    assert int_list_texts is not None, "bin/setup builds report/jsonfill.pyx"
    want = python_int_lists_joined(frames, sep, empty)
    assert int_lists_joined(frames, sep, empty) == want == [sep.join(map(str, f)) or empty for f in frames]
    with pytest.raises(TypeError):
        int_list_texts(frames + [[1, True]], sep, empty)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(2.0 ** 22, 9e9, exclude_max=True),
                          st.integers(2**22, 9 * 10**9 - 1).map(lambda s: s + 0.0000005),      # half a microsecond
                          st.integers(1_700_000_000 * 10**6, 1_800_000_000 * 10**6).map(lambda u: (u + 0.5) / 1e6),
                          # exact binary ties: an odd number of 128ths is x.5 microseconds
                          st.tuples(st.integers(2**22, 9 * 10**9 - 1), st.integers(0, 127)).map(lambda p: p[0] + p[1] / 128),
                          st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=30))
def test_microseconds_round_as_python_does(times):
    """Zeek's ts a column at once: each float's microseconds in integer arithmetic give what
    f"{t:.6f}" and round(t, 6) give for it, ties at half a microsecond included; a column with a
    value outside 2**22 .. 9e9 (or NaN) is left to Python."""
    parts = zeeklog.microseconds(np.array(times, np.float64))
    inside = all(2.0 ** 22 <= t < 9e9 for t in times)
    assert (parts is not None) == inside
    if parts is not None:
        for t, s, u in zip(times, *(p.tolist() for p in parts)):
            assert f"{t:.6f}" == f"{s}.{u:06d}" and round(t, 6) == (s * 10**6 + u) / 1e6
        assert zeeklog.time_texts(times) == [f"{t:.6f}" for t in times]
        # made in Python where pyarrow is not loaded (a read to a Zeek log loads neither it nor pandas)
        assert zeeklog.micro_texts(*parts, arrow=False) == zeeklog.micro_texts(*parts, arrow=True) == zeeklog.time_texts(times)


@pytest.mark.parametrize("columns", [
    {"errno": ["ECONNREFUSED"], "remediation": ["Open it"], "evidence": ["1;2"], "alternatives": ["x,y"]},
    {"errno": [True], "alternatives": [False], "evidence": [0]},
], ids=["texts", "numbers"])
def test_list_and_errno_columns_of_plain_values_are_made_texts_first(columns):
    # a table handed in through the API with texts or numbers where lists and errno go: the
    # compiled CSV must still write them as join_list and JSON make them, as the reference does
    # (found by a review: the fast kinds wrote them as they were)
    df = pd.DataFrame({"frame": [1], **columns})
    assert csv_text(df) == reference_csv(df)
