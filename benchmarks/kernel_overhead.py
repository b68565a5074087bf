"""What joining kernel reasons costs `rstwatch live` under a reset flood (root only).

    python benchmarks/kernel_overhead.py [--seconds 10] [--rounds 2]

In a private network namespace (`hkb`, loopback only), a generator refuses connections as fast as
one Python process can (SYN -> RST|ACK, each RST also a tcp_send_reset event), cycling through
closed ports, while `rstwatch live lo` watches with and without `--no-kernel`. Reported per run:
packets rstwatch read per second of session, capture drops, kernel events joined, and rstwatch's
CPU time (its own plus dumpcap's) per 100,000 packets.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NS = "hkb"
FLOOD = """
import socket, sys, time
end = time.time() + float(sys.argv[1]); n = 0; port = 1
while time.time() < end:
    s = socket.socket()
    try: s.connect(('127.0.0.1', port))
    except OSError: pass
    s.close(); n += 1; port = port % 60000 + 1
print(n)
"""


def sh(*cmd: str) -> None:
    subprocess.run(cmd, capture_output=True)


def one(seconds: float, kernel: bool) -> dict:
    extra = [] if kernel else ["--no-kernel"]
    cmd = ["ip", "netns", "exec", NS, sys.executable, "-m", "rstwatch", "live", "lo", "--format", "jsonl",
           "--duration", str(seconds + 3), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    err_lines = []
    for line in proc.stderr:               # wait until it watches
        err_lines.append(line)
        if "watching" in line:
            break
    time.sleep(0.5)
    t0 = time.monotonic()
    flood = subprocess.run(["ip", "netns", "exec", NS, sys.executable, "-c", FLOOD, str(seconds)],
                           capture_output=True, text=True)
    flood_s = time.monotonic() - t0
    err_lines += proc.stderr.readlines()
    _, status, ru = os.wait4(proc.pid, 0)
    err = "".join(err_lines)
    m = re.search(r"live:lo: ([\d.]+) s, ([\d,]+) packets .*capture dropped ([\d,]+) of", err)
    if not m:
        raise RuntimeError(err)
    packets, dropped = int(m[2].replace(",", "")), int(m[3].replace(",", ""))
    k = re.search(r"kernel: ([\d,]+) reset\(s\).*?; ([\d,]+) joined", err)
    cpu = ru.ru_utime + ru.ru_stime
    return {"kernel": kernel, "connects": int(flood.stdout.strip() or 0), "packets": packets,
            "packets_per_s": packets / flood_s, "dropped": dropped,
            "joined": int(k[2].replace(",", "")) if k else 0, "cpu_s": cpu,
            "cpu_s_per_100k_packets": cpu / packets * 1e5 if packets else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("kernel_overhead: needs root (a network namespace, tracefs)")
    sh("ip", "netns", "del", NS)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"], check=True)
        print(f"{'run':18} {'connects':>9} {'packets':>9} {'packets/s':>10} {'dropped':>8} {'joined':>8} "
              f"{'CPU s':>6} {'CPU s/100k pkt':>14}")
        for r in range(args.rounds):
            for kernel in (False, True):
                res = one(args.seconds, kernel)
                name = f"{'kernel' if kernel else '--no-kernel'} #{r + 1}"
                print(f"{name:18} {res['connects']:>9,} {res['packets']:>9,} {res['packets_per_s']:>10,.0f} "
                      f"{res['dropped']:>8,} {res['joined']:>8,} {res['cpu_s']:>6.2f} {res['cpu_s_per_100k_packets']:>14.2f}",
                      flush=True)
    finally:
        subprocess.run(f"ip netns pids {NS} | xargs -r kill -9", shell=True)
        sh("ip", "netns", "del", NS)


if __name__ == "__main__":
    main()
