"""Live counters count every reset, floods included (issue 11 item 11), and the metrics endpoint
(issue 11 item 5, issue 15): --metrics-address, capture drops as a _total counter with an
`interface` label, rstwatch_build_info. No capture rights needed: the live loop is fed through a
pipe at a real-time pace, as dumpcap would feed it."""
from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import hostile  # noqa: E402


def _pcapng(rec: np.ndarray) -> tuple[bytes, bytes]:
    """(header blocks, packet blocks) of pcap records as one-interface pcapng."""
    n = len(rec)
    blk = np.zeros(n, dtype=[("type", "<u4"), ("blen", "<u4"), ("iface", "<u4"), ("hi", "<u4"), ("lo", "<u4"),
                             ("cap", "<u4"), ("len", "<u4"), ("frame", "u1", 56), ("blen2", "<u4")])
    ticks = rec["sec"].astype(np.uint64) * 1_000_000 + rec["usec"]
    blk["type"], blk["blen"], blk["blen2"] = 6, 88, 88
    blk["hi"], blk["lo"] = ticks >> 32, ticks & 0xFFFFFFFF
    blk["cap"] = blk["len"] = hostile.FRAME
    blk["frame"][:, :hostile.FRAME] = rec["f"]
    head = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28) + struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
    return head, blk.tobytes()


def _free_port(family=socket.AF_INET, host="127.0.0.1") -> int:
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_a_storm_that_goes_on_is_counted_whole_in_rows_tally_and_metrics(builtin_rules):
    """60,000 spoofed RSTs arriving over ~2 s: the flood is detected in its first poll and goes
    on. Before, its row (and so the summary tally and rstwatch_resets_total) counted only what
    had come when it was detected (~5% of it)."""
    from rstwatch.live.feed import PipeFeed
    from rstwatch.live.metrics import LiveMetrics
    from rstwatch.live.session import Stop, run_loop
    from rstwatch.live.sinks import CauseTally
    from rstwatch.live.tracker import LiveTracker
    n = 60_000
    head, body = _pcapng(hostile.rst_records(n, 20_000.0))
    r, w = os.pipe()

    def pace():                       # 20 slices, 0.1 s apart: the storm keeps arriving
        os.write(w, head)
        step = len(body) // 20 // 88 * 88
        for k in range(20):
            os.write(w, body[k * step:(k + 1) * step] if k < 19 else body[k * step:])
            time.sleep(0.1)
        os.close(w)
    writer = threading.Thread(target=pace, daemon=True)      # a failing test must not hang on a full pipe
    writer.start()
    port = _free_port()
    metrics = LiveMetrics(port, "127.0.0.1", ["lo"])
    feed = PipeFeed(r, "live:test").start()
    tracker = LiveTracker("live:test", builtin_rules, 500)
    tally, rows = CauseTally(), []

    def emit(df):
        if len(df):
            tally.add(df)
            rows.append(df)
        metrics.findings(df)
    run_loop(feed, tracker, Stop(), emit, metrics, None, time.monotonic())
    emit(tracker.poll(final=True))
    writer.join()
    os.close(r)
    storm_rows = [df[df["cause"] == "rst-storm"] for df in rows]
    assert sum(int(d["resets"].sum()) for d in storm_rows) == n
    assert tally.total() == n and tally.resets["rst-storm"] == n
    got = _scrape(f"http://127.0.0.1:{port}/metrics")
    assert got['rstwatch_resets_total{cause="rst-storm",sender="unknown"}'] == n


def test_resets_reported_one_by_one_are_not_counted_again_by_a_flood(builtin_rules):
    """A slow storm is reported row by row until 500 flows are held, then becomes a flood: the
    resets that already had a row must not be counted again in the flood's."""
    from rstwatch.live.tracker import LiveTracker
    from rstwatch.live.feed import PipeFeed
    from rstwatch.live.session import Stop, run_loop
    from rstwatch.live.sinks import CauseTally
    n = 1500
    head, body = _pcapng(hostile.rst_records(n, 250.0))
    r, w = os.pipe()

    def pace():
        os.write(w, head)
        step = len(body) // 30 // 88 * 88
        for k in range(30):
            os.write(w, body[k * step:(k + 1) * step] if k < 29 else body[k * step:])
            time.sleep(0.2)
        os.close(w)
    writer = threading.Thread(target=pace, daemon=True)      # a failing test must not hang on a full pipe
    writer.start()
    feed = PipeFeed(r, "live:test").start()
    tracker = LiveTracker("live:test", builtin_rules, 500)
    tally = CauseTally()
    run_loop(feed, tracker, Stop(), lambda df: tally.add(df) if len(df) else None, None, None, time.monotonic())
    tally.add(tracker.poll(final=True))
    writer.join()
    os.close(r)
    assert tally.total() == n, dict(tally.resets)


