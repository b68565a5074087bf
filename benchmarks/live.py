"""Benchmark the live path: a recorded capture fed through a pipe into exactly the loop
`rstwatch live` runs (pipe reader thread, fast reader, live flow table, streaming verdicts,
JSON Lines or the terminal's rows out, the closing summary's tally), as fast as the consumer
takes it.

  python benchmarks/live.py [--packets 1000000] [--cap-packets 3000000] [--max-segments 1000000]
  python benchmarks/live.py --one FILE.pcapng [--sink table]
      one file, pcapng as dumpcap writes it (the pipe reader takes nothing else: `editcap -F
      pcapng` converts a pcap); --sink table: the rows a 160-column terminal gets, not JSON Lines

Two runs, each in its own process so peak memory is its own:
  mixed  synthetic traffic with 2% resets: packets/s the live path sustains, verdicts out
  cap    a SYN flood of half-open connections (never closed, no RST) three times the flow table
         cap: the table must stop at the cap; peak RSS is the memory at the cap
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def one(path: Path, max_segments: int, sink_name: str = "jsonl", width: int = 160) -> dict:
    """Consume `path` through a pipe with the live loop; called in a fresh process."""
    from rstwatch.engine.loader import load_rules
    from rstwatch.live.feed import PipeFeed
    from rstwatch.live.flowtable import Limits
    from rstwatch.live.session import Stop, run_loop
    from rstwatch.live.sinks import CauseTally, JsonlSink, TableSink
    from rstwatch.live.tracker import LiveTracker

    from rstwatch.report.output import GuardedStream

    rules = load_rules()
    out = GuardedStream(open(os.devnull, "w"), "bench")       # what `rstwatch live` writes through (stdout)
    sink = TableSink(out, width=width) if sink_name == "table" else JsonlSink(out)
    verdicts = peak_rows = 0
    read_end, write_end = os.pipe()
    t0 = time.monotonic()
    writer = subprocess.Popen(["cat", str(path)], stdout=write_end)      # stands in for dumpcap
    os.close(write_end)
    feed = PipeFeed(read_end, "bench").start()
    tracker = LiveTracker("bench", rules, 500, Limits(max_segments=max_segments))
    tally = CauseTally(rules)                                 # the closing summary's counts, as live keeps them

    def emit(df) -> None:
        nonlocal verdicts, peak_rows
        peak_rows = max(peak_rows, tracker.rows)
        if len(df):
            sink.write(df)
            tally.add(df)
            verdicts += len(df)

    run_loop(feed, tracker, Stop(), emit, None, None, t0)
    emit(tracker.poll(final=True))
    elapsed = time.monotonic() - t0
    writer.wait()
    packets = feed.diag.packets
    return {"packets": packets, "seconds": round(elapsed, 3), "packets_per_s": round(packets / elapsed),
            "verdicts": verdicts, "table_segments_peak": peak_rows, "flows_evicted": tracker.evicted_total,
            "peak_rss_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's own high-water mark (ru_maxrss would include the parent's from before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def run_child(path: Path, max_segments: int) -> dict:
    res = subprocess.run([sys.executable, __file__, "--one", str(path), "--max-segments", str(max_segments)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--cap-packets", type=int, default=3_000_000)
    ap.add_argument("--max-segments", type=int, default=1_000_000)
    ap.add_argument("--one", type=Path, help="consume this one pcapng file (as dumpcap writes it) and print its numbers as JSON")
    ap.add_argument("--sink", choices=("jsonl", "table"), default="jsonl",
                    help="with --one: what the verdicts are written as (table: live's terminal rows)")
    ap.add_argument("--width", type=int, default=160,
                    help="with --sink table: the terminal's columns (85-104: the addresses fold)")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.max_segments, a.sink, a.width)))
        return
    import synth
    with tempfile.TemporaryDirectory() as tmp:
        mixed = Path(tmp) / "mixed.pcapng"
        synth.write(mixed, synth.build(a.packets, 0.02), pcapng=True)
        run_child(mixed, a.max_segments)            # warm the page cache outside the timing
        r = run_child(mixed, a.max_segments)
        print(f"mixed  {r['packets']:>9,} packets in {r['seconds']:6.2f} s = {r['packets_per_s']:>9,} packets/s, "
              f"{r['verdicts']:,} verdicts, peak RSS {r['peak_rss_mib']} MiB")
        flood = Path(tmp) / "half-open.pcapng"
        syn_only = [[(synth.C2S, synth.SYN, 0, 0)]]
        synth.write(flood, synth.build(a.cap_packets, 0.0, templates=syn_only), pcapng=True)
        r = run_child(flood, a.max_segments)
        print(f"cap    {r['packets']:>9,} packets in {r['seconds']:6.2f} s = {r['packets_per_s']:>9,} packets/s, "
              f"flow table peak {r['table_segments_peak']:,} segments (cap {a.max_segments:,}), "
              f"{r['flows_evicted']:,} flows evicted, peak RSS {r['peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
