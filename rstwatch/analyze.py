"""The offline pipeline for one file: segments -> RST connections -> features -> verdicts."""
from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from . import columns, spill, textcolumns
from .arrays import distinct
from .columns import Table, Texts, as_frame
from .gcpause import gc_paused
from .engine.model import TEMPLATE_FIELDS, Rule
from .features.extract import BurstInputs, ConnColumns, burst_inputs, burst_values, connection_columns
from .interop import add_join_keys
from .sources.capture import iter_segments
from .sources.readfilter import ReadFilter
from .sources.segments import RST, Segments
from .sources.diagnostics import Diagnostics
from .track.connection import RESET_DELAY_NS
from .track.flows import (BURST_WINDOW_NS, evict_oldest, final_by_themselves, flow_hash, forget_closed, settled,
                          split_components, split_flows)
from .track.storms import STORM_MIN_FLOWS, StormTracker
from .track.rstrows import RstRows
from .track.tracker import rst_connections

if TYPE_CHECKING:       # pandas is imported where a table is made: a file without resets needs none
    import pandas as pd


class FileResult:
    """One file's findings and diagnostics. The findings of many files are classified together
    (see VerdictBatch), so they are built when asked for: by then, usually, together with every
    other file read so far. Each access builds them afresh from the batch's tables (a DataFrame
    per file held for a folder of 3,000 small captures cost ~100 KB a file): keep what you need."""

    def __init__(self, path: str, diag: Diagnostics, findings: pd.DataFrame | None = None,
                 batch: "VerdictBatch | None" = None, floods: Table | None = None) -> None:
        self.path, self.diag = path, diag
        self._findings, self._batch, self._floods = findings, batch, floods
        self._pieces: list[tuple[pd.DataFrame, int, int]] | None = None

    def _take(self) -> None:
        """This file's pieces, taken from its batch once; the empty table (every column, no row)
        is only made if asked for: a file without findings then needs no pandas at all."""
        if self._pieces is None and self._batch is not None:
            self._pieces = self._batch.take(self)
            self._empty = self._batch.empty
            self._batch = None

    @property
    def no_findings(self) -> bool:
        """True when this file has no finding (no RST, no flood): known without making a table."""
        if self._findings is not None:
            return not len(self._findings)
        self._take()
        return not self._pieces and self._floods is None

    @property
    def findings(self) -> pd.DataFrame:
        if self._findings is not None:
            return self._findings
        self._take()
        return assemble(self._pieces, self._floods, self._empty)

    def __getstate__(self) -> dict:
        """To the process that writes (`read --jobs`): the pieces, not the batch. A table on disk
        goes as its file's name (the workers share the reader's spill folder), one in memory as
        it is (_shipped); the table of no finding is made there when asked for (adopt).
        Built as one DataFrame each, the findings of every file were all held by the reader at
        once, with pandas loaded for them."""
        if self._findings is None:
            self._take()
        pieces = None if self._pieces is None else [_shipped(*piece) for piece in self._pieces]
        return {"path": self.path, "diag": self.diag, "_findings": self._findings, "_batch": None,
                "_floods": self._floods, "_pieces": pieces, "_empty": None}

    def adopt(self, rules: list[Rule]) -> None:
        """Back from another process: the table of no finding made here, for the same rules."""
        if self._pieces is not None and self._empty is None:
            self._empty = shared_batch(rules).empty


def _shipped(table: Table | spill.Waiting | spill.Spilled, a: int, b: int) -> tuple:
    """A piece as sent to another process: on disk if its table waits to go there (the reader
    holds what workers send it; what a worker keeps in memory is bounded as its reads are).
    A table is sent whole: the files of a batch go back together (run._analyze_group), in one
    pickle, which writes a table once however many of them refer to it."""
    return spill.on_disk(table), a, b


# Forgetting closed flows costs a pass over what is kept, so it runs only once the kept
# segments pass this many rows (~25 MB); the bar doubles when little could be forgotten.
FORGET_ROWS = 400_000
# Flows holding a RST are classified in batches of about this many resets, as soon as they are
# settled (track/flows.py: no later packet can change their verdict), and across files: a
# classification costs ~10 ms of pandas whatever its size, and each reset ~3 KB until it is done.
RESET_BATCH = 5_000
SETTLE_MIN_RESETS = 1_000


