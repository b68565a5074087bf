"""Hostile captures that once blew up memory or time, and a benchmark that prints the numbers.

    .venv/bin/python benchmarks/hostile.py [--zeros-gib 1] [--trickle 300000] [--files 3000] [--only trickle]

Generators (also used by tests/test_hostile.py at small sizes):
  zero_records   a gzip of a pcap header followed by zeros: every 16 bytes is a zero-length record
  rst_trickle    spoofed RSTs on distinct 4-tuples at a rate just under the storm rate (99/s)
  small_files    a folder of rotated two-packet captures (SYN, RST|ACK: a refused connection each)

Each benchmark runs `rstwatch read` in its own process and reports wall time and peak RSS
(ru_maxrss of that child alone).
"""
from __future__ import annotations

import argparse
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)     # Ethernet, microseconds
FRAME = 54                                                                  # Ethernet + IPv4 + TCP
T0_US = 1_700_000_000_000_000


def zero_records(path: Path, decompressed_bytes: int) -> None:
    """pcap header + `decompressed_bytes` of zeros, gzip-compressed (about 1 MiB per GiB)."""
    zeros = bytes(1 << 20)
    with gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) as fh:
        fh.write(PCAP_HEADER)
        left = decompressed_bytes
        while left > 0:
            fh.write(zeros[:min(left, len(zeros))])
            left -= len(zeros)


def rst_records(n: int, per_second: float, seed: int = 1, target: tuple[int, int, int, int] = (10, 0, 0, 1)) -> np.ndarray:
    """n bare RSTs from random spoofed sources and ports to one host, each on its own 4-tuple,
    as pcap records (header + frame) in time order."""
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, dtype=[("sec", "<u4"), ("usec", "<u4"), ("cap", "<u4"), ("len", "<u4"), ("f", "u1", FRAME)])
    t_us = (np.arange(n) * (1e6 / per_second)).astype(np.int64) + T0_US
    rec["sec"], rec["usec"] = t_us // 1_000_000, t_us % 1_000_000
    rec["cap"] = rec["len"] = FRAME
    f = rec["f"]
    f[:, 12], f[:, 14], f[:, 17], f[:, 22], f[:, 23] = 8, 0x45, 40, 50, 6
    # distinct sources (a permutation, so no two RSTs share a 4-tuple), random ports
    src = (1 << 24) + rng.permutation(n).astype(np.int64) * 7 % (199 << 24)
    for k in range(4):
        f[:, 26 + k] = (src >> (24 - 8 * k)) & 255
    f[:, 30:34] = target
    sp, dp = rng.integers(1024, 65535, n), rng.integers(1024, 65535, n)
    f[:, 34], f[:, 35], f[:, 36], f[:, 37] = sp >> 8, sp & 255, dp >> 8, dp & 255
    seq = rng.integers(0, 1 << 32, n)
    for k in range(4):
        f[:, 38 + k] = (seq >> (24 - 8 * k)) & 255
    f[:, 46], f[:, 47] = 0x50, 0x04
    return rec


def rst_trickle(path: Path, n: int, per_second: float = 99.0, seed: int = 1) -> None:
    path.write_bytes(PCAP_HEADER + rst_records(n, per_second, seed).tobytes())


def _refused(k: int) -> bytes:
    """One refused connection (SYN, then RST|ACK from the server) as a pcap file body."""
    out = []
    cport, sport = 20000 + k % 40000, 80
    cli, srv = bytes([10, 1, (k >> 8) & 255, k & 255]), bytes([10, 2, 0, 1])
    isn = (k * 2654435761) & 0xFFFFFFFF
    t = T0_US + k * 60_000_000
    for i, (src, dst, sp, dp, seq, ack, flags) in enumerate(((cli, srv, cport, sport, isn, 0, 0x02),
                                                              (srv, cli, sport, cport, 0, isn + 1, 0x14))):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack & 0xFFFFFFFF, 0x50, flags, 0 if flags & 4 else 64240, 0, 0)
        frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp
        ts = t + i * 100
        out.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)) + frame)
    return b"".join(out)


