"""Kernel truth vs the wire: make every kernel-sent reset for real, watch the sending host's interface
with `rstwatch live` (kernel reasons joined), and print per scenario the wire-only cause, the
kernel's reason and the kernel-settled cause. Root only (network namespaces, tracefs).

    python benchmarks/kernel_agreement.py [--json]

Topology (own names and addresses, so a lab run elsewhere on the host cannot be mistaken for ours:
the tracepoint sees every namespace):  hkc 10.91.1.2 -- hkr (router, nftables) -- hks 10.91.2.2.
One `rstwatch live` watches hkc's c0, another hks's s0; the applications are lab/apps.py, run as
lab/make_captures.py runs them. tests/test_kernel.py runs the same scenarios and asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab import netlab  # noqa: E402  (the lab's topology, with this benchmark's own names and addresses)
from lab.netlab import App, nsx  # noqa: E402  (lab programs and a shell helper)

CLIENT, ROUTER, SERVER = "hkc", "hkr", "hks"
C_ADDR, S_ADDR, S6_ADDR = "10.91.1.2", "10.91.2.2", "fd91:2::2"
MISSED_PORT = 9499          # the server session's capture filter leaves this port out: kernel-only


NAMES = (CLIENT, ROUTER, SERVER)


def setup() -> None:
    netlab.setup(NAMES, "10.91", "fd91")


def teardown() -> None:
    netlab.teardown(NAMES)


def nft(rule: str) -> None:
    netlab.nft(rule, ROUTER)


def nft_flush() -> None:
    netlab.nft_flush(ROUTER)


def server(name: str, port: int, arg=None, host: str = S_ADDR) -> App:
    app = App(SERVER, name, host, port, arg)
    app.wait_for("ready")
    return app


# ------------------------------------------------------------------ scenarios (as lab/make_captures.py)
def closed_port(port):
    App(CLIENT, "client_connect", S_ADDR, port).result()


def closed_port_v6(port):
    App(CLIENT, "client_connect", S6_ADDR, port).result()


def late_synack(port):
    srv = server("server_echo", port, 5)
    nft(f"ip saddr {S_ADDR} tcp sport {port} tcp flags & (syn|ack) == syn|ack drop")
    App(CLIENT, "client_give_up", S_ADDR, port, 0.5).result()
    time.sleep(0.3)
    nft_flush()
    time.sleep(2.5)                 # SYN-ACK retransmissions reach a client with no socket
    srv.kill()


def abort_before_accept(port):
    srv = server("server_accept_later", port, 1.0)
    App(CLIENT, "client_abort_fresh", S_ADDR, port).result()
    srv.result()


def accept_queue_overflow(port):
    nsx(SERVER, "sysctl -qw net.ipv4.tcp_abort_on_overflow=1")
    try:
        srv = server("server_slow_accept", port, 1)
        cli = App(CLIENT, "client_burst", S_ADDR, port, 3)
        cli.wait_for("first")
        nft(f"ip daddr {S_ADDR} tcp dport {port} tcp flags & (syn|ack) == ack drop")
        cli.tell()
        time.sleep(0.6)
        nft_flush()
        cli.result()
        srv.result()
    finally:
        nsx(SERVER, "sysctl -qw net.ipv4.tcp_abort_on_overflow=0")


def listener_closed(port):
    srv = server("server_never_accept", port, 1.5)
    clients = [App(CLIENT, "client_request", S_ADDR, port) for _ in range(3)]
    [c.result() for c in clients]
    srv.result()


def unread_data_close(port):
    srv = server("server_close_unread", port)
    App(CLIENT, "client_request", S_ADDR, port).result()
    srv.result()


def linger_zero(port):
    srv = server("server_linger_zero", port)
    App(CLIENT, "client_request", S_ADDR, port).result()
    srv.result()


def linger_with_unread(port):
    """SO_LINGER 0 on a socket that still holds unread bytes: the server reads 4096 of a 10 kB request
    before answering, so on the wire nothing arrives after its answer (the wire says SO_LINGER 0);
    the kernel says TCP_ABORT_ON_CLOSE: data was left unread."""
    srv = server("server_linger_zero", port)
    App(CLIENT, "client_request", S_ADDR, port, 10000).result()
    srv.result()


def data_after_close(port):
    srv = server("server_respond_close", port)
    App(CLIENT, "client_write_after_close", S_ADDR, port).result()
    srv.result()


def keepalive_race(port):
    nft(f"ip saddr {S_ADDR} tcp sport {port} tcp flags & fin == fin drop")
    try:
        srv = server("server_respond_close", port, 0.8)
        App(CLIENT, "client_reuse_after_idle", S_ADDR, port, 1.5).result()
        srv.result()
    finally:
        nft_flush()


def peer_lost_state(port):
    srv = App(SERVER, "server_echo_then_vanish", S_ADDR, port, 0.8)
    srv.wait_for("ready")
    nft(f"ip saddr {S_ADDR} tcp sport {port} tcp flags & rst == rst drop")
    try:
        cli = App(CLIENT, "client_echo_pause_echo", S_ADDR, port, 2.0)
        srv.wait_for("vanished")
        time.sleep(0.3)
        nft_flush()
        cli.result()
        srv.result()
    finally:
        nft_flush()


def service_restarted(port):
    """As peer-lost-state, but the service is back (a new listener on the port) when the client's
    next segment arrives: the listener answers the non-SYN (traced as ADDR:port -> 0.0.0.0:0)."""
    srv = App(SERVER, "server_echo_then_vanish", S_ADDR, port, 0.5)
    srv.wait_for("ready")
    nft(f"ip saddr {S_ADDR} tcp sport {port} tcp flags & rst == rst drop")
    try:
        cli = App(CLIENT, "client_echo_pause_echo", S_ADDR, port, 2.5)
        srv.wait_for("vanished")
        again = server("server_accept_later", port, 3)
        time.sleep(0.3)
        nft_flush()
        cli.result()
        again.kill()
        srv.kill()
    finally:
        nft_flush()


def keepalive_timeout(port):
    srv = server("server_echo", port, 15)
    cli = App(CLIENT, "client_keepalive", S_ADDR, port)
    cli.wait_for("established")
    nft(f"ip saddr {S_ADDR} drop")
    try:
        cli.result(timeout=20)
    finally:
        nft_flush()
    srv.kill()


def port_scan(port):
    App(CLIENT, "client_scan", S_ADDR, port, 600).result(timeout=60)


def missed_by_capture(port):
    """A refused connect on a port the server session's --bpf leaves out: kernel-only."""
    App(CLIENT, "client_connect", S_ADDR, port).result()


