"""How long the incident report takes, and how big it gets, for a capture with ~100,000 separate
resets (synthetic: every connection ends in a reset; benchmarks/synth.py).

    .venv/bin/python benchmarks/report.py [--resets 100000] [--keep DIR]

Prints one line per step: reading the capture into Parquet, the report from the saved findings,
and the report straight from the capture (HTML and Markdown), with wall time and output size.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402

RESET_SHAPES = [synth.NORMAL, synth.REFUSED, synth.ABORT, synth.AFTER_CLOSE]
PACKETS_PER_RESET = (2 + 6 + 9) / 3           # the three reset shapes, equally likely


def rstwatch() -> str:
    return shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or "rstwatch"


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    res = subprocess.run([rstwatch(), *args], capture_output=True, text=True)
    took = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"rstwatch {' '.join(args)} failed: {res.stderr[-2000:]}")
    return took


def size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resets", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, help="write the files here instead of a temporary folder")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="rstwatch-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cap = work / "resets.pcap"
    synth.write(cap, synth.build(int(a.resets * PACKETS_PER_RESET), 1.0, templates=RESET_SHAPES))
    print(f"capture: {cap.stat().st_size / 2**20:.1f} MiB")
    saved = work / "findings.parquet"
    t_read = timed(["read", str(cap), "-o", str(saved), "--force"])
    import pyarrow.parquet as pq
    rows = pq.read_metadata(saved).num_rows
    print(f"read -> Parquet: {rows:,} findings in {t_read:.1f} s, {size(saved) / 2**20:.1f} MiB")
    html = work / "from-parquet.html"
    t = timed(["report", str(saved), "-o", str(html), "--force"])
    side = html.with_name(html.stem + ".findings.csv")
    print(f"report from Parquet -> HTML: {t:.1f} s, {size(html) / 2**20:.2f} MiB"
          + (f" (+ full CSV beside it: {size(side) / 2**20:.1f} MiB)" if side.exists() else ""))
    html2 = work / "from-capture.html"
    t = timed(["report", str(cap), "-o", str(html2), "--force"])
    print(f"report from the capture -> HTML: {t:.1f} s (reading included), {size(html2) / 2**20:.2f} MiB")
    md = work / "from-parquet.md"
    t = timed(["report", str(saved), "-o", str(md), "--force"])
    print(f"report from Parquet -> Markdown: {t:.1f} s, {(size(md) + size(work / 'from-parquet_files')) / 2**20:.2f} MiB "
          f"with its images")
    if a.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
