"""Issue 20 items 7 and 8: outputs another run holds, and outputs refused before any work.

Item 7: a `live --write` file (or ring) is locked for the life of the session; a second session on
the same path, even with --force, exits 2 naming the first one's pid, and the first one's file is
the one its summary names. Item 8: every output path of `read`, `report` and `live` (the main one,
the CSV and NAME_files/ beside a report, --extract, --write) is checked before any input is read.
The namespace here is called `rwheld`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CAPTURES, run_cli
from test_live import Session, refuse

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="live capture tests need root (network namespaces)")
NS = "rwheld"


@pytest.fixture
def held_ns():
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"], check=True)
    yield NS
    subprocess.run(f"ip netns pids {NS} | xargs -r kill -9", shell=True)
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def _one_error(err: list[str], *words: str) -> str:
    lines = [l for l in err if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("rstwatch: error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ---- item 7: a second live run never removes what the first one writes ----

@needs_root
def test_a_second_live_run_never_replaces_the_file_a_running_one_writes(held_ns, tmp_path: Path):
    ev, ring = tmp_path / "ev.pcapng", tmp_path / "rg.pcapng"
    first = Session(held_ns, "lo", "--format", "jsonl", "--write", str(ev))
    first_ring = Session(held_ns, "lo", "--format", "jsonl", "--write", str(ring), "--ring-files", "3")
    first.wait_watching()
    first_ring.wait_watching()
    refuse(held_ns, 3)
    held = {p: os.stat(p).st_ino for p in (ev, tmp_path / "rg_00001.pcapng")}
    for path, pid, extra in ((ev, first.proc.pid, []), (ev, first.proc.pid, ["--force"]),
                             (ring, first_ring.proc.pid, ["--ring-files", "3", "--force"])):
        second = Session(held_ns, "lo", "--write", str(path), *extra)
        assert second.finish(60) == 2, second.err
        _one_error(second.err, f"another rstwatch (pid {pid}) is writing it")
    assert {p: os.stat(p).st_ino for p in held} == held, "a running session's file was replaced"
    time.sleep(1.5)
    for s in (first, first_ring):
        s.proc.send_signal(signal.SIGTERM)
        assert s.finish(30) == 0, s.err
    assert any(f"packets kept in {ev}" in line for line in first.err), first.err
    res = run_cli("read", str(ev), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert [json.loads(l)["cause"] for l in res.stdout.splitlines()] == ["closed-port"] * 3
    from rstwatch.live.evidence import Evidence
    again = Evidence(ev, force=True)        # the first run is over: --force may replace its file now
    again.unlock()
    assert not ev.exists()                  # nothing written: no empty file left either