@dataclass
class Scenario:
    name: str
    fn: Callable
    side: str                       # whose interface sees its resets leave: "server" or "client"
    expect: dict[str, str]          # kernel reason -> the true cause
    note: str = ""
    port: int = 0
    flood: bool = False


SCENARIOS = [
    Scenario("closed-port", closed_port, "server", {"NO_SOCKET": "closed-port"}),
    Scenario("closed-port-ipv6", closed_port_v6, "server", {"NO_SOCKET": "closed-port"}),
    Scenario("late-synack", late_synack, "client", {"NO_SOCKET": "late-synack"}),
    Scenario("abort-before-accept", abort_before_accept, "client", {"TCP_STATE": "abort-before-accept"}),
    Scenario("accept-queue-overflow", accept_queue_overflow, "server", {"INVALID_SYN": "accept-queue-overflow"},
             "listener: traced as ADDR:port -> 0.0.0.0:0"),
    Scenario("listener-closed", listener_closed, "server", {"TCP_STATE": "listener-closed"}),
    Scenario("unread-data-close", unread_data_close, "server", {"TCP_ABORT_ON_CLOSE": "unread-data-close"}),
    Scenario("linger-zero-abort", linger_zero, "server", {"TCP_STATE": "linger-zero-abort"},
             "wire alone: 0.70, unread-data-close not ruled out"),
    Scenario("linger-zero-with-unread-data", linger_with_unread, "server", {"TCP_ABORT_ON_CLOSE": "unread-data-close"},
             "wire alone is wrong: the unread bytes arrived before the answer"),
    Scenario("data-after-close", data_after_close, "server", {"TCP_TIMEWAIT_SOCKET": "data-after-close"}),
    Scenario("keepalive-race", keepalive_race, "server", {"TCP_ABORT_ON_DATA": "keepalive-race"}),
    Scenario("peer-lost-state", peer_lost_state, "server",
             {"NO_SOCKET": "peer-lost-state", "TCP_STATE": "linger-zero-abort"},
             "the crash's own RST (SO_LINGER 0, blackholed) leaves s0 too"),
    Scenario("service-restarted", service_restarted, "server",
             {"TCP_FLAGS": "peer-lost-state", "TCP_STATE": "linger-zero-abort"}, "listener: traced with 0.0.0.0:0"),
    Scenario("keepalive-timeout", keepalive_timeout, "client", {"TCP_KEEPALIVE_TIMEOUT": "keepalive-timeout"}),
    Scenario("port-scan", port_scan, "server", {"NO_SOCKET": "port-scan"}, "one flood finding", flood=True),
    Scenario("kernel-only", missed_by_capture, "server", {"NO_SOCKET": "closed-port"},
             f"--bpf 'not port {MISSED_PORT}': the capture never sees it"),
]