# A piece of more than SLICE_ABOVE resets that cannot be cut (one reset component: a server
# resetting without a pause) is classified in slices of about SLICE_RESETS (VerdictBatch._add_piece).
# Slicing costs CPU (the slices' findings go through the spill files), so below the bar the piece
# is classified whole (~2.5 KB a reset at the peak: ~500 MB at the bar). Measured in docs/bounded.md.
SLICE_RESETS = 50_000
SLICE_ABOVE = 200_000
# Such a burst cannot be settled while it goes on, so its segments were all held until the file
# ended. Past HOLD_RESETS resets held, the flows final by themselves (track/flows.py) are walked
# at once in slices, kept on disk (spill.stash), and classified at the end with the rest of the
# file, their burst features computed over all of it (VerdictBatch.stash). A file that did so
# settles nothing more: a component it walked part of is classified whole at the end. Only
# where a spill folder is (`read`): the walked slices take more room than their segments.
HOLD_RESETS = SLICE_ABOVE

MAX_KEPT_ROWS = 4_000_000    # hard cap (~250 MB of segments): beyond it the oldest flows without a RST go


def _resets(seg: Segments) -> int:
    return int(np.count_nonzero(seg["flags"] & RST)) if len(seg) else 0


def _read_bounded(path: Path, diag: Diagnostics, storms: StormTracker, settle, progress=None,
                  keep: ReadFilter | None = None, walk_early=None) -> Segments:
    """Read `path` keeping only what a verdict still needs; flows whose verdicts are settled go
    to `settle` (a callable taking their segments) as the file is read, and past HOLD_RESETS
    held, those final by themselves to `walk_early`. Returns the rest."""
    parts: list[Segments] = []
    rows, bar = 0, FORGET_ROWS
    resets, reset_bar = 0, RESET_BATCH
    evicted = 0
    walked_early = False
    for chunk in iter_segments(path, diag, progress, keep.fresh() if keep else None):
        if not len(chunk):
            continue
        flow_hash(chunk)                # each chunk's flow keys once; the table's passes reuse them
        parts.append(chunk)
        rows += len(chunk)
        resets += _resets(chunk)
        if rows > bar or resets > reset_bar:
            kept = storms.absorb(forget_closed(parts))
            freed = len(kept) < rows
            # settling costs a pass over the table: worth it only once resets pile up
            done = settled(kept, RESET_DELAY_NS) if not walked_early and _resets(kept) >= SETTLE_MIN_RESETS else None
            if done is not None and done.any():
                freed = True
                settle(kept.take(np.flatnonzero(done)))
                kept = kept.take(np.flatnonzero(~done))
            if walk_early is not None and _resets(kept) > HOLD_RESETS:
                final = final_by_themselves(kept, RESET_DELAY_NS)
                if final.any():
                    freed = walked_early = True
                    parts = []                  # the chunks (kept holds what is left of them)
                    early = [kept.take(np.flatnonzero(final))]
                    kept = kept.take(np.flatnonzero(~final))
                    walk_early(early)           # a list, emptied: the table goes as it is walked
            kept, n = evict_oldest(kept, MAX_KEPT_ROWS)
            evicted += n
            parts, rows, resets = [kept], len(kept), _resets(kept)
            # A pass that freed nothing (every flow open or holding a RST still unsettled: one
            # server resetting all the while) tries again at four times the table, not two:
            # each pass concatenates and hashes all of it (100,000 such resets: 3 passes, not 5).
            grow = 2 if freed else 4
            bar = max(FORGET_ROWS, grow * rows)
            reset_bar = max(RESET_BATCH, grow * resets)
            if walk_early is not None and resets <= HOLD_RESETS:
                reset_bar = min(reset_bar, HOLD_RESETS)     # a burst's first flows walked early at the bar, not past it
    if evicted:
        diag.warn(f"flow table full: {evicted} flow(s) without a RST were forgotten early; a RST arriving "
                  f"later on one of them is reported without its earlier context")
    return storms.absorb(Segments.concat(parts), final=True)


def analyze_file(path: Path, rules: list[Rule], label: str | None = None,
                 storm_min: int = STORM_MIN_FLOWS, progress=None, keep: ReadFilter | None = None,
                 batch: "VerdictBatch | None" = None) -> FileResult:
    label = label or str(path)
    diag = Diagnostics(label)
    storms = StormTracker(rules, storm_min)          # flood rules among `rules` switch detectors on
    batch = batch or shared_batch(rules)
    result = FileResult(label, diag, batch=batch)
    # a burst's flows are walked early only where the walked slices can wait on disk (`read`): held
    # in memory (the Python API), they would take more room than the segments they replace
    walk_early = (lambda held: batch.stash(result, held)) if spill.can_stash() else None
    read = [_read_bounded(path, diag, storms, lambda done: batch.add(result, label, done), progress, keep, walk_early)]
    batch.finish_file(result, label, read)   # frees the file's table as soon as it can
    if storms.storms:
        from .report.storms import storm_rows
        result._floods = add_join_keys(storm_rows(label, storms), [st.first_ns for st in storms.storms.values()])
    return result


