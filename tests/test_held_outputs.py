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
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from test_live import Session, namespace, refuse

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="live capture tests need root (network namespaces)")
NS = "rwheld"


@pytest.fixture
def held_ns():
    with namespace(NS) as ns:
        yield ns


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
    first.wait_records(3)
    first_ring.wait_records(3)
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


# ---- item 8: every output path checked before any input is opened ----

def _fifo_input(tmp_path: Path) -> Path:
    """An input that blocks whoever opens it (no writer ever comes): a run that reads before it
    checks its outputs times out instead of exiting 2."""
    fifo = tmp_path / "closed-port.pcap"
    os.mkfifo(fifo)
    return fifo


def _run(*args: str) -> subprocess.CompletedProcess:
    """The console script with a timeout: a run that opens the FIFO fails the test, never hangs it."""
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or shutil.which("rstwatch")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def _snapshot(paths: list[Path]) -> dict:
    out = {}
    for p in paths:
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))):
            st = os.stat(f)
            out[f] = (f.read_bytes(), st.st_mtime_ns)
    return out


@pytest.mark.parametrize("case", ["read-md-csv", "report-html-csv", "report-md-folder", "read-extract"])
def test_outputs_already_there_are_refused_before_any_input_is_opened(tmp_path: Path, case: str):
    fifo = _fifo_input(tmp_path)
    csv, folder, ex = tmp_path / "a.findings.csv", tmp_path / "a_files", tmp_path / "ex"
    if case == "read-md-csv":
        args, kept = ["read", str(fifo), "-o", str(tmp_path / "a.md")], [csv]
    elif case == "report-html-csv":
        args, kept = ["report", str(fifo), "-o", str(tmp_path / "a.html")], [csv]
    elif case == "report-md-folder":
        args, kept = ["report", str(fifo), "-o", str(tmp_path / "a.md")], [folder]
    else:
        args, kept = ["read", str(fifo), "--format", "jsonl", "-o", str(tmp_path / "a.jsonl"), "--extract", str(ex)], [ex]
    if kept == [csv]:
        csv.write_text("mine\n")
    elif kept == [folder]:
        folder.mkdir()
        (folder / "timeline.svg").write_text("<svg/>")
    else:
        ex.mkdir()
        (ex / "closed-port-f2-closed-port.pcapng").write_bytes(b"an earlier run's evidence")
    before = _snapshot(kept)
    res = _run(*args)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rstwatch: error: ") and "already exists" in lines[0], lines
    assert str(kept[0]) in lines[0], lines
    assert _snapshot(kept) == before
    assert not (tmp_path / "a.md").exists() and not (tmp_path / "a.html").exists() and not (tmp_path / "a.jsonl").exists()


@needs_root
def test_live_report_side_outputs_are_refused_before_capturing(held_ns, tmp_path: Path):
    """`live --report r.md` with a non-empty r_files/ (or r.html beside an r.findings.csv, or a
    report written over the --write file) used to capture for the whole session and lose the
    report at exit; now exit 2 before dumpcap starts."""
    folder, csv = tmp_path / "r_files", tmp_path / "r.findings.csv"
    folder.mkdir()
    (folder / "timeline.svg").write_text("<svg/>")
    csv.write_text("mine\n")
    before = _snapshot([folder, csv])
    for args, named in ((["--report", str(tmp_path / "r.md")], folder),
                        (["--report", str(tmp_path / "r.html")], csv),
                        (["--report", str(tmp_path / "e.html"), "--write", str(tmp_path / "e.html")], tmp_path / "e.html")):
        s = Session(held_ns, "lo", "--duration", "3", *args)
        assert s.finish(60) == 2, s.err
        assert not s.watching.is_set(), s.err
        _one_error(s.err, str(named))
    assert _snapshot([folder, csv]) == before
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "e.html").exists()
