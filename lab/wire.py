"""A wire with latency: relays Ethernet frames between two interfaces after a fixed delay.

This kernel has no netem, yet real races (a FIN crossing the next request on a keep-alive
connection) need a path that takes time. This program sits in its own namespace between two veth
ends and forwards every frame, unchanged, D milliseconds later, in both directions.

Usage: python3 wire.py IF_A IF_B DELAY_MS      (runs until killed; prints "ready" once relaying)
The senders on either side must compute checksums in software (ethtool -K DEV tx off): a frame
read from an AF_PACKET socket may carry a checksum the kernel meant to finish later.
"""
from __future__ import annotations

import heapq
import os
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def open_tap(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.setblocking(False)
    return s


def relay(a: str, b: str, delay_s: float) -> None:
    taps = {a: open_tap(a), b: open_tap(b)}
    other = {taps[a].fileno(): taps[b], taps[b].fileno(): taps[a]}
    by_fd = {t.fileno(): t for t in taps.values()}
    queue: list[tuple[float, int, socket.socket, bytes]] = []
    n = 0
    print("ready", flush=True)
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        ready, _, _ = select.select(list(by_fd), [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            tap = by_fd[fd]
            while True:
                try:
                    frame, addr = tap.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:       # our own transmission seen on the way out
                    continue
                n += 1
                heapq.heappush(queue, (now + delay_s, n, other[fd], frame))
        while queue and queue[0][0] <= time.monotonic():
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError:
                pass                                  # a full queue drops, as a wire would


def main() -> None:
    a, b, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    os.nice(-5) if os.geteuid() == 0 else None
    relay(a, b, delay_ms / 1000.0)


if __name__ == "__main__":
    main()