class VerdictBatch:
    """Connections holding a RST, from one file or many, classified together: features, rules and
    explanations cost ~10 ms of pandas per call whatever its size, which for a folder of small
    captures was most of the time (~30-90 ms per file). Segments are walked into connections as
    they come (and freed); the classification runs once RESET_BATCH resets wait, or when a
    result is asked for. Files whose resets come within a second of each other are not mixed
    (the server-burst feature compares resets across connections of one file)."""

    def __init__(self, rules: list[Rule], max_resets: int = RESET_BATCH) -> None:
        self.rules, self.max_resets = rules, max_resets
        self.parts: list[tuple] = []          # (owner, label, P, conns, RST times)
        self.spans: dict[object, tuple[int, int]] = {}
        self.resets = 0
        self.done: dict[object, list[tuple[Table | spill.Waiting, int, int]]] = {}
        self.stashed: dict[object, list[tuple]] = {}     # owner -> its slices walked early (stash)
        self._empty: Table | None = None

    def add(self, owner: object, label: str, seg: Segments) -> None:
        self.consume(owner, label, [seg])

    def consume(self, owner: object, label: str, held: list[Segments]) -> None:
        """`add` from the only holder of a table, passed in a list that this empties: a table of
        more than `max_resets` resets (a whole file's worth) is then freed once cut into pieces, and
        each piece once classified, instead of all of it living until the last piece is done
        (100,000 resets: 60 MB less at the peak, 8% fewer page faults; an argument cannot be
        freed while its caller's call is running)."""
        seg = held.pop()
        resets = _resets(seg)
        if not resets:
            return                  # no connection to classify (and no pandas to import for none)
        if resets <= self.max_resets:
            self._add(owner, label, seg)
            return
        cuts = split_components(seg, self.max_resets)
        if len(cuts) == 1:
            pieces = [seg.take(cuts[0])]            # maybe the table itself: no copy
            del seg
        else:
            cols, keys = dict(seg.cols), seg.flow_keys
            del seg
            pieces = _cut_columns(cols, keys, cuts)
        pieces.reverse()
        while pieces:
            self._add_piece(owner, label, pieces)

    def _add_piece(self, owner: object, label: str, pieces: list[Segments]) -> None:
        """The last of `pieces`: whole reset components, taken from the list so that it can be
        freed as it is cut. One far bigger than a batch (a server resetting connection after
        connection without a pause: every reset chained to the next by the burst features) is
        cut into slices of whole flows, all walked, and each classified alone with the burst
        features computed over all of them: the peak is the piece's segments and walked columns
        and one slice's features and findings, not every feature and finding of it at once."""
        if _resets(pieces[-1]) <= SLICE_ABOVE:
            self._add(owner, label, pieces.pop())
            return
        self._add_slices(owner, label, list(_walk_slices(pieces)))

    def finish_file(self, owner: object, label: str, held: list[Segments]) -> None:
        """`consume` the rest of a file at its end: with its slices walked early, if any (its
        burst), all classified as one sliced piece."""
        if owner in self.stashed:
            self._add_slices(owner, label, self.stashed.pop(owner) + list(_walk_slices(held)))
        else:
            self.consume(owner, label, held)

    def stash(self, owner: object, held: list[Segments]) -> None:
        """Flows of a burst final by themselves (the table in `held`, taken from it), walked now
        in slices, each kept on disk with what its burst features need (HOLD_RESETS) before the
        next is walked: the file's end classifies them (finish_file)."""
        kept = self.stashed.setdefault(owner, [])
        for walked, inputs in _walk_slices(held):
            kept.append((spill.stash(walked), inputs))
            del walked

    def _add_slices(self, owner: object, label: str, slices: list[tuple]) -> None:
        """Walked slices of reset components, (walked or stashed, BurstInputs) each, classified
        one at a time with the burst features computed over all of them."""
        burst = np.stack(burst_values(BurstInputs.join([inputs for _, inputs in slices])))
        start = 0
        slices.reverse()
        while slices:
            walked, inputs = slices.pop()
            P, conns, rsts = spill.unstash(walked)
            rsts.burst = burst[:, start:start + inputs.n]
            start += inputs.n
            self._add_walked(owner, label, P, conns, rsts)

    def _add(self, owner: object, label: str, seg: Segments) -> None:
        walked = _walk(seg)
        if walked is not None:
            self._add_walked(owner, label, *walked)

    def _add_walked(self, owner: object, label: str, P: dict[str, np.ndarray], conns: ConnColumns, rsts: RstRows) -> None:
        ts = P["ts_ns"][rsts.row].tolist()
        lo, hi = min(ts) - BURST_WINDOW_NS, max(ts) + BURST_WINDOW_NS
        if any(k is not owner and a <= hi and lo <= b for k, (a, b) in self.spans.items()):
            self.flush()                      # another file's resets are too close in time
        a, b = self.spans.get(owner, (lo, hi))
        self.spans[owner] = (min(a, lo), max(b, hi))
        self.parts.append((owner, label, P, conns, rsts, ts))
        self.resets += len(ts)
        if self.resets >= self.max_resets:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        with gc_paused():       # what a batch makes is freed by reference counts; its findings all stay
            self._flush()

    def _flush(self) -> None:
        parts, self.parts, self.spans, self.resets = self.parts, [], {}, 0
        if len(parts) == 1:
            _, label, P, conns, rsts, ts = parts[0]
        else:
            P = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
            ts, conn_offsets, row_offsets, n_conns, rows = [], [], [], 0, 0
            for _, _, p, cs, _, t in parts:
                conn_offsets.append(n_conns)
                row_offsets.append(rows)
                n_conns += len(cs.first_rows)
                rows += len(p["frame"])
                ts.extend(t)
            conns = ConnColumns.concat([p[3] for p in parts], conn_offsets, row_offsets)
            rsts = RstRows.concat([p[4] for p in parts], conn_offsets, row_offsets)
            label = ""
        out = _explained(label, P, conns, rsts, self.rules)
        add_join_keys(out, ts)
        if len(parts) > 1:
            out["file"] = Texts([lab for _, lab, _, _, _, t in parts for _ in t], how="list")
            out.shared = True
        out = spill.keep(out)     # on disk, when a long read streams its output
        start = 0
        for owner, _, _, _, _, t in parts:
            self.done.setdefault(owner, []).append((out, start, start + len(t)))
            start += len(t)
        del parts, P, conns, rsts
        _give_back()

    def empty(self) -> Table:
        """Findings with every column and no row (a file without resets), made when first asked
        for: a Table, whose columns are known without pandas (a file of floods only)."""
        if self._empty is None:
            self._empty = add_join_keys(_explained("", *rst_connections(Segments.empty()), self.rules), [])
        return self._empty

    def take(self, owner: object) -> list[tuple[Table | spill.Waiting, int, int]]:
        """The findings of `owner` (a FileResult) as (table, first row, end row) pieces."""
        if any(p[0] is owner for p in self.parts):
            self.flush()
        return self.done.pop(owner, [])


