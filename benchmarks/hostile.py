"""Hostile captures that once blew up memory or time, and a benchmark that prints the numbers.

    .venv/bin/python benchmarks/hostile.py [--zeros-gib 1] [--trickle 300000] [--files 3000] [--only trickle]
    .venv/bin/python benchmarks/hostile.py --only metrics       (root: a network namespace and a pids cgroup)
    .venv/bin/python benchmarks/hostile.py --only overload      (root: live under 20,000 separate resets/s for 30 s)

Generators (also used by tests/test_hostile.py at small sizes):
  zero_records   a gzip of a pcap header followed by zeros: every 16 bytes is a zero-length record
  rst_trickle    spoofed RSTs on distinct 4-tuples at a rate just under the storm rate (99/s)
  small_files    a folder of rotated two-packet captures (SYN, RST|ACK: a refused connection each)
  blast          live overload: distinct bare RSTs sent out of a veth at a set rate (issue 20 item 2)
  rule_folder    valid rule files of many OR branches, or an explain repeating {src} (issue 20 item 15)
  live_report    72,000 findings fed to `live --report r.html` a batch at a time, as a session
                 emits them (issue 20 item 16): the report's own memory, over what the session holds
  idle_clients, header_flood
                 metrics endpoint abuse: connections that never send a request, and requests with
                 more header lines than a server should take (issue 20 item 14)

Each benchmark runs `rstwatch read` in its own process and reports wall time and peak RSS
(ru_maxrss of that child alone). The metrics benchmark runs `rstwatch live lo --metrics-port` in a
namespace with the systemd unit's TasksMax=64 (a pids cgroup), holds idle connections against it,
sends header floods, and prints the scrape time, the process's threads and what reached stderr.
"""
from __future__ import annotations

import argparse
import ast
import gzip
import os
import signal
import socket
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


def blast(iface: str, per_second: float, seconds: float, seed: int = 1, pool: int = 400_000) -> int:
    """Live overload (issue 20 item 2): bare RSTs between random hosts (so each is its own
    finding, not one flood's), each on its own 4-tuple (a pool of `pool`, sent again in turn when a
    long run uses them up), sent out of `iface` through a raw socket for `seconds`, `per_second` a
    second (0: as fast as it goes, ~100,000/s here). Returns the frames sent. Needs CAP_NET_RAW
    (a namespace's veth)."""
    n = int(per_second * seconds) if per_second else 1 << 62
    k = min(n, pool)
    rec = rst_records(k, per_second or 1e6, seed)
    rec["f"][:, 30:34] = np.random.default_rng(seed + 1).integers(1, 224, (k, 4))     # random targets
    frames = memoryview(np.ascontiguousarray(rec["f"]).tobytes())
    sent, start = 0, time.monotonic()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        while sent < n:
            now = time.monotonic() - start
            if now >= seconds:
                break
            due = min(n, int(now * per_second) + 1) if per_second else min(n, sent + 1000)
            if due <= sent:
                time.sleep(0.001)
                continue
            for i in range(sent, due):
                j = i % k * FRAME
                s.send(frames[j:j + FRAME])
            sent = due
    return sent


