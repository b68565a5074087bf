"""Say it while it happens: the kernel's drops on dumpcap's sockets, polled every TICK_S, go into
rstwatch_capture_dropped_packets_total at once and onto stderr as one line when drops start and
at most one line per SAY_EVERY_S while they go on.

Polled from its own thread, not the live loop: under overload the loop spends seconds deciding
one batch of verdicts (measured: no tick for 9 s at 100,000 separate resets/s), which is exactly
when the drops must be told."""
from __future__ import annotations

import threading
import time

SAY_EVERY_S = 10.0
TICK_S = 0.25


class OverloadWatch:
    def __init__(self, cap, metrics, say, interfaces: list[str], clock=time.monotonic) -> None:
        self.cap = cap              # a Dumpcap: kernel_drops() -> {interface: drops so far} or None
        self.metrics = metrics
        self.say = say
        self.interfaces = interfaces
        self.clock = clock
        self.said_total = 0         # drops already told about
        self.said_at: float | None = None
        self.overloaded = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rstwatch-overload", daemon=True)

    def start(self) -> "OverloadWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._done.wait(TICK_S):
            try:
                self.tick()
            except Exception as exc:        # never take the session down for a statistic
                self.say(f"warning: capture drops no longer read ({type(exc).__name__}: {exc})")
                return

    def tick(self) -> None:
        drops = self.cap.kernel_drops()
        if drops is None:
            return                  # not readable here (no rights): dumpcap's count at the end, if any
        if self.metrics:
            self.metrics.capture_drops_so_far(drops)
        total = sum(drops.values())
        now = self.clock()
        if total <= self.said_total:
            if self.overloaded and now - self.said_at >= SAY_EVERY_S:
                self.say(f"no more drops on {self._where(drops)} for {SAY_EVERY_S:.0f} s "
                         f"({total:,} in all)")
                self.overloaded, self.said_at = False, now
            return
        if self.overloaded and now - self.said_at < SAY_EVERY_S:
            return                  # rate limit: the next line sums this window
        new = total - self.said_total
        since = f"in the last {now - self.said_at:.0f} s" if self.overloaded else "so far"
        self.say(f"overloaded: the kernel dropped {new:,} packets on {self._where(drops)} {since} "
                 f"({getattr(self.cap, 'owner', 'the capture socket')}; {total:,} in all); verdicts may be late or missing")
        self.overloaded, self.said_at, self.said_total = True, now, total

    def _where(self, drops: dict[str, int]) -> str:
        names = [n for n, d in drops.items() if d] or list(drops) or self.interfaces
        return ", ".join(names)