@pytest.mark.parametrize("address,family,host", [("127.0.0.1", socket.AF_INET, "127.0.0.1"),
                                                 ("[::1]", socket.AF_INET6, "::1"),
                                                 ("::1", socket.AF_INET6, "::1")])
def test_metrics_address_loopback_and_ipv6(address, family, host):
    from rstwatch.live.metrics import LiveMetrics
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.fail("no IPv6 on this machine")
    port = _free_port(family, host)
    LiveMetrics(port, address, ["lo"])
    url_host = f"[{host}]" if ":" in host else host
    got = _scrape(f"http://{url_host}:{port}/metrics")
    from rstwatch import __version__
    assert got[f'rstwatch_build_info{{version="{__version__}"}}'] == 1.0
    assert 'rstwatch_interface_dropped_packets_total{interface="lo"}' in got
    # not reachable on another address of this host: bound to loopback only
    other = "127.0.0.1" if family == socket.AF_INET6 else None
    if other:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{other}:{port}/metrics", timeout=2)


def test_metrics_address_that_is_not_here_is_one_line_error():
    from rstwatch.live.metrics import LiveMetrics, MetricsError
    with pytest.raises(MetricsError) as err:
        LiveMetrics(_free_port(), "192.0.2.55")          # TEST-NET-1: never an address of this host
    assert "192.0.2.55" in str(err.value) and "\n" not in str(err.value)


def test_capture_drops_are_a_total_counter_per_interface_and_interface_drops_move_while_running(monkeypatch):
    """dumpcap's drops (known when it stops) go to rstwatch_capture_dropped_packets_total{interface};
    the kernel's per-interface receive drops are read on every tick while running (#19 item 3:
    `any` too, summed over the interfaces)."""
    from rstwatch.live import metrics as m
    counts = {"eth9": 100, "veth1": 5}
    monkeypatch.setattr(m, "interface_rx_dropped", lambda name: counts.get(name))
    monkeypatch.setattr(m, "_interfaces", lambda: list(counts))
    port = _free_port()
    lm = m.LiveMetrics(port, "127.0.0.1", ["eth9", "any"])
    url = f"http://127.0.0.1:{port}/metrics"
    assert _scrape(url)['rstwatch_interface_dropped_packets_total{interface="eth9"}'] == 0
    assert _scrape(url)['rstwatch_interface_dropped_packets_total{interface="any"}'] == 0
    counts["eth9"] = 137
    lm.update(10, 5, 0, 1, 5)
    got = _scrape(url)
    assert got['rstwatch_interface_dropped_packets_total{interface="eth9"}'] == 37
    # `any`: summed over the namespace's interfaces; one made later counts from when first seen,
    # one that goes keeps what it added
    counts["veth1"], counts["pod7"] = 8, 2
    lm.update(10, 5, 0, 1, 5)
    counts["pod7"] = 6
    del counts["veth1"]
    lm.update(10, 5, 0, 1, 5)
    assert _scrape(url)['rstwatch_interface_dropped_packets_total{interface="any"}'] == 37 + 3 + 4
    lm.capture_stopped({"eth9": (1000, 12), "any": (50, 0)}, 12)
    got = _scrape(url)
    assert got['rstwatch_capture_dropped_packets_total{interface="eth9"}'] == 12
    assert got['rstwatch_capture_dropped_packets_total{interface="any"}'] == 0


def test_interface_rx_dropped_reads_the_kernel_counter():
    from rstwatch.live.metrics import interface_rx_dropped
    value = interface_rx_dropped("lo")
    with open("/sys/class/net/lo/statistics/rx_dropped") as fh:
        assert value == int(fh.read())
    assert interface_rx_dropped("no-such-if0") is None