def small_files(folder: Path, n: int) -> list[Path]:
    """n rotated two-packet captures, named like a capture rotation (cap_00001.pcap, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        p = folder / f"cap_{k + 1:05d}.pcap"
        p.write_bytes(PCAP_HEADER + _refused(k))
        paths.append(p)
    return paths


def idle_clients(host: str, port: int, n: int) -> list[socket.socket]:
    """n connections that send half a request line and then nothing (the caller closes them)."""
    held = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET /met")
        held.append(s)
    return held


def header_flood(host: str, port: int, n: int, headers: int = 101) -> dict[str, int]:
    """n requests of `headers` header lines each; the status lines they got, counted."""
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % k for k in range(headers - 1)) + b"\r\n"
    got: dict[str, int] = {}
    for _ in range(n):
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(request)
                first = s.makefile("rb").readline().decode("latin-1").strip() or "(closed)"
        except OSError as exc:
            first = f"({type(exc).__name__})"
        got[first] = got.get(first, 0) + 1
    return got


def scrape_seconds(host: str, port: int, timeout: float = 10.0) -> float | None:
    """Seconds one GET /metrics took, or None when it failed."""
    t = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.makefile("rb").read()
    except OSError:
        return None
    return time.perf_counter() - t if data.startswith(b"HTTP/1.") and b" 200 " in data[:20] else None


def pids_cgroup(name: str, limit: int) -> Path | None:
    """A pids cgroup (v1 or v2) holding at most `limit` tasks, as TasksMax= does; None where none can be made."""
    v1, v2 = Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")
    control = v2 / "cgroup.subtree_control"
    bases = [v1] if (v1 / "tasks").exists() else []
    if control.exists() and "pids" in control.read_text().split():
        bases.append(v2)
    for base in bases:
        group = base / name
        try:
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(limit))
            return group
        except OSError:
            continue
    return None


def rule_folder(folder: Path, files: int = 1, branches: int = 4000, explain_repeats: int = 1,
                name: str = "or-bomb") -> list[Path]:
    """`files` valid rule files, each a `when` of `branches` OR branches of two tests (4,000 make
    ~250 KB) and an explain of `{src}` repeated `explain_repeats` times."""
    folder.mkdir(parents=True, exist_ok=True)
    branch = "  - {conn.client_bytes: {gt: %d}, rst.has_ack: true}\n"
    paths = []
    for k in range(files):
        p = folder / f"{name}-{k}.yaml"
        p.write_text(f"id: USR{k + 1:04d}\nname: {name}-{k}\ntitle: hostile\nconfidence: 0.5\n"
                     "errno: {receiver: [], sender: []}\nremediation: []\nreferences: []\ntests: []\n"
                     f"explain: \"{'{src}' * explain_repeats}\"\nwhen:\n"
                     + "".join(branch % (10**9 + j) for j in range(branches)))
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
    ap.add_argument("--idle", type=int, default=80, help="idle connections held against the metrics endpoint")
    ap.add_argument("--floods", type=int, default=200, help="requests with 101 header lines")
    ap.add_argument("--rule-files", type=int, default=200, help="rule files of 4,000 OR branches (~245 KB each)")
    ap.add_argument("--live-report", type=int, default=72_000, help="findings fed to live --report")
    ap.add_argument("--overload-rate", type=float, default=20_000, help="separate resets/s sent at live (root)")
    ap.add_argument("--overload-seconds", type=float, default=30, help="how long the overload lasts")
    ap.add_argument("--only", action="append", choices=("zeros", "trickle", "files", "metrics", "rules", "live-report",
                                                        "overload"),
                    help="run only this benchmark (repeatable; default: all three, and metrics as root)")
    a = ap.parse_args()
    only = set(a.only or ("zeros", "trickle", "files", "rules", *(("metrics",) if os.geteuid() == 0 else ())))
    with tempfile.TemporaryDirectory(prefix="rstwatch-hostile-") as tmp:
        tmp = Path(tmp)
        if "zeros" in only:
            zeros(tmp, a.zeros_gib)
        if "trickle" in only:
            trickle(tmp, a.trickle)
        if "files" in only:
            files(tmp, a.files)
        if "rules" in only:
            rule_sets(tmp, a.rule_files)
        if "live-report" in only:
            live_report(tmp, a.live_report)
        if "metrics" in only:
            metrics(a.idle, a.floods)
        if "overload" in only:
            overload(a.overload_rate, a.overload_seconds)


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


def rule_sets(tmp: Path, n: int) -> None:
    """`rules validate` of n OR-bomb files, and of one explain repeating {src} 50,000 times."""
    for what, folder in ((f"{n} rule files of 4,000 OR branches", tmp / "or-bombs"),
                         ("an explain of 50,000 {src}", tmp / "explain")):
        if folder.name == "or-bombs":
            rule_folder(folder, n)
        else:
            rule_folder(folder, 1, branches=1, explain_repeats=50_000)
        code = ("import resource,subprocess,sys,time;t=time.perf_counter();p=subprocess.run(sys.argv[1:],capture_output=True);"
                "print(time.perf_counter()-t,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,p.returncode,"
                "p.stderr.decode().splitlines()[:1])")
        res = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "rstwatch", "rules", "validate", str(folder)],
                             capture_output=True, text=True)
        wall, kib, rc, first = res.stdout.split(" ", 3)
        print(f"rules validate, {what}: exit {rc} in {float(wall):.1f} s, peak RSS {int(kib) / 1024:.0f} MiB: {first.strip()}")


LIVE_REPORT = """
import gc, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from rstwatch.live.report import LiveReport
from rstwatch.report.parquet import LIST_COLUMNS, _as_read

