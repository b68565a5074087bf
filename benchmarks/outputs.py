"""Every output format at an incident's size: peak RSS and wall time of `rstwatch read` writing
N findings (spoofed RSTs on distinct 4-tuples at 99/s, one finding each) in each format.

    .venv/bin/python benchmarks/outputs.py [--resets 300000] [--only html --only jsonl]

Each run is its own process (peak RSS is ru_maxrss of that child alone); the output goes to a
file in a temporary folder. Prints a Markdown table (docs/bounded.md quotes it) with each
peak as a multiple of JSON Lines'.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile  # noqa: E402

# name -> (output file name, extra arguments)
RUNS = {
    "jsonl": ("out.jsonl", []), "csv": ("out.csv", []), "eve": ("out.eve.json", []),
    "zeek": ("out.log", []), "zeek-json": ("out.zeek.json", ["--format", "zeek-json"]),
    "parquet": ("out.parquet", []), "html": ("report.html", []), "md": ("report.md", []),
    "table": ("out.txt", ["--format", "table"]), "jsonl --extract": ("ex.jsonl", ["--extract", "evidence"]),
}

_CHILD = ("import resource,subprocess,sys,time;t=time.perf_counter();"
          "p=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE);"
          "w=time.perf_counter()-t;r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
          "print(f'{w} {r} {p.returncode}');sys.stdout.flush();sys.stderr.buffer.write(p.stderr[-2000:])")


def measure(capture: Path, work: Path, name: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one `rstwatch read` writing `name`."""
    out, extra = RUNS[name]
    folder = work / name.replace(" ", "_")
    folder.mkdir()
    extra = [str(folder / a) if a == "evidence" else a for a in extra]
    cmd = [sys.executable, "-m", "rstwatch", "read", str(capture), "-o", str(folder / out), *extra]
    res = subprocess.run([sys.executable, "-c", _CHILD, *cmd], capture_output=True, text=True)
    wall, kib, rc = res.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}): {res.stderr}")
    return float(wall), int(kib) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resets", type=int, default=300_000)
    ap.add_argument("--only", action="append", choices=list(RUNS), help="measure only this (repeatable)")
    a = ap.parse_args()
    names = a.only or list(RUNS)
    if "jsonl" not in names:
        names = ["jsonl", *names]           # the reference every peak is compared with
    with tempfile.TemporaryDirectory(prefix="rstwatch-outputs-") as tmp:
        work = Path(tmp)
        capture = work / "trickle.pcap"
        hostile.rst_trickle(capture, a.resets, 99.0)
        print(f"{a.resets:,} spoofed RSTs at 99/s on distinct 4-tuples, one finding each "
              f"({time.strftime('%Y-%m-%d')}, {sys.platform})\n")
        print("| output | peak RSS | vs JSON Lines | wall |")
        print("|---|---:|---:|---:|")
        ref = None
        for name in names:
            wall, peak = measure(capture, work, name)
            ref = ref or peak
            print(f"| {name} | {peak:,.0f} MiB | {peak / ref:.2f}x | {wall:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
