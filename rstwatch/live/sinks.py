"""Where live verdicts go: one line per reset as soon as it is decided, flushed at once."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from typing import TextIO

import pandas as pd

from ..report.records import iter_records


class JsonlSink:
    """The same JSON Lines records as `rstwatch read`, one per reset."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        for rec in iter_records(df):
            self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.out.flush()

    def finish(self, df: pd.DataFrame) -> None:
        pass


class TableSink:
    """A streaming table for a terminal: fixed columns, one row per reset, then a summary by cause."""

    COLUMNS = f"{'time (UTC)':12}  {'frame':>8}  {'sender -> receiver':45}  {'by':7}  {'cause':22}  {'conf':>4}  why"

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        self.out.write(self.COLUMNS + "\n")
        self.out.flush()

    def write(self, df: pd.DataFrame) -> None:
        for row in df.itertuples(index=False):
            clock = datetime.fromtimestamp(row.time, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            flood = row.sport == 0 and row.dport == 0
            conn = f"{row.src} -> {row.dst} (flood)" if flood else f"{row.src}:{row.sport} -> {row.dst}:{row.dport}"
            self.out.write(f"{clock:12}  {row.frame:>8}  {conn:45}  {row.sender:7}  {row.cause:22}  "
                           f"{row.confidence:>4.2f}  {row.title}\n")
        self.out.flush()

    def finish(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        from rich.console import Console
        from ..report.table import write_cause_summary
        console = Console(file=self.out, width=None if self.out.isatty() else 160, highlight=False)
        console.print()
        write_cause_summary(df, console)


def cause_counts(df: pd.DataFrame) -> Counter:
    """Resets per cause (a flood finding counts all its resets)."""
    counts: Counter = Counter()
    if not len(df):
        return counts
    weights = df["resets"].fillna(1).astype(int) if "resets" in df else pd.Series(1, index=df.index)
    for cause, n in zip(df["cause"], weights):
        counts[cause] += int(n)
    return counts