def small_files(folder: Path, n: int) -> list[Path]:
    """n rotated two-packet captures, named like a capture rotation (cap_00001.pcap, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        p = folder / f"cap_{k + 1:05d}.pcap"
        p.write_bytes(PCAP_HEADER + _refused(k))
        paths.append(p)
    return paths


# --- the benchmark -------------------------------------------------------------------------

def measured(*args: str) -> tuple[float, float, bytes]:
    """Wall seconds, peak RSS (MiB) and stdout of `rstwatch read ARGS -f jsonl` in a child."""
    code = ("import resource,subprocess,sys,time;t=time.perf_counter();"
            "p=subprocess.run(sys.argv[1:],stdout=subprocess.PIPE,stderr=subprocess.PIPE);"
            "w=time.perf_counter()-t;r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
            "sys.stderr.buffer.write(p.stderr);print(f'{w} {r} {p.returncode}');sys.stdout.buffer.write(p.stdout)")
    res = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "rstwatch", "read", *args, "--format", "jsonl"],
                         capture_output=True)
    first, _, rest = res.stdout.partition(b"\n")
    wall, kib, rc = first.split()
    if int(rc) != 0:
        raise SystemExit(f"rstwatch read {' '.join(args)} failed ({rc.decode()}): {res.stderr.decode()[-500:]}")
    return float(wall), int(kib) / 1024, rest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zeros-gib", type=float, default=1.0, help="decompressed size of the zero-record bomb")
    ap.add_argument("--trickle", type=int, default=300_000, help="spoofed RSTs at 99/s")
    ap.add_argument("--files", type=int, default=3000, help="two-packet captures in one folder")
    ap.add_argument("--only", action="append", choices=("zeros", "trickle", "files"),
                    help="run only this benchmark (repeatable; default: all three)")
    a = ap.parse_args()
    only = set(a.only or ("zeros", "trickle", "files"))
    with tempfile.TemporaryDirectory(prefix="rstwatch-hostile-") as tmp:
        tmp = Path(tmp)
        if "zeros" in only:
            zeros(tmp, a.zeros_gib)
        if "trickle" in only:
            trickle(tmp, a.trickle)
        if "files" in only:
            files(tmp, a.files)


def zeros(tmp: Path, gib: float) -> None:
    bomb = tmp / "zeros.pcap.gz"
    zero_records(bomb, int(gib * 2**30))
    measured(str(bomb))                                   # warm the page cache
    wall, rss, _ = measured(str(bomb))
    records = int(gib * 2**30) // 16
    print(f"zero-length records: {gib:g} GiB decompressed ({records:,} records, "
          f"{bomb.stat().st_size / 2**10:,.0f} KiB gzip) in {wall:.1f} s, peak RSS {rss:.0f} MiB")


def trickle(tmp: Path, n: int) -> None:
    path = tmp / "trickle.pcap"
    rst_trickle(path, n, 99.0)
    wall, rss, out = measured(str(path))
    rows = out.count(b"\n")
    print(f"spoofed RST trickle: {n:,} RSTs at 99/s on distinct 4-tuples in {wall:.1f} s "
          f"({n / wall:,.0f} RSTs/s), peak RSS {rss:.0f} MiB, {rows:,} findings")


def files(tmp: Path, n: int) -> None:
    folder = tmp / "rotated"
    small_files(folder, n)
    one = tmp / "one"
    small_files(one, 1)
    w1, rss1, _ = measured(str(one))
    wall, rss, out = measured(str(folder))
    per_file_ms = (wall - w1) / max(n - 1, 1) * 1000
    per_file_kib = (rss - rss1) * 1024 / max(n - 1, 1)
    rows = out.count(b"\n")
    print(f"many small files: {n:,} two-packet captures in {wall:.1f} s = {per_file_ms:.2f} ms per file "
          f"(start-up {w1:.2f} s excluded), peak RSS {rss:.0f} MiB vs {rss1:.0f} MiB for one file "
          f"({per_file_kib:+.1f} KiB per file), {rows:,} findings")


if __name__ == "__main__":
    main()
