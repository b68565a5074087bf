"""Streaming verdicts: segments arrive in small batches; each RST is classified once it has
waited `hold_s` (to see whether traffic continues after it), with the same rules and features
as `rstwatch read`."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..analyze import verdicts
from ..engine.model import Rule
from ..gcpause import gc_paused
from ..report.storms import storm_rows
from ..sources.segments import RST, Segments
from ..loops import factorize_keys
from ..track.flows import BURST_WINDOW_NS, flow_hash
from ..track.storms import StormTracker
from .flowtable import Limits, PruneStats, prune
from .growtable import GrowingTable

HOLD_S = 1.0            # a verdict waits this long after its RST arrived
STORM_UPDATE_S = 10.0   # a flood that goes on gets a row for what it added this often (and at the end)
PRUNE_EVERY_S = 1.0
# Segments arrived since the last poll that make the next one come before its tick: what one
# poll joins and judges at once (~25 MB of columns, a few times that while flood flows are found)
EARLY_POLL_ROWS = 250_000


class LiveTracker:
    def __init__(self, label: str, rules: list[Rule], storm_min: int, limits: Limits | None = None,
                 hold_s: float = HOLD_S) -> None:
        self.label = label
        self.rules = rules
        self.limits = limits or Limits()
        self.hold_s = hold_s
        self.storms = StormTracker(rules, storm_min)
        self.counted: dict = {}                     # flood -> (resets, connections) already reported
        self.updated: dict = {}                     # flood -> when its last row was written
        self.reported = np.zeros(0, np.int64)       # RST frames that got a row of their own
        self.table = Segments.empty()
        # the table's columns, with room for what comes: up to the cap and a burst of arrivals
        self._grow = GrowingTable(self.limits.max_segments + EARLY_POLL_ROWS)
        self.incoming: list[Segments] = []
        self.incoming_rows = 0
        # RSTs waiting for their verdict: frame and arrival time (due hold_s later; the delay
        # metric). What arrives is listed and joined when read: joining at every packet batch
        # copied the whole waiting list each time (100,000 resets in 1,400 batches: 0.17 s)
        self._pend_frame = np.zeros(0, np.int64)
        self._pend_seen = np.zeros(0, np.float64)
        self._arrived: list[tuple[np.ndarray, float]] = []
        self.last_prune = 0.0
        self.prune_stats = PruneStats()
        self.evicted_total = 0
        self.segments = 0
        self.last_frame = 0                         # newest frame ingested
        self.last_ts = 0                            # newest packet time (capture clock, ns) ...
        self.last_arrival = time.monotonic()        # ... and when it arrived (our clock)
        self.delays: list[float] = []               # seconds from RST arrival to verdict, last poll

    def ingest(self, seg: Segments, arrived: float) -> None:
        self.incoming.append(seg)
        self.incoming_rows += len(seg)
        self.segments += len(seg)
        if len(seg):
            self.last_ts = max(self.last_ts, int(seg["ts_ns"].max()))
            self.last_frame = max(self.last_frame, int(seg["frame"].max()))
            self.last_arrival = arrived
        rst = np.flatnonzero((seg["flags"] & RST) != 0)
        if len(rst):
            self._arrived.append((seg["frame"][rst], arrived))

    def _gather(self) -> None:
        if self._arrived:
            arrived, self._arrived = self._arrived, []
            self._pend_frame = np.concatenate([self._pend_frame] + [f for f, _ in arrived])
            self._pend_seen = np.concatenate([self._pend_seen] + [np.full(len(f), t) for f, t in arrived])

    @property
    def pend_frame(self) -> np.ndarray:
        self._gather()
        return self._pend_frame

    @property
    def pend_due(self) -> np.ndarray:
        return self.pend_seen + self.hold_s

    @property
    def pend_seen(self) -> np.ndarray:
        self._gather()
        return self._pend_seen

    @property
    def rows(self) -> int:
        return len(self.table) + self.incoming_rows

    def poll(self, now: float | None = None, final: bool = False) -> pd.DataFrame:
        """Findings for every RST whose wait is over (all of them when `final`), in frame order."""
        now = time.monotonic() if now is None else now
        if self.incoming:
            self.table = self._grow.extend(self.table, self.incoming)
            self.incoming, self.incoming_rows = [], 0
        out = [self._floods(now, final)]
        due = np.ones(len(self.pend_frame), bool) if final else self.pend_due <= now
        self.delays = []
        if due.any():
            out.append(self._classify(self.pend_frame[due]))
            self.delays = (now - self.pend_seen[due]).tolist()
            self._keep_pending(~due)
        if now - self.last_prune >= PRUNE_EVERY_S or len(self.table) > self.limits.max_segments:
            self._prune(now)
        found = [d for d in out if d is not None and len(d)]
        if not found:
            return pd.DataFrame()
        if len(found) == 1 and found[0]["frame"].is_monotonic_increasing:
            return found[0].reset_index(drop=True)      # as sorting would give: no copy of every column
        return pd.concat(found, ignore_index=True).sort_values("frame", kind="stable", ignore_index=True)

    def _keep_pending(self, keep: np.ndarray) -> None:
        """`keep`: a mask over the waiting RSTs as read (pend_frame) since the last arrival."""
        if self._arrived:
            raise RuntimeError("RSTs arrived between reading the waiting ones and keeping some")
        self._pend_frame, self._pend_seen = self._pend_frame[keep], self._pend_seen[keep]

    def _floods(self, now: float, final: bool) -> pd.DataFrame | None:
        before = len(self.table)
        # resets that already have a row of their own still make a flood, but are not counted twice
        if len(self.reported) and len(self.table):
            self.reported = self.reported[np.isin(self.reported, self.table["frame"])]
        self.table = self.storms.absorb(self.table, final=final, counted=self.reported)
        if len(self.table) != before and len(self.pend_frame):      # absorbed RSTs get no row of their own
            self._keep_pending(np.isin(self.pend_frame, self.table["frame"]))
        # a new flood is announced at once; then what it adds, every STORM_UPDATE_S and at the end
        # (a SYN flood adds connections, not resets: either counts)
        due = {k for k, st in self.storms.storms.items()
               if k not in self.counted or ((st.rsts, st.flows) > self.counted[k]
                                            and (final or now - self.updated.get(k, 0.0) >= STORM_UPDATE_S))}
        if not due:
            return None
        for k in due:
            self.updated[k] = now
        return storm_rows(self.label, self.storms, due, self.counted).to_pandas()     # live's batches are DataFrames

    def _classify(self, frames: np.ndarray) -> pd.DataFrame:
        keys = flow_hash(self.table)
        at = np.isin(self.table["frame"], frames)
        if not at.any():
            return pd.DataFrame()
        # Features that compare connections (a listener's burst, conn.server_rst_burst) need the
        # others reset around the same time, whether decided already, now or later: a burst can
        # straddle two batches, and `read` would see it whole.
        ts = self.table["ts_ns"]
        near = (((self.table["flags"] & RST) != 0) & (ts >= ts[at].min() - BURST_WINDOW_NS)
                & (ts <= ts[at].max() + BURST_WINDOW_NS))
        codes, distinct = factorize_keys(keys)         # the flows of the table, numbered
        wanted = np.zeros(len(distinct), bool)
        wanted[codes[at | near]] = True
        flows = wanted[codes]
        # collections held off while a tick's verdicts are made (they die with the tick or stay
        # in its findings, by reference count): 100,000 resets at once spent 0.16 s in 206 of them
        with gc_paused():
            found = verdicts(self.label, self.table.take(np.flatnonzero(flows)), self.rules)
        self.reported = np.concatenate([self.reported, frames])
        if not len(found):
            return found
        mine = found["frame"].isin(frames).to_numpy()
        return found if mine.all() else found[mine]      # a copy of every column only when some go

    def _prune(self, now: float) -> None:
        # Idle times on the capture's clock, advanced by how long the wire has been quiet: the
        # same whether packets come from an interface now or from a recording replayed fast.
        now_ns = self.last_ts + int(max(now - self.last_arrival, 0.0) * 1e9)
        self.table, st = prune(self.table, now_ns, self.pend_frame, self.limits, self._grow.take)
        self.prune_stats = st
        self.evicted_total += st.evicted
        self.last_prune = now
