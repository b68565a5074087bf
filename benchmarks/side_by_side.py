"""rstwatch beside the tools an SRE would reach for, on the same generated files, in one run.

    .venv/bin/python benchmarks/side_by_side.py [--packets 1000000] [--resets 10000 100000] [--repeat 3]

Files (benchmarks/synth.py): N mixed packets (2% of connections end in a reset), N packets of
the same traffic without a reset, files where every connection ends in a reset (a request, then
the server aborts: 6 packets each), a 2-packet file and a 4-packet one holding one refused
connection (start-up with a verdict to make). Tools, each as a fresh process,
measured in CPU seconds (user + system of the process and its children, median of --repeat
runs, the tools' runs interleaved so a slow spell of the machine falls on all of them; tshark
once, it is slow):

- rstwatch read FILE --format jsonl (every reset explained)
- Suricata 7, single runmode, full TCP stream engine, EVE flow records only, no rules
- tcpdump printing the RST segments only (-n, filter 'tcp[tcpflags] & tcp-rst != 0')
- tshark -T fields, the headers rstwatch uses

Prints one table with the ratios, the marginal CPU per reset (between the two largest reset
files, so start-up cancels out) and the start-up times. Missing tools are skipped; the lab setup
(bin/setup --lab) installs Suricata from Debian's backports.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402
from run import machine  # noqa: E402

RSTWATCH = [sys.executable, "-m", "rstwatch"]
SURICATA_YAML = """%YAML 1.1
---
vars:
  address-groups: {HOME_NET: "any", EXTERNAL_NET: "any"}
  port-groups: {HTTP_PORTS: "80"}
outputs:
  - eve-log: {enabled: yes, filetype: regular, filename: eve.json, types: [flow]}
logging:
  default-log-level: error
  outputs: [{console: {enabled: yes}}]
"""


def cpu_seconds(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of `cmd` with its output thrown away."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {err[-400:]}")
    return usage.ru_utime + usage.ru_stime, wall


def write_resets(path: Path, resets: int) -> None:
    """Every connection ends in a reset: handshake, request, ACK, the server's RST 40 ms later."""
    rec = synth.build(resets * len(synth.ABORT), 1.0, templates=[synth.NORMAL, synth.ABORT])
    synth.write(path, rec)


