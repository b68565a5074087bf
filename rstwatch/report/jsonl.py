"""JSON Lines: one object per RST, the field contract of records.py, in its order.

The lines are built a column at a time: each value is turned into its JSON text once (values a
column repeats, such as a cause, a rule's remediation or an errno object, are encoded once per
run of the table), then each row is joined from its fields: in C (jsonfill.pyx, from the
integer and boolean arrays themselves and a code per row for repeated values) when it is built,
else in Python. The bytes are exactly what `json.dumps(record, separators=(",", ":"))` gives for
each record of `iter_records` (tests/test_jsonl.py checks it on every bundled and public capture,
both ways); 100,000 findings take ~0.35 s in C, ~0.7 s in Python (~5 s through json.dumps)."""
from __future__ import annotations

import json
import math
import os
import sys
from itertools import chain
from typing import TYPE_CHECKING, TextIO

import numpy as np

from .. import columns
from ..columns import Masked, Table, Texts
from .records import CONTRACT_FIELDS, EXTRA_FIELDS, OPTIONAL_FIELDS, _plain, column_values, iter_records

if TYPE_CHECKING:       # a read's batches come as columns.Table (no pandas); DataFrames from the API, live, --jobs
    import pandas as pd

# The compiled row filler (jsonfill.pyx) when it was built, as for the packet loops (loops.py);
# RSTWATCH_PURE_PYTHON=1 keeps the Python rows below, the reference the tests compare it with.
fill_rows = int_list_texts = join_texts = object_ids = plain_int_lists = value_types = None
if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
    try:
        from .jsonfill import fill_rows, int_list_texts, join_texts, object_ids, plain_int_lists, value_types
    except ImportError:
        pass

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


def _plan(df: pd.DataFrame | Table) -> tuple[list[str], dict[str, list]] | None:
    """The fields every record of `df` writes and the column values the Python rows need; None for no row."""
    cols = [c for c in CONTRACT_FIELDS + EXTRA_FIELDS if c in df.columns]
    if not len(df) or not cols:
        return None
    # optional fields: as iter_records, only flood (tunnel) findings carry them; a table without any drops them
    optional = {c: _values(df, c, {}) for c in cols if c in OPTIONAL_FIELDS}
    return [c for c in cols if c not in optional or not all(map(_absent, optional[c]))], optional


def json_lines(df: pd.DataFrame) -> list[str]:
    """One JSON text per finding, without the newline."""
    text = jsonl_text(df)
    return text.split("\n")[:-1] if text else ["{}"] * len(df)


def jsonl_text(df: pd.DataFrame) -> str:
    """Every finding's JSON text followed by a newline ("" for no finding or no field)."""
    rows = _rows(df)
    return rows.decode("ascii") if type(rows) is bytes else rows


def _rows(df: pd.DataFrame, sink=None) -> str | bytes | None:
    """jsonl_text, as ASCII bytes when the compiled filler made them; with `sink` (a callable
    taking ASCII bytes), the compiled filler hands it the rows in pieces and None is returned."""
    plan = _plan(df)
    if plan is None:
        return "{}\n" * len(df)
    cols, optional = plan
    cache: dict = {}
    filled = compiled_fields(df, plan, cache)
    if filled is not None:
        prefixes = [(("{" if k == 0 else ",") + _string(c) + ":").encode("ascii") for k, c in enumerate(cols)]
        return fill_rows(prefixes, filled[0], len(df), sink, filled[1])
    if not any(c in OPTIONAL_FIELDS for c in cols):
        # every record has every field: rows filled column by column
        template = "{" + ",".join(_string(c).replace("%", "%%") + ":%s" for c in cols) + "}"
        return "".join(template % row + "\n" for row in zip(*(_texts(_values(df, c, optional), cache) for c in cols)))
    frags = [_optional_fragments(c, optional[c], cache) if c in OPTIONAL_FIELDS
             else [_string(c) + ":" + t for t in _texts(_values(df, c, optional), cache)] for c in cols]
    return "".join("{" + ",".join(filter(None, row)) + "}\n" for row in zip(*frags))


def compiled_fields(df: pd.DataFrame, plan: tuple[list[str], dict[str, list]], cache: dict) -> tuple[list, list[bool]] | None:
    """The record fields of _plan's columns as the compiled filler takes them: (typed columns,
    omit flags), an optional field (flood counts, tunnel) left out where a record has none.
    None when the filler was not built, or the first field is optional (it opens the object)."""
    cols, optional = plan
    if fill_rows is None or cols[0] in OPTIONAL_FIELDS:
        return None
    typed_of = _typed_column if isinstance(df, Table) else _typed
    typed = [("t", [None if _absent(v) else _value_text(int(v) if type(v) is float else v, cache) for v in optional[c]])
             if c in OPTIONAL_FIELDS else typed_of(df[c], cache) for c in cols]
    return typed, [c in OPTIONAL_FIELDS for c in cols]


