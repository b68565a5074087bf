"""`rstwatch live`: dumpcap -> pipe -> fast reader -> live tracker -> verdicts, with a clean stop
on SIGINT/SIGTERM/SIGHUP, --duration, a closed stdout, or a capture that dies."""
from __future__ import annotations

import queue
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import typer

from ..engine.loader import load_rules
from ..exitcodes import ExitStatus
from ..gcpause import settle_startup
from ..report.output import guarded_stdout
from ..report.plaintext import visible
from ..kernel.live import KernelSide
from .capture import open_capture, start_feed
from .dumpcap import CaptureStartError, SNAPLEN
from .evidence import Evidence
from ..kernel.stored import comment_text
from .feed import END, PipeFeed, settled_frame
from .flowtable import Limits, SEGMENT_BYTES
from .metrics import LiveMetrics
from .overload import OverloadWatch
from .report import LiveReport
from .sinks import CauseTally, make_sink
from .tracker import EARLY_POLL_ROWS, LiveTracker

START_TIMEOUT_S = 15.0  # dumpcap writes its header as soon as the interface is open
TICK_S = 0.25           # how often deadlines are checked when no packet arrives
STOP_GRACE_S = 3.0      # after asking dumpcap to stop: time to drain what it flushes
# SIGHUP (a dropped SSH session) ends the session like SIGTERM: every verdict, the summary, exit 0.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h', '1h30m' -> seconds."""
    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text or "")
    if not m or not any(m.groups()):
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 30s, 10m, 1h)")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise typer.BadParameter("the duration must be positive")
    return seconds


@dataclass
class LiveOptions:
    interfaces: list[str]
    fmt: str = "table"
    bpf: str | None = None
    duration_s: float | None = None
    write: Path | None = None
    ring_files: int = 0
    ring_mb: float = 100.0
    force: bool = False
    metrics_port: int | None = None
    metrics_address: str | None = None     # None: every IPv4 address (metrics.DEFAULT_ADDRESS)
    rule_dirs: list[Path] = field(default_factory=list)
    storm_min: int | None = None       # None: each flood rule's min_connections
    snaplen: int = SNAPLEN
    limits: Limits = field(default_factory=Limits)
    kernel: bool = True                  # join tcp_send_reset reasons when the kernel offers them
    report: "LiveReport | None" = None   # --report FILE: written when the session ends (live/report.py)
    capture: str = "auto"                # auto: the in-process ring where it can, else dumpcap (ringcap.py)


