"""Finished findings tables kept on disk instead of in memory while a long read goes on.

A finding held as pandas rows costs ~1.7 KB of Python objects (strings, lists), so 300,000
spoofed resets held ~600 MB until the end of the read. When `read` writes a format it can
stream (all but the table and the reports), it keeps only the columns that format writes and, past SPILL_AFTER
findings, pickles each finished batch table to a temporary folder (exact round trip: same
dtypes, same values); the writer loads them back one at a time, in output order. A table past
the limit waits in memory until the next one comes: the last table of a read (for a file
whose resets all came in one batch, its only one) is written out without the round trip to
disk (100,000 resets: ~0.4 s of CPU less), and at most one table more is held than before."""
from __future__ import annotations

import os
import pickle
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .gcpause import gc_paused

if TYPE_CHECKING:       # tables come from the caller: this module itself never needs pandas loaded
    import pandas as pd     # a table is a DataFrame or a columns.Table

# Findings kept in memory before later batches go to disk: ordinary captures never spill.
SPILL_AFTER = 20_000
WIDE_SHARE = 4          # every column (Parquet) is ~4x the bytes a row: spill after a quarter as many


@dataclass
class SpillPlan:
    directory: Path | None          # None: no temporary folder could be made
    columns: frozenset[str] | None  # what the output needs (None: every column); others are dropped at once
    after: int = SPILL_AFTER        # findings kept in memory before tables go to disk
    held: int = 0                   # findings kept in memory so far
    files: int = 0                  # tables written
    failed: str | None = None       # why tables stay in memory after all (a full disk), once
    waiting: "Waiting | None" = None    # the newest table past the limit, still in memory


_plan: list[SpillPlan] = []


