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

from .records import CONTRACT_FIELDS, EXTRA_FIELDS, iter_records

if TYPE_CHECKING:       # tables are given: writing none (a capture without RST) needs no pandas
    import pandas as pd

LIST_FIELDS = ("alternatives", "evidence", "remediation", "sources_sample", "interfaces")
FIELDS = CONTRACT_FIELDS + EXTRA_FIELDS


_SPECIAL = (";", '"', "\n", "\r")


def join_list(items) -> str:
    texts = [str(x) for x in items or []]
    if not any(c in t for t in texts for c in _SPECIAL):        # the common case, without a csv writer
        return ";".join(texts)
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
    rec["errno"] = json.dumps(rec["errno"], separators=(",", ":"))
    for key, value in rec.items():
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            rec[key] = inert(value)
    return rec


def write_csv(df: pd.DataFrame, out: TextIO, info=None) -> None:
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for rec in iter_records(df):
        writer.writerow(_flat(rec))


class CsvSink:
    """`live --format csv`: the header once, then rows as resets are decided."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")

    def start(self, what: str) -> None:
        self.writer.writeheader()
        self.out.flush()

    def write(self, df: pd.DataFrame) -> None:
        for rec in iter_records(df):
            self.writer.writerow(_flat(rec))
        self.out.flush()

    def finish(self, tally) -> None:
        pass
