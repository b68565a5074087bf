"""Topology for the holdout lab (lab/make_holdout_captures.py): its own namespaces, links and
addresses, so it never collides with the scripted lab (rw*, 10.77/16), the real-software lab
(rs*, 10.78/16) or anyone else running those at the same time.

    client hoc (hc0 10.79.1.2) -- wire how (lab/wire.py) -- router hor (10.79.1.1 | 10.79.2.1) -- server hos (hs0 10.79.2.2)

Link names carry the `h` prefix too, in case a kernel ever creates a veth in the root namespace first.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lab.netlab import sh

CLIENT, WIRE, ROUTER, SERVER = "hoc", "how", "hor", "hos"
C_ADDR, S_ADDR, R_CLIENT_SIDE, R_SERVER_SIDE = "10.79.1.2", "10.79.2.2", "10.79.1.1", "10.79.2.1"
C_IF, S_IF = "hc0", "hs0"
HERE = Path(__file__).resolve().parent


def nsx(ns: str, cmd: str, check: bool = True) -> str:
    return sh(f"ip netns exec {ns} {cmd}", check)


def teardown() -> None:
    for ns in (CLIENT, WIRE, ROUTER, SERVER):
        sh(f"ip netns pids {ns} 2>/dev/null | xargs -r kill -9", check=False)
        sh(f"ip netns del {ns}", check=False)


def _no_offload(ns: str, dev: str, tx_csum: bool = False) -> None:
    # Wire-sized segments (no TSO/GSO/GRO); senders into the relay finish their checksums in software.
    nsx(ns, f"ethtool -K {dev} tso off gso off gro off" + (" tx off" if tx_csum else ""), check=False)


def _server_link() -> None:
    sh(f"ip link add {S_IF} netns {SERVER} type veth peer name hr1 netns {ROUTER}")
    nsx(SERVER, f"ip addr add {S_ADDR}/24 dev {S_IF}")
    nsx(SERVER, f"ip link set {S_IF} up")
    nsx(SERVER, "ip link set lo up")
    nsx(SERVER, f"ip route add default via {R_SERVER_SIDE}")
    _no_offload(SERVER, S_IF)
    nsx(ROUTER, f"ip addr add {R_SERVER_SIDE}/24 dev hr1", check=False)
    nsx(ROUTER, "ip link set hr1 up")
    _no_offload(ROUTER, "hr1")


class Wire:
    """lab/wire.py relaying between the client's and the router's links with a one-way delay."""

    def __init__(self, delay_ms: float):
        self.proc = subprocess.Popen(["ip", "netns", "exec", WIRE, sys.executable, str(HERE / "wire.py"), "hwc", "hwr",
                                      str(delay_ms)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"wire did not start: {self.proc.stderr.read()}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def setup(delay_ms: float) -> Wire:
    teardown()
    for ns in (CLIENT, WIRE, ROUTER, SERVER):
        sh(f"ip netns add {ns}")
        nsx(ns, "ip link set lo up")
    sh(f"ip link add {C_IF} netns {CLIENT} type veth peer name hwc netns {WIRE}")
    sh(f"ip link add hr0 netns {ROUTER} type veth peer name hwr netns {WIRE}")
    nsx(CLIENT, f"ip addr add {C_ADDR}/24 dev {C_IF}")
    nsx(ROUTER, f"ip addr add {R_CLIENT_SIDE}/24 dev hr0")
    for ns, dev in ((CLIENT, C_IF), (ROUTER, "hr0"), (WIRE, "hwc"), (WIRE, "hwr")):
        nsx(ns, f"ip link set {dev} up")
        _no_offload(ns, dev, tx_csum=dev in (C_IF, "hr0"))
    nsx(WIRE, "ip link set hwc promisc on")
    nsx(WIRE, "ip link set hwr promisc on")
    nsx(CLIENT, f"ip route add default via {R_CLIENT_SIDE}")
    _server_link()
    nsx(ROUTER, "sysctl -qw net.ipv4.ip_forward=1")
    return Wire(delay_ms)


def crash_server(then_up: bool = True) -> None:
    """The server host loses power: nothing it sends gets out any more, its processes die, its link
    is deleted (sockets that linger would keep the old namespace alive). With `then_up` it comes back
    with the same address and no memory of any connection."""
    nft(f"table ip crash {{\n chain forward {{\n type filter hook forward priority 0; ip saddr {S_ADDR} drop\n }}\n}}\n")
    sh(f"ip netns pids {SERVER} | xargs -r kill -9", check=False)
    time.sleep(0.2)
    nsx(ROUTER, "ip link del hr1", check=False)
    sh(f"ip netns del {SERVER}", check=False)
    sh(f"ip netns add {SERVER}")
    if then_up:
        _server_link()
    nsx(ROUTER, "ip neigh flush all", check=False)
    nsx(ROUTER, "nft delete table ip crash", check=False)


def nft(script_body: str, ns: str = ROUTER) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script_body, text=True, check=True)


def flush_firewalls() -> None:
    for ns in (ROUTER, SERVER):
        nsx(ns, "nft flush ruleset", check=False)
