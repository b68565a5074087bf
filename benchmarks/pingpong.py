"""Many resets on ONE 4-tuple: two boxes that keep resetting each other's connection (a RST
ping-pong between a load balancer and a server, a client that reconnects from the same port).
This once took quadratic time (20,000 RSTs ~17 s; 100,000 did not finish in 5 minutes).

    .venv/bin/python benchmarks/pingpong.py [--resets 100000]

Generator (also used by tests/test_hostile_pingpong.py at small sizes):
  rst_pingpong   a handshake and data, then RSTs alternating between the two sides of one
                 4-tuple, 1 ms apart (all inside Zeek's 5 s reset delay: one connection)
"""
from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import FRAME, PCAP_HEADER, T0_US, measured  # noqa: E402

A, B = (10, 9, 0, 1), (10, 9, 0, 2)
A_PORT, B_PORT = 40000, 8080
SYN, RST, PSH, ACK = 0x02, 0x04, 0x08, 0x10


def _frames(n: int) -> np.ndarray:
    rec = np.zeros(n, dtype=[("sec", "<u4"), ("usec", "<u4"), ("cap", "<u4"), ("len", "<u4"), ("f", "u1", FRAME)])
    rec["cap"] = rec["len"] = FRAME
    f = rec["f"]
    f[:, 12], f[:, 14], f[:, 17], f[:, 22], f[:, 23] = 8, 0x45, 40, 64, 6
    f[:, 46] = 0x50
    f[:, 48], f[:, 49] = 0x72, 0x10                          # window 29200
    return rec


def _put(f: np.ndarray, rows, src, dst, sport, dport, seq, ack, flags) -> None:
    f[rows, 26:30], f[rows, 30:34] = src, dst
    f[rows, 34], f[rows, 35], f[rows, 36], f[rows, 37] = sport >> 8, sport & 255, dport >> 8, dport & 255
    for k in range(4):
        f[rows, 38 + k] = (np.asarray(seq) >> (24 - 8 * k)) & 255
        f[rows, 42 + k] = (np.asarray(ack) >> (24 - 8 * k)) & 255
    f[rows, 47] = flags


def rst_pingpong(path: Path, resets: int) -> None:
    """A SYN / SYN-ACK / ACK, then `resets` RST|ACKs, even ones from A, odd ones from B, each
    in the other's window; 1 ms apart."""
    isn_a, isn_b = 1_000, 5_000_000
    rec = _frames(3 + resets)
    f = rec["f"]
    _put(f, 0, A, B, A_PORT, B_PORT, isn_a, 0, SYN)
    _put(f, 1, B, A, B_PORT, A_PORT, isn_b, isn_a + 1, SYN | ACK)
    _put(f, 2, A, B, A_PORT, B_PORT, isn_a + 1, isn_b + 1, ACK)
    k = np.arange(resets)
    from_a = 3 + k[k % 2 == 0]
    from_b = 3 + k[k % 2 == 1]
    _put(f, from_a, A, B, A_PORT, B_PORT, isn_a + 1, isn_b + 1, RST | ACK)
    _put(f, from_b, B, A, B_PORT, A_PORT, isn_b + 1, isn_a + 1, RST | ACK)
    t_us = T0_US + np.arange(3 + resets, dtype=np.int64) * 1000
    rec["sec"], rec["usec"] = t_us // 1_000_000, t_us % 1_000_000
    path.write_bytes(PCAP_HEADER + rec.tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resets", type=int, default=100_000, help="RSTs on the one 4-tuple")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rstwatch-pingpong-") as tmp:
        path = Path(tmp) / "pingpong.pcap"
        rst_pingpong(path, a.resets)
        t = time.perf_counter()
        wall, rss, out = measured(str(path))
        rows = out.count(b"\n")
        print(f"RST ping-pong: {a.resets:,} resets on one 4-tuple in {wall:.1f} s "
              f"({a.resets / wall:,.0f} resets/s), peak RSS {rss:.0f} MiB, {rows:,} findings")


if __name__ == "__main__":
    main()
