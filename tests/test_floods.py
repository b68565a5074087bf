"""Hostile traffic: a million distinct 4-tuples in a RST flood runs in bounded memory and comes
out as one finding; a slow trickle of lone RSTs (e.g. a capture filtered to RSTs) does not."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st


FRAME = 54


def rst_frames(n: int, per_second: float, seed: int = 1) -> np.ndarray:
    """n RSTs from random spoofed sources/ports to 10.0.0.1, as one structured pcap body."""
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, dtype=[("sec", "<u4"), ("usec", "<u4"), ("cap", "<u4"), ("len", "<u4"), ("f", "u1", FRAME)])
    t_us = (np.arange(n) * (1e6 / per_second)).astype(np.int64) + 1_700_000_000_000_000
    rec["sec"], rec["usec"] = t_us // 1_000_000, t_us % 1_000_000
    rec["cap"] = rec["len"] = FRAME
    f = rec["f"]
    f[:, 12], f[:, 13], f[:, 14], f[:, 17], f[:, 22], f[:, 23] = 8, 0, 0x45, 40, 50, 6
    src = rng.integers(1 << 24, 200 << 24, n)
    for k in range(4):
        f[:, 26 + k] = (src >> (24 - 8 * k)) & 255
    f[:, 30:34] = [10, 0, 0, 1]
    sp, dp = rng.integers(1024, 65535, n), rng.integers(1024, 65535, n)
    f[:, 34], f[:, 35], f[:, 36], f[:, 37] = sp >> 8, sp & 255, dp >> 8, dp & 255
    seq = rng.integers(0, 1 << 32, n)
    for k in range(4):
        f[:, 38 + k] = (seq >> (24 - 8 * k)) & 255
    f[:, 46], f[:, 47] = 0x50, 0x04
    return rec


def write(path: Path, rec: np.ndarray) -> None:
    import struct
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + rec.tobytes())


def test_million_tuple_rst_flood_is_one_finding_in_bounded_memory(tmp_path):
    path = tmp_path / "flood.pcap"
    write(path, rst_frames(1_000_000, per_second=50_000))
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent))
    # measure the child's peak RSS from a small launcher so this test process's memory does not count
    code = ("import resource,subprocess,sys;p=subprocess.run(sys.argv[1:],capture_output=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
            "sys.stdout.write(p.stdout.decode());sys.stderr.write(p.stderr.decode());sys.exit(p.returncode)")
    res = subprocess.run([sys.executable, "-c", code, exe, "read", str(path), "--format", "jsonl"], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    peak_kib = int(lines[0])
    rows = [json.loads(x) for x in lines[1:]]
    assert len(rows) == 1
    assert rows[0]["cause"] == "rst-storm" and rows[0]["resets"] == 1_000_000
    assert peak_kib < 800 * 1024, f"peak RSS {peak_kib // 1024} MiB"


def test_slow_trickle_of_lone_rsts_is_not_a_storm(tmp_path):
    path = tmp_path / "trickle.pcap"
    write(path, rst_frames(600, per_second=2))
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent))
    res = subprocess.run([exe, "read", str(path), "--format", "jsonl"], capture_output=True, text=True)
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(rows) == 600 and "rst-storm" not in {r["cause"] for r in rows}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 2**63, 2**64 - 1]), st.integers(0, 2),
                          st.integers(0, 65535), st.integers(-10**12, 10**12)), min_size=1, max_size=40))
def test_target_groups_agree_with_a_sorted_pandas_group_by(rows):
    """The flood detectors group flows by target in numpy (no pandas import while reading);
    the groups, their order and their statistics are pandas' sorted group-by's."""
    import pandas as pd
    from rstwatch.track.storms import TargetGroups
    hi, lo, src, port, ts = (np.array(c, dtype) for c, dtype in
                             zip(zip(*rows), (np.uint64, np.uint64, np.uint64, np.uint16, np.int64)))
    groups = TargetGroups((hi, lo, src))
    by = pd.DataFrame({"hi": hi, "lo": lo, "src": src, "port": port, "ts": ts}).groupby(["hi", "lo", "src"])
    stats = by.agg(n=("port", "size"), ports=("port", "nunique"), t0=("ts", "min"), t1=("ts", "max"))
    assert groups.keys() == [tuple(map(int, k)) for k in stats.index]
    assert groups.sizes().tolist() == stats["n"].tolist()
    assert groups.distinct(port).tolist() == stats["ports"].tolist()
    t0, t1 = groups.min_max(ts)
    assert (t0.tolist(), t1.tolist()) == (stats["t0"].tolist(), stats["t1"].tolist())
    assert groups.group.tolist() == by.ngroup().tolist()