def _values(df: pd.DataFrame, c: str, known: dict) -> list:
    """Object columns as they are (_value_text converts what needs it), the others made plain."""
    if c in known:
        return known[c]
    if isinstance(df, Table):
        return columns.tolist(df[c])
    return df[c].tolist() if df[c].dtype == object else column_values(df[c])


def _typed(col: pd.Series, cache: dict) -> tuple:
    """A column as the compiled filler takes it (jsonfill.pyx): integers and booleans as arrays,
    values a column repeats encoded once each (a code per row), other values as their JSON texts."""
    import pandas as pd
    dt = col.dtype
    if dt == np.int64 or dt == np.float64 or dt == np.bool_:
        return _typed_column(col.to_numpy(), cache)         # as a columns.Table holds them
    if isinstance(dt, pd.Int64Dtype):
        return _typed_column(Masked(col.to_numpy(dtype=np.int64, na_value=0), col.isna().to_numpy(), "Int64"), cache)
    if isinstance(dt, pd.StringDtype):
        if pd.unique(col.iloc[:1000]).size * 2 <= min(len(col), 1000):     # a column that repeats its texts
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            return ("c", np.ascontiguousarray(codes, dtype=np.int64), list(map(_string, uniques.tolist())))
        arrow = _arrow_strings(col)
        if arrow is not None:
            return ("a", *arrow, lambda v: _value_text(v, cache))
        return ("s", column_values(col), lambda v: _value_text(v, cache))
    if dt == object:
        return _typed_objects(col.tolist(), cache)
    return ("t", _texts(column_values(col), cache))


def _typed_column(col, cache: dict) -> tuple:
    """_typed for a column of a columns.Table: the same kinds from its arrays and lists."""
    if isinstance(col, np.ndarray) and col.dtype != object:
        if col.dtype == np.int64:
            return ("i", np.ascontiguousarray(col))
        if col.dtype == np.float64:
            typed = _typed_floats(col)
            if typed is not None:
                return typed
        elif col.dtype == np.bool_:
            return ("b", np.ascontiguousarray(col).view(np.uint8))
        return ("t", _texts(columns.tolist(col), cache))
    if isinstance(col, Masked):
        if col.dtype == "Int64":
            return ("n", np.ascontiguousarray(col.values, dtype=np.int64), np.ascontiguousarray(col.mask).view(np.uint8))
        return ("t", _texts(col.tolist(), cache))
    if isinstance(col, Texts):
        if col.coded is not None and all(type(t) is str for t in col.coded[0]):
            texts, codes = col.coded
            return ("c", np.ascontiguousarray(codes, dtype=np.int64), list(map(_string, texts)))
        if col.buffers is not None:
            offsets, data = col.buffers
            return ("a", np.ascontiguousarray(offsets, dtype=np.int64), data, None, lambda v: _value_text(v, cache))
    if isinstance(col, (Texts, columns.Meta, columns.Objects, columns.Missing, list, np.ndarray)):
        return _typed_objects(columns.tolist(col), cache)
    import pandas as pd                 # a pandas array (a table settled through pandas)
    return _typed(pd.Series(col, copy=False), cache)


def _typed_floats(arr: np.ndarray) -> tuple | None:
    """A float64 column as the filler takes it: a code per row into a few values (confidence),
    or every value's text (_float_column); None when not every value is finite and non-zero."""
    if np.isfinite(arr).all() and not (arr == 0).any():      # 0.0 and -0.0 are equal, printed apart
        distinct, codes = np.unique(arr, return_inverse=True)
        if len(distinct) * 4 <= len(arr):                      # confidence: a few values
            return ("c", np.ascontiguousarray(codes, dtype=np.int64), list(map(float.__repr__, distinct.tolist())))
        return _float_column(arr)
    return None


def _typed_objects(values: list, cache: dict) -> tuple:
    """_typed of a column of Python objects."""
    kinds = value_types(values)
    if kinds == {list} and type(next(chain.from_iterable(values), None)) is str:
        # alternatives, remediation: a few distinct lists of texts, coded once each. Rows
        # share their rule's or pattern's list (evaluate.classify, analyze.explain): coded by
        # object first
        codes, distinct = by_identity(values)
        if len(distinct) * 4 <= len(values) and all(type(e) is str for k in distinct for e in k):
            return ("c", codes, ["[" + ",".join(map(_string, k)) + "]" for k in distinct])
        index: dict[tuple, int] = {}
        codes = np.fromiter((index.setdefault(k, len(index)) for k in map(tuple, values)), np.int64, len(values))
        if all(type(e) is str for k in index for e in k):
            return ("c", codes, ["[" + ",".join(map(_string, k)) + "]" for k in index])
    if kinds == {list} and plain_int_lists(values):
        return ("l", values)        # evidence frames: each row its own
    if kinds == {dict}:             # errno: one object per rule, shared by its rows
        codes, distinct = by_identity(values)
        return ("c", codes, [_value_text(v, cache) for v in distinct])
    if kinds <= {str, type(None)}:  # summaries, addresses, filters: quoted in C
        return ("s", values, lambda v: _value_text(v, cache))
    return ("t", _texts(values, cache))


