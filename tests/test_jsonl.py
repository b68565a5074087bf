"""JSON Lines are built a column at a time (rstwatch/report/jsonl.py) for speed; every line must
be byte for byte what json.dumps gives for the record (the field contract, its order, its nulls):
on every finding of every bundled and public capture, and on a table of awkward values."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

import rstwatch
from conftest import CAPTURES, EXTERNAL
from rstwatch.report.jsonl import json_lines, reference_lines

ALL_CAPTURES = sorted(p for root in (CAPTURES, EXTERNAL) for p in root.rglob("*")
                      if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))


def test_lines_are_json_dumps_of_every_record_of_every_capture():
    lines = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # the LLC capture's tshark-engine notice
        for path in ALL_CAPTURES:
            df = rstwatch.read(path)
            assert json_lines(df) == reference_lines(df), path
            lines += len(df)
    assert lines >= 1_500                  # every finding (a flood is one)


def test_awkward_values_come_out_as_json_dumps_writes_them(monkeypatch):
    """Flood fields (optional: left out where a record has none) included, compiled and not."""
    from rstwatch.report import jsonl
    df = pd.DataFrame({
        "file": ["a.pcap", "b\u00e9\u2192.pcap", 'quote" back\\slash\n', "%s %d"],
        "frame": pd.array([1, None, 3, 2**40], dtype="Int64"),
        "time": [1.5, math.nan, 1e16, 1e-7],
        "src": pd.array(["10.0.0.1", None, "::1", "x"], dtype="string"),
        "sport": np.array([0, 1, 65535, 7], dtype=np.uint16),
        "confidence": [0.1 + 0.2, math.inf, -0.0, 1.0],
        "alternatives": [[], ["x", "y"], [True], [1, 2.5]],
        "errno": [{"receiver": ["ECONNRESET"], "sender": []}, None, {"a": [np.int64(3)]} and {"a": [3]}, {}],
        "evidence": [[1, 7], [np.int64(2), 3], [True, 1], None],
        "sender_inferred": [True, False, np.bool_(True), None],
        "resets": [None, 3.0, math.nan, 2],
        "connections": [None, None, None, None],
        "sources_sample": [None, ["10.0.0.1"], None, None],
        "ts": ["2026-01-01T00:00:00.000000001Z", None, pd.NA, "t"],
        "follows_frame": pd.array([None, 4, None, None], dtype="Int64"),
    })
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(jsonl, "fill_rows", None)
        assert json_lines(df) == reference_lines(df)
        assert json_lines(df.iloc[:1]) == reference_lines(df.iloc[:1])          # no flood fields set
        assert json_lines(df.iloc[0:0]) == [] == reference_lines(df.iloc[0:0])
    # a table of optional fields only: the object opens with whichever a record has first
    monkeypatch.undo()
    only_optional = df[["resets", "sources_sample"]]
    assert json_lines(only_optional) == reference_lines(only_optional)


def test_compiled_rows_equal_the_python_rows_on_awkward_tables(monkeypatch):
    """Tables where every record has every field go through the compiled filler (jsonfill.pyx):
    integers at the int64 edges, nullable ones, NA texts, texts a column repeats or not, shared and
    distinct dicts, empty and long frame lists, floats repeated (a code each) or not (Arrow's text),
    zeros of both signs and non-finite ones (repr for every value), texts quoted in C or not
    (quotes, backslashes, DEL, controls, non-ASCII), integers in lists beyond 64 bits, and the
    rows handed to a sink in pieces."""
    from rstwatch.report import jsonl
    assert jsonl.fill_rows is not None, "the compiled filler is built by bin/setup"
    shared = {"receiver": ["ECONNRESET"], "sender": []}
    n = 3_000
    rng = np.random.default_rng(7)
    df = pd.DataFrame({
        "file": pd.array(["a.pcap", "b\u00e9.pcap", None] * (n // 3), dtype="str"),
        "frame": np.r_[[np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0], rng.integers(-10**12, 10**12, n - 4)],
        "time": 1.7e9 + rng.random(n) * 1e5,
        "src": pd.array([f"10.0.{k // 256}.{k % 256}" for k in range(n)], dtype="str"),
        "confidence": rng.choice([0.7, 0.85, 0.3 + 0.6], n),
        "alternatives": [["x", "y"] if k % 2 else [] for k in range(n)],
        "errno": [shared if k % 3 else {"receiver": [], "sender": ["EPIPE"]} for k in range(n)],
        "evidence": [list(range(k % 5)) + [2**62 if k % 11 else -(2**70)] for k in range(n)],
        "summary": [["plain text", 'say "hi"', "back\\slash", "del\x7f", "tab\tcr\r", "caf\u00e9", None,
                     "\U0001F600 emoji"][k % 8] + str(k) if k % 8 != 6 else None for k in range(n)],
        "remediation": [["Drain first.", "Check logs."] if k % 3 else ["\u00e9t\u00e9"] for k in range(n)],
        "sender_inferred": rng.random(n) < 0.5,
        "ts": [None if k % 7 == 0 else f"t{k}\n" for k in range(n)],
        "follows_frame": pd.array([None if k % 2 else k for k in range(n)], dtype="Int64"),
    })
    monkeypatch.setattr(jsonl, "fill_rows", None)
    python_rows = json_lines(df)
    monkeypatch.undo()
    assert json_lines(df) == python_rows == reference_lines(df)
    pieces: list[bytes] = []
    assert jsonl._rows(df, pieces.append) is None and len(pieces) > 1
    assert b"".join(pieces).decode("ascii") == "".join(line + "\n" for line in python_rows)
    odd = df.iloc[:4].assign(time=[0.0, -0.0, math.inf, 1.0], confidence=[1e-5, 1e16, 123.0, -0.0])
    assert json_lines(odd) == reference_lines(odd)


def test_arrow_string_columns_are_read_from_their_buffers():
    """String columns reach the filler as Arrow's buffers ("a"): slices that start inside the
    buffers, several chunks, 32-bit offsets, nulls of both kinds, empty texts, texts that need
    escaping; written exactly as the Python rows."""
    import pyarrow as pa
    from pandas.arrays import ArrowStringArray
    from rstwatch.report import jsonl
    assert jsonl.fill_rows is not None, "the compiled filler is built by bin/setup"
    kinds_of_text = ["", "plain", 'q"uote', "back\\slash", "caf\u00e9", None, "\U0001F600", "nl\n", "del\x7f"]
    # distinct texts (a column that repeats its texts is coded instead), the empty one kept
    texts = [t if t in ("", None) else f"{t}{k}" for k in range(40) for t in kinds_of_text]
    chunked = pa.chunked_array([pa.array(texts[:100], pa.large_string()), pa.array(texts[100:], pa.large_string())])
    columns = {
        "file": pd.array(texts, dtype="str"),                                   # NaN for missing
        "src": pd.array(texts, dtype="string"),                                 # pd.NA for missing
        "dst": pd.Series(ArrowStringArray(chunked, dtype=pd.StringDtype("pyarrow", na_value=np.nan))),
        "summary": pd.Series(ArrowStringArray(pa.array(texts, pa.string()), dtype=pd.StringDtype("pyarrow", na_value=np.nan))),
        "ts": pd.array([None] * len(texts), dtype="str"),
        "frame": np.arange(len(texts)),
    }
    df = pd.DataFrame(columns)
    kinds = {c: jsonl._typed(df[c], {})[0] for c in ("file", "src", "dst", "summary")}
    assert set(kinds.values()) == {"a"}, kinds
    for table in (df, df.iloc[37:], df.iloc[101:250], df.iloc[5:5]):
        assert json_lines(table) == reference_lines(table)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_float_texts_are_reprs(values):
    from rstwatch.report.jsonl import float_texts
    assert float_texts(np.array(values, dtype=np.float64)) == [float.__repr__(v) for v in values]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(1e-4, 1e15), st.floats(allow_nan=False, allow_infinity=False),
                          st.integers(1_600_000_000_000_000, 1_900_000_000_000_000).map(lambda us: us / 1e6)),
                min_size=1, max_size=60, unique=True))
def test_float_columns_come_out_as_their_reprs(values):
    """A float column of distinct values reaches the filler as Arrow's texts ("r") when every one
    is repr's, else as texts: either way each line holds repr(value)."""
    from rstwatch.report import jsonl
    df = pd.DataFrame({"frame": np.arange(len(values)), "time": np.array(values, np.float64)})
    kind = jsonl._typed(df["time"], {})[0]
    assert kind in ("r", "t", "c")
    assert json_lines(df) == reference_lines(df)
    for table in (df.iloc[1:], df.iloc[: len(values) // 2]):
        assert json_lines(table) == reference_lines(table)


def test_capture_times_reach_the_filler_as_arrows_texts():
    from rstwatch.report import jsonl
    times = (1_700_000_000_000_000 + np.arange(0, 10**9, 12_345_679)) / 1e6       # epoch seconds, microseconds
    df = pd.DataFrame({"frame": np.arange(len(times)), "time": times})
    assert jsonl._typed(df["time"], {})[0] == "r"
    assert json_lines(df) == reference_lines(df)


def test_object_columns_are_coded_by_identity():
    """Shared lists and dicts are coded once per object; every row still writes its own value,
    and lists that hold a bool or a numpy integer are not taken for plain integer lists."""
    from rstwatch.report import jsonl
    shared, other, errno = ["a", "b"], ["c"], {"ECONNRESET": 104}
    n = 40
    df = pd.DataFrame({"frame": np.arange(n),
                       "remediation": pd.Series([shared if k % 3 else other for k in range(n)], dtype=object),
                       "errno": pd.Series([errno if k % 2 else {"EPIPE": 32} for k in range(n)], dtype=object),
                       "evidence": pd.Series([[k, k + 1] for k in range(n)], dtype=object)})
    assert jsonl._typed(df["remediation"], {})[0] == "c" and jsonl._typed(df["evidence"], {})[0] == "l"
    codes, distinct = jsonl.by_identity(df["remediation"].tolist())
    assert distinct == [other, shared] and distinct[1] is shared and codes.tolist() == [0 if k % 3 == 0 else 1 for k in range(n)]
    mixed = [1, 2, "a", None, "b", 3, True, [], 2.5, 2.5]
    assert jsonl.value_types(mixed) == set(map(type, mixed))
    many = [object() for _ in range(5000)]        # past the table's first sizes: it grows and rehashes
    codes, distinct = jsonl.by_identity(many + many[::-1])
    assert codes.tolist() == list(range(5000)) + list(range(4999, -1, -1)) and all(a is b for a, b in zip(distinct, many))
    assert json_lines(df) == reference_lines(df)
    for odd in ([1, True], [1, np.int64(2)], (1, 2)):
        df2 = df.copy()
        df2["evidence"] = pd.Series([list(df["evidence"][k]) for k in range(n - 1)] + [odd], dtype=object)
        assert jsonl._typed(df2["evidence"], {})[0] != "l"
        assert json_lines(df2) == reference_lines(df2)


_ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-3, 10**6),
                       st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, 1e-5, 1e16, 0.1]),
                       st.text(max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(_ANY_VALUE, min_size=1, max_size=8),            # mixed columns
                 st.lists(st.one_of(st.none(), st.integers(-(2**64), 2**64)), min_size=1, max_size=8),
                 st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8),
                 st.lists(st.booleans(), min_size=1, max_size=8)))
def test_a_column_of_values_reaches_the_filler_as_json_texts_writes_it(values):
    """jsoncols.typed hands integers (with or without None), floats and flags to the compiled
    filler as arrays: each row must still hold json_texts' text (null where None), whatever the
    column holds: integers beyond int64, NaN, infinities, -0.0, mixed types."""
    from rstwatch.report import jsoncols, jsonl
    assert jsonl.fill_rows is not None, "bin/setup builds report/jsonfill.pyx"
    want = "".join("{\"v\":" + ("null" if t is None else t) + "}\n" for t in jsoncols.json_texts(values))
    got = jsonl.fill_rows([b'{"v":'], [jsoncols.typed(values)], len(values), None, [False])
    assert (got.decode("ascii") if type(got) is bytes else got) == want
