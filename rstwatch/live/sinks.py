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

    def finish(self, tally: "CauseTally") -> None:
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

    def finish(self, tally: "CauseTally") -> None:
        if not tally.total():
            return
        from rich import box
        from rich.console import Console
        from rich.table import Table
        console = Console(file=self.out, width=None if self.out.isatty() else 160, highlight=False)
        table = Table(title="By cause", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for name, opts in (("cause", {"no_wrap": True}), ("resets", {"justify": "right"}),
                           ("sent by", {"no_wrap": True}), ("what to change first", {"ratio": 1, "overflow": "fold"})):
            table.add_column(name, **opts)
        for cause, n in sorted(tally.resets.items(), key=lambda kv: (-kv[1], kv[0])):
            senders = ", ".join(f"{k} {v}" for k, v in tally.senders[cause].most_common())
            table.add_row(cause, str(n), senders, tally.fix.get(cause, ""))
        console.print()
        console.print(table)


def reset_weights(df: pd.DataFrame) -> pd.Series:
    """How many resets each finding stands for (a flood finding counts all of its own)."""
    return df["resets"].fillna(1).astype(int) if "resets" in df else pd.Series(1, index=df.index)


class CauseTally:
    """Resets per cause and sender for the closing summary: a few counters, not every finding,
    so a session that runs for days keeps constant memory."""

    def __init__(self) -> None:
        self.resets: Counter = Counter()
        self.senders: dict[str, Counter] = {}
        self.fix: dict[str, str] = {}

    def add(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        for cause, sender, fixes, n in zip(df["cause"], df["sender"], df["remediation"], reset_weights(df)):
            self.resets[cause] += int(n)
            self.senders.setdefault(cause, Counter())[sender] += 1
            if cause not in self.fix and len(fixes):
                self.fix[cause] = fixes[0]

    def total(self) -> int:
        return sum(self.resets.values())
