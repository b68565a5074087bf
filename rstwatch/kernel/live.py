"""`rstwatch live` with kernel reasons: a tracker wrapper that feeds the joiner and annotates each
batch of verdicts. Unavailable (old kernel, no permission, no tracefs) = one stderr line, and the
wire-only verdicts go on unchanged."""
from __future__ import annotations

import sys
import time
from collections import Counter

import pandas as pd

from ..engine.model import Rule
from ..report.plaintext import visible
from .addrs import LocalAddresses
from .join import KernelJoin
from .reader import TraceReader
from .tracefs import KernelUnavailable, TraceInstance


def _say(message: str) -> None:
    print(f"rstwatch: {visible(message)}", file=sys.stderr, flush=True)


class KernelSide:
    def __init__(self, instance: TraceInstance, reader: TraceReader, join: KernelJoin, metrics=None) -> None:
        self.instance, self.reader, self.join, self.metrics = instance, reader, join, metrics
        self._counted: Counter = Counter()
        self._closed = False

    @classmethod
    def open(cls, interfaces: list[str], rules: list[Rule], label: str, metrics=None,
             warn=None) -> "KernelSide | None":
        """`warn` takes the one line saying why kernel reasons are unavailable; the caller says it once
        the capture has started (a live run that cannot capture at all prints only that error)."""
        warn = warn or (lambda m: _say(m))
        try:
            instance = TraceInstance().__enter__()
        except KernelUnavailable as exc:
            warn(f"warning: {exc}; wire-only verdicts")
            return None
        try:
            reader = TraceReader(instance).start()
        except OSError as exc:
            instance.remove()
            warn(f"warning: kernel reasons unavailable: cannot read {instance.pipe}: {exc.strerror}; wire-only verdicts")
            return None
        return cls(instance, reader, KernelJoin(LocalAddresses(interfaces), rules, label), metrics)

    def wrap(self, tracker) -> "JoinedTracker":
        return JoinedTracker(tracker, self)

    def step(self, df: pd.DataFrame, final: bool) -> pd.DataFrame:
        j = self.join
        j.add_events(self.reader.drain())
        j.match()
        df = j.annotate(df)
        alone = j.kernel_only_rows(j.expire(time.time(), final))
        self._metrics()
        if not len(alone):
            return df
        return alone if not len(df) else pd.concat([df, alone], ignore_index=True)

    def _metrics(self) -> None:
        if self.metrics is None or not hasattr(self.metrics, "kernel"):
            return
        for reason, n in self.join.reasons.items():
            if n > self._counted[reason]:
                self.metrics.kernel.labels(reason=reason).inc(n - self._counted[reason])
                self._counted[reason] = n

    def close(self, quiet: bool = False) -> None:
        """`quiet`: the capture never started, so there is nothing to sum up."""
        if self._closed:
            return
        self._closed = True
        self.reader.close()
        lost = self.instance.overruns()
        self.instance.remove()
        if quiet:
            return
        _say(self.join.summary() + (f"; {lost:,} trace event(s) overwritten before they were read" if lost else ""))
        if self.reader.error is not None:
            _say(f"warning: reading the kernel's trace failed: {self.reader.error}")


class JoinedTracker:
    """The live tracker, with each RST remembered for the joiner and each verdict batch annotated."""

    def __init__(self, tracker, side: KernelSide) -> None:
        self._tracker, self._side = tracker, side

    def __getattr__(self, name):
        return getattr(self._tracker, name)

    def ingest(self, seg, arrived: float) -> None:
        self._side.join.add_wire(seg)
        self._tracker.ingest(seg, arrived)

    def poll(self, now: float | None = None, final: bool = False) -> pd.DataFrame:
        return self._side.step(self._tracker.poll(now, final), final)
