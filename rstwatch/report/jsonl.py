"""JSON Lines: one object per RST, the field contract of records.py, in its order.

The lines are built a column at a time: each value is turned into its JSON text once (values a
column repeats, such as a cause, a rule's remediation or an errno object, are encoded once per
run of the table), then each row is joined from its fields. The bytes are exactly what
`json.dumps(record, separators=(",", ":"))` gives for each record of `iter_records`
(tests/test_jsonl.py checks it on every bundled and public capture); it costs ~15 us a row
instead of ~50 us."""
from __future__ import annotations

import json
import math
from itertools import chain
from typing import TextIO

import pandas as pd

from .records import CONTRACT_FIELDS, EXTRA_FIELDS, OPTIONAL_FIELDS, _plain, column_values, iter_records

_ENCODER = json.JSONEncoder(separators=(",", ":"))      # what json.dumps(..., separators=...) builds
_string = json.encoder.encode_basestring_ascii          # json's own (C) string encoder, ensure_ascii


def _list_text(v: list, cache: dict) -> str:
    """A list of numbers or of texts (evidence frames, alternatives, remediation), by its content."""
    kinds = set(map(type, v))
    if not (kinds <= {int} or kinds <= {str}):      # bools, floats, dicts...: no cache ([1] is not [true])
        return _ENCODER.encode(_plain(v))
    key = tuple(v)
    hit = cache.get(key)
    if hit is None:
        hit = "[" + ",".join(map(int.__repr__ if kinds <= {int} else _string, v)) + "]"
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


def _texts(values: list, cache: dict) -> list[str]:
    """The JSON text of every value of a column."""
    kinds = set(map(type, values))
    if len(kinds) == 1:
        kind = kinds.pop()
        text = _PLAIN_TEXT.get(kind)
        if kind is float and all(map(math.isfinite, values)):
            text = _float_texts(values)
        if text is not None:
            return list(map(text, values))
        if kind is list:
            return _list_texts(values, cache)
    return [_value_text(v, cache) for v in values]


def _float_texts(values: list[float]):
    """float's repr, looked up when a column repeats a few values (confidence)."""
    distinct = set(values)
    if len(distinct) * 4 > len(values) or 0.0 in distinct:      # 0.0 == -0.0, printed apart
        return float.__repr__
    return {v: float.__repr__(v) for v in distinct}.__getitem__


def _list_texts(values: list[list], cache: dict) -> list[str]:
    """A column of lists: of ints (evidence frames: each row its own, written as Python prints
    them without the spaces), of texts (alternatives, remediation: a few distinct lists, each
    encoded once), else value by value. The element types are checked once for the column."""
    kinds = set(map(type, chain.from_iterable(values)))
    if kinds <= {int}:
        return [list.__repr__(v).replace(" ", "") for v in values]
    if kinds <= {str}:
        memo: dict[tuple, str] = {}
        out = []
        for v in values:
            key = tuple(v)
            hit = memo.get(key)
            if hit is None:
                hit = memo[key] = "[" + ",".join(map(_string, v)) + "]"
            out.append(hit)
        return out
    return [_list_text(v, cache) for v in values]


def _absent(v) -> bool:
    return v is None or (type(v) is float and v != v)


def _optional_fragments(name: str, values: list, cache: dict) -> list[str]:
    """`"name":value` where an optional field (flood counts, tunnel) is set, "" where the record leaves it out."""
    prefix = _string(name) + ":"
    return ["" if _absent(v) else prefix + _value_text(int(v) if type(v) is float else v, cache) for v in values]


def json_lines(df: pd.DataFrame) -> list[str]:
    """One JSON text per finding, without the newline."""
    cols = [c for c in CONTRACT_FIELDS + EXTRA_FIELDS if c in df.columns]
    if not len(df) or not cols:
        return ["{}"] * len(df)
    # object columns as they are (_value_text converts what needs it), the others made plain
    values = {c: df[c].tolist() if df[c].dtype == object else column_values(df[c]) for c in cols}
    # as iter_records: only flood (tunnel) findings carry the optional fields; a table without any drops them
    cols = [c for c in cols if c not in OPTIONAL_FIELDS or not all(map(_absent, values[c]))]
    cache: dict = {}
    if not any(c in OPTIONAL_FIELDS for c in cols):
        # every record has every field: one template per table, filled a row at a time
        template = "{" + ",".join(_string(c).replace("%", "%%") + ":%s" for c in cols) + "}"
        return [template % row for row in zip(*(_texts(values[c], cache) for c in cols))]
    frags = [_optional_fragments(c, values[c], cache) if c in OPTIONAL_FIELDS
             else [_string(c) + ":" + t for t in _texts(values[c], cache)] for c in cols]
    return ["{" + ",".join(filter(None, row)) + "}" for row in zip(*frags)]


def write_jsonl(df: pd.DataFrame, out: TextIO, info=None) -> None:
    lines = json_lines(df)
    if lines:                           # two writes: no copy of the whole text to add a newline
        out.write("\n".join(lines))
        out.write("\n")


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
