"""CSV: the JSON Lines columns, one flat row per RST.

A list becomes one cell of `;`-separated items; an item that holds a `;` or a quote is quoted
CSV-style inside the cell (remediation text does), so `csv.reader([cell], delimiter=";")`
gives the list back. errno becomes JSON.

A text cell that a spreadsheet would run as a formula (it starts with = + - @, a tab or a carriage
return: a file name like `=HYPERLINK(...)`) gets a leading `'`, as OWASP advises; numbers stay
numbers (docs/safe-io.md)."""
from __future__ import annotations

import csv
import io
import json
import re
from typing import TYPE_CHECKING, TextIO

from .. import columns
from .records import CONTRACT_FIELDS, EXTRA_FIELDS, OPTIONAL_FIELDS, _plain, column_values, iter_records

if TYPE_CHECKING:       # DataFrames or, from `read`, columns.Table: writing them needs no pandas
    import pandas as pd

LIST_FIELDS = ("alternatives", "evidence", "remediation", "sources_sample", "interfaces")
FIELDS = CONTRACT_FIELDS + EXTRA_FIELDS


_SPECIAL = (";", '"', "\n", "\r")


def join_list(items) -> str:
    texts = list(map(str, items or []))
    joined = ";".join(texts)
    # the common case, without a csv writer: no item holds a quote, a line end or a `;` (the
    # joined text then holds exactly the separators)
    if '"' not in joined and "\n" not in joined and "\r" not in joined and joined.count(";") == max(len(texts) - 1, 0):
        return joined
    buf = io.StringIO()
    csv.writer(buf, delimiter=";", lineterminator="\n").writerow(texts)     # quotes items holding ; " or newlines
    return buf.getvalue()[:-1]