@contextmanager
def spilling(columns: list[str] | None, lean: bool = False) -> Iterator[SpillPlan]:
    """Within this block, finished findings tables keep only `columns` (None: all) and, past SPILL_AFTER
    findings, go to a private temporary folder (mode 0700) removed at the end. If the folder
    cannot be made or written, tables stay in memory as before and `failed` says why. `lean`:
    spill after a quarter as many (what the writer itself holds is large: a report, evidence)."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="rstwatch-findings-", ignore_cleanup_errors=True)
    except OSError as exc:              # gettempdir() raises again where no folder is usable at all
        folder, failed = None, f"{tempfile.tempdir or 'the temporary folder'}: {exc.strerror or exc}"
    else:
        failed = None
    plan = SpillPlan(Path(folder.name) if folder else None, None if columns is None else frozenset(columns),
                     SPILL_AFTER if columns is not None and not lean else SPILL_AFTER // WIDE_SHARE, failed=failed)
    _plan[:] = [plan]
    try:
        yield plan
    finally:
        _plan.clear()
        if folder is not None:
            folder.cleanup()


class Spilled:
    """A findings table in a file, with the two columns that order a file's findings kept in
    memory (16 bytes a row): `conn_first_frame` and `frame`."""

    __slots__ = ("path", "rows", "columns", "first_frames", "frames")

    def __init__(self, table: pd.DataFrame, path: Path) -> None:
        self.path, self.rows, self.columns = path, len(table), list(table.columns)
        self.first_frames, self.frames = _keys(table)
        with path.open("wb") as fh:
            pickle.dump(table, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self) -> pd.DataFrame:
        # a table's rows are ~4 lists and dicts each, which all live until written: collections
        # while loading find no garbage (with them, a 5,000-row table loaded in 18 ms, without 6)
        with self.path.open("rb") as fh, gc_paused():
            return pickle.load(fh)      # our own file, written above in a private temporary folder


class Waiting:
    """A table past the plan's limit: in memory until the next table needs the room (then a
    Spilled file), or until it is written, if no other table comes."""

    __slots__ = ("table", "spilled")

    def __init__(self, table: pd.DataFrame) -> None:
        self.table: pd.DataFrame | None = table
        self.spilled: Spilled | None = None

    def to_disk(self, path: Path) -> None:
        self.spilled = Spilled(self.table, path)
        self.table = None

    def current(self) -> pd.DataFrame | Spilled:
        return self.table if self.spilled is None else self.spilled


def keep(table: pd.DataFrame) -> pd.DataFrame | Waiting:
    """What a finished batch table becomes under the current plan: itself outside `spilling`,
    else its output columns, going to disk once SPILL_AFTER findings are held (when the table
    after it comes)."""
    if not _plan:
        return table
    plan = _plan[0]
    if plan.columns is not None:
        names = [c for c in table.columns if c in plan.columns]
        table = table.select(names) if hasattr(table, "select") else table[names]
    _to_disk(plan)                          # the table waiting in memory: this one needs the room
    if plan.held + len(table) <= plan.after or plan.directory is None or plan.failed:
        plan.held += len(table)
        return table
    plan.waiting = Waiting(table)
    return plan.waiting


class Stashed:
    """A walked slice of a reset burst on disk until the end of its file classifies it
    (analyze.VerdictBatch.stash); its file goes once it is read back."""

    __slots__ = ("path",)

    def __init__(self, walked: tuple, path: Path) -> None:
        self.path = path
        with path.open("wb") as fh:
            pickle.dump(walked, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self) -> tuple:
        with self.path.open("rb") as fh, gc_paused():
            walked = pickle.load(fh)    # our own file, written above in a private temporary folder
        self.path.unlink(missing_ok=True)
        return walked


def can_stash() -> bool:
    """Whether `stash` would keep things on disk now (inside `spilling`, its folder writable)."""
    return bool(_plan) and _plan[0].directory is not None and not _plan[0].failed


def stash(walked: tuple) -> tuple | Stashed:
    """`walked` on disk under the current plan (in memory outside `spilling`, or when the folder
    cannot be written: then `failed` says why)."""
    if not can_stash():
        return walked
    plan = _plan[0]
    path = plan.directory / f"{os.getpid()}-walked-{plan.files + 1:06d}.pkl"
    try:
        kept = Stashed(walked, path)
    except OSError as exc:                  # a full disk: this and later slices stay in memory
        plan.failed = f"{path.parent}: {exc.strerror or exc}"
        path.unlink(missing_ok=True)
        return walked
    plan.files += 1
    return kept


def unstash(walked: tuple | Stashed) -> tuple:
    return walked.load() if isinstance(walked, Stashed) else walked


def _to_disk(plan: SpillPlan) -> None:
    waiting, plan.waiting = plan.waiting, None
    if waiting is None:
        return
    # `read --jobs N` workers inherit this plan (and its folder) from the parent: the process id in
    # the name keeps each worker's tables its own
    path = plan.directory / f"{os.getpid()}-{plan.files + 1:06d}.pkl"
    try:
        waiting.to_disk(path)
    except OSError as exc:                  # a full disk: keep this and later tables in memory
        plan.failed = f"{path.parent}: {exc.strerror or exc}"
        path.unlink(missing_ok=True)
        plan.held += len(waiting.table)
        return
    plan.files += 1


def on_disk(table: pd.DataFrame | Spilled | Waiting) -> pd.DataFrame | Spilled:
    """`table` now, sent to disk first if it is the table waiting to go there (a full disk: in memory)."""
    if isinstance(table, Waiting) and _plan and _plan[0].waiting is table:
        _to_disk(_plan[0])
    return _now(table)


def _now(table: pd.DataFrame | Spilled | Waiting) -> pd.DataFrame | Spilled:
    return table.current() if isinstance(table, Waiting) else table


def load(table: pd.DataFrame | Spilled | Waiting) -> pd.DataFrame:
    table = _now(table)
    return table.load() if isinstance(table, Spilled) else table


def key_columns(table: pd.DataFrame | Spilled | Waiting) -> tuple[np.ndarray, np.ndarray]:
    """(conn_first_frame, frame) of every row, without loading a spilled table."""
    table = _now(table)
    if isinstance(table, Spilled):
        return table.first_frames, table.frames
    return _keys(table)


def _keys(table) -> tuple[np.ndarray, np.ndarray]:
    from . import columns
    return (columns.to_numpy(table["conn_first_frame"], np.int64, 0), columns.to_numpy(table["frame"], np.int64, 0))


def columns_of(table: pd.DataFrame | Spilled | Waiting) -> list[str]:
    table = _now(table)
    return table.columns if isinstance(table, Spilled) else list(table.columns)
