"""JSON Lines: one object per RST, the field contract of records.py, in its order.

The lines are built a column at a time: each value is turned into its JSON text once (values a
column repeats, such as a cause, a rule's remediation or an errno object, are encoded once per
run of the table), then each row is joined from its fields. The bytes are exactly what
`json.dumps(record, separators=(",", ":"))` gives for each record of `iter_records`
(tests/test_formats.py checks it on every bundled and public capture); it costs ~3 us a row
instead of ~50 us."""
from __future__ import annotations

import json
import math
from typing import TextIO

import pandas as pd

from .records import CONTRACT_FIELDS, EXTRA_FIELDS, FLOOD_ONLY_FIELDS, _plain, column_values, iter_records

_ENCODER = json.JSONEncoder(separators=(",", ":"))      # what json.dumps(..., separators=...) builds
_string = json.encoder.encode_basestring_ascii          # json's own (C) string encoder, ensure_ascii


def _list_text(v: list, cache: dict) -> str:
    """A list of numbers or texts (evidence frames, alternatives, remediation), by its content."""
    try:
        key = tuple(v)
        hit = cache.get(key)
    except TypeError:                   # an element that cannot be a key (a dict): no cache
        return _ENCODER.encode(_plain(v))
    if hit is None:
        kinds = set(map(type, v))
        if kinds <= {int}:
            hit = "[" + ",".join(map(int.__repr__, v)) + "]"
        elif kinds <= {str}:
            hit = "[" + ",".join(map(_string, v)) + "]"
        else:
            hit = _ENCODER.encode(_plain(v))
        if len(cache) < 65536:
            cache[key] = hit
    return hit


def _value_text(v, cache: dict) -> str:
    """The JSON text of one value, as json.dumps writes it."""
    t = type(v)
    if t is str:
        return _string(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return int.__repr__(v)
    if t is float and math.isfinite(v):
        return float.__repr__(v)
    if t is list:
        return _list_text(v, cache)
    if t is dict:
        key = id(v)                      # the same object shared by rows (errno per rule)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = (v, _ENCODER.encode(v))     # v kept: its id stays its own
        return hit[1]
    plain = _plain(v)                   # numpy scalars, pd.NA, NaN: as records.py converts them
    return _value_text(plain, cache) if plain is not v else _ENCODER.encode(v)


# Columns of one plain type: the type's own JSON text, without a test per value.
_PLAIN_TEXT = {str: _string, int: int.__repr__}


def _fragments(name: str, values: list) -> list[str]:
    """`"name":value` for every row; "" where a flood-only field is absent from the record."""
    prefix = _string(name) + ":"
    cache: dict = {}
    if name in FLOOD_ONLY_FIELDS:       # as iter_records: only flood findings carry these
        return ["" if v is None or (type(v) is float and v != v)
                else prefix + _value_text(int(v) if type(v) is float else v, cache) for v in values]
    kinds = set(map(type, values))
    if len(kinds) == 1:
        kind = kinds.pop()
        text = _PLAIN_TEXT.get(kind)
        if kind is float and all(map(math.isfinite, values)):
            text = float.__repr__
        if text is not None:
            return [prefix + t for t in map(text, values)]
    return [prefix + _value_text(v, cache) for v in values]


def json_lines(df: pd.DataFrame) -> list[str]:
    """One JSON text per finding, without the newline."""
    cols = [c for c in CONTRACT_FIELDS + EXTRA_FIELDS if c in df.columns]
    if not len(df) or not cols:
        return ["{}"] * len(df)
    # object columns as they are (_value_text converts what needs it), the others made plain
    frags = [_fragments(c, df[c].tolist() if df[c].dtype == object else column_values(df[c])) for c in cols]
    optional = any(c in FLOOD_ONLY_FIELDS for c in cols)
    if optional:
        return ["{" + ",".join(filter(None, row)) + "}" for row in zip(*frags)]
    return ["{" + ",".join(row) + "}" for row in zip(*frags)]


def write_jsonl(df: pd.DataFrame, out: TextIO, info=None) -> None:
    lines = json_lines(df)
    if lines:
        out.write("\n".join(lines) + "\n")


def reference_lines(df: pd.DataFrame) -> list[str]:
    """The same lines the plain way (a dict per record through json.dumps): the tests' oracle."""
    return [json.dumps(rec, separators=(",", ":")) for rec in iter_records(df)]


class JsonlSink:
    """`live`: the same records as `rstwatch read`, each line flushed as it is written."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        for line in json_lines(df):
            self.out.write(line + "\n")
            self.out.flush()

    def finish(self, tally) -> None:
        pass