def _walk(seg: Segments) -> tuple[dict[str, np.ndarray], ConnColumns, RstRows] | None:
    """The connections of `seg` that hold a RST, walked: the segment columns, a value per
    connection and their RSTs as columns; None for none. The connection objects go at once:
    the verdicts need only their columns (features/extract.ConnColumns)."""
    P, conns, rsts = rst_connections(seg)
    return (P, connection_columns(conns), rsts) if conns else None


def _walk_slices(held: list[Segments]) -> Iterator[tuple]:
    """The flows holding a RST of the table in `held` (taken from it, so that it can be freed as
    it is cut) walked in slices of about SLICE_RESETS resets: (walked, BurstInputs) each, one at
    a time (VerdictBatch.stash keeps each on disk before the next is walked)."""
    seg = held.pop()
    if not _resets(seg):
        return
    cuts = split_flows(seg, SLICE_RESETS)
    cols, keys = dict(seg.cols), seg.flow_keys
    del seg
    slices = _cut_columns(cols, keys, cuts)
    slices.reverse()
    while slices:
        one = _walk(slices.pop())       # a slice walked is a slice let go (its columns live on in P)
        if one is not None:
            yield one, burst_inputs(one[0], one[2])
            del one


def _cut_columns(cols: dict[str, np.ndarray], keys: np.ndarray | None, cuts: list[np.ndarray]) -> list[Segments]:
    """Segments(cols).take(rows) for each of `cuts`, made a column at a time, each column dropped
    from `cols` once cut: the peak is the table and one column more, where taking the pieces
    whole held the table and all its pieces at once (twice the rows)."""
    pieces: list[dict[str, np.ndarray]] = [{} for _ in cuts]
    for name in list(cols):
        column = cols.pop(name)
        for piece, rows in zip(pieces, cuts):
            piece[name] = column[rows]
        del column
    return [Segments(piece, keys[rows] if keys is not None else None) for piece, rows in zip(pieces, cuts)]