class Session:
    """`rstwatch live IFACE --format jsonl` inside a namespace; stdout records collected as they come."""

    def __init__(self, ns: str, iface: str, *extra: str) -> None:
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "rstwatch", "live", iface, "--format", "jsonl", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.out: list[str] = []
        self.err: list[str] = []
        self.watching = threading.Event()
        self.threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self.threads:
            t.start()

    def _read(self, stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)
            if "watching" in line:
                self.watching.set()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        for t in self.threads:
            t.join(5)
        return rc

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.out]


@dataclass
class Run:
    scenarios: list[Scenario]
    server: list[dict] = field(default_factory=list)
    client: list[dict] = field(default_factory=list)
    stderr: dict[str, str] = field(default_factory=dict)
    rc: dict[str, int] = field(default_factory=dict)

    def records_of(self, sc: Scenario) -> list[dict]:
        """The sending side's findings for a scenario's port (the server's port is its own)."""
        recs = self.server if sc.side == "server" else self.client
        if sc.flood:
            return [r for r in recs if r["cause"] == "port-scan"]
        if sc.side == "server":
            return [r for r in recs if r["sport"] == sc.port]
        return [r for r in recs if r["dport"] == sc.port]


def run(names: list[str] | None = None, base_port: int = 9401) -> Run:
    chosen = [sc for sc in SCENARIOS if not names or sc.name in names]
    for n, sc in enumerate(chosen):
        sc.port = MISSED_PORT if sc.name == "kernel-only" else (20000 if sc.flood else base_port + n)
    setup()
    res = Run(chosen)
    try:
        srv = Session(SERVER, "s0", "--bpf", f"tcp and not port {MISSED_PORT}")
        cli = Session(CLIENT, "c0")
        for s in (srv, cli):
            if not s.watching.wait(30):
                raise RuntimeError("live did not start: " + "".join(s.err))
        time.sleep(0.5)
        for sc in chosen:
            try:
                sc.fn(sc.port)
            finally:
                nft_flush()
        time.sleep(4.5)             # verdicts (1 s) and kernel-only events (3 s grace) are due
        res.rc = {"server": srv.stop(), "client": cli.stop()}
        res.server, res.client = srv.records(), cli.records()
        res.stderr = {"server": "".join(srv.err), "client": "".join(cli.err)}
    finally:
        teardown()
    return res


def table(res: Run) -> list[dict]:
    rows = []
    for sc in res.scenarios:
        for r in res.records_of(sc):
            reason = r.get("kernel_reason")
            rows.append({"scenario": sc.name, "frame": r["frame"], "wire_only": r.get("wire_cause") or "-",
                         "kernel_reason": reason or "-", "kernel_state": r.get("kernel_state") or "-",
                         "context": r.get("kernel_context") or "-", "settled": r["cause"],
                         "confidence": r["confidence"], "match": r.get("kernel_match") or "-",
                         "truth": next(iter(sc.expect.values())) if sc.flood else sc.expect.get(reason or "", "?"),
                         "note": sc.note})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object per row instead of a table")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("kernel_agreement: needs root (network namespaces, tracefs)")
    res = run([s for s in args.only.split(",") if s] or None)
    rows = table(res)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{'scenario':30} {'wire-only cause':22} {'kernel reason':22} {'kernel-settled cause':22} {'conf':>5}  note")
    for row in rows:
        flag = "" if row["settled"] == row["truth"] else "  (!= truth " + row["truth"] + ")"
        print(f"{row['scenario']:30} {row['wire_only']:22} {row['kernel_reason']:22} {row['settled']:22} "
              f"{row['confidence']:>5.2f}  {row['note']}{flag}")
    for side, err in res.stderr.items():
        for line in err.splitlines():
            if "kernel:" in line or "warning" in line or "error" in line:
                print(f"[{side}] {line}", file=sys.stderr)


if __name__ == "__main__":
    main()
