"""The four-namespace path the real-software labs run on, parameterised by names and addresses so
that each lab has its own and the labs can run at the same time:

    client (C_IF NET.1.2) -- wire (lab/wire.py: a one-way delay) -- router (NET.1.1 | NET.2.1) -- server (S_IF NET.2.2)

No netem here (RESETS.md): latency comes from lab/wire.py relaying between the wire's two links.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.netlab import sh

HERE = Path(__file__).resolve().parent


def nsx(ns: str, cmd: str, check: bool = True) -> str:
    return sh(f"ip netns exec {ns} {cmd}", check)


def _no_offload(ns: str, dev: str, tx_csum: bool = False) -> None:
    # Wire-sized segments (no TSO/GSO/GRO); senders into the relay finish their checksums in software.
    nsx(ns, f"ethtool -K {dev} tso off gso off gro off" + (" tx off" if tx_csum else ""), check=False)


class Wire:
    """lab/wire.py relaying between the client's and the router's links with a one-way delay."""

    def __init__(self, ns: str, left: str, right: str, delay_ms: float):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(HERE / "wire.py"), left, right,
                                      str(delay_ms)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"wire did not start: {self.proc.stderr.read()}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass(frozen=True)
class Topology:
    client: str                 # namespace names
    wire: str
    router: str
    server: str
    net: str                    # "10.78": the client side is NET.1.0/24, the server side NET.2.0/24
    c_if: str                   # the client's link (tcpdump listens here by default)
    s_if: str                   # the server's link
    r_c_if: str                 # the router's links, client and server side
    r_s_if: str
    w_c_if: str                 # the wire's links, client and router side
    w_r_if: str

    @property
    def c_addr(self) -> str:
        return f"{self.net}.1.2"

    @property
    def s_addr(self) -> str:
        return f"{self.net}.2.2"

    @property
    def r_client_side(self) -> str:
        return f"{self.net}.1.1"

    @property
    def r_server_side(self) -> str:
        return f"{self.net}.2.1"

    def namespaces(self) -> tuple[str, str, str, str]:
        return self.client, self.wire, self.router, self.server

    def teardown(self) -> None:
        for ns in self.namespaces():
            sh(f"ip netns pids {ns} 2>/dev/null | xargs -r kill -9", check=False)
            sh(f"ip netns del {ns}", check=False)

    def setup(self, delay_ms: float) -> Wire:
        self.teardown()
        for ns in self.namespaces():
            sh(f"ip netns add {ns}")
            nsx(ns, "ip link set lo up")
        sh(f"ip link add {self.c_if} netns {self.client} type veth peer name {self.w_c_if} netns {self.wire}")
        sh(f"ip link add {self.r_c_if} netns {self.router} type veth peer name {self.w_r_if} netns {self.wire}")
        nsx(self.client, f"ip addr add {self.c_addr}/24 dev {self.c_if}")
        nsx(self.router, f"ip addr add {self.r_client_side}/24 dev {self.r_c_if}")
        for ns, dev in ((self.client, self.c_if), (self.router, self.r_c_if),
                        (self.wire, self.w_c_if), (self.wire, self.w_r_if)):
            nsx(ns, f"ip link set {dev} up")
            _no_offload(ns, dev, tx_csum=dev in (self.c_if, self.r_c_if))
        nsx(self.wire, f"ip link set {self.w_c_if} promisc on")
        nsx(self.wire, f"ip link set {self.w_r_if} promisc on")
        nsx(self.client, f"ip route add default via {self.r_client_side}")
        self._server_link()
        nsx(self.router, "sysctl -qw net.ipv4.ip_forward=1")
        return Wire(self.wire, self.w_c_if, self.w_r_if, delay_ms)

    def _server_link(self) -> None:
        sh(f"ip link add {self.s_if} netns {self.server} type veth peer name {self.r_s_if} netns {self.router}")
        nsx(self.server, f"ip addr add {self.s_addr}/24 dev {self.s_if}")
        nsx(self.server, f"ip link set {self.s_if} up")
        nsx(self.server, "ip link set lo up")
        nsx(self.server, f"ip route add default via {self.r_server_side}")
        _no_offload(self.server, self.s_if)
        nsx(self.router, f"ip addr add {self.r_server_side}/24 dev {self.r_s_if}", check=False)
        nsx(self.router, f"ip link set {self.r_s_if} up")
        _no_offload(self.router, self.r_s_if)

    def crash_server(self, then_up: bool = True) -> None:
        """The server host loses power: nothing it sends gets out any more, its processes die, its
        link is deleted (sockets that linger would keep the old link alive). With `then_up` it comes
        back with the same address and no memory of any connection (a reboot)."""
        self.nft(f"table ip crash {{\n chain forward {{\n type filter hook forward priority 0; "
                 f"ip saddr {self.s_addr} drop\n }}\n}}\n")
        sh(f"ip netns pids {self.server} | xargs -r kill -9", check=False)
        time.sleep(0.2)
        nsx(self.router, f"ip link del {self.r_s_if}", check=False)
        sh(f"ip netns del {self.server}", check=False)
        sh(f"ip netns add {self.server}")
        if then_up:
            self._server_link()
        nsx(self.router, "ip neigh flush all", check=False)
        nsx(self.router, "nft delete table ip crash", check=False)

    def nft(self, script_body: str, ns: str | None = None) -> None:
        """nft statements in the router (or `ns`): firewall rules, NAT with conntrack timeouts."""
        subprocess.run(["ip", "netns", "exec", ns or self.router, "nft", "-f", "-"], input=script_body, text=True,
                       check=True)

    def flush_firewalls(self) -> None:
        """Between scenarios: no rule of one scenario may touch the next (iptables-nft rules live in
        nftables too)."""
        for ns in (self.router, self.server):
            nsx(ns, "nft flush ruleset", check=False)
