"""The metrics endpoint under abuse (issue 20 item 14): idle connections and header floods against a
running `rstwatch live` held to the systemd unit's TasksMax=64; the text it serves is
prometheus_client's own, byte for byte; slow clients are cut off."""
from __future__ import annotations

import gzip
import os
import socket
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import hostile  # noqa: E402

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespace, pids cgroup)")
NS = "rwmetrics"
PORT = 19751


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("Threads:")).split()[1])


@needs_root
def test_scrapes_answer_while_80_idle_connections_are_held_under_tasksmax_64():
    """Before: a thread per connection, so 80 idle ones used up TasksMax=64 and every scrape
    failed ("can't start new thread" tracebacks); 101-header requests printed tracebacks."""
    seen, err, rc, _ = hostile.abuse_metrics_endpoint(NS, PORT, idle=80, floods=200)
    err = err.decode(errors="replace")
    threads, scrapes, flood = seen["threads"], seen["scrapes"], seen["flood"]
    assert all(s is not None and s < 2.0 for s in scrapes), scrapes
    assert threads <= 12, threads                        # bounded: not one per connection
    assert flood == {"HTTP/1.1 431 Request Header Fields Too Large": 200}, flood
    assert rc == 0, err
    assert "Traceback" not in err and "thread" not in err, err
    assert len(err.splitlines()) <= 6, err               # "watching" and the summary, nothing per client


def test_served_text_is_prometheus_clients_own():
    """Same bytes as prometheus_client's exposition for the same registry: plain text, the
    OpenMetrics text when asked, gzip when accepted, name[] narrowing, 405 for other methods."""
    from prometheus_client import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
    from rstwatch.live.metrics import LiveMetrics
    port = _free_port()
    lm = LiveMetrics(port, "127.0.0.1", ["lo"])
    lm.update(10, 4, 0, 2, 4)
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert r.read() == generate_latest(lm.registry)
    om = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(om, timeout=5) as r:
        assert r.read() == openmetrics(lm.registry)
    gz = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(gz, timeout=5) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(r.read()) == generate_latest(lm.registry)
    with urllib.request.urlopen(url + "?name[]=rstwatch_packets_total", timeout=5) as r:
        body = r.read().decode()
        assert "rstwatch_packets_total 10.0" in body and "rstwatch_flows_tracked" not in body
    with pytest.raises(urllib.error.HTTPError) as no:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=5)
    assert no.value.code == 405
    lm.server.close()


def test_bad_and_slow_clients_are_answered_or_cut_off_and_held_connections_are_capped(monkeypatch):
    from rstwatch.live import httpserve
    from rstwatch.live.metrics import LiveMetrics
    monkeypatch.setattr(httpserve, "IDLE_S", 0.5)
    port = _free_port()
    lm = LiveMetrics(port, "127.0.0.1", ["lo"])
    bad = socket.create_connection(("127.0.0.1", port), timeout=5)
    bad.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")            # a TLS hello or junk: 400, closed
    assert bad.makefile("rb").read().startswith(b"HTTP/1.1 400 ")
    big = socket.create_connection(("127.0.0.1", port), timeout=5)
    big.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * (httpserve.HEAD_LIMIT + 10))   # endless header: 431
    assert big.makefile("rb").readline().startswith(b"HTTP/1.1 431 ")
    held = hostile.idle_clients("127.0.0.1", port, httpserve.MAX_CLIENTS + 20)
    assert len(lm.server.clients) <= httpserve.MAX_CLIENTS
    assert hostile.scrape_seconds("127.0.0.1", port) is not None        # the newest connection is served
    time.sleep(1.5)                                                       # past IDLE_S: all cut off
    assert lm.server.clients == {}
    assert all(s.recv(1) == b"" for s in held[-5:])                       # closed by the server
    for s in held + [bad, big]:
        s.close()
    lm.server.close()