def assemble(pieces: list[tuple[pd.DataFrame, int, int]], floods: Table | None,
             empty: Callable[[], Table]) -> pd.DataFrame:
    """One file's findings, in the order of a whole-file reading (`empty` makes the table of none)."""
    import pandas as pd
    if not pieces:
        found = as_frame(empty()).copy()
    elif len(pieces) == 1:
        table, a, b = pieces[0]
        found = rows_of(as_frame(spill.load(table)), a, b)
    else:                       # settled early and the rest: connections in order of their first frame
        found = pd.concat([as_frame(spill.load(t)).iloc[a:b] for t, a, b in pieces], ignore_index=True)
        found = found.sort_values("conn_first_frame", kind="stable", ignore_index=True)
    if floods is not None and len(floods):
        found = pd.concat([found, as_frame(floods)], ignore_index=True)
        found = found.sort_values("frame", kind="stable", ignore_index=True)
    return found


def all_findings(results: list[FileResult]) -> pd.DataFrame:
    """Every file's findings in input order, as `pd.concat([r.findings for r in results])` but
    built from the batch tables a run at a time: a DataFrame per small file first costs ~100 KB
    of RSS a file (a folder of 3,000 captures), this costs next to nothing per file."""
    import pandas as pd
    runs: list[pd.DataFrame] = []
    cur: list | None = None            # [table, first row, end row] of the run being extended
    for r in results:
        if r._findings is None:
            r._take()
        simple = r._findings is None and r._floods is None and r._pieces is not None and len(r._pieces) <= 1
        if simple and not r._pieces:
            continue                   # no findings
        if simple:
            table, a, b = r._pieces[0]
            if cur is not None and cur[0] is table and cur[2] == a:
                cur[2] = b
                continue
            if cur is not None:
                runs.append(as_frame(spill.load(cur[0])).iloc[cur[1]:cur[2]])
            cur = [table, a, b]
            continue
        if cur is not None:
            runs.append(as_frame(spill.load(cur[0])).iloc[cur[1]:cur[2]])
            cur = None
        runs.append(r.findings)
    if cur is not None:
        runs.append(as_frame(spill.load(cur[0])).iloc[cur[1]:cur[2]])
    if not runs:
        return results[0].findings if results else pd.DataFrame()
    return pd.concat(runs, ignore_index=True)


def findings_in_order(results: list[FileResult], rows: int = RESET_BATCH, release: bool = False,
                      light: bool = False) -> Iterator[pd.DataFrame | Table]:
    """The rows of `all_findings(results)`, in its order and with its columns (a record names every
    column of the whole table, null where a row has none), as tables of at most ~`rows` rows for
    a writer that streams: a spilled table is loaded while its rows are written, one at a time.
    With `release`, the results give up their findings to this stream, which lets each table go
    once written (what a report renders at the end then has that memory back). With `light`,
    a batch's columns.Table is given as one (sliced, taken, joined), never made a DataFrame
    where it need not be: for a writer of each row's values (JSON Lines), not of pandas' types
    (a slice of a table's DataFrame keeps the types of the whole column)."""
    parts = []                                      # (result, its findings table or pieces, floods)
    columns: dict[str, None] = {}
    for r in results:
        if r._findings is not None:                 # findings from another process (--jobs)
            parts.append((r._findings, None, None))
            columns.update(dict.fromkeys(r._findings.columns))
            if release:
                r._findings = None
            continue
        if r.no_findings:                           # a file without resets: no table, no column
            continue
        pieces = r._pieces
        if r._floods is not None and not pieces:    # as `assemble`: an empty table, then the floods
            columns.update(dict.fromkeys(r._empty().columns))
        parts.append((None, pieces, r._floods))
        for t, _, _ in pieces:
            columns.update(dict.fromkeys(spill.columns_of(t)))
        if r._floods is not None:
            columns.update(dict.fromkeys(r._floods.columns))
        if release:
            r._pieces = r._floods = None
    union = list(columns)
    for table in _in_order(parts, rows, light):
        if len(table.columns) == len(union):
            yield table
        else:               # as pandas reindexes: a column a table lacks is float NaN
            yield table.reindex(union) if isinstance(table, Table) else as_frame(table).reindex(columns=union)


def _in_order(parts: list, rows: int, light: bool) -> Iterator[pd.DataFrame | Table]:
    runs = _Runs(rows, light)
    parts.reverse()
    while parts:
        findings, pieces, floods = parts.pop()     # a part written is a part let go
        if findings is not None:
            yield from runs.flush()
            yield from _slices(findings, rows)
        elif floods is None and len(pieces) == 1:
            yield from runs.add(*pieces[0])
        else:
            yield from runs.flush()
            yield from _ordered(pieces, floods, rows, light)
    yield from runs.flush()


