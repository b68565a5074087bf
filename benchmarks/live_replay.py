"""Benchmark `rstwatch live` on a real interface: synthetic traffic (benchmarks/synth.py, 2% of
connections reset) replayed by tcpreplay into one end of a veth pair at each rate asked for,
`rstwatch live` (dumpcap, the pipe, the verdicts) on the other end. Prints, per rate, what
tcpreplay sent, what rstwatch's summary says it received and the capture dropped, and how many
resets it reported against the file's own.

  sudo .venv/bin/python benchmarks/live_replay.py [--packets 1000000] [--pps 100000 200000 0]

Root only (a veth pair); needs tcpreplay (Debian's package; `bin/setup --lab` installs it).
--pps 0 is tcpreplay's top speed. On a 2-core machine tcpreplay itself takes most of a core, so
the top speed says as much about the sender as about rstwatch.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

A, B = "rwreplay0", "rwreplay1"          # the veth pair: rstwatch on A, tcpreplay on B
SUMMARY = re.compile(r"live:\S+: [\d.]+ s, ([\d,]+) packets .*capture dropped ([\d,]+)")


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def one_rate(pcap: Path, pps: int, expected_resets: int, seconds: float, capture: str, preload: bool) -> dict:
    subprocess.run(["ip", "link", "del", A], capture_output=True)
    _run("ip", "link", "add", A, "type", "veth", "peer", "name", B)
    try:
        _run("ip", "link", "set", A, "up")
        _run("ip", "link", "set", B, "up")
        # findings to a file, not a pipe read at the end: a full pipe would stall rstwatch
        with open(pcap.with_suffix(".jsonl"), "w+") as found, open(pcap.with_suffix(".err"), "w+") as said:
            live = subprocess.Popen([str(ROOT / ".venv/bin/rstwatch"), "live", A, "-d", f"{seconds:g}s", "-T", "jsonl",
                                     "--capture", capture],
                                    stdout=found, stderr=said, text=True)
            time.sleep(4)                                    # dumpcap up and the interface open
            rate = ["--topspeed"] if pps == 0 else [f"--pps={pps}"]
            if preload:
                rate.append("--preload-pcap")       # from memory: the sender's top speed doubles
            cpu0 = _cpu(live.pid)
            sent = subprocess.run(["tcpreplay", "-q", "-i", B, *rate, str(pcap)], capture_output=True, text=True)
            cpu = _cpu(live.pid) - cpu0
            live.wait(timeout=seconds + 60)
            found.seek(0)
            said.seek(0)
            out, err = found.read(), said.read()
    finally:
        subprocess.run(["ip", "link", "del", A], capture_output=True)
    rated = re.search(r"Rated: .*?([\d.]+) pps", sent.stdout)
    took = re.search(r"Actual: .*? in ([\d.]+) seconds", sent.stdout)
    m = SUMMARY.search(err)
    if not m:
        raise SystemExit(f"no summary from rstwatch live:\n{err}")
    return {"asked": pps, "sent_pps": float(rated.group(1)) if rated else float("nan"),
            "received": int(m.group(1).replace(",", "")), "dropped": int(m.group(2).replace(",", "")),
            "resets": out.count("\n"), "expected": expected_resets,
            "busy": cpu / float(took.group(1)) if took else float("nan")}


def _cpu(pid: int) -> float:
    """CPU seconds of rstwatch and its children that are still running (dumpcap) so far."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
    except OSError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--pps", type=int, nargs="+", default=[100_000, 200_000, 0], help="rates (0: top speed)")
    ap.add_argument("--capture", choices=["auto", "ring", "dumpcap"], nargs="+", default=["ring", "dumpcap"],
                    help="rstwatch live --capture, each in turn at each rate")
    ap.add_argument("--preload", action="store_true", help="tcpreplay --preload-pcap (a faster sender)")
    a = ap.parse_args()
    if not shutil.which("tcpreplay"):
        raise SystemExit("live_replay: tcpreplay is not installed (apt-get install tcpreplay, or bin/setup --lab)")
    import synth
    with tempfile.TemporaryDirectory(prefix="rstwatch-replay-") as tmp:
        pcap = Path(tmp) / "mixed.pcap"
        rec = synth.build(a.packets, 0.02)
        synth.write(pcap, rec)
        check = subprocess.run([str(ROOT / ".venv/bin/rstwatch"), "read", str(pcap), "-T", "jsonl"],
                               capture_output=True, text=True, check=True)
        expected = check.stdout.count("\n")
        seconds = max(20.0, a.packets / 50_000 + 10)
        print("| capture | asked (packets/s) | sent (packets/s) | received | dropped | resets reported / in the file "
              "| rstwatch CPU while sending |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for pps in a.pps:
            for capture in a.capture:
                r = one_rate(pcap, pps, expected, seconds, capture, a.preload)
                asked = "top speed" if pps == 0 else f"{pps:,}"
                print(f"| {capture} | {asked} | {r['sent_pps']:,.0f} | {r['received']:,} | {r['dropped']:,} | "
                      f"{r['resets']:,} / {r['expected']:,} | {r['busy']:.0%} of a core |", flush=True)


if __name__ == "__main__":
    main()
