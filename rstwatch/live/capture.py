"""Which capture takes the packets (`--capture`): rstwatch's own ring where it can, else dumpcap;
and the feed thread that reads either."""
from __future__ import annotations

import socket
from typing import Callable

from .dumpcap import CaptureStartError, Dumpcap
from .feed import PipeFeed
from .ringcap import RingCapture, ring_possible

KINDS = ("auto", "ring", "dumpcap")


def open_capture(interfaces: list[str], bpf: str | None, snaplen: int, kind: str = "auto"):
    """A RingCapture (`ring`, or `auto` where it can: one Ethernet or loopback interface and the
    right to open a packet socket), else a Dumpcap. Both are context managers."""
    if kind not in KINDS:
        raise ValueError(f"capture must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind != "dumpcap":
        why_not = ring_possible(interfaces)
        if why_not is None and kind == "auto" and not may_capture():
            why_not = "no right to open a packet socket here"
        if why_not is None:
            return RingCapture(interfaces, bpf, snaplen)
        if kind == "ring":
            raise CaptureStartError(", ".join(interfaces), f"--capture ring: {why_not}")
    return Dumpcap(interfaces, bpf, snaplen)


def may_capture() -> bool:
    """Whether this process may open a packet socket (root or CAP_NET_RAW); if not, a dumpcap with
    file capabilities captures for it."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        return True
    except OSError:
        return False


def start_feed(cap, label: str, on_blocks: Callable[[bytes, bytes], None] | None = None,
               interfaces: list[str] | None = None) -> PipeFeed:
    """The reader thread over the capture's stream: the ring's bytes, or dumpcap's pipe."""
    if isinstance(cap, RingCapture):
        return PipeFeed(None, label, on_blocks, interfaces, source=cap.chunks()).start()
    return PipeFeed(cap.stdout_fd, label, on_blocks, interfaces).start()