class _Runs:
    """Consecutive small files whose findings are neighbouring rows of one batch table, written
    together (a table per small file would cost ~1 ms each)."""

    def __init__(self, rows: int, light: bool) -> None:
        self.rows, self.light, self.cur = rows, light, None        # cur: [table, first row, end row]

    def add(self, table, a: int, b: int) -> Iterator[pd.DataFrame]:
        if self.cur is not None and self.cur[0] is table and self.cur[2] == a:
            self.cur[2] = b
        else:
            yield from self.flush()
            self.cur = [table, a, b]
        if self.cur[2] - self.cur[1] >= self.rows:
            yield from self.flush()

    def flush(self) -> Iterator[pd.DataFrame]:
        if self.cur is not None:
            table, a, b = self.cur
            self.cur = None
            yield from _slices(rows_of(_load(table, self.light), a, b), self.rows)


def _slices(table: pd.DataFrame | Table, rows: int) -> Iterator[pd.DataFrame | Table]:
    for a in range(0, len(table), rows):
        yield table.iloc[a:a + rows] if not isinstance(table, Table) else table.rows(a, a + rows)


def _load(table, light: bool) -> pd.DataFrame | Table:
    """A batch's findings table from memory or disk: as it is kept (`light`), else a DataFrame."""
    table = spill.load(table)
    return table if light else as_frame(table)


def rows_of(table: pd.DataFrame | Table, start: int, end: int) -> pd.DataFrame | Table:
    """Rows start..end-1 of a findings table, numbered from 0."""
    if isinstance(table, Table):
        return table.rows(start, end)
    return table.iloc[start:end].reset_index(drop=True)


def _take(table: pd.DataFrame | Table, rows: np.ndarray) -> pd.DataFrame | Table:
    """The rows `rows` of a findings table, in that order, numbered from 0."""
    if isinstance(table, Table):
        return table.take(rows)
    return table.iloc[rows].reset_index(drop=True)


def _joined(tables: list) -> pd.DataFrame | Table:
    """Findings tables one after another, with every column any of them has (a flood's `resets`
    beside a reset's features): a Table when all are Tables, a column one lacks Missing there."""
    if len(tables) == 1:
        return tables[0]
    if all(isinstance(t, Table) for t in tables):
        union = list(dict.fromkeys(name for t in tables for name in t.columns))   # pandas' concat order
        return Table.concat([t if t.columns == union else t.reindex(union) for t in tables])
    import pandas as pd
    return pd.concat([as_frame(t) for t in tables], ignore_index=True)


def _ordered(pieces: list, floods: pd.DataFrame | None, rows: int, light: bool) -> Iterator[pd.DataFrame | Table]:
    """One file's findings in `assemble`'s order (pieces by first frame, stable; with floods, all
    by frame, stable), taken from each piece as needed: one loaded piece at a time."""
    source = np.concatenate([np.full(b - a, i) for i, (_, a, b) in enumerate(pieces)] or [np.zeros(0, int)])
    row = np.concatenate([np.arange(a, b) for _, a, b in pieces] or [np.zeros(0, int)])
    keys = [spill.key_columns(t) for t, _, _ in pieces]
    first = np.concatenate([k[0][a:b] for k, (_, a, b) in zip(keys, pieces)] or [np.zeros(0, np.int64)])
    frame = np.concatenate([k[1][a:b] for k, (_, a, b) in zip(keys, pieces)] or [np.zeros(0, np.int64)])
    order = np.argsort(first, kind="stable") if len(pieces) > 1 else np.arange(len(first))
    source, row, frame = source[order], row[order], frame[order]
    if floods is not None and len(floods):
        source = np.concatenate([source, np.full(len(floods), -1)])
        row = np.concatenate([row, np.arange(len(floods))])
        order = np.argsort(np.concatenate([frame, columns.to_numpy(floods["frame"], np.int64, 0)]), kind="stable")
        source, row = source[order], row[order]
    loaded: tuple[int, pd.DataFrame | Table] | None = None

    def table_of(s: int) -> pd.DataFrame | Table:
        nonlocal loaded
        if s < 0:
            return floods if light else as_frame(floods)
        if loaded is None or loaded[0] != s:
            loaded = None                           # free the previous piece before loading the next
            loaded = (s, _load(pieces[s][0], light))
        return loaded[1]

    for a in range(0, len(source), rows):
        src, at = source[a:a + rows], row[a:a + rows]
        if (src == src[0]).all() and at[-1] - at[0] == len(at) - 1 and (np.diff(at) == 1).all():
            # rows in a piece's own order (a burst's slices follow one another): a slice of it
            yield rows_of(table_of(int(src[0])), int(at[0]), int(at[-1]) + 1)
            continue
        parts, where = [], []
        for s in sorted(distinct(src), key=lambda s: (s < 0, s)):   # each piece it needs, once; floods last
            table = table_of(int(s))
            mask = src == s
            parts.append(_take(table, at[mask]))
            where.append(np.flatnonzero(mask))
        yield _take(_joined(parts), np.argsort(np.concatenate(where), kind="stable"))


