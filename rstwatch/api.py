"""The public Python API: the same findings as `rstwatch read` / `rstwatch live`, as pandas
DataFrames, for notebooks and scripts. Column names are the JSON Lines field names plus every
feature column (`rstwatch rules features`); they are added to, never renamed."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import pandas as pd

from .analyze import analyze_file
from .engine.loader import load_rules as _load_rules
from .engine.model import Rule
from .errors import CaptureError, RstwatchError
from .sources.capture import expand_inputs
from .sources.readfilter import make_filter
from .track.storms import STORM_MIN_FLOWS

PathLike = Union[str, "os.PathLike[str]"]
Rules = Union[None, PathLike, Sequence[PathLike], Sequence[Rule]]

__all__ = ["read", "iter_findings", "load_rules", "watch", "RstwatchError"]


def load_rules(*folders: PathLike, builtin: bool = True) -> list[Rule]:
    """The built-in rules plus each folder's (a folder's rule with a built-in id replaces it;
    `disabled: true` removes it). Invalid files raise RuleError listing every `file:line: reason`."""
    return _load_rules([Path(f) for f in folders], builtin=builtin)


def _rules(rules: Rules) -> list[Rule]:
    if rules is None:
        return _load_rules([])
    if isinstance(rules, (str, os.PathLike)):
        return load_rules(rules)
    rules = list(rules)
    if all(isinstance(r, Rule) for r in rules):
        return rules
    return load_rules(*rules)


def _paths(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _complete(df: pd.DataFrame) -> pd.DataFrame:
    """`resets` and `connections` always filled (1 for a per-RST row; a flood's own counts)."""
    for col in ("resets", "connections"):
        values = df[col] if col in df else pd.Series(1, index=df.index)
        df[col] = values.fillna(1).astype("int64")
    return df


def iter_findings(paths: PathLike | Iterable[PathLike], rules: Rules = None, *, bpf: str | None = None,
                  since: str | None = None, until: str | None = None, count: int | None = None,
                  storm_min: int = STORM_MIN_FLOWS, on_error: str = "raise") -> Iterator[pd.DataFrame]:
    """One DataFrame of findings per capture file, in input order (folders: every capture below
    them, sorted; "-": standard input). `bpf`, `since`, `until`, `count` are `read`'s options.
    `on_error="warn"` turns an unreadable file into a warning instead of an exception.
    Each frame's `attrs` hold the file's `packets` count and reader `warnings`."""
    if on_error not in ("raise", "warn"):
        raise ValueError("on_error is 'raise' or 'warn'")
    keep = make_filter(bpf, since, until, count)
    chosen = _rules(rules)
    for path in expand_inputs(_paths(paths)):
        try:
            res = analyze_file(path, chosen, storm_min=storm_min, keep=keep)
        except CaptureError as exc:
            if on_error == "raise":
                raise
            warnings.warn(str(exc), stacklevel=2)
            continue
        for w in res.diag.warnings:
            warnings.warn(f"{res.path}: {w}", stacklevel=2)
        df = _complete(res.findings)
        df.attrs.update(file=res.path, packets=res.diag.packets, warnings=list(res.diag.warnings))
        yield df


def read(paths: PathLike | Iterable[PathLike], rules: Rules = None, **options) -> pd.DataFrame:
    """Every finding of the captures as one DataFrame (one row per RST; a flood is one row whose
    `resets` says how many it stands for). `rules`: None (built-ins), a folder, several folders,
    or rules from `load_rules`. Options as `iter_findings` (bpf, since, until, count, storm_min,
    on_error). `attrs["packets"]` is the number of packets read."""
    frames = list(iter_findings(paths, rules, **options))
    if not frames:
        return _complete(pd.DataFrame(columns=_empty_columns()))
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    out.attrs = {"packets": sum(f.attrs.get("packets", 0) for f in frames),
                 "files": [f.attrs.get("file") for f in frames],
                 "warnings": [w for f in frames for w in f.attrs.get("warnings", [])]}
    return _complete(out)


def _empty_columns() -> list[str]:
    from .report.records import CONTRACT_FIELDS, EXTRA_FIELDS
    return CONTRACT_FIELDS + EXTRA_FIELDS


def watch(interfaces: str | Sequence[str], rules: Rules = None, *, bpf: str | None = None,
          duration: float | None = None, storm_min: int = STORM_MIN_FLOWS, snaplen: int | None = None,
          poll_s: float = 0.25, capture: str = "auto") -> Iterator[pd.DataFrame]:
    """Watch interfaces live (as `rstwatch live`: `capture` is its --capture, rstwatch's own ring
    or dumpcap) and yield a DataFrame each time resets are decided (about 1 s after each RST).
    Stops after `duration` seconds, when the generator is closed (`break`), or on
    KeyboardInterrupt; the capture is stopped (dumpcap reaped) in every case."""
    import queue
    from .live.capture import open_capture, start_feed
    from .live.dumpcap import SNAPLEN, CaptureStartError
    from .live.feed import END
    from .live.tracker import LiveTracker
    names = [interfaces] if isinstance(interfaces, str) else list(interfaces)
    label = "live:" + ",".join(names)
    tracker = LiveTracker(label, _rules(rules), storm_min)
    started = time.monotonic()
    with open_capture(names, bpf, snaplen or SNAPLEN, capture) as cap:
        feed = start_feed(cap, label)
        try:
            if not feed.wait_started(15.0):
                cap.stop()
                raise CaptureStartError(", ".join(names), cap.failure())
            ended = False
            while not ended:
                try:
                    item = feed.batches.get(timeout=poll_s)
                except queue.Empty:
                    item = ()
                if item is END:
                    ended = True
                elif item:
                    tracker.ingest(*item)
                if duration is not None and time.monotonic() - started >= duration:
                    break
                found = tracker.poll()
                if len(found):
                    yield _complete(found)
            cap.stop()
            deadline = time.monotonic() + 3.0
            while not ended and time.monotonic() < deadline:      # what the capture flushed on stop
                try:
                    item = feed.batches.get(timeout=0.2)
                except queue.Empty:
                    break
                if item is END:
                    break
                tracker.ingest(*item)
            found = tracker.poll(final=True)
            if len(found):
                yield _complete(found)
        finally:
            cap.stop()
            feed.join(1.0)
    if feed.error is not None:
        raise feed.error
