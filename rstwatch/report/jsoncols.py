"""JSON texts of a column's values, a column at a time: for each value what
`json.dumps(value, separators=(",", ":"))` gives (None for None, a field left out). Texts,
integers and finite floats are made by the encoder's own functions without an encoder per value
(json.dumps with separators builds one each call: ~1.5 us); lists and dicts once per object,
since rows share them (a rule's remediation and errno, a pattern's alternatives)."""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np

NONE = type(None)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def json_texts(values: list) -> list[str | None]:
    kinds = set(map(type, values))
    if kinds <= {str, NONE}:
        return [None if v is None else encode_basestring_ascii(v) for v in values]
    if kinds <= {int, NONE}:
        return [None if v is None else int.__repr__(v) for v in values]
    if kinds <= {float, NONE} and all(v - v == 0 for v in values if v is not None):     # no NaN, no infinity
        return [None if v is None else float.__repr__(v) for v in values]
    if kinds <= {bool, NONE}:
        return [None if v is None else "true" if v else "false" for v in values]
    done: dict = {}
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        k = id(v) if type(v) in (list, dict) else None
        text = done.get(k) if k is not None else None
        if text is None:
            if type(v) is list and all(type(x) is int for x in v):       # frame numbers: each row its own
                text = "[" + ",".join(map(int.__repr__, v)) + "]"
            else:
                text = _dumps(v)
            if k is not None:
                done[k] = text
        out.append(text)
    return out


def fields(name: str, values: list, null: bool = False) -> list[str]:
    """`"name":value` for each value; where it is None, "" (left out of its object) or, with
    `null`, `"name":null`."""
    key = encode_basestring_ascii(name) + ":"
    missing = key + "null" if null else ""
    return [missing if t is None else key + t for t in json_texts(values)]


def objects(columns: list[list[str]]) -> str:
    """One JSON object a line from columns of fields() (empty fields left out)."""
    return "".join(["{" + ",".join(filter(None, row)) + "}\n" for row in zip(*columns)])


def typed(values: list) -> tuple:
    """A column of values as the compiled filler (jsonfill.pyx) takes it, each written as
    json_texts writes it (None: null, or left out where the filler omits it): texts quoted in
    C, lists of plain ints written in C, lists and dicts rows share (a rule's remediation and
    errno, a pattern's alternatives) encoded once each; json_texts' own texts for the rest."""
    from .jsonl import by_identity, plain_int_lists, value_types
    kinds = value_types(values)
    if kinds <= {str, NONE}:
        return ("s", values, encode_basestring_ascii)
    if kinds == {int} or kinds == {int, NONE}:          # ports, frames, counts: written in C
        missing = [v is None for v in values] if NONE in kinds else None
        try:
            ints = np.array([0 if v is None else v for v in values] if missing else values, np.int64)
        except OverflowError:                           # beyond int64: Python writes them
            return ("t", json_texts(values))
        if missing is None:
            return ("i", ints)
        return ("n", ints, np.array(missing, bool).view(np.uint8))
    if kinds == {float}:                                # times, confidences: repr's digits from Arrow
        from .jsonl import _float_column
        floats = np.array(values, np.float64)
        if np.isfinite(floats).all():
            return _float_column(floats)
    if kinds == {bool}:
        return ("b", np.array(values, bool).view(np.uint8))
    if kinds == {list} and plain_int_lists(values):
        return ("l", values)
    if kinds <= {list, NONE} or kinds <= {dict, NONE}:
        codes, distinct = by_identity(values)
        texts = json_texts(distinct)
        if None in distinct:                    # null: code -1
            codes = np.where(codes == distinct.index(None), -1, codes)
        return ("c", np.ascontiguousarray(codes, np.int64), [t if t is not None else "null" for t in texts])
    return ("t", json_texts(values))