def _give_back() -> None:
    """Return the pages a classification freed to the system. Its short-lived objects (features,
    rows) interleave with the findings that stay, and glibc keeps the freed pages between them:
    measured, the RSS grew ~6 KB per reset of which ~1.2 KB were findings."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim():
    try:
        import ctypes
        return ctypes.CDLL(None).malloc_trim        # glibc only; elsewhere nothing to do
    except (OSError, AttributeError):
        return None


_shared: list[VerdictBatch] = []


def shared_batch(rules: list[Rule]) -> VerdictBatch:
    """One batch per rule set, shared by the files of a run (a new rule set flushes the old)."""
    if _shared and _shared[0].rules is rules:
        return _shared[0]
    if _shared:
        _shared[0].flush()
    _shared[:] = [VerdictBatch(rules)]
    return _shared[0]


def verdicts(label: str, seg: Segments, rules: list[Rule]) -> pd.DataFrame:
    """One explained finding per RST in `seg` (which must hold whole connections)."""
    P, conns, rsts = rst_connections(seg)
    out = _explained(label, P, conns, rsts, rules)
    # join keys (community_id, ts with nanoseconds) for every finding, read and live alike
    return add_join_keys(out, P["ts_ns"][rsts.row].tolist() if len(rsts) else []).to_pandas()


def _explained(label: str, P: dict[str, np.ndarray], conns: list | ConnColumns, rsts: RstRows, rules: list[Rule]) -> Table:
    """Features, verdicts and explanations of the connections holding a RST, as a columns.Table
    (the rule engine is imported here, not before; pandas only where a DataFrame is asked for)."""
    from .engine.evaluate import classify_table
    from .features.extract import feature_columns
    return explain_table(classify_table(feature_columns(label, P, conns, rsts), rules), rules)


def _static_texts(templates: list[str]) -> list[str] | None:
    """The texts of templates that name no placeholder (as formatting them gives), else None."""
    if any("{" in t for t in templates):
        return None
    try:
        return [t.format_map({}) for t in templates]
    except (ValueError, KeyError, IndexError):      # left for the row-by-row path to report as before
        return None


def _positional(template: str) -> tuple[str, list[str]] | None:
    """`template` with its named placeholders made positional, and the names in order, so a row
    fills it from columns without a dict per row; None for anything but plain {name} fields
    (rule files allow no others; the dict path below reports them as before)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return None
    text, names = [], []
    for literal, name, spec, conv in parts:
        text.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if spec or conv or name not in TEMPLATE_FIELDS:
            return None
        text.append("{%d}" % len(names))
        names.append(name)
    return "".join(text), names


def _template_parts(form: tuple[str, list[str]]) -> tuple[list[str], list[str]]:
    """A positional form (_positional) as the texts between its fields and the fields' names."""
    literals, names = [""], []
    for literal, field, _, _ in string.Formatter().parse(form[0]):
        literals[-1] += literal
        if field is not None:
            names.append(form[1][int(field)])
            literals.append("")
    return literals, names


def _row_fields(df: Table, names: set[str]) -> dict[str, list]:
    """The columns templates are filled from (those in `names`, and the four ends every summary
    names): the table's own, the receiver and the client and server ends worked out from the sender."""
    names = set(names) | {"src", "sport", "dst", "dport"}
    own = ("src", "sport", "dst", "dport", "sender", "frame", "conn_state", "history")
    cols = {c: columns.tolist(df[c]) for c in own if c in names or c == "sender"}
    sender = cols["sender"]
    if "receiver" in names:
        cols["receiver"] = [{"client": "server", "server": "client"}.get(s, "unknown") for s in sender]
    ends = {"client": ("src", "dst"), "client_port": ("sport", "dport"),
            "server": ("dst", "src"), "server_port": ("dport", "sport")}
    for name, (if_client, otherwise) in ends.items():
        if name in names:
            cols[name] = [a if s == "client" else b for s, a, b in zip(sender, cols[if_client], cols[otherwise])]
    return cols


def explain(df: pd.DataFrame, rules: list[Rule]) -> pd.DataFrame:
    """Summary sentence, errno per side and remediation from each row's winning rule, added to
    a copy of `df`."""
    return explain_table(Table.from_pandas(df), rules).to_pandas(index=df.index)


