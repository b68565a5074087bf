"""The terminal view: one row per RST, then a summary by cause with what to change.

The same layout serves `read` (whole table) and `live` (rows as they come). On a narrow
terminal columns give way in a fixed order (confidence, sender role, time, then the addresses
wrap, the file becomes a heading, the addresses go) so that the frame, the cause and a short
why always fit; the why wraps rather than being cut.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import columns
from ..arrays import distinct
from .plaintext import visible
from .summary import CauseTally, column_list, light_table, reset_count

if TYPE_CHECKING:       # findings come as DataFrames or, from `read`, as columns.Table: no pandas
    import pandas as pd

MAX_ROWS = 200
WHY_MIN = 24            # the why column never gets narrower than this
GAP = 2                 # rich's padding between two columns
PIPED_WIDTH = 180       # not a terminal: wide, so each row stays one line for grep


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def _days(times) -> set[str]:
    """{_day(t) for t in times}, each UTC day formatted once: the day of a time is its whole
    multiple of 86,400 s, but for a time within a millisecond before midnight, which _day may
    round up to the next day's first microsecond (those are asked one by one)."""
    day = np.floor_divide(times, 86400.0)
    late = times - day * 86400.0 > 86400.0 - 1e-3
    return {_day(d * 86400.0) for d in distinct(day[~late]).tolist()} | {_day(t) for t in times[late].tolist()}


def connection_text(src, sport, dst, dport) -> str:
    if sport == 0 and dport == 0:            # flood findings name hosts, not a connection
        return f"{src} -> {dst} (flood)"
    return f"{src}:{sport} -> {dst}:{dport}"