def by_identity(values: list) -> tuple[np.ndarray, list]:
    """(codes, distinct): each value's number among the distinct objects (by identity, in order
    of first appearance) and those objects, numbered by the flow keys' hash table."""
    from ..loops import factorize_keys
    ids = object_ids(values) if object_ids is not None else np.fromiter(map(id, values), np.uint64, len(values))
    codes, _ = factorize_keys(ids)
    # codes appear in order 0, 1, 2...: a code's first row is where the running maximum grows
    firsts = np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)
    return codes, [values[k] for k in firsts.tolist()]


def _arrow_strings(col: pd.Series) -> tuple | None:
    """(offsets, UTF-8 data, null mask or None) of a column held as Arrow strings, as the
    compiled filler reads them ("a"); None for any other storage."""
    import pyarrow as pa
    chunked = getattr(col.array, "_pa_array", None)
    if not isinstance(chunked, pa.ChunkedArray):
        return None
    arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    if arr.type == pa.string():
        arr = arr.cast(pa.large_string())
    if arr.type != pa.large_string():
        return None
    _, offsets, data = arr.buffers()
    if offsets is None:                 # an empty array may have no buffers at all
        offsets = np.zeros(1, np.int64).tobytes()
    offsets = np.frombuffer(offsets, np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    mask = arr.is_null().to_numpy(zero_copy_only=False).view(np.uint8) if arr.null_count else None
    return np.ascontiguousarray(offsets), data, mask


def _float_column(arr: np.ndarray) -> tuple:
    """A column of finite floats as the compiled filler takes it ("r"): float_texts' texts, left
    in the Arrow array's buffers. Without pyarrow loaded already (a read to JSON Lines loads
    none), each value's repr instead: ~0.15 us a value against pyarrow's import, ~30-60 ms."""
    if "pyarrow" not in sys.modules:
        return ("t", list(map(float.__repr__, arr.tolist())))
    text = float_text_array(arr)
    _, offsets, data = text.buffers()
    offsets = np.frombuffer(offsets, np.int64)[text.offset:text.offset + len(text) + 1]
    return ("r", np.ascontiguousarray(offsets), np.frombuffer(data, np.uint8))


def float_texts(arr: np.ndarray) -> list[str]:
    """float.__repr__ of every (finite) value (float_text_array's texts as Python strings)."""
    return float_text_array(arr).to_pylist()


def float_text_array(arr: np.ndarray):
    """float.__repr__ of every (finite) value as an Arrow large_string array, most of them from
    Arrow's shortest-digits cast in C (~0.1 us a value against ~0.6): both write the shortest
    digits that read back exactly, so the texts agree wherever both use plain decimal notation
    (1e-4 <= |x| < 1e16, a '.' and no 'e' in Arrow's: Arrow writes 1.0 as '1' and 1e-5 as
    '0.00001'); the rest are written by repr."""
    import pyarrow as pa
    import pyarrow.compute as pc
    text = pc.cast(pa.array(arr, type=pa.float64()), pa.large_string())
    size = np.abs(arr)
    plain = ((size >= 1e-4) & (size < 1e16) & pc.match_substring(text, ".").to_numpy(zero_copy_only=False)
             & ~pc.match_substring(text, "e").to_numpy(zero_copy_only=False))
    if plain.all():
        return text
    fixes = [None] * len(arr)
    for k in np.flatnonzero(~plain).tolist():
        fixes[k] = float.__repr__(float(arr[k]))
    return pc.if_else(pa.array(plain), text, pa.array(fixes, pa.large_string()))


def write_jsonl(df: pd.DataFrame, out: TextIO, info=None) -> None:
    rows = _rows(df, getattr(out, "write_ascii", None))     # a GuardedStream (report/output.py) takes bytes
    if not rows:
        return
    if type(rows) is bytes and hasattr(out, "write_ascii"):     # a GuardedStream (report/output.py)
        out.write_ascii(rows)
    else:
        out.write(rows.decode("ascii") if type(rows) is bytes else rows)


def reference_lines(df: pd.DataFrame) -> list[str]:
    """The same lines the plain way (a dict per record through json.dumps): the tests' oracle."""
    return [json.dumps(rec, separators=(",", ":")) for rec in iter_records(df)]


class JsonlSink:
    """`live`: the same records as `rstwatch read`; each tick's findings are written and flushed
    at once (a write and a flush per line cost ~10% of a live run at 20,000 resets/s)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        if len(df):                     # the findings of one tick: one write, then flushed
            write_jsonl(df, self.out)
            self.out.flush()

    def finish(self, tally) -> None:
        pass