class Stop:
    """Set by SIGINT/SIGTERM/SIGHUP; the main loop checks it between batches."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt          # a second Ctrl-C: stop now (children are still reaped)
        self.signal = signum


def _say(message: str) -> None:
    try:
        print(f"rstwatch: {visible(message)}", file=sys.stderr, flush=True)   # names shown, never obeyed
    except OSError:
        pass                                # stderr is gone (a hung-up terminal): no one to tell


def run_live(opts: LiveOptions) -> int:
    rules = load_rules(opts.rule_dirs)
    label = "live:" + ",".join(opts.interfaces)
    if opts.report:
        opts.report.check(opts.write)       # an unwritable --report or its side files: exit 2 before capturing
    evidence = Evidence(opts.write, opts.force, opts.ring_files, opts.ring_mb,
                        warn=lambda m: _say(f"warning: {m}")) if opts.write else None
    try:
        return _run(opts, rules, label, evidence)
    finally:
        if opts.report:
            opts.report.abort()         # not written (an error): its CSV spooled so far is removed
        if evidence:
            evidence.unlock()           # held through the summary and the report, which name and read the files


def _run(opts: LiveOptions, rules: list, label: str, evidence: Evidence | None) -> int:
    metrics = LiveMetrics(opts.metrics_port, opts.metrics_address, opts.interfaces) if opts.metrics_port else None
    out = guarded_stdout()                  # a full stdout: one error line; a closed one: a quiet end
    sink = make_sink(opts.fmt, out)         # table, jsonl, csv, ... (report/formats.py)
    tracker = LiveTracker(label, rules, opts.storm_min, opts.limits)
    kernel_notes: list[str] = []
    kernel = KernelSide.open(opts.interfaces, rules, label, metrics, kernel_notes.append) if opts.kernel else None
    tracker = kernel.wrap(tracker) if kernel else tracker
    if kernel and evidence:             # each reset's kernel reason goes into the file as its packet comment
        evidence.hold()
        kernel.join.on_match = lambda frame, ev: evidence.note(frame, comment_text(ev))
    stop = Stop()
    old = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    tally = CauseTally(rules)
    started = time.monotonic()
    capturing = False
    try:
        with open_capture(opts.interfaces, opts.bpf, opts.snaplen, opts.capture) as cap:
            feed = start_feed(cap, label, evidence.write if evidence else None, opts.interfaces)
            if not feed.wait_started(START_TIMEOUT_S):
                cap.stop()
                raise CaptureStartError(", ".join(opts.interfaces), cap.failure())
            where = ", ".join(opts.interfaces) + (f" (filter: {opts.bpf})" if opts.bpf else "")
            _say(f"watching {where}; each reset is reported about {tracker.hold_s:.0f} s after it is seen; "
                 f"Ctrl-C to stop")
            capturing = True
            for note in kernel_notes:
                _say(note)
            sink.start(where)

            def emit(df: pd.DataFrame) -> None:
                df = feed.copies.annotate(df)       # which interfaces saw each reset (`any`, several -i)
                if len(df):
                    sink.write(df)
                    tally.add(df)
                    if opts.report:
                        opts.report.add(df)
                if evidence and kernel:
                    evidence.release(settled_frame(feed, tracker, kernel.join))
                if metrics:
                    metrics.findings(df)
                    for d in tracker.delays:
                        metrics.delay.observe(d)

            overload = OverloadWatch(cap, metrics, _say, opts.interfaces).start()
            try:
                ended = run_loop(feed, tracker, stop, emit, metrics, opts.duration_s, started)
            finally:
                overload.stop()
            # Stop dumpcap, take what it flushed, then decide every pending RST.
            cap.stop()
            if not ended:
                _drain(feed, tracker, time.monotonic() + STOP_GRACE_S)
            feed.join(1.0)
            emit(tracker.poll(final=True))
        capture_lost = ended                    # the pipe closed before we asked dumpcap to stop
        failure = cap.failure() if capture_lost else ""
        stats = cap.stats()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if evidence:
            evidence.close()
        if kernel:
            kernel.close(quiet=not capturing)
    if feed.error is not None:
        raise feed.error
    if metrics:
        metrics.capture_stopped(stats.per_interface, stats.dropped)
    sink.finish(tally)
    _summary(label, feed, tracker, stats, tally, time.monotonic() - started, evidence)
    if opts.report:
        received = stats.received if stats.taken_known else 0
        opts.report.write(label, feed.diag.packets, rules, opts.rule_dirs, stats.dropped if stats.known
                          else None, received or None, list(evidence.files) if evidence else [])
        _say(f"report written to {opts.report.path}")
    if capture_lost:
        _say(f"error: capture on {', '.join(opts.interfaces)} stopped: {failure}")
        return ExitStatus.PARTIAL
    return ExitStatus.INTERRUPTED if stop.signal == signal.SIGINT else ExitStatus.OK


def run_loop(feed: PipeFeed, tracker: LiveTracker, stop: Stop, emit, metrics, duration_s, started) -> bool:
    """Run until a signal, the duration, or the end of the pipe (returns True for the latter)."""
    settle_startup()        # the session's objects and every import stay; no collection rescans them
    next_tick = time.monotonic() + TICK_S
    while True:
        try:
            item = feed.batches.get(timeout=TICK_S)
        except queue.Empty:
            item = ()
        if item is END:
            return True
        if item:
            tracker.ingest(*item)
        now = time.monotonic()
        # a tick, or sooner when a burst brought many segments since the last one (they would
        # otherwise pile up in memory, all joined and judged at once, before the table is pruned)
        if now >= next_tick or tracker.incoming_rows > EARLY_POLL_ROWS:
            emit(tracker.poll(now))
            next_tick = now + TICK_S
            if metrics:
                metrics.update(feed.diag.packets, tracker.segments, tracker.evicted_total,
                               tracker.prune_stats.flows, tracker.rows)
        if stop.signal is not None or (duration_s and now - started >= duration_s):
            return False


def _drain(feed: PipeFeed, tracker: LiveTracker, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            item = feed.batches.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            return
        if item is END:
            return
        tracker.ingest(*item)


def _summary(label, feed, tracker, stats, tally: CauseTally, seconds, evidence) -> None:
    causes = ", ".join(f"{c} {n}" for c, n in tally.resets.most_common()) or "none"
    if stats.from_dumpcap:
        drops = f"capture dropped {stats.dropped:,} of {stats.received:,} packets"
    elif stats.from_ring:
        drops = f"capture dropped {stats.dropped:,} of {stats.received + stats.dropped:,} packets (rstwatch's ring)"
    elif stats.from_kernel:     # dumpcap was killed blocked on the pipe: the kernel's count, read by rstwatch
        unread = stats.received - feed.diag.packets if stats.taken_known else 0
        drops = (f"capture dropped {stats.dropped:,} packets (the kernel's count for dumpcap's socket; dumpcap "
                 f"gave no statistics)" + (f"; {unread:,} more were still in dumpcap's buffer when it was stopped"
                                           if unread > 0 else ""))
    else:
        drops = "capture drops unknown (dumpcap gave no statistics)"
    _say(f"{label}: {seconds:.1f} s, {feed.diag.packets:,} packets ({tracker.segments:,} TCP), "
         f"{tally.total():,} reset{'' if tally.total() == 1 else 's'}: {causes}; {drops}")
    for st in tracker.storms.storms.values():
        _say(f"{st.kind} against {st.target}: {st.rsts:,} resets, {st.syns:,} SYNs on {st.flows:,} connections "
             f"(frames {st.first_frame}-{st.last_frame})")
    if tracker.evicted_total:
        _say(f"warning: flow table full: {tracker.evicted_total:,} flow(s) forgotten early "
             f"(cap {tracker.limits.max_segments:,} segments, about {tracker.limits.max_segments * SEGMENT_BYTES / 2**20:.0f} MiB)")
    if feed.unsupported:
        _say(f"warning: {feed.unsupported:,} packet(s) with a link type the fast reader does not decode were ignored")
    for w in feed.diag.warnings:
        _say(f"warning: {w}")
    if evidence and evidence.files:
        names = ", ".join(str(p) for p in evidence.files[-3:])
        _say(f"packets kept in {names}" + (f" (+{len(evidence.files) - 3} more)" if len(evidence.files) > 3 else "")
             + (f"; writing stopped early ({evidence.failed})" if evidence.failed else ""))
