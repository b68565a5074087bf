"""Network namespaces, packet capture and the kernel's tcp_send_reset tracepoint for the lab.

Topology:  client (rwc, 10.77.1.2) -- router (rwr, forwards, nftables) -- server (rws, 10.77.2.2)
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

CLIENT, ROUTER, SERVER = "rwc", "rwr", "rws"
C_ADDR, S_ADDR = "10.77.1.2", "10.77.2.2"
C6_ADDR, S6_ADDR = "fd77:1::2", "fd77:2::2"
APPS = Path(__file__).with_name("apps.py")
TRACE = Path("/sys/kernel/tracing")


def sh(cmd: str, check: bool = True) -> str:
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed: {res.stderr.strip()}")
    return res.stdout


def nsx(ns: str, cmd: str, check: bool = True) -> str:
    return sh(f"ip netns exec {ns} {cmd}", check)


LAB = (CLIENT, ROUTER, SERVER)


def teardown(names: tuple[str, str, str] = LAB) -> None:
    for ns in names:
        sh(f"ip netns pids {ns} 2>/dev/null | xargs -r kill -9", check=False)
        sh(f"ip netns del {ns}", check=False)


def setup(names: tuple[str, str, str] = LAB, v4: str = "10.77", v6: str = "fd77") -> None:
    """client -- router -- server: the client on V4.1.2 / V6:1::2, the server on V4.2.2 / V6:2::2.
    Other users (benchmarks/kernel_agreement.py) pass their own names and prefixes."""
    client, router, server = names
    teardown(names)
    for ns in names:
        sh(f"ip netns add {ns}")
        nsx(ns, "ip link set lo up")
    sh(f"ip link add c0 netns {client} type veth peer name r0 netns {router}")
    sh(f"ip link add s0 netns {server} type veth peer name r1 netns {router}")
    for ns, dev, host, side in ((client, "c0", 2, 1), (router, "r0", 1, 1), (router, "r1", 1, 2), (server, "s0", 2, 2)):
        nsx(ns, f"ip addr add {v4}.{side}.{host}/24 dev {dev}")
        nsx(ns, f"ip -6 addr add {v6}:{side}::{host}/64 dev {dev} nodad")
        nsx(ns, f"ip link set {dev} up")
        # Segmentation offload would merge segments on the veth: keep wire-sized packets.
        nsx(ns, f"ethtool -K {dev} tso off gso off gro off", check=False)
    nsx(client, f"ip route add default via {v4}.1.1")
    nsx(server, f"ip route add default via {v4}.2.1")
    nsx(client, f"ip -6 route add default via {v6}:1::1")
    nsx(server, f"ip -6 route add default via {v6}:2::1")
    nsx(router, "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")


def nft(rule: str, router: str = ROUTER) -> None:
    """Install one rule in a forward-hook chain of the router namespace."""
    script = ("table ip lab {\n  chain forward {\n    type filter hook forward priority 0;\n"
              f"    {rule}\n  }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", router, "nft", "-f", "-"], input=script, text=True, check=True)


def nft_flush(router: str = ROUTER) -> None:
    nsx(router, "nft flush ruleset", check=False)


class App:
    """One apps.py program running in a namespace; `result()` waits for its JSON verdict."""

    def __init__(self, ns: str, name: str, host: str, port: int, arg: str | None = None):
        cmd = ["ip", "netns", "exec", ns, sys.executable, str(APPS), name, host, str(port)]
        if arg is not None:
            cmd.append(str(arg))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []

    def wait_for(self, key: str, timeout: float = 5.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            ev = json.loads(line)
            self.events.append(ev)
            if key in ev:
                return ev
        raise RuntimeError(f"app never reported {key!r}: {self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def tell(self, line: str = "go") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 30.0) -> dict:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        for line in out.splitlines():
            ev = json.loads(line)
            if "result" in ev:
                return ev["result"]
        return {"error": (err.strip().splitlines() or ["no result"])[-1]}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class Capture:
    """tcpdump (pcap) or dumpcap (pcapng) in immediate mode inside a namespace."""

    def __init__(self, ns: str, iface: str, path: Path, tool: str = "tcpdump", nano: bool = False,
                 bpf: str = "tcp"):
        self.path = path
        if tool == "dumpcap":
            cmd = ["dumpcap", "-q", "-i", iface, "-f", bpf, "-w", str(path)]
        else:
            cmd = ["tcpdump", "-U", "--immediate-mode", "-n", "-i", iface, "-w", str(path)]
            if nano:
                cmd += ["--time-stamp-precision=nano"]
            cmd += [bpf]
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:      # wait until it really listens
            line = self.proc.stderr.readline()
            if "listening on" in line or "Capturing on" in line or self.proc.poll() is not None:
                break
        time.sleep(0.3)

    def stop(self) -> None:
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ResetTracer:
    """Private tracefs instance with tcp:tcp_send_reset enabled; lines are collected in a thread."""

    LINE = re.compile(r"src=(?P<src>\S+) dest=(?P<dst>\S+) state=(?P<state>\S+) reason=(?P<reason>\S+)")

    def __init__(self, name: str = "rstwatch-lab"):
        if not (TRACE / "events").exists():
            sh(f"mount -t tracefs nodev {TRACE}", check=False)
        self.dir = TRACE / "instances" / name
        self.available = (TRACE / "events" / "tcp" / "tcp_send_reset").exists()
        self.lines: list[dict] = []
        if not self.available:
            return
        if self.dir.exists():
            self._remove()
        self.dir.mkdir()
        (self.dir / "events/tcp/tcp_send_reset/enable").write_text("1")
        self._fd = os.open(self.dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = ""
        while not self._stop.is_set():
            try:
                chunk = os.read(self._fd, 65536).decode(errors="replace")
            except BlockingIOError:
                time.sleep(0.05)
                continue
            buf += chunk
            *complete, buf = buf.split("\n")
            for line in complete:
                m = self.LINE.search(line)
                if m:
                    self.lines.append(m.groupdict())

    def take(self) -> list[dict]:
        time.sleep(0.3)
        out, self.lines = self.lines, []
        return out

    def _remove(self) -> None:
        try:
            (self.dir / "events/tcp/tcp_send_reset/enable").write_text("0")
        except OSError:
            pass
        os.rmdir(self.dir)

    def close(self) -> None:
        if self.available:
            self._stop.set()
            self._thread.join(timeout=2)
            os.close(self._fd)
            self._remove()
