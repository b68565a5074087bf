"""`rstwatch kernel`: this host's resets as its kernel reports them (every network namespace),
streamed as JSON Lines or a table, with the causes each reason can stand for."""
from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime, timezone
from typing import TextIO

from .events import KernelEvent
from .reader import TraceReader
from .table import kernel_causes
from .tracefs import TraceInstance

EXIT_OK, EXIT_INTERRUPTED = 0, 130
COLUMNS = f"{'time (UTC)':15}  {'sender -> receiver':47}  {'reason':22}  {'state':15}  {'context':22}  causes"


def event_record(ev: KernelEvent) -> dict:
    rec = ev.record()
    rec["causes"] = kernel_causes(ev.reason, ev.state)
    return rec


def table_line(ev: KernelEvent) -> str:
    clock = datetime.fromtimestamp(ev.time, tz=timezone.utc).strftime("%H:%M:%S.%f")
    conn = f"{ev.src}:{ev.sport} -> " + ("(listener)" if ev.listener else f"{ev.dst}:{ev.dport}")
    ctx = f"{ev.comm}[{ev.pid}]" if ev.context == "process" else "softirq"
    return (f"{clock:15}  {conn:47}  {ev.reason:22}  {ev.state or '-':15}  {ctx:22}  "
            f"{', '.join(kernel_causes(ev.reason, ev.state)) or '-'}")


def run_kernel(fmt: str, duration_s: float | None, out: TextIO = sys.stdout) -> int:
    stop: list[int] = []

    def on_signal(signum, frame) -> None:
        stop.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    seen = 0
    started = time.monotonic()
    try:
        with TraceInstance() as inst:
            reader = TraceReader(inst).start()
            try:
                print("rstwatch: tracing tcp:tcp_send_reset (every network namespace on this host); Ctrl-C to stop",
                      file=sys.stderr, flush=True)
                if fmt == "table":
                    out.write(COLUMNS + "\n")
                    out.flush()
                while not stop and not (duration_s and time.monotonic() - started >= duration_s):
                    time.sleep(0.1)
                    events = reader.drain()
                    for ev in events:
                        out.write((json.dumps(event_record(ev), separators=(",", ":")) if fmt == "jsonl"
                                   else table_line(ev)) + "\n")
                    if events:
                        out.flush()
                        seen += len(events)
            finally:
                reader.close()
                lost = inst.overruns()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    print(f"rstwatch: kernel: {seen:,} reset(s) traced in {time.monotonic() - started:.1f} s"
          + (f"; {lost:,} overwritten before they were read" if lost else ""), file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED if stop and stop[0] == signal.SIGINT else EXIT_OK
