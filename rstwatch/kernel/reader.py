"""A thread that reads the instance's trace_pipe and queues parsed events with wall-clock times."""
from __future__ import annotations

import os
import select
import threading
import time
from collections import deque

from .events import KernelEvent, parse_line
from .tracefs import TraceInstance

MAX_QUEUED = 200_000       # a consumer that stops draining cannot grow memory without bound


def mono_to_wall() -> float:
    """Offset to add to a CLOCK_MONOTONIC time to get epoch seconds (sampled now)."""
    a = time.clock_gettime(time.CLOCK_MONOTONIC)
    w = time.clock_gettime(time.CLOCK_REALTIME)
    b = time.clock_gettime(time.CLOCK_MONOTONIC)
    return w - (a + b) / 2


class TraceReader:
    def __init__(self, instance: TraceInstance) -> None:
        self.instance = instance
        self.events: deque[KernelEvent] = deque(maxlen=MAX_QUEUED)
        self.lines = 0
        self.unparsed = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._fd = os.open(instance.pipe, os.O_RDONLY | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="rstwatch-kernel", daemon=True)

    def start(self) -> "TraceReader":
        self._thread.start()
        return self

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        tail = b""
        try:
            while not self._stop.is_set():
                if not poller.poll(200):
                    continue
                try:
                    chunk = os.read(self._fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    time.sleep(0.05)
                    continue
                *complete, tail = (tail + chunk).split(b"\n")
                offset = mono_to_wall()
                for raw in complete:
                    ev = parse_line(raw.decode(errors="replace"))
                    self.lines += 1
                    if ev is None:
                        self.unparsed += 1
                        continue
                    ev.time = ev.mono + offset
                    self.events.append(ev)
        except BaseException as exc:      # reported by the consumer; the wire goes on
            self.error = exc

    def drain(self) -> list[KernelEvent]:
        out = []
        while self.events:
            out.append(self.events.popleft())
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            os.close(self._fd)
        except OSError:
            pass