def split_list(cell: str) -> list[str]:
    """The inverse of join_list (items come back as text)."""
    return next(csv.reader(io.StringIO(cell, newline=""), delimiter=";")) if cell else []


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def inert(value):
    """A cell no spreadsheet runs as a formula: text starting with = + - @ TAB CR gets a leading `'`
    (text that is just a number, like "-1", is left as it is: a spreadsheet reads it as that number)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _flat(rec: dict) -> dict:
    for key in LIST_FIELDS:
        if key in rec:
            rec[key] = join_list(rec[key])
    if "errno" in rec:                  # (a table without errno made a KeyError here: it now has empty cells)
        rec["errno"] = json.dumps(rec["errno"], separators=(",", ":"))
    for key, value in rec.items():
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            rec[key] = inert(value)
    return rec


def _cells(df: pd.DataFrame, name: str) -> list | None:
    """One column's values as _flat has them before making texts inert: lists joined, errno as
    JSON (None: a field the table lacks, an empty cell in every row, as DictWriter's restval).
    A column at a time: a record dict per row and DictWriter cost ~29 us a finding (100,000
    resets: 2.9 s of a 5.8 s report)."""
    if name not in df.columns:
        return None
    col = df[name]
    light = isinstance(df, columns.Table)
    objects = isinstance(col, (list, columns.Meta, columns.Objects)) if light else col.dtype == object
    if objects and (name in LIST_FIELDS or name == "errno"):
        from .jsonl import by_identity, plain_int_lists
        values = columns.tolist(col) if light else col.tolist()
        if name in LIST_FIELDS and name not in OPTIONAL_FIELDS and plain_int_lists is not None \
                and plain_int_lists(values):
            # evidence frames, each row its own list: no text of an int needs join_list's quoting
            from .joinrows import int_lists_joined
            return int_lists_joined(values, ";", "")
        # rows share their rule's errno object and remediation list, their pattern's alternatives:
        # each object's cell made once
        make = _errno_cell if name == "errno" else _optional_list_cell if name in OPTIONAL_FIELDS else _list_cell
        codes, distinct = by_identity(values)
        cells = [make(v) for v in distinct]
        return [cells[k] for k in codes.tolist()]
    values = columns.tolist(col) if light else column_values(col)
    if name in OPTIONAL_FIELDS:         # as iter_records: missing values left out (an empty cell), floats as ints
        values = [None if v is None or (isinstance(v, float) and v != v) else int(v) if isinstance(v, float) else v
                  for v in values]
    if name in LIST_FIELDS:
        values = [None if v is None and name in OPTIONAL_FIELDS else join_list(v) for v in values]
    elif name == "errno":
        values = [json.dumps(v, separators=(",", ":")) for v in values]
    return values


def _errno_cell(value) -> str:
    return json.dumps(_plain(value), separators=(",", ":"))


def _list_cell(value) -> str:
    return join_list(_plain(value))


def _optional_list_cell(value) -> str | None:
    value = _plain(value)
    if value is None or (isinstance(value, float) and value != value):
        return None                     # left out of the record: an empty cell
    return join_list(int(value) if isinstance(value, float) else value)


def header_line() -> str:
    return ",".join(FIELDS) + "\n"          # the field names hold nothing csv would quote


def _quoted_by_csv() -> str:
    """The characters for which csv.writer (excel dialect, `\n` line ends) quotes a field on this
    Python, probed once: 3.11 quotes `,` `"` and `\n` but not `\r`."""
    chars = ""
    for c in map(chr, range(128)):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(["a" + c + "b", "x"])
        if buf.getvalue() != "a" + c + "b,x\n":
            chars += c
    return chars


_QUOTED = _quoted_by_csv()
_NEEDS_QUOTES = re.compile("[" + re.escape(_QUOTED) + "]" if _QUOTED else "(?!)")


# a cell that starts as a formula would, in a column's cells joined by NULs (the expression
# starts with a literal, which the regular expression engine looks for at memchr's speed)
_FORMULA_AFTER_NUL = re.compile("\x00[" + re.escape("".join(_FORMULA_START)) + "]")


def _starts_a_formula(joined: str) -> bool:
    return joined.startswith(_FORMULA_START) or _FORMULA_AFTER_NUL.search(joined) is not None


_NUMBER_TYPES = frozenset((int, float, bool))
_NONE_TYPE = {type(None)}
_FLOAT_TYPE = {float}


def _fields(cells: list | None, n: int) -> list[str]:
    """A column's cells (_cells) as CSV fields: texts made inert (_flat), None empty, other values
    as csv.writer makes them (str()), quoted with quotes doubled when they hold a character in
    _QUOTED. A column at a time, one search over the whole column first for each (most columns
    need neither): csv.writer looks at every character of every field through a lookup in the
    line terminator, ~1.5 s for 100,000 findings."""
    if cells is None:
        return [""] * n
    kinds = set(map(type, cells))
    if kinds <= _NUMBER_TYPES:              # numbers and flags, as str() writes them: nothing to quote
        if kinds == _FLOAT_TYPE:
            import numpy as np
            values = np.array(cells, float)
            if np.isfinite(values).all():   # repr's digits from Arrow's cast in C (~0.1 us a value, not ~0.7)
                from .jsonl import float_texts
                return float_texts(values)
        return list(map(str, cells)) if kinds else []
    if kinds == _NONE_TYPE:
        return [""] * n
    try:
        texts, joined = cells, "\x00".join(cells)          # every cell a text (fails at the first other)
        if _starts_a_formula(joined):
            texts = [inert(v) if v.startswith(_FORMULA_START) else v for v in cells]
    except TypeError:
        texts = [(inert(v) if v.startswith(_FORMULA_START) else v) if isinstance(v, str)
                 else "" if v is None else str(v) for v in cells]
        joined = "\x00".join(texts)
    if not any(c in joined for c in _QUOTED):
        return texts
    once = dict.fromkeys(texts)
    if len(once) * 4 <= len(texts):         # a rule's errno and remediation, repeated: quoted once each
        quoted = dict(zip(once, _quoted_fields(list(once), '"' in joined)))
        return list(map(quoted.__getitem__, texts))
    return _quoted_fields(texts, '"' in joined)


def _quoted_fields(texts: list[str], has_quote: bool) -> list[str]:
    """Each text as a CSV field: quoted, quotes doubled, when it holds a character in _QUOTED."""
    if len(_QUOTED) <= 3:
        # a cell is quoted when it holds one of them: three `in` tests a cell cost a third of a
        # regular expression search; quotes are doubled only in a column that holds one
        a, b, c = (_QUOTED * 3)[:3]
        if not has_quote:
            return ['"' + t + '"' if a in t or b in t or c in t else t for t in texts]
        return ['"' + t.replace('"', '""') + '"' if a in t or b in t or c in t else t for t in texts]
    search = _NEEDS_QUOTES.search
    return ['"' + t.replace('"', '""') + '"' if search(t) else t for t in texts]


def csv_text(df: pd.DataFrame, header: bool = True) -> str:
    """The CSV of `df`: the cells of each column made once (_cells) and turned into fields
    (_fields), byte for byte what a DictWriter writes from `iter_records` through _flat
    (tests/test_formats.py compares them). Filled in C where the filler was built."""
    head = header_line() if header else ""
    n = len(df)
    if not n:
        return head
    rows = _compiled_rows(df, n)
    if rows is not None:
        return head + rows
    from .joinrows import delimited
    return head + delimited([_fields(_cells(df, f), n) for f in FIELDS], ",")


def _compiled_rows(df: pd.DataFrame, n: int) -> str | None:
    """The rows through the compiled filler (report/jsonfill.pyx): numbers and Arrow texts written
    from their buffers (texts quoted in C where they hold a character csv quotes), the rest as
    _fields makes it; None where the filler was not built or a text cannot be UTF-8 (a lone
    surrogate from an undecodable file name): the Python join then writes what csv would."""
    from .jsonl import fill_rows
    if fill_rows is None:
        return None
    prefixes = [b""] + [b","] * (len(FIELDS) - 1)
    try:
        rows = fill_rows(prefixes, [_typed_field(df, name, n) for name in FIELDS], n, None, None, b"\n")
    except UnicodeEncodeError:
        return None
    return rows.decode("utf-8")


def _typed_field(df: pd.DataFrame, name: str, n: int) -> tuple:
    """Column `name` as the compiled filler takes it, each row's field what _fields(_cells(df,
    name), n) gives: integers, finite floats (repr's digits from Arrow) and flags from their
    arrays, Arrow texts from their buffers when none needs making inert (a formula start) and
    none is missing; the other columns as _fields' texts."""
    import numpy as np
    if name not in df.columns:
        return ("c", np.zeros(n, np.int64), [""])          # an empty field in every row
    col = df[name]
    if isinstance(df, columns.Table):
        return _typed_table_field(df, col, name, n)
    import pandas as pd
    dt = col.dtype
    # optional fields write floats as ints and leave missing ones empty; lists and errno are
    # made texts first (join_list, JSON): those columns keep _fields' texts whatever their type
    if name not in OPTIONAL_FIELDS and name not in LIST_FIELDS and name != "errno":
        if dt == np.int64:
            return ("i", np.ascontiguousarray(col.to_numpy()))
        if dt == np.float64:
            values = col.to_numpy()
            if np.isfinite(values).all():
                from .jsonl import _float_column
                return _float_column(values)
        elif dt == np.bool_:
            return ("c", col.to_numpy().astype(np.int64), ["False", "True"])
        elif isinstance(dt, pd.StringDtype):
            typed = _arrow_field(col)
            if typed is not None:
                return typed
    return ("t", _fields(_cells(df, name), n))


def _typed_table_field(table: columns.Table, col, name: str, n: int) -> tuple:
    """_typed_field of a columns.Table's column: the same kinds from its arrays and text
    buffers (the other columns as _fields' texts, which are what the kinds write)."""
    import numpy as np
    if name not in OPTIONAL_FIELDS and name not in LIST_FIELDS and name != "errno":
        if isinstance(col, np.ndarray) and col.dtype == np.int64:
            return ("i", np.ascontiguousarray(col))
        if isinstance(col, np.ndarray) and col.dtype == np.float64 and np.isfinite(col).all():
            from .jsonl import _float_column
            return _float_column(col)
        if isinstance(col, np.ndarray) and col.dtype == np.bool_:
            return ("c", col.astype(np.int64), ["False", "True"])
        buffers = _text_buffers(col)
        if buffers is not None:
            typed = _buffers_field(*buffers)
            if typed is not None:
                return typed
    return ("t", _fields(_cells(table, name), n))


def _text_buffers(col) -> tuple | None:
    """(offsets, UTF-8 data) of a column of texts, every one present: the buffers the verdicts
    wrote, or the texts joined when all are ASCII (addresses, file names, states: what pandas
    held as Arrow texts, whose buffers its path quotes in C); None for any other column."""
    if isinstance(col, columns.Texts) and col.buffers is not None:
        return col.buffers
    if not isinstance(col, (columns.Texts, columns.Meta, list)):
        return None
    return columns.ascii_buffers(columns.tolist(col))


_FORMULA_BYTES = [ord(c) for c in _FORMULA_START]
_QUOTED_BYTES = _QUOTED.encode("ascii")


def _arrow_field(col: pd.Series) -> tuple | None:
    """A column of Arrow texts as its buffers ("q": quoted in C where a text holds one of
    _QUOTED), or None when a text is missing or starts as a formula would (Python decides those:
    `inert` leaves a number such as -1 as it is)."""
    from .jsonl import _arrow_strings
    arrow = _arrow_strings(col)
    if arrow is None or arrow[2] is not None:
        return None
    return _buffers_field(*arrow[:2])


def _buffers_field(offsets, data) -> tuple | None:
    """Texts held as UTF-8 buffers, every one present, as the "q" field; None when one starts
    as a formula would."""
    import numpy as np
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]
    if len(starts) and np.isin(data[starts], _FORMULA_BYTES).any():
        return None
    return ("q", offsets, data, _QUOTED_BYTES)


def reference_csv(df: pd.DataFrame) -> str:
    """The same CSV the plain way (a record dict per row through DictWriter): the tests' oracle."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for rec in iter_records(df):
        writer.writerow(_flat(rec))
    return buf.getvalue()


def write_csv(df: pd.DataFrame, out: TextIO, info=None) -> None:
    out.write(csv_text(df))


class CsvSink:
    """`live --format csv`: the header once, then rows as resets are decided."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        self.out.write(header_line())
        self.out.flush()

    def write(self, df: pd.DataFrame) -> None:
        if len(df):
            self.out.write(csv_text(df, header=False))
        self.out.flush()

    def finish(self, tally) -> None:
        pass
