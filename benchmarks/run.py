"""Benchmark: rstwatch read against the tools a user would pick instead, on one synthetic capture.

    .venv/bin/python benchmarks/run.py [--packets 1000000] [--big-gb 0]

Writes N-packet synthetic captures (pcap, pcapng, pcap.gz; see synth.py), then times in one run:
rstwatch read (JSON Lines out, end to end, one process each, median of --repeat runs), tshark
-T fields over the same pcap, and pyshark on a slice. Prints packets/s, the ratio to tshark, and
peak RSS; then the start-up on a 2-packet file, the peak RSS at 2N packets (memory must not grow
with the file) and the marginal rate.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402

RSTWATCH = [sys.executable, "-m", "rstwatch"]


def timed(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed: {err[-500:]}")
    return wall, usage.ru_maxrss // 1024


def timed_median(cmd: list[str], repeat: int) -> tuple[float, int, float, float]:
    """(median wall, peak RSS of the slowest run, fastest, slowest) over `repeat` runs."""
    runs = sorted(timed(cmd) for _ in range(repeat))
    return runs[len(runs) // 2][0], max(r[1] for r in runs), runs[0][0], runs[-1][0]


def make(path: Path, n: int, *flags: str) -> None:
    subprocess.run([sys.executable, str(HERE / "synth.py"), str(path), str(n), *flags], check=True)


def pyshark_rate(path: Path, n: int) -> float:
    import pyshark
    cap = pyshark.FileCapture(str(path), use_json=True, keep_packets=False)
    start = time.perf_counter()
    seen = 0
    for pkt in cap:
        _ = (pkt.tcp.flags, pkt.tcp.seq_raw)
        seen += 1
        if seen >= n:
            break
    cap.close()
    return seen / (time.perf_counter() - start)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--pyshark-slice", type=int, default=3000)
    ap.add_argument("--tshark-packets", type=int, default=0, help="time tshark on the first N packets only (0 = all)")
    ap.add_argument("--big-gb", type=float, default=0, help="also read a capture of this many GB (memory check)")
    ap.add_argument("--keep", type=Path, help="folder to keep the synthetic captures in")
    ap.add_argument("--repeat", type=int, default=5, help="rstwatch runs per file; the median is reported")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="rstwatch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = a.packets
    print(f"machine: {machine()}")
    print(f"writing synthetic captures of {n:,} packets in {work} ...", flush=True)
    files = {"pcap": work / "bench.pcap", "pcapng": work / "bench.pcapng", "pcap.gz": work / "bench.pcap.gz"}
    # Generated in child processes: a forked child counts its parent's pages in its peak RSS,
    # so this process stays small while it measures.
    make(files["pcap"], n)
    make(files["pcapng"], n, "--pcapng")
    make(files["pcap.gz"], n, "--gzip")
    rows = []
    spread = []
    timed(RSTWATCH + ["read", str(files["pcap"]), "--format", "jsonl"])          # warm the page cache
    for kind, path in files.items():
        wall, rss, fast, slow = timed_median(RSTWATCH + ["read", str(path), "--format", "jsonl"], a.repeat)
        rows.append((f"rstwatch read ({kind}, JSON Lines out)", n / wall, rss, wall))
        spread.append(f"{kind} {fast:.2f}-{slow:.2f} s ({n / slow:,.0f}-{n / fast:,.0f} packets/s)")

    tshark = shutil.which("tshark")
    tshark_rate = None
    if tshark:
        tpath = files["pcap"]
        tn = n
        if a.tshark_packets and a.tshark_packets < n:
            tpath, tn = work / "slice.pcap", a.tshark_packets
            make(tpath, tn)
        wall, rss = timed([tshark, "-r", str(tpath), "-T", "fields", "-e", "frame.number", "-e", "ip.src", "-e", "ip.dst",
                           "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw",
                           "-e", "tcp.flags", "-e", "ip.ttl"])
        tshark_rate = tn / wall
        rows.append((f"tshark -T fields ({tn:,} packets)", tshark_rate, rss, wall))
    ps = pyshark_rate(files["pcap"], a.pyshark_slice)
    rows.append((f"pyshark FileCapture JSON (first {a.pyshark_slice:,} packets)", ps, None, a.pyshark_slice / ps))

    print()
    print("| reader | packets/s | vs tshark | peak RSS | wall |")
    print("|---|---:|---:|---:|---:|")
    for name, rate, rss, wall in rows:
        ratio = f"{rate / tshark_rate:.0f}x" if tshark_rate else "-"
        print(f"| {name} | {rate:,.0f} | {ratio} | {f'{rss} MiB' if rss else '-'} | {wall:.2f} s |")

    print()
    print(f"rstwatch over {a.repeat} runs (fastest-slowest): " + "; ".join(spread))
    tiny = work / "tiny.pcap"
    make(tiny, 2)
    start, _, _, _ = timed_median(RSTWATCH + ["read", str(tiny), "--format", "jsonl"], a.repeat)
    print(f"start-up (a 2-packet file, median): {start:.2f} s")
    # memory and marginal rate at twice the size
    double = work / "double.pcap"
    make(double, 2 * n)
    wall2, rss2, _, _ = timed_median(RSTWATCH + ["read", str(double), "--format", "jsonl"], a.repeat)
    wall1, rss1 = rows[0][3], rows[0][2]
    print(f"2x packets ({2 * n:,}): {wall2:.2f} s, peak RSS {rss2} MiB vs {rss1} MiB at {n:,} "
          f"(+{100 * (rss2 - rss1) / rss1:.0f}%)")
    print(f"marginal rate (2N - N packets over the extra time): {n / max(wall2 - wall1, 1e-9):,.0f} packets/s")
    if a.big_gb:
        big = work / "big.pcap"
        subprocess.run([sys.executable, str(HERE / "synth.py"), str(big), "0", "--big-gb", str(a.big_gb)], check=True)
        packets = (big.stat().st_size - 24) // (16 + synth.FRAME)
        wall, rss = timed(RSTWATCH + ["read", str(big), "--format", "jsonl"])
        print(f"{big.stat().st_size / 1e9:.1f} GB capture ({packets:,} packets): {wall:.1f} s, "
              f"{packets / wall:,.0f} packets/s, peak RSS {rss} MiB")
    if not a.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
