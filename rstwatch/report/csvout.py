"""CSV: the JSON Lines columns, one flat row per RST.

A list becomes one cell of `;`-separated items; an item that holds a `;` or a quote is quoted
CSV-style inside the cell (remediation text does), so `csv.reader([cell], delimiter=";")`
gives the list back. errno becomes JSON."""
from __future__ import annotations

import csv
import io
import json
from typing import TextIO

import pandas as pd

from .records import CONTRACT_FIELDS, EXTRA_FIELDS, iter_records

LIST_FIELDS = ("alternatives", "evidence", "remediation", "sources_sample")
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


def _flat(rec: dict) -> dict:
    for key in LIST_FIELDS:
        if key in rec:
            rec[key] = join_list(rec[key])
    rec["errno"] = json.dumps(rec["errno"], separators=(",", ":"))
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
