"""JSON Lines: one object per RST, the field contract of records.py, in its order."""
from __future__ import annotations

import json
from typing import TextIO

import pandas as pd

from .records import iter_records


def write_jsonl(df: pd.DataFrame, out: TextIO, info=None) -> None:
    for rec in iter_records(df):
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")


class JsonlSink:
    """`live`: the same records as `rstwatch read`, each line flushed as it is written."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        for rec in iter_records(df):
            self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.out.flush()

    def finish(self, tally) -> None:
        pass
