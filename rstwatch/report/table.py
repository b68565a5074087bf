"""The terminal view: one row per RST, then a summary by cause with what to change."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TextIO

import pandas as pd
from rich.console import Console
from rich.table import Table

MAX_ROWS = 200


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def write_table(df: pd.DataFrame, out: TextIO, packets: int, files: int, width: int | None = None) -> None:
    console = Console(file=out, width=width or (None if out.isatty() else 140), highlight=False,
                      soft_wrap=False)
    multi = df["file"].nunique() > 1 if len(df) else False
    table = Table(title=f"{len(df)} TCP reset(s) in {files} file(s), {packets} packets", title_justify="left",
                  show_lines=False, expand=False)
    if multi:
        table.add_column("file", overflow="fold", max_width=28)
    for name, kw in [("frame", {"justify": "right"}), ("time (UTC)", {}), ("from -> to", {"overflow": "fold"}),
                     ("sender", {}), ("cause", {}), ("conf", {"justify": "right"}), ("zeek", {}),
                     ("why", {"overflow": "fold", "ratio": 1})]:
        table.add_column(name, **kw)
    for row in df.head(MAX_ROWS).itertuples(index=False):
        cells = [str(row.frame), _when(row.time), f"{row.src}:{row.sport} -> {row.dst}:{row.dport}",
                 row.sender, row.cause, f"{row.confidence:.2f}", f"{row.conn_state} {row.history}", row.summary]
        if multi:
            cells.insert(0, str(row.file).rsplit("/", 1)[-1])
        table.add_row(*cells)
    console.print(table)
    if len(df) > MAX_ROWS:
        console.print(f"... {len(df) - MAX_ROWS} more rows (use --format jsonl or csv for all)")
    if len(df):
        write_cause_summary(df, console)


def write_cause_summary(df: pd.DataFrame, console: Console) -> None:
    summary = Table(title="By cause", title_justify="left")
    summary.add_column("cause")
    summary.add_column("resets", justify="right")
    summary.add_column("sent by")
    summary.add_column("what to change first", overflow="fold")
    for cause, grp in sorted(df.groupby("cause"), key=lambda kv: -len(kv[1])):
        senders = ", ".join(f"{k} {v}" for k, v in grp["sender"].value_counts().items())
        fix = grp["remediation"].iloc[0][0] if len(grp["remediation"].iloc[0]) else ""
        summary.add_row(cause, str(len(grp)), senders, fix)
    console.print(summary)
