"""JSON Lines are built a column at a time (rstwatch/report/jsonl.py) for speed; every line must
be byte for byte what json.dumps gives for the record (the field contract, its order, its nulls):
on every finding of every bundled and public capture, and on a table of awkward values."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

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


def test_awkward_values_come_out_as_json_dumps_writes_them():
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
    assert json_lines(df) == reference_lines(df)
    assert json_lines(df.iloc[:1]) == reference_lines(df.iloc[:1])          # no flood fields set
    assert json_lines(df.iloc[0:0]) == [] == reference_lines(df.iloc[0:0])
