"""--metrics-port: Prometheus text exposition of what the live session has seen."""
from __future__ import annotations

import pandas as pd

from ..errors import RstwatchError
from .sinks import reset_weights


class MetricsError(RstwatchError):
    """The metrics endpoint cannot be served (port busy, no permission)."""


class LiveMetrics:
    def __init__(self, port: int, addr: str = "") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
        reg = self.registry = CollectorRegistry()
        self.resets = Counter("rstwatch_resets", "TCP resets classified, by cause and by the role of the sender",
                              ["cause", "sender"], registry=reg)
        self.packets = Counter("rstwatch_packets", "Packets read from the capture", registry=reg)
        self.segments = Counter("rstwatch_tcp_segments", "TCP segments decoded", registry=reg)
        self.flows = Gauge("rstwatch_flows_tracked", "TCP flows held in the flow table", registry=reg)
        self.table_segments = Gauge("rstwatch_flow_table_segments", "TCP segments held in the flow table", registry=reg)
        self.evicted = Counter("rstwatch_flows_evicted", "Flows dropped early because the flow table was full", registry=reg)
        self.drops = Gauge("rstwatch_capture_dropped_packets",
                           "Packets the capture dropped (dumpcap's statistics; dumpcap reports them when it stops)",
                           registry=reg)
        self.delay = Histogram("rstwatch_verdict_delay_seconds", "Time from a RST reaching rstwatch to its verdict",
                               buckets=(0.5, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0), registry=reg)
        self.kernel = Counter("rstwatch_kernel_resets", "Resets this host's kernel sent (tcp:tcp_send_reset), by its reason",
                              ["reason"], registry=reg)       # fed by rstwatch/kernel/live.py
        self._totals: dict = {}
        try:
            start_http_server(port, addr=addr or "0.0.0.0", registry=reg)
        except OSError as exc:
            raise MetricsError(f"--metrics-port {port}", exc.strerror or str(exc)) from None

    def update(self, packets: int, segments: int, evicted: int, flows: int, table_segments: int) -> None:
        """Bring the counters up to the session's running totals."""
        for counter, total in ((self.packets, packets), (self.segments, segments), (self.evicted, evicted)):
            counter.inc(total - self._totals.get(counter, 0))
            self._totals[counter] = total
        self.flows.set(flows)
        self.table_segments.set(table_segments)

    def findings(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        for cause, sender, n in zip(df["cause"], df["sender"], reset_weights(df)):
            self.resets.labels(cause=cause, sender=sender).inc(int(n))
