"""Topology and process helpers for the real-software lab.

    client rsc (c0 10.78.1.2) -- wire rsw (latency, lab/wire.py) -- router rsr (nftables, NAT) -- server rss (s0 10.78.2.2)

Separate namespaces from the scripted lab (rwc/rwr/rws) so both labs can be rebuilt independently.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from lab.netlab import sh

CLIENT, WIRE, ROUTER, SERVER = "rsc", "rsw", "rsr", "rss"
C_ADDR, S_ADDR, R_CLIENT_SIDE = "10.78.1.2", "10.78.2.2", "10.78.1.1"
HERE = Path(__file__).resolve().parent


def nsx(ns: str, cmd: str, check: bool = True) -> str:
    return sh(f"ip netns exec {ns} {cmd}", check)


def teardown() -> None:
    for ns in (CLIENT, WIRE, ROUTER, SERVER):
        sh(f"ip netns pids {ns} 2>/dev/null | xargs -r kill -9", check=False)
        sh(f"ip netns del {ns}", check=False)


def _no_offload(ns: str, dev: str, tx_csum: bool = False) -> None:
    # Wire-sized segments (no TSO/GSO/GRO); senders into the relay also finish their checksums.
    nsx(ns, f"ethtool -K {dev} tso off gso off gro off" + (" tx off" if tx_csum else ""), check=False)


def _server_link() -> None:
    sh(f"ip link add s0 netns {SERVER} type veth peer name r1 netns {ROUTER}")
    nsx(SERVER, "ip addr add 10.78.2.2/24 dev s0")
    nsx(SERVER, "ip link set s0 up")
    nsx(SERVER, "ip link set lo up")
    nsx(SERVER, "ip route add default via 10.78.2.1")
    _no_offload(SERVER, "s0")
    nsx(ROUTER, "ip addr add 10.78.2.1/24 dev r1", check=False)
    nsx(ROUTER, "ip link set r1 up")
    _no_offload(ROUTER, "r1")


class Wire:
    """lab/wire.py relaying between the client's and the router's links with a one-way delay."""

    def __init__(self, delay_ms: float):
        self.proc = subprocess.Popen(["ip", "netns", "exec", WIRE, sys.executable, str(HERE / "wire.py"), "wc", "wr",
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
    sh(f"ip link add c0 netns {CLIENT} type veth peer name wc netns {WIRE}")
    sh(f"ip link add r0 netns {ROUTER} type veth peer name wr netns {WIRE}")
    nsx(CLIENT, "ip addr add 10.78.1.2/24 dev c0")
    nsx(ROUTER, "ip addr add 10.78.1.1/24 dev r0")
    for ns, dev in ((CLIENT, "c0"), (ROUTER, "r0"), (WIRE, "wc"), (WIRE, "wr")):
        nsx(ns, f"ip link set {dev} up")
        _no_offload(ns, dev, tx_csum=dev in ("c0", "r0"))
    nsx(WIRE, "ip link set wc promisc on")
    nsx(WIRE, "ip link set wr promisc on")
    nsx(CLIENT, "ip route add default via 10.78.1.1")
    _server_link()
    nsx(ROUTER, "sysctl -qw net.ipv4.ip_forward=1")
    return Wire(delay_ms)


def reboot_server() -> None:
    """The server host crashes and comes back with the same address and no memory of any
    connection: processes killed, its link deleted (sockets die with it) and recreated."""
    # A host that loses power says nothing: drop what the server sends before its processes die.
    nft(f"table ip crash {{\n chain forward {{\n type filter hook forward priority 0; ip saddr {S_ADDR} drop\n }}\n}}\n")
    sh(f"ip netns pids {SERVER} | xargs -r kill -9", check=False)
    time.sleep(0.2)
    nsx(ROUTER, "ip link del r1", check=False)     # sockets that linger would keep the old link alive
    sh(f"ip netns del {SERVER}", check=False)
    sh(f"ip netns add {SERVER}")
    _server_link()
    nsx(ROUTER, "ip neigh flush all", check=False)
    nsx(ROUTER, "nft delete table ip crash", check=False)


def nft(script_body: str) -> None:
    """Router rules: a forward filter chain, and optionally a NAT chain, given as nft statements."""
    subprocess.run(["ip", "netns", "exec", ROUTER, "nft", "-f", "-"], input=script_body, text=True, check=True)


def nft_flush() -> None:
    nsx(ROUTER, "nft flush ruleset", check=False)


class Proc:
    """A real program in a namespace; its output is kept for the manifest."""

    def __init__(self, ns: str, argv: list[str], stdin: bool = False, cwd: Path | None = None):
        self.argv = argv
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)

    def readline(self, timeout: float = 10.0) -> str:
        return self.proc.stdout.readline()

    def tell(self, line: str = "go") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> dict:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        res = {"exit": self.proc.returncode}
        for line in out.splitlines():
            if line.startswith('{"result"'):
                import json
                res.update(json.loads(line)["result"])
                break
        else:
            tail = (err.strip() or out.strip()).splitlines()[-2:]
            if tail:
                res["said"] = " | ".join(t.strip()[:160] for t in tail)
        return res

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            pass


def wait_listening(ns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if f":{port} " in nsx(ns, f"ss -Hltn sport = :{port}", check=False):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {ns}:{port}")


def client_py(script: str, *args: str, stdin: bool = False) -> Proc:
    """lab/realclients.py under this interpreter (which has requests and redis-py)."""
    return Proc(CLIENT, [sys.executable, str(HERE / "realclients.py"), script, *map(str, args)], stdin=stdin)


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        raise RuntimeError(f"{name} is not installed (bin/setup --lab installs it)")
    return path