def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024

report = LiveReport(Path(sys.argv[2]), True)
report.check()
gc.collect()
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")         # VmHWM from here: the report's work only
t = time.perf_counter()
for batch in pq.ParquetFile(sys.argv[1]).iter_batches(512):     # a session's verdicts, a tick at a time
    df = _as_read(batch.to_pandas())
    for col in LIST_COLUMNS:
        if col in df:
            df[col] = [list(v) if v is not None else None for v in df[col]]
    df["errno"] = [{k: list(x) if x is not None else [] for k, x in (e or {}).items()} for e in df["errno"]]
    report.add(df)
held = status("VmRSS") - base
report.write("live:bench", 0, [], [], None, None, [])
print(report.kept, held, status("VmHWM") - base, time.perf_counter() - t)
"""


def live_report(tmp: Path, n: int) -> None:
    """`live --report r.html` of n findings (spoofed RSTs, every column as a session has them)."""
    pcap, saved = tmp / "live-report.pcap", tmp / "live-report.parquet"
    rst_trickle(pcap, n, 99.0)
    res = subprocess.run([sys.executable, "-m", "rstwatch", "read", str(pcap), "--storm-min", "0", "-o", str(saved)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"read failed: {res.stderr[-500:]}")
    res = subprocess.run([sys.executable, "-c", LIVE_REPORT, str(saved), str(tmp / "live-report.html")],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"live report failed: {res.stderr[-800:]}")
    kept, held, peak, wall = res.stdout.split()
    print(f"live --report r.html: {int(kept):,} findings held in {float(held):.0f} MiB, report written at a peak of "
          f"{float(peak):.0f} MiB over the session's own memory, {float(wall):.1f} s")


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


def abuse_metrics_endpoint(ns: str, port: int, idle: int, floods: int, scrapes: int = 5) -> tuple[dict, bytes, int, bool]:
    """`rstwatch live lo --metrics-port PORT` in a fresh namespace `ns`, held to TasksMax=64 when
    the host has a pids cgroup: `idle` idle connections held while `scrapes` scrapes are timed,
    then `floods` requests with 101 headers. Returns (what was seen: threads in rstwatch, the
    scrape times (None: failed), the flood's status lines counted; rstwatch's stderr, its exit
    code, whether TasksMax applied)."""
    group = pids_cgroup(f"rstwatch-{ns}", 64)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    enter = f"echo $$ > {group}/cgroup.procs; " if group else ""
    proc = subprocess.Popen(["sh", "-c", f"{enter}ip netns exec {ns} ip link set lo up && exec ip netns exec {ns} "
                             f"{sys.executable} -m rstwatch live lo --format jsonl --metrics-port {port} "
                             "--metrics-address 127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    code = ("import sys, time; sys.path.insert(0, %r); import hostile as h\n"
            "for _ in range(150):\n"
            "    if h.scrape_seconds('127.0.0.1', %d, 1) is not None: break\n"
            "    time.sleep(0.2)\n"
            "held = h.idle_clients('127.0.0.1', %d, %d)\n"
            "threads = [l for l in open('/proc/%d/status') if l.startswith('Threads')][0].split()[1]\n"
            "t = [h.scrape_seconds('127.0.0.1', %d, 5) for _ in range(%d)]\n"
            "f = h.header_flood('127.0.0.1', %d, %d)\n"
            "print(repr({'threads': int(threads), 'scrapes': t, 'flood': f}))\n"
            % (str(Path(__file__).parent), port, port, idle, proc.pid, port, scrapes, port, floods))
    try:
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=300)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if group:
            try:
                group.rmdir()
            except OSError:                     # still busy: the next run reuses it
                pass
    if res.returncode != 0:
        raise RuntimeError(f"metrics endpoint abuse failed: {res.stderr[-800:]}")
    return ast.literal_eval(res.stdout), err, proc.returncode, group is not None


def metrics(idle: int, floods: int, port: int = 19750) -> None:
    seen, err, _, limited = abuse_metrics_endpoint("rwhostile", port, idle, floods)
    ok = [x for x in seen["scrapes"] if x is not None]
    print(f"metrics endpoint abuse ({'TasksMax=64' if limited else 'no pids cgroup'}): {idle} idle connections held, "
          f"{seen['threads']} threads in rstwatch, {len(ok)}/5 scrapes answered (slowest {max(ok, default=0) * 1000:.0f} ms); "
          f"{floods} requests with 101 headers: {seen['flood']}; stderr {len(err):,} bytes, "
          f"{err.count(b'Traceback')} tracebacks")


def overload(rate: float, seconds: float, ns: str = "rwoverload", port: int = 19772) -> None:
    """`rstwatch live d1 --metrics-port` in a namespace while `blast` sends `rate` separate resets a
    second for `seconds` from d0: what reached d1, what rstwatch read, what the kernel dropped on
    dumpcap's socket (the metric while running and the summary), and when stderr first said so."""
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    for cmd in ("ip link set lo up", "ip link add d0 type veth peer name d1", "ip link set d0 up", "ip link set d1 up"):
        subprocess.run(["ip", "netns", "exec", ns, *cmd.split()], check=True)
    here = str(Path(__file__).resolve().parent)

    def in_ns(code: str) -> str:
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True,
                              text=True).stdout
    rx = "print(open('/sys/class/net/d1/statistics/rx_packets').read())"
    scrape = ("import urllib.request,re; t=urllib.request.urlopen('http://127.0.0.1:%d/metrics').read().decode(); "
              "print(re.search(r'capture_dropped_packets_total.interface=.d1.. (\\S+)', t).group(1))" % port)
    live = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "rstwatch", "live", "d1", "--no-kernel",
                             "--format", "jsonl", "--metrics-port", str(port), "--metrics-address", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=Path(here).parent)
    try:
        lines = []
        for line in live.stderr:
            lines.append(line)
            if "watching" in line:
                break
        rx0 = int(in_ns(rx))
        t0 = time.monotonic()
        sender = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                   f"import sys; sys.path.insert(0, {here!r}); import hostile; "
                                   f"print(hostile.blast('d0', {rate}, {seconds}))"], stdout=subprocess.PIPE, text=True)
        import threading
        told = []

        def read_err():
            for line in live.stderr:
                lines.append(line)
                if "overloaded" in line:
                    told.append(time.monotonic() - t0)
        threading.Thread(target=read_err, daemon=True).start()
        sender.communicate()
        during = float(in_ns(scrape) or 0)
        sent = int(in_ns(rx)) - rx0
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(120)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    time.sleep(0.5)
    summary = next((l.strip() for l in lines if l.startswith("rstwatch: live:d1:")), "(no summary)")
    print(f"live overload: {rate:,.0f} separate resets/s for {seconds:g} s: {sent:,} frames reached d1; "
          f"first 'overloaded' line {told[0] if told else float('nan'):.1f} s after the sender started, "
          f"{len(told)} such lines; rstwatch_capture_dropped_packets_total {during:,.0f} at the sender's end")
    for line in lines:
        if "overloaded" in line or "no more drops" in line:
            print(f"  {line.strip()}")
    print(f"  {summary}")


if __name__ == "__main__":
    main()
