"""The command line as a user drives it: output formats and their contract, files, jobs."""
from __future__ import annotations

import csv
import io
import json

from conftest import CAPTURES, run_cli

CONTRACT = ["file", "frame", "time", "src", "sport", "dst", "dport", "sender", "cause", "rule", "confidence",
            "alternatives", "summary", "errno", "evidence", "conn_state", "history", "wireshark_filter"]


def jsonl(*args):
    res = run_cli("read", *args, "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    return [json.loads(x) for x in res.stdout.splitlines()]


def test_jsonl_contract_on_the_bundled_captures():
    rows = jsonl(str(CAPTURES))
    assert len(rows) >= 15
    for r in rows:
        assert list(r)[:len(CONTRACT)] == CONTRACT
        assert r["sender"] in ("client", "server", "unknown")
        assert 0 <= r["confidence"] <= 1
        assert set(r["errno"]) == {"receiver", "sender"}
        assert isinstance(r["alternatives"], list) and isinstance(r["evidence"], list)
        assert r["frame"] in r["evidence"]
        assert isinstance(r["time"], float) and r["time"] > 1.6e9
        if r["cause"] in ("port-scan", "rst-storm", "syn-flood"):
            assert r["resets"] >= 500 and r["connections"] >= 500
    # every RST segment exactly once
    keys = [(r["file"], r["frame"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_csv_has_the_same_rows():
    res = run_cli("read", str(CAPTURES), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [int(r["frame"]) for r in rows] == [r["frame"] for r in jsonl(str(CAPTURES))]
    assert list(rows[0])[:len(CONTRACT)] == CONTRACT


def test_table_shows_causes_and_summary():
    res = run_cli("read", str(CAPTURES), "--format", "table")
    assert res.returncode == 0
    assert "By cause" in res.stdout and "closed-port" in res.stdout and "listener-closed" in res.stdout


def test_output_file_is_written_atomically_and_not_overwritten(tmp_path):
    out = tmp_path / "out.jsonl"
    assert run_cli("read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl", "-o", str(out)).returncode == 0
    first = out.read_text()
    assert first.count("\n") == 1
    res = run_cli("read", str(CAPTURES), "--format", "jsonl", "-o", str(out))
    assert res.returncode == 2 and "already exists" in res.stderr and "--force" in res.stderr
    assert out.read_text() == first
    assert run_cli("read", str(CAPTURES), "--format", "jsonl", "-o", str(out), "--force").returncode == 0
    assert out.read_text().count("\n") > 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]       # no temporary left behind


def test_failed_read_leaves_existing_output_alone(tmp_path):
    out = tmp_path / "keep.jsonl"
    out.write_text("precious\n")
    res = run_cli("read", str(tmp_path / "missing.pcap"), "-o", str(out), "--force")
    assert res.returncode == 2
    assert out.read_text() == "precious\n"


def test_jobs_give_the_same_order():
    one = run_cli("read", str(CAPTURES), "--format", "jsonl").stdout
    many = run_cli("read", str(CAPTURES), "--format", "jsonl", "--jobs", "3").stdout
    assert one == many


def test_broken_pipe_is_quiet():
    import subprocess, shutil, sys
    from pathlib import Path
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent))
    p = subprocess.run(f"{exe} read {CAPTURES} --format jsonl | head -1", shell=True, capture_output=True, text=True)
    assert p.stdout.count("\n") == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr
