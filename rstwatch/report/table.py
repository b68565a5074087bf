"""The terminal view: per file, one row per RST; then a summary by cause with what to change."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

MAX_ROWS = 200


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def write_table(df: pd.DataFrame, out: TextIO, packets: int, files: int, width: int | None = None) -> None:
    console = Console(file=out, width=width or (None if out.isatty() else 180), highlight=False)
    days = sorted({_day(t) for t in df["time"]}) if len(df) else []
    resets = len(df) + (int(df["resets"].fillna(1).sum()) - len(df) if "resets" in df else 0)
    console.print(f"{len(df)} finding(s) for {resets} TCP reset(s) in {files} file(s), {packets} packets read"
                  + (f"; times are UTC on {', '.join(days)}" if days else ""))
    if not len(df):
        return
    multi = df["file"].nunique() > 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    if multi:
        table.add_column("file", no_wrap=True)
    table.add_column("frame", justify="right")
    table.add_column("time", no_wrap=True)
    table.add_column("sender -> receiver", no_wrap=True)
    table.add_column("by")
    table.add_column("cause", no_wrap=True)
    table.add_column("conf", justify="right")
    table.add_column("why", ratio=1, overflow="fold", min_width=30)
    for row in df.head(MAX_ROWS).itertuples(index=False):
        flood = row.sport == 0 and row.dport == 0          # flood findings name hosts, not a connection
        conn = f"{row.src} -> {row.dst} (flood)" if flood else f"{row.src}:{row.sport} -> {row.dst}:{row.dport}"
        cells = [str(row.frame), _clock(row.time), conn,
                 row.sender, row.cause, f"{row.confidence:.2f}", row.title]
        if multi:
            cells.insert(0, Path(str(row.file)).name)
        table.add_row(*cells)
    console.print(table)
    if len(df) > MAX_ROWS:
        console.print(f"... {len(df) - MAX_ROWS} more rows not shown (use --format jsonl or csv for all)")
    write_cause_summary(df, console)


def write_cause_summary(df: pd.DataFrame, console: Console) -> None:
    summary = Table(title="By cause", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    summary.add_column("cause", no_wrap=True)
    summary.add_column("resets", justify="right")
    summary.add_column("sent by", no_wrap=True)
    summary.add_column("what to change first", ratio=1, overflow="fold")
    def count(grp: pd.DataFrame) -> int:   # a flood finding stands for many resets
        return int(grp["resets"].fillna(1).sum()) if "resets" in grp else len(grp)

    for cause, grp in sorted(df.groupby("cause"), key=lambda kv: (-count(kv[1]), kv[0])):
        senders = ", ".join(f"{k} {v}" for k, v in grp["sender"].value_counts().items())
        fix = grp["remediation"].iloc[0][0] if len(grp["remediation"].iloc[0]) else ""
        summary.add_row(cause, str(count(grp)), senders, fix)
    console.print(summary)
