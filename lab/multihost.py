"""The multi-host lab (issue #23 item 2): one incident seen from every host on the path.

    client mhc (c0 10.81.1.2) -- router mhr (r0 10.81.1.1 | r1 10.81.2.1) -- server mhs (s0 10.81.2.2)

A capture runs on each host's interface: the client's c0, both router links (r0 toward the client,
r1 toward the server) and the server's s0, written as HOST/IFACE.pcap so that `rstwatch read
--hosts DIR` reads one folder per host. The router's firewall forges its resets with the TTL the
server's real packets reach the client with (63), as careful IPSs do: from the client's capture
alone an injected RST then looks like one the server sent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from lab import netlab as N
from lab.netlab import App, Capture

CLIENT, ROUTER, SERVER = "mhc", "mhr", "mhs"
NAMES = (CLIENT, ROUTER, SERVER)
NET = "10.81"
C_ADDR, S_ADDR = f"{NET}.1.2", f"{NET}.2.2"
R_SERVER_SIDE = f"{NET}.2.1"
NAT_PORTS = (40000, 40999)          # SNAT rewrites the client's port too: only sequence numbers survive
# host name -> (namespace, interface): one capture each
VANTAGE = {"client": (CLIENT, "c0"), "router": (ROUTER, "r0"), "server": (SERVER, "s0")}
ROUTER_SERVER_SIDE = (ROUTER, "r1")
NO_RST = "tcp and not (tcp[tcpflags] & tcp-rst != 0)"


@dataclass
class Scenario:
    name: str
    doc: str
    cause: str                      # what every labelled RST of the scenario is, by construction
    origin: str                     # the host that really sent the primary RST
    fn: object
    client_bpf: str = "tcp"         # the client's capture filter (one scenario loses the resets)
    extra: dict = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, cause: str, origin: str, client_bpf: str = "tcp"):
    def deco(fn):
        SCENARIOS[name] = Scenario(name, " ".join((fn.__doc__ or "").split()), cause, origin, fn, client_bpf)
        return fn
    return deco


def setup() -> None:
    N.setup(NAMES, v4=NET, v6="fd81")
    # Forged resets leave the router with the TTL the server's packets have after one hop.
    _nft("table ip forge {\n chain out {\n type filter hook output priority 0;\n"
         " tcp flags & rst == rst ip ttl set 63\n }\n}\n")


def teardown() -> None:
    N.teardown(NAMES)


def flush() -> None:
    """Between scenarios: firewall and NAT rules go, the TTL forging stays."""
    N.nsx(ROUTER, "nft delete table ip fw", check=False)
    N.nsx(ROUTER, "nft delete table ip nat", check=False)


def _nft(script: str) -> None:
    import subprocess
    subprocess.run(["ip", "netns", "exec", ROUTER, "nft", "-f", "-"], input=script, text=True, check=True)


def _firewall(port: int) -> None:
    """Reject the client's first data segment with a reset toward the client, then block the
    session both ways (the server's later FIN never reaches the client: no follow-up resets)."""
    _nft("table ip fw {\n chain forward {\n type filter hook forward priority 0;\n"
         f" ip daddr {S_ADDR} tcp dport {port} tcp flags & psh == psh reject with tcp reset\n"
         f" ip saddr {S_ADDR} tcp sport {port} tcp flags & syn == 0 drop\n"
         " }\n}\n")


def _server(name: str, port: int, arg=None) -> App:
    app = App(SERVER, name, S_ADDR, port, arg)
    app.wait_for("ready")
    return app


@scenario("firewall-reject", "middlebox-reset", "router")
def firewall_reject(port: int) -> dict:
    """The router's firewall rejects the client's request with a TCP reset in the server's name
    (TTL forged to match) and blocks the session; the server never sent a reset."""
    _firewall(port)
    srv = _server("server_echo", port, 1.5)
    cli = App(CLIENT, "client_request", S_ADDR, port).result()
    return {"client": cli, "server": srv.result()}


@scenario("nat-firewall-reject", "middlebox-reset", "router")
def nat_firewall_reject(port: int) -> dict:
    """The same firewall behind source NAT: the server sees the router's address and another
    port (SNAT to 10.81.2.1:40000-40999), so only the sequence numbers tie the two views."""
    _nft("table ip nat {\n chain post {\n type nat hook postrouting priority 100;\n"
         f" oifname r1 meta l4proto tcp snat to {R_SERVER_SIDE}:{NAT_PORTS[0]}-{NAT_PORTS[1]}\n }}\n}}\n")
    _firewall(port)
    srv = _server("server_echo", port, 1.5)
    cli = App(CLIENT, "client_request", S_ADDR, port).result()
    return {"client": cli, "server": srv.result()}


@scenario("unread-data-close", "unread-data-close", "server")
def unread_data_close(port: int) -> dict:
    """The server accepts, never reads the request, and closes: its kernel resets."""
    srv = _server("server_close_unread", port)
    return {"client": App(CLIENT, "client_request", S_ADDR, port).result(), "server": srv.result()}


@scenario("closed-port", "closed-port", "server")
def closed_port(port: int) -> dict:
    """A connect to a port with no listener: the server's kernel answers RST|ACK."""
    return {"client": App(CLIENT, "client_connect", S_ADDR, port).result()}


@scenario("client-lost-reset", "linger-zero-abort", "server", client_bpf=NO_RST)
def client_lost_reset(port: int) -> dict:
    """The server answers and aborts (SO_LINGER 0); the client's capture filter drops every RST,
    as a capture that lost packets would: only the other hosts' captures hold the reset."""
    srv = _server("server_linger_zero", port)
    return {"client": App(CLIENT, "client_request", S_ADDR, port).result(), "server": srv.result()}


def captures(folder: Path, sc: Scenario) -> list[Capture]:
    """One capture per host interface, immediate mode (RESETS.md: else the last packets are lost)."""
    caps = []
    for host, (ns, iface) in list(VANTAGE.items()) + [("router", ROUTER_SERVER_SIDE)]:
        (folder / host).mkdir(parents=True, exist_ok=True)
        path = folder / host / f"{iface}.pcap"
        path.unlink(missing_ok=True)
        caps.append(Capture(ns, iface, path, bpf=sc.client_bpf if host == "client" else "tcp"))
    return caps


def run_scenario(sc: Scenario, folder: Path, port: int) -> dict:
    caps = captures(folder, sc)
    try:
        apps = sc.fn(port)
        time.sleep(0.3)
    finally:
        for c in caps:
            c.stop()
        flush()
    return apps
