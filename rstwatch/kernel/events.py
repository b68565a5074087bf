"""One `tcp:tcp_send_reset` line from trace_pipe -> a KernelEvent.

    python3-8450 [000] ..s1.   259.105048: tcp_send_reset: skbaddr=... skaddr=... src=127.0.0.1:9
        dest=127.0.0.1:58318 state=UNKNOWN reason=NO_SOCKET

The task/pid prefix is whatever ran on the CPU: in softirq (flags `..s..`, `<idle>-0`, ksoftirqd)
it is an innocent bystander, so pid and command are kept only for process context.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+"
    r"(?P<ts>\d+\.\d+):\s+tcp_send_reset:\s+(?P<body>.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")
WILDCARDS = {"0.0.0.0", "::"}


@dataclass(slots=True)
class KernelEvent:
    mono: float            # the instance's trace clock (CLOCK_MONOTONIC), seconds
    time: float            # the same moment on the wall clock (epoch seconds), set by the reader
    src: str
    sport: int
    dst: str
    dport: int
    state: str | None      # TCP_CLOSE, TCP_TIME_WAIT, ...; None when no socket (UNKNOWN)
    reason: str            # enum sk_rst_reason name, e.g. NO_SOCKET
    active: bool           # sent by a live socket (no offending segment: skbaddr is 0)
    context: str           # "process" or "softirq"
    pid: int | None        # only in process context
    comm: str | None
    cpu: int

    @property
    def listener(self) -> bool:
        """Sent from a listening socket: traced as ADDR:port -> 0.0.0.0:0 (or [::]:0)."""
        return self.dport == 0 and self.dst in WILDCARDS

    def record(self) -> dict:
        return {"time": round(self.time, 6), "src": self.src, "sport": self.sport, "dst": self.dst,
                "dport": self.dport, "kernel_reason": self.reason, "kernel_state": self.state,
                "kernel_context": self.context, "kernel_pid": self.pid, "kernel_comm": self.comm,
                "listener": self.listener, "active": self.active}


def split_endpoint(text: str) -> tuple[str, int]:
    """'10.0.0.1:80' / '[fd00::1]:80' -> normalised address text (IPv4-mapped IPv6 as IPv4), port."""
    host, _, port = text.rpartition(":")
    ip = ipaddress.ip_address(host.strip("[]"))
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port)


def context_of(comm: str, flags: str) -> str:
    # Flag 3 of the trace prefix is the interrupt context: s = softirq, h/H = hardirq, z/Z = NMI.
    in_irq = len(flags) >= 3 and flags[2] != "."
    return "softirq" if in_irq or comm == "<idle>" or comm.startswith("ksoftirqd/") else "process"


def parse_line(line: str) -> KernelEvent | None:
    """None for anything that is not a tcp_send_reset line (headers, lost-event markers)."""
    m = LINE.match(line)
    if not m:
        return None
    f = dict(FIELD.findall(m["body"]))
    try:
        src, sport = split_endpoint(f["src"])
        dst, dport = split_endpoint(f["dest"])
    except (KeyError, ValueError):
        return None
    comm, ctx = m["comm"].strip(), context_of(m["comm"].strip(), m["flags"])
    state = f.get("state")
    skb = f.get("skbaddr", "")
    return KernelEvent(mono=float(m["ts"]), time=0.0, src=src, sport=sport, dst=dst, dport=dport,
                       state=None if state in (None, "UNKNOWN") else state, reason=f.get("reason", "UNKNOWN"),
                       active=skb.strip("0x") == "" or skb == "(null)", context=ctx,
                       pid=int(m["pid"]) if ctx == "process" else None,
                       comm=comm if ctx == "process" else None, cpu=int(m["cpu"]))
