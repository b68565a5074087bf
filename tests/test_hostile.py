"""Hostile captures (issue 11, items 6, 8, 11): the generators of benchmarks/hostile.py at sizes that
run in seconds. Memory and time must be bounded by the flow table, not by what the capture holds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import hostile  # noqa: E402

# Runs `rstwatch read` in a child and prints its peak RSS (KiB) on the first line, so the memory
# of this test process does not count.
PEAK = ("import resource,subprocess,sys;p=subprocess.run(sys.argv[1:],capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.stdout.write(p.stdout.decode());sys.stderr.write(p.stderr.decode());sys.exit(p.returncode)")


def read_with_peak(*args: str) -> tuple[int, list[dict], str]:
    """(peak RSS in MiB, JSON Lines records, stderr) of one `rstwatch read`."""
    res = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "rstwatch", "read", *args, "--format", "jsonl"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    first, *lines = res.stdout.splitlines()
    return int(first) // 1024, [json.loads(x) for x in lines], res.stderr


def test_zero_length_record_bomb_does_not_grow_memory(tmp_path: Path):
    """A gzip of a pcap header plus zeros is a stream of zero-length records (none TCP). Memory must
    not grow with their number: 8x the records may cost only a few MiB more (it used to cost ~75
    bytes per record: 8 M records, +600 MiB)."""
    small, big = tmp_path / "z32.pcap.gz", tmp_path / "z256.pcap.gz"
    hostile.zero_records(small, 32 << 20)
    hostile.zero_records(big, 256 << 20)
    rss_small, rows, _ = read_with_peak(str(small))
    rss_big, rows_big, err = read_with_peak(str(big))
    assert rows == rows_big == []
    assert rss_big - rss_small < 40, f"{rss_small} MiB for 2 M records, {rss_big} MiB for 16 M"