def explain_table(df: Table, rules: list[Rule]) -> Table:
    """explain, in place, on a columns.Table (a read's batch: no pandas)."""
    by_id = {r.id: r for r in rules}
    # one errno object per rule, shared by its rows (a dict of lists per row was ~0.5 KB a reset)
    errno_of = {r.id: {"receiver": list(r.errno.get("receiver", [])), "sender": list(r.errno.get("sender", []))}
                for r in rules}
    no_rule_errno = {"receiver": ["ECONNRESET"], "sender": []}
    # remediation without a placeholder is the same text for every row (most rules): format it once
    static_remedies = {r.id: _static_texts(r.remediation) for r in rules}
    # the others are made positional once and filled from columns (a dict per row cost ~5 us)
    compiled = {r.id: (_positional(r.explain), [_positional(t) for t in r.remediation]) for r in rules}
    n = len(df)
    errnos, remedies = [None] * n, [None] * n
    title_texts: list[str] = []               # a code per row into these (an Arrow column at once)
    title_code = np.zeros(n, np.int64)
    follows = columns.tolist(df["follows_frame"]) if "follows_frame" in df else [None] * n
    # the rows of each rule, filled a rule at a time
    rows_of: dict[str, list[int]] = {}
    for j, rule_id in enumerate(columns.tolist(df["rule"])):
        rows_of.setdefault(rule_id, []).append(j)
    named = {f for rule_id in rows_of if rule_id in compiled
             for form in [compiled[rule_id][0], *compiled[rule_id][1]]
             for f in (form[1] if form is not None else TEMPLATE_FIELDS)}
    cols = _row_fields(df, named) if n else {}

    def fill(target: list, rows: list[int], values: list) -> None:
        for j, v in zip(rows, values):
            target[j] = v

    def fill_with(target: list, rows: list[int], value) -> None:     # one shared object for all rows
        for j in rows:
            target[j] = value

    # each row's summary: a template filled from columns (textcolumns.filled: in C, into an Arrow
    # column), or a text made here (`given`)
    summary_of, given = np.full(n, -1, np.int64), [None] * n
    summary_templates: list[tuple[list[str], list[int]]] = []
    field_at: dict[str, int] = {}
    fields: list[list] = []

    def summary_template(literals: list[str], names: list[str], rows: list[int]) -> None:
        for name in names:
            if name not in field_at:
                field_at[name] = len(fields)
                fields.append(follows if name == "follows" else cols[name])
        summary_of[rows] = len(summary_templates)
        summary_templates.append((literals, [field_at[name] for name in names]))

    def texts(template: str, form: tuple[str, list[str]] | None, rows: list[int]) -> list[str]:
        if form is None:
            return [template.format_map({f: cols[f][j] for f in TEMPLATE_FIELDS}) for j in rows]
        if not form[1]:                                 # a text without placeholders
            return [form[0].format()] * len(rows)
        return list(map(form[0].format, *([cols[f][j] for j in rows] for f in form[1])))

    for rule_id, rows in rows_of.items():
        rule = by_id.get(rule_id)
        if rule is None:
            summary_template(["", ":", " reset the connection to ", ":", "; no rule matched"],
                             ["src", "sport", "dst", "dport"], rows)
            fill_with(errnos, rows, no_rule_errno)
            fill(remedies, rows, [[] for _ in rows])
            title_code[rows] = len(title_texts)
            title_texts.append("No rule explains this reset")
            continue
        summary_form, remedy_forms = compiled[rule_id]
        first = [j for j in rows if follows[j] is None]
        if summary_form is None:
            fill(given, first, texts(rule.explain, summary_form, first))
        else:
            summary_template(*_template_parts(summary_form), first)
        if len(first) < len(rows):
            later = [j for j in rows if follows[j] is not None]
            summary_template(["Follow-up of the reset in frame ", f" ({rule.name}): ", ":", " answered a segment ",
                              ":", " still had in flight on the connection already reset"],
                             ["follows", "src", "sport", "dst", "dport"], later)
        fill_with(errnos, rows, errno_of[rule_id])
        fixed = static_remedies[rule_id]
        if fixed is not None:                   # one list shared by the rule's rows, as its errno object
            fill_with(remedies, rows, list(fixed))
        else:
            per_text = [texts(t, form, rows) for t, form in zip(rule.remediation, remedy_forms)]
            fill(remedies, rows, list(map(list, zip(*per_text))) if per_text else [[] for _ in rows])
        title_code[rows] = len(title_texts)
        title_texts.append(rule.title)
    out = df
    out["summary"] = textcolumns.filled_texts(summary_of, summary_templates, fields, given)
    out["errno"] = errnos
    out["remediation"] = remedies
    out["title"] = Texts(coded=(title_texts, title_code), how="arrow")
    return out