def tools(work: Path) -> dict[str, callable]:
    """name -> function(file) giving the command line, for the tools found on this machine."""
    found = {"rstwatch": lambda f: RSTWATCH + ["read", str(f), "--format", "jsonl"]}
    if shutil.which("suricata"):
        conf = work / "suricata.yaml"
        conf.write_text(SURICATA_YAML)
        logs = work / "suricata-logs"
        logs.mkdir(exist_ok=True)
        found["suricata"] = lambda f: ["suricata", "-c", str(conf), "-r", str(f), "--runmode", "single",
                                       "-l", str(logs), "-S", "/dev/null", "-k", "none"]
    if shutil.which("tcpdump"):
        found["tcpdump"] = lambda f: ["tcpdump", "-nr", str(f), "tcp[tcpflags] & tcp-rst != 0"]
    if shutil.which("tshark"):
        found["tshark"] = lambda f: ["tshark", "-r", str(f), "-T", "fields", "-e", "frame.number", "-e", "ip.src",
                                     "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq_raw",
                                     "-e", "tcp.ack_raw", "-e", "tcp.flags", "-e", "ip.ttl"]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets in the mixed file")
    ap.add_argument("--resets", type=int, nargs="+", default=[10_000, 100_000], help="reset files, resets each")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool and file; the median is reported")
    ap.add_argument("--no-tshark", action="store_true", help="skip tshark (tens of seconds per million packets)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rstwatch-side-by-side-"))
    print(f"machine: {machine()}")
    files = {f"{a.packets:,} mixed packets": work / "mixed.pcap"}
    synth.write(files[f"{a.packets:,} mixed packets"], synth.build(a.packets, 0.02))
    # the same traffic without a reset: reading and tracking alone, no verdict to make (and no
    # pandas to import), which tells the two apart in the mixed file's time
    quiet = f"{a.packets:,} packets, no reset"
    files[quiet] = work / "quiet.pcap"
    synth.write(files[quiet], synth.build(a.packets, 0.0))
    for n in a.resets:
        files[f"{n:,} resets, one per connection"] = work / f"resets-{n}.pcap"
        write_resets(files[f"{n:,} resets, one per connection"], n)
    tiny = work / "tiny.pcap"
    synth.write(tiny, synth.build(2, 0.0))
    one = work / "one-reset.pcap"              # start-up with a verdict to make: a refused connection
    synth.write(one, synth.build(4, 1.0, templates=[synth.NORMAL, synth.REFUSED]))     # (and two SYNs)
    found = tools(work)
    if a.no_tshark:
        found.pop("tshark", None)
    names = list(found)
    print(f"tools: {', '.join(names)}; CPU seconds, median of {a.repeat} (tshark: one run)\n", flush=True)
    cpu: dict[tuple[str, str], float] = {}
    for label, path in files.items():
        # the tools' runs interleaved (rstwatch, Suricata, tcpdump, rstwatch...), so that a slow
        # spell of this shared machine falls on all of them, not on one tool's three runs
        runs: dict[str, list[float]] = {name: [] for name in names}
        for k in range(a.repeat):
            for name in names:
                if name != "tshark" or k == 0:
                    runs[name].append(cpu_seconds(found[name](path), work)[0])
        for name in names:
            cpu[label, name] = sorted(runs[name])[len(runs[name]) // 2]
    print("| input | " + " | ".join(names) + (" | rstwatch / Suricata |" if "suricata" in found else " |"))
    print("|---|" + "---:|" * len(names) + ("---:|" if "suricata" in found else ""))
    for label in files:
        cells = [f"{cpu[label, n]:.2f} s" for n in names]
        ratio = f" {cpu[label, 'rstwatch'] / cpu[label, 'suricata']:.2f}x |" if "suricata" in found else ""
        print(f"| {label} | " + " | ".join(cells) + " |" + ratio)
    mixed = f"{a.packets:,} mixed packets"
    if "tshark" in found:
        print()
        for label, what in ((mixed, "mixed file"), (quiet, "no-reset file")):
            rate = a.packets / cpu[label, "rstwatch"]
            print(f"{what}: rstwatch {rate:,.0f} packets per CPU second, "
                  f"{cpu[label, 'tshark'] / cpu[label, 'rstwatch']:.0f}x tshark")
    if len(a.resets) >= 2:
        lo, hi = sorted(a.resets)[-2:]
        extra = cpu[f"{hi:,} resets, one per connection", "rstwatch"] - cpu[f"{lo:,} resets, one per connection", "rstwatch"]
        print(f"marginal CPU per reset (rstwatch, {lo:,} -> {hi:,} resets): {1e6 * extra / (hi - lo):.0f} us")
        if "suricata" in found:
            s_extra = cpu[f"{hi:,} resets, one per connection", "suricata"] - cpu[f"{lo:,} resets, one per connection", "suricata"]
            print(f"marginal CPU per reset connection (Suricata, flow record each): {1e6 * s_extra / (hi - lo):.0f} us")
    print("\nstart-up (a 2-packet file; a 4-packet one with one reset; CPU seconds, median):")
    starts = {"rstwatch read": found["rstwatch"](tiny), "rstwatch read, 1 reset": found["rstwatch"](one),
              "rstwatch --version": RSTWATCH[:1] + ["-m", "rstwatch", "--version"],
              "rstwatch --help": RSTWATCH + ["--help"]}
    if "tshark" in found:
        starts["tshark -r"] = ["tshark", "-r", str(tiny)]
        starts["tshark -r, 1 reset"] = ["tshark", "-r", str(one)]
    if "tcpdump" in found:
        starts["tcpdump -r"] = found["tcpdump"](tiny)
    for label, cmd in starts.items():
        runs = sorted(cpu_seconds(cmd, work) for _ in range(max(a.repeat, 3)))
        c, w = runs[len(runs) // 2]
        print(f"  {label:22} {c:.2f} s CPU, {w:.2f} s wall")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
