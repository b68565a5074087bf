"""--metrics-port/--metrics-address: Prometheus text exposition of what the live session has seen."""
from __future__ import annotations

import gzip
import os
import socket
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from ..errors import RstwatchError
from .httpserve import SelectorServer
from .sinks import reset_weights


class MetricsError(RstwatchError):
    """The metrics endpoint cannot be served (port busy, no permission)."""


DEFAULT_ADDRESS = "0.0.0.0"     # every IPv4 address, as before: Prometheus scrapes from another host


def bind_address(text: str | None) -> str:
    """--metrics-address: an IPv4 or IPv6 literal (brackets allowed: [::1]) or a host name;
    empty or None keeps the default."""
    text = (text or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text or DEFAULT_ADDRESS


def interface_rx_dropped(name: str) -> int | None:
    """The kernel's count of packets an interface dropped on receive (before any capture saw
    them: ring full, no buffer, unknown protocol), or None where there is no such file (`any`)."""
    try:
        with open(f"/sys/class/net/{name}/statistics/rx_dropped") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return None


def listen(address: str, port: int) -> socket.socket:
    """A listening TCP socket on the first address the name resolves to (IPv4 or IPv6)."""
    family, kind, proto, _, sockaddr = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a restart binds while old sockets linger
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class RxDrops:
    """Receive drops since rstwatch started, of one interface or, for `any`, summed over every
    interface of this network namespace: one series per captured name, so a node's churning pod
    interfaces add no label values. An interface that appears later counts from when it is first
    seen; one that goes keeps what it added (the counter never goes back)."""

    def __init__(self, name: str) -> None:
        self.names = None if name == "any" else [name]
        self.base: dict[str, int] = {}
        self.added: dict[str, int] = {}
        self.total()

    def total(self) -> int | None:
        names = self.names if self.names is not None else _interfaces()
        for name in names:
            now = interface_rx_dropped(name)
            if now is None:
                continue
            base = self.base.setdefault(name, now)
            if now < base:                        # deleted and made again under the same name
                self.base[name] = base = -self.added.get(name, 0)
            self.added[name] = now - base
        return sum(self.added.values()) if self.base else None


def _interfaces() -> list[str]:
    try:
        return os.listdir("/sys/class/net")
    except OSError:
        return []


class LiveMetrics:
    def __init__(self, port: int, addr: str | None = None, interfaces: list[str] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
        from .. import __version__
        reg = self.registry = CollectorRegistry()
        self.resets = Counter("rstwatch_resets", "TCP resets classified (a flood counts every reset it holds), "
                              "by cause and by the role of the sender", ["cause", "sender"], registry=reg)
        self.packets = Counter("rstwatch_packets", "Packets read from the capture", registry=reg)
        self.segments = Counter("rstwatch_tcp_segments", "TCP segments decoded", registry=reg)
        self.flows = Gauge("rstwatch_flows_tracked", "TCP flows held in the flow table", registry=reg)
        self.table_segments = Gauge("rstwatch_flow_table_segments", "TCP segments held in the flow table", registry=reg)
        self.evicted = Counter("rstwatch_flows_evicted", "Flows dropped early because the flow table was full", registry=reg)
        self.capture_drops = Counter("rstwatch_capture_dropped_packets",
                                     "Packets the capture dropped, by interface: the kernel's count for dumpcap's "
                                     "socket, read every 0.25 s while running (as root), plus dumpcap's own when it stops",
                                     ["interface"], registry=reg)
        self.iface_drops = Counter("rstwatch_interface_dropped_packets",
                                   "Packets the interface dropped on receive since rstwatch started (kernel "
                                   "rx_dropped), read while running", ["interface"], registry=reg)   # `any`: summed
        Info("rstwatch_build", "The rstwatch that serves these metrics", registry=reg).info({"version": __version__})
        self.delay = Histogram("rstwatch_verdict_delay_seconds", "Time from a RST reaching rstwatch to its verdict",
                               buckets=(0.5, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0), registry=reg)
        self.kernel = Counter("rstwatch_kernel_resets", "Resets this host's kernel sent (tcp:tcp_send_reset), by its reason",
                              ["reason"], registry=reg)       # fed by rstwatch/kernel/live.py
        self._totals: dict = {}
        self._rx = {name: rx for name in (interfaces or []) if (rx := RxDrops(name)).total() is not None}
        for name in self._rx:
            self.iface_drops.labels(interface=name)            # exported at 0 from the start
        for name in interfaces or []:
            self.capture_drops.labels(interface=name)
        self.address = bind_address(addr)
        try:
            listener = listen(self.address, port)
        except (OSError, ValueError) as exc:      # busy port, no permission, an address not on this host
            where = f"[{self.address}]:{port}" if ":" in self.address else f"{self.address}:{port}"
            raise MetricsError(f"--metrics-address/--metrics-port {where}",
                               getattr(exc, "strerror", None) or str(exc)) from None
        self.server = SelectorServer(listener, self.render).start()

    def render(self, method: str, target: str, headers: dict[str, str]) -> tuple[str, list, bytes]:
        """The answers prometheus_client's own server gives (any path serves the metrics, name[]
        narrows them, OpenMetrics and gzip when asked), so scrapes read the same text as before."""
        from prometheus_client.exposition import choose_encoder
        allow = [("Allow", "OPTIONS,GET")]
        url = urlsplit(target)
        if method == "OPTIONS":
            return "200 OK", allow, b""
        if method != "GET":
            return "405 Method Not Allowed", allow, f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()
        if url.path == "/favicon.ico":
            return "200 OK", [], b""
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        params = parse_qs(url.query)
        registry = self.registry.restricted_registry(params["name[]"]) if "name[]" in params else self.registry
        body, extra = encoder(registry), [("Content-Type", content_type)]
        if any(e.split(";")[0].strip().lower() == "gzip" for e in headers.get("accept-encoding", "").split(",")):
            body, extra = gzip.compress(body), [*extra, ("Content-Encoding", "gzip")]
        return "200 OK", extra, body

    def update(self, packets: int, segments: int, evicted: int, flows: int, table_segments: int) -> None:
        """Bring the counters up to the session's running totals."""
        for counter, total in ((self.packets, packets), (self.segments, segments), (self.evicted, evicted)):
            counter.inc(total - self._totals.get(counter, 0))
            self._totals[counter] = total
        self.flows.set(flows)
        self.table_segments.set(table_segments)
        for name, rx in self._rx.items():
            total = rx.total()
            if total is not None:
                self._advance(self.iface_drops.labels(interface=name), ("rx", name), total)

    def _advance(self, child, key, total: int) -> None:
        child.inc(max(total - self._totals.get(key, 0), 0))
        self._totals[key] = max(total, self._totals.get(key, 0))

    def capture_drops_so_far(self, drops: dict[str, int]) -> None:
        """The kernel's drops on dumpcap's sockets, read on the live loop's tick (live/overload.py)."""
        for name, lost in drops.items():
            self._advance(self.capture_drops.labels(interface=name), ("capture", name), lost)

    def capture_stopped(self, per_interface: dict[str, tuple[int, int]], dropped: int) -> None:
        """dumpcap's own received/dropped counts, which it gives when it stops. (This counter
        replaces the gauge rstwatch_capture_dropped_packets: Prometheus cannot hold both names.)"""
        for name, (_, lost) in per_interface.items():
            self._advance(self.capture_drops.labels(interface=name), ("capture", name), lost)

    def findings(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        for cause, sender, n in zip(df["cause"], df["sender"], reset_weights(df)):
            self.resets.labels(cause=cause, sender=sender).inc(int(n))