def layout(width: int, widths: dict[str, int]) -> tuple[list[str], bool]:
    """Which columns fit in `width` (in order), and whether the addresses must wrap.
    `widths` holds each optional column's natural width; frame, cause and why always stay."""
    cols = [c for c in ("file", "frame", "time", "conn", "by", "cause", "conf") if c in widths]
    wrap = False

    def need() -> int:
        half = widths.get("conn_half", (widths.get("conn", 0) + 1) // 2 + 2)
        w = {**widths, "conn": half if wrap else widths.get("conn", 0)}
        return sum(w[c] for c in cols) + WHY_MIN + GAP * len(cols)

    for step in ("conf", "by", "time", "wrap", "file", "conn"):
        if need() <= width:
            break
        if step == "wrap":
            wrap = "conn" in cols
        elif step in cols:
            cols.remove(step)
    return cols, wrap


HEADERS = {"file": "file", "frame": "frame", "time": "time", "conn": "sender -> receiver", "by": "by",
           "cause": "cause", "conf": "conf"}


def _new_table(cols: list[str], widths: dict[str, int], wrap: bool) -> Table:
    """Fixed widths for every column but the why, so tables printed one per file line up."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for c in cols:
        justify = "right" if c in ("frame", "conf") else "left"
        if c == "conn" and wrap:
            table.add_column(HEADERS[c], width=widths["conn_half"], overflow="fold")
        else:
            table.add_column(HEADERS[c], justify=justify, no_wrap=True, width=widths[c])
    table.add_column("why", ratio=1, overflow="fold", min_width=WHY_MIN)
    return table


def plain(value) -> Text:
    """A cell as plain text: markup in it (`[link=...]`) is not interpreted, controls are escaped."""
    return Text(visible(value))


def _name(path) -> str:
    return visible(Path(str(path)).name)


def _rows_of_cells(df: pd.DataFrame | columns.Table, cols: list[str], rows: list[int] | None = None):
    """Each row's cells in `cols`, then its why, as plain rich texts (of the rows `rows` only,
    when given)."""
    texts = [_column_texts(df, c) for c in cols] + [column_list(df, "title")]
    if rows is not None:
        texts = [[col[k] for k in rows] for col in texts]
    return ([plain(v) for v in row] for row in zip(*texts))


def _column_texts(df: pd.DataFrame | columns.Table, col: str) -> list[str]:
    """The text of column `col` (before `visible`) for every row of `df`."""
    if col == "time":
        return [_clock(t) for t in column_list(df, "time")]
    if col == "conn":
        return [connection_text(*t) for t in _connections(df)]
    if col == "frame":
        return [str(v) for v in column_list(df, "frame")]
    if col == "conf":
        return [f"{v:.2f}" for v in column_list(df, "confidence")]
    if col == "file":
        return [Path(str(f)).name for f in column_list(df, "file")]
    return [str(v) for v in column_list(df, {"by": "sender", "cause": "cause"}[col])]


def _connections(df: pd.DataFrame | columns.Table):
    """(src, sport, dst, dport) of each row."""
    return zip(*(column_list(df, c) for c in ("src", "sport", "dst", "dport")))


def _console(out: TextIO, width: int | None) -> Console:
    return Console(file=out, width=width or (None if out.isatty() else PIPED_WIDTH), highlight=False)


def write_table(df: pd.DataFrame, out: TextIO, info=None, width: int | None = None) -> None:
    writer = TableBatches(out, info, width)
    writer.write(df)
    writer.finish()


class TableBatches:
    """`read --format table` a findings table at a time (read streams its spilled batches): the
    first MAX_ROWS rows, the counts of the heading and the summary by cause are all it keeps,
    and the table is printed at the end, as writing every finding at once prints it. A batch
    is a DataFrame or a columns.Table (`read` on a terminal imports no pandas for its resets)."""

    def __init__(self, out: TextIO, info=None, width: int | None = None) -> None:
        self.out, self.info, self.width = out, info, width
        self.shown: list[pd.DataFrame | columns.Table] = []
        self.rows = self.resets = 0
        self.days: set[str] = set()
        self.files: set = set()
        self.tally = CauseTally(info.rules if info is not None else None)

    def start(self, what: str = "read") -> None:
        pass

    def write(self, df: pd.DataFrame | columns.Table) -> None:
        if not len(df):
            return
        df = light_table(df)
        if self.rows < MAX_ROWS:
            self.shown.append(df.rows(0, MAX_ROWS - self.rows) if isinstance(df, columns.Table)
                              else df.head(MAX_ROWS - self.rows))
        self.rows += len(df)
        self.resets += reset_count(df)
        times = df["time"]
        self.days.update(_days(columns.to_numpy(times, float, np.nan) if isinstance(df, columns.Table)
                               else times.to_numpy(float)))
        self.files.update(column_list(df, "file"))
        self.tally.add(df)

    def finish(self, tally=None) -> None:
        console = _console(self.out, self.width)
        days = sorted(self.days)
        packets, files = (self.info.packets, self.info.files) if self.info is not None else (0, len(self.files))
        console.print(f"{self.rows} finding(s) for {self.resets} TCP reset(s) in {files} file(s), {packets} packets read"
                      + (f"; times are UTC on {', '.join(days)}" if days else ""))
        if not self.rows:
            return
        _print_rows(console, _joined(self.shown), multi=len(self.files) > 1)
        if self.rows > MAX_ROWS:
            console.print(f"... {self.rows - MAX_ROWS} more rows not shown (use --format jsonl, csv or html for all)")
        write_cause_summary(self.tally.rows(), console)


def _joined(shown: list) -> pd.DataFrame | columns.Table:
    """The rows kept, one table: a Table when every batch was one."""
    if len(shown) == 1:
        return shown[0]
    if all(isinstance(t, columns.Table) for t in shown) and all(t.columns == shown[0].columns for t in shown):
        return columns.Table.concat(shown)
    import pandas as pd
    return pd.concat([columns.as_frame(t) for t in shown], ignore_index=True)


def _print_rows(console: Console, shown: pd.DataFrame | columns.Table, multi: bool) -> None:
    connections = list(_connections(shown))
    widths = {"frame": max(5, len(str(max(column_list(shown, "frame"))))), "time": 12, "by": 7, "conf": 4,
              "cause": max(5, max(map(len, column_list(shown, "cause")))),
              "conn": max(18, max(len(connection_text(*t)) for t in connections))}
    widths["conn_half"] = max(max(len(f"{a}:{p} ->"), len(f"{b}:{q}")) for a, p, b, q in connections)
    files = column_list(shown, "file")
    if multi:
        widths["file"] = max(4, max(len(_name(f)) for f in files))
    cols, wrap = layout(console.width, widths)
    if multi and "file" not in cols:            # too narrow for a file column: one block per file
        by_file: dict = {}
        for row, name in enumerate(files):      # files in order of first appearance, rows in order
            by_file.setdefault(name, []).append(row)
        for name, rows in by_file.items():
            console.print(Text(_name(name), style="bold"))
            table = _new_table(cols, widths, wrap)
            for cells in _rows_of_cells(shown, cols, rows):
                table.add_row(*cells)
            console.print(table)
    else:
        table = _new_table(cols, widths, wrap)
        for cells in _rows_of_cells(shown, cols):
            table.add_row(*cells)
        console.print(table)


def write_cause_summary(rows: list[tuple[str, int, str, str]], console: Console) -> None:
    """rows: (cause, resets, sent by, first remediation), most resets first."""
    summary = Table(title="By cause", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    summary.add_column("cause", no_wrap=True)
    summary.add_column("resets", justify="right")
    summary.add_column("sent by", no_wrap=console.width >= 100)
    summary.add_column("what to change first", ratio=1, overflow="fold", min_width=WHY_MIN)
    for cause, n, senders, fix in rows:
        summary.add_row(plain(cause), str(n), plain(senders), plain(fix))
    console.print(summary)


class TableSink:
    """`live` on a terminal: the same columns, fixed widths, one row per reset as it is decided."""

    WIDTHS = {"frame": 8, "time": 12, "conn": 45, "by": 7, "cause": 22, "conf": 4}

    def __init__(self, out: TextIO, width: int | None = None) -> None:
        self.out = out
        self.console = Console(file=out, width=width or (None if out.isatty() else 160), highlight=False)
        self.cols, self.wrap = layout(self.console.width, self.WIDTHS)
        if "time" in self.cols:                         # live leads with the clock
            self.cols = ["time"] + [c for c in self.cols if c != "time"]

    def _table(self, header: bool) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False, show_header=header, header_style="")
        for c in self.cols:
            name = "time (UTC)" if c == "time" else HEADERS[c]
            wrap = c == "conn" and self.wrap
            table.add_column(name, justify="right" if c in ("frame", "conf") else "left", width=self._width(c),
                             no_wrap=not wrap, overflow="fold")
        table.add_column("why", ratio=1, overflow="fold", min_width=WHY_MIN)
        return table

    def _width(self, c: str) -> int:
        """A column's width: its fixed one, half of it for the addresses when they wrap."""
        return (self.WIDTHS[c] + 1) // 2 if c == "conn" and self.wrap else self.WIDTHS[c]

    def _wrapped(self, text: str, width: int) -> list[str]:
        """`text` as rich folds it into a cell `width` wide, each line padded to the width."""
        return [line.plain.ljust(width) for line in Text(text).wrap(self.console, width, overflow="fold")] \
            or [" " * width]

    def start(self, what: str) -> None:
        self.console.print(self._table(header=True))
        self.out.flush()

    def write(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        lines = self._plain_lines(df)
        if lines is not None:
            self.out.write(lines)
        else:
            self.console.print(self._rich_rows(df))
        self.out.flush()

    def _rich_rows(self, df: pd.DataFrame) -> Table:
        """The rows as a rich table (the reference for _plain_lines, and what prints the rows it
        leaves: wrapped addresses, characters that are not ASCII)."""
        table = self._table(header=False)
        for cells in _rows_of_cells(df, self.cols):
            table.add_row(*cells)
        return table

    def _plain_lines(self, df: pd.DataFrame) -> str | None:
        """The rows as _rich_rows prints them, formatted here: each column padded to its fixed
        width, two spaces apart, the why wrapped by rich once per distinct text. Rich laid out a
        table per batch at ~350 us a row, so `live` on a terminal fell behind in a reset storm
        (a connection's reset is a row: 100,000 of them were half a minute of rendering). Where
        the addresses wrap (a terminal of 85-104 columns), rich folds each row's addresses alone
        (~25 us). None where rich must lay a row out itself (a character that is not ASCII may
        be two cells wide): rich prints those."""
        fixed = sum(self._width(c) for c in self.cols) + GAP * len(self.cols)
        room = self.console.width - fixed
        if room < WHY_MIN:
            return None
        texts = [[visible(v) for v in _column_texts(df, c)] for c in self.cols]
        whys = [visible(v) for v in df["title"].tolist()]
        # the why column is as wide as its longest text, at least WHY_MIN, at most the room left
        why_width = min(room, max(WHY_MIN, max(map(len, whys), default=0)))
        for c, column in zip(self.cols, texts):
            if not all(t.isascii() for t in column):
                return None
            if c in ("frame", "conf") and any(t != t.rstrip() for t in column):
                return None             # rich drops a right-aligned text's trailing spaces first
        wrapped: dict[str, list[str]] = {}
        for why in dict.fromkeys(whys):
            if not why.isascii():
                return None
            wrapped[why] = self._wrapped(why, why_width)
        gap = " " * GAP
        # a text wider than its column is cut at its width, as rich crops a cell that may not wrap
        padded = [[t[:w].rjust(w) if c in ("frame", "conf") else t[:w].ljust(w) for t in column]
                  for c, w, column in ((c, self._width(c), column) for c, column in zip(self.cols, texts))]
        if not (self.wrap and "conn" in self.cols):
            blank = gap.join(" " * self.WIDTHS[c] for c in self.cols) + gap
            out = []
            for k, why in enumerate(whys):
                first, *more = wrapped[why]
                out.append(gap.join(col[k] for col in padded) + gap + first + "\n")
                out.extend(blank + line + "\n" for line in more)
            return "".join(out)
        # the addresses fold too: a row is as tall as its taller cell, other cells blank below
        at = self.cols.index("conn")
        conn_width = self._width("conn")
        blanks = [" " * self._width(c) for c in self.cols]
        out = []
        for k, why in enumerate(whys):
            cells = [col[k] for col in padded]
            conn, why_lines = self._wrapped(texts[at][k], conn_width), wrapped[why]
            for line in range(max(len(conn), len(why_lines))):
                row = cells if line == 0 else blanks.copy()
                row[at] = conn[line] if line < len(conn) else blanks[at]
                out.append(gap.join(row) + gap + (why_lines[line] if line < len(why_lines) else " " * why_width) + "\n")
        return "".join(out)

    def finish(self, tally) -> None:
        if not tally.total():
            return
        self.console.print()
        write_cause_summary(tally.rows(), self.console)
