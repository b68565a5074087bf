"""The live flow table's columns, kept with room to grow.

Every tick the segments that arrived join the table. Concatenating copied the whole table each
time: at 390,000 packets/s of long-lived flows that was a quarter of the live path's CPU (py-spy),
the copy and the page faults of its fresh arrays growing with the table. Here new rows are written
past the end of the rows any earlier table can see, so each row is copied about once while the
table only grows. That is safe because a table is never changed in place and each view ends at its
own length. A table made elsewhere (pruned, or flood flows moved out) starts a new store."""
from __future__ import annotations

import mmap

import numpy as np

from ..sources.segments import SEGMENT_COLUMNS, Segments
from ..track.flows import flow_hash

MIN_ROWS = 1 << 16
GROWTH = 1.5


class GrowingTable:
    """`reserve`: the rows to make room for at once (the table's cap and a burst). The arrays are
    only address space until rows are written, so a table that stays small stays small in memory,
    and one that fills up is never copied to grow."""

    def __init__(self, reserve: int = MIN_ROWS) -> None:
        self.reserve = reserve
        self.cols: dict[str, np.ndarray] = {}
        self.keys = np.zeros(0, np.uint64)
        self.rows = 0
        self.view: Segments | None = None       # the last table handed out: the one that may grow

    def extend(self, table: Segments, parts: list[Segments]) -> Segments:
        """`table` followed by `parts`, in order, with every row's flow key."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return table
        adding = sum(len(p) for p in parts)
        if table is not self.view or self.rows + adding > len(self.keys):
            self._start(table, len(table) + adding)
        for part in parts:
            end = self.rows + len(part)
            for name, col in self.cols.items():
                col[self.rows:end] = part.cols[name]
            self.keys[self.rows:end] = flow_hash(part)
            self.rows = end
        self.view = Segments({name: col[:self.rows] for name, col in self.cols.items()}, self.keys[:self.rows])
        return self.view

    def take(self, table: Segments, idx: np.ndarray) -> Segments:
        """The rows `idx` of `table` (what a prune keeps), gathered straight into a new store with
        room to grow: taking them first and then copying them into a store copied them twice."""
        size = max(int(len(idx) * GROWTH), self.reserve)
        keys = flow_hash(table)
        self._alloc(size)
        self.rows = len(idx)
        for name, col in self.cols.items():
            np.take(table.cols[name], idx, out=col[:self.rows])
        np.take(keys, idx, out=self.keys[:self.rows])
        self.view = Segments({name: col[:self.rows] for name, col in self.cols.items()}, self.keys[:self.rows])
        return self.view

    def _start(self, table: Segments, rows: int) -> None:
        size = max(int(rows * GROWTH), self.reserve)
        self._alloc(size)
        self.rows = len(table)
        if self.rows:
            for name, col in self.cols.items():
                col[:self.rows] = table.cols[name]
            self.keys[:self.rows] = flow_hash(table)

    def _alloc(self, size: int) -> None:
        """Columns of `size` rows in one anonymous mapping of their own: its pages are taken when
        first written and given back to the system when the last view goes (numpy's allocator
        would keep freed stores in the heap, resident)."""
        layout = [(name, np.dtype(t)) for name, t in SEGMENT_COLUMNS.items()] + [("", np.dtype(np.uint64))]
        spans = [-(-size * dt.itemsize // 64) * 64 for _, dt in layout]
        area = mmap.mmap(-1, sum(spans))
        arrays, at = {}, 0
        for (name, dt), span in zip(layout, spans):
            arrays[name] = np.frombuffer(area, dt, size, at)
            at += span
        self.keys = arrays.pop("")
        self.cols = arrays
