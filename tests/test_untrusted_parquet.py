"""Issue 20 item 13: a findings Parquet given to `report` is untrusted input. Crafted files (made
here with pyarrow from a real `read -o x.parquet`) must give one line and exit 2 when they are not
rstwatch findings, never hang on a path inside them (/dev/zero, a FIFO), never open or hash a file
the user did not name (a secret's size and SHA-256 used to be printed), and --extract must not
block on a FIFO named in the `file` column. Every run has a timeout: a hang fails, never blocks."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CAPTURES

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or shutil.which("rstwatch")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Real findings of two bundled captures, copied into a folder of their own."""
    home = tmp_path_factory.mktemp("saved")
    for name in ("closed-port.pcap", "data-after-close.pcap"):
        shutil.copy(CAPTURES / name, home / name)
    res = _run("read", str(home / "closed-port.pcap"), str(home / "data-after-close.pcap"), "-o", str(home / "base.parquet"))
    assert res.returncode == 0, res.stderr
    return home / "base.parquet"


def _craft(base: Path, out: Path, columns: dict | None = None, meta: dict | None = None, raw_meta: bytes | None = None) -> Path:
    table = pq.read_table(base)
    for name, values in (columns or {}).items():
        typ = values.type if isinstance(values, pa.Array) else table.schema.field(name).type
        table = table.set_column(table.schema.get_field_index(name), pa.field(name, typ),
                                 values if isinstance(values, pa.Array) else pa.array(values, typ))
    md = dict(table.schema.metadata)
    if meta is not None:
        md[b"rstwatch"] = json.dumps({**json.loads(md[b"rstwatch"]), **meta}).encode()
    if raw_meta is not None:
        md[b"rstwatch"] = raw_meta
    pq.write_table(table.replace_schema_metadata(md), out)
    return out


@pytest.mark.parametrize("case", ["mathtext-cause", "nan-time", "huge-time", "port", "frame-as-text", "meta-list"])
def test_odd_values_are_one_line_and_exit_2(base: Path, tmp_path: Path, case: str):
    two = lambda v: [v, v]                                          # noqa: E731  (two findings in base)
    crafted = {
        "mathtext-cause": dict(columns={"cause": two("$\\foo{$")}),  # was exit 70: matplotlib mathtext
        "nan-time": dict(columns={"time": [float("nan"), 1.0]}),     # was exit 70
        "huge-time": dict(columns={"time": [1e300, 1.0]}),           # was exit 70 (OutOfBoundsDatetime)
        "port": dict(columns={"sport": two(70000)}),
        "frame-as-text": dict(columns={"frame": pa.array(["2", "3"])}),
        "meta-list": dict(raw_meta=b"[1, 2]"),
    }[case]
    path = _craft(base, tmp_path / f"{case}.parquet", **crafted)
    out = tmp_path / "r.html"
    res = _run("report", str(path), "-o", str(out))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rstwatch: error: {path}: not rstwatch findings"), lines
    assert not out.exists()


def test_paths_inside_the_data_are_never_opened_or_hashed(base: Path, tmp_path: Path):
    """Provenance naming /dev/zero, a FIFO or a secret: the report is written at once and shows the
    paths as recorded, without any size or digest of them (before: a hang, or the secret's SHA-256)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:$y$j9T$not-for-reports\n")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    inputs = [{"path": "/dev/zero"}, {"path": str(fifo)}, {"path": str(secret)}, {"path": "/etc/shadow"}]
    path = _craft(base, tmp_path / "prov.parquet", meta={"inputs": inputs})
    out = tmp_path / "r.html"
    res = _run("report", str(path), "-o", str(out))
    assert res.returncode == 0, res.stderr
    page = out.read_text()
    assert str(secret) in page and "/dev/zero" in page
    assert digest not in page and str(secret.stat().st_size) not in page.split(str(secret))[1][:80]
    if os.access("/etc/shadow", os.R_OK):
        assert hashlib.sha256(Path("/etc/shadow").read_bytes()).hexdigest() not in page


def test_capture_paths_inside_the_data_are_read_only_under_what_the_user_named(base: Path, tmp_path: Path):
    """Ladders and --extract re-read a capture named in the `file` column only when it is a regular
    file the user named (an input or --packets) or under one; a FIFO there never blocks."""
    fifo = tmp_path / "fifo.pcap"
    os.mkfifo(fifo)
    path = _craft(base, tmp_path / "fifo.parquet", columns={"file": [str(fifo)] * 2})
    for extra in ([], ["--packets", str(tmp_path)]):        # named or not: a FIFO is not a capture to re-read
        ev = tmp_path / f"ev{len(extra)}"
        res = _run("report", str(path), "-o", str(tmp_path / f"r{len(extra)}.md"), "--extract", str(ev))
        assert res.returncode == 0, res.stderr
        assert "evidence not extracted" in res.stderr and list(ev.iterdir()) == []
    # the real captures beside the saved findings: not named, no ladder; named with --packets, ladders
    res = _run("report", str(base), "-o", str(tmp_path / "plain.html"))
    assert res.returncode == 0, res.stderr
    plain = (tmp_path / "plain.html").read_text()
    assert 'class="ladder"' not in plain and "not named on the command line" in plain
    res = _run("report", str(base), "-o", str(tmp_path / "named.html"), "--packets", str(base.parent))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "named.html").read_text().count('class="ladder"') == 2


def test_a_bad_saved_file_among_other_inputs_is_an_error_line_and_exit_1(base, tmp_path):
    """As an unreadable capture among others (docs/usage.md's exit codes): the good inputs are
    reported, each bad Parquet file gets its one line, the status is 1. Alone, it is exit 2. A
    truncated file is worded the same whichever way it was opened."""
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1], "b": [2]}), other)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(base.read_bytes()[:3000])
    capture = str(CAPTURES / "closed-port.pcap")
    with_capture = _run("report", str(other), capture, "-T", "jsonl")
    assert with_capture.returncode == 1 and '"cause":"closed-port"' in with_capture.stdout
    assert with_capture.stderr.count("rstwatch: error:") == 1 and "other.parquet: Parquet file without rstwatch findings" in with_capture.stderr
    saved_only = _run("report", str(other), str(cut), str(base), "-o", str(tmp_path / "r.html"))
    assert saved_only.returncode == 1 and (tmp_path / "r.html").stat().st_size > 0
    assert saved_only.stderr.count("rstwatch: error:") == 2
    alone = _run("report", str(cut), "-T", "jsonl")
    assert alone.returncode == 2 and alone.stdout == "" and len(alone.stderr.strip().splitlines()) == 1
    beside = _run("report", str(cut), capture, "-T", "jsonl")
    reason = "cut.parquet: not a readable Parquet file (Parquet magic bytes not found in footer"
    assert reason in alone.stderr and reason in beside.stderr and beside.returncode == 1
    nothing = _run("report", str(other), str(cut), "-o", str(tmp_path / "none.html"))
    assert nothing.returncode == 2 and not (tmp_path / "none.html").exists()
