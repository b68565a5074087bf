"""Rebuilding a lab's captures from the tests (as root: network namespaces, nftables, tracefs):
run lab/make_NAME_captures.py into a fresh folder, fail with its output's tail if it fails."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces, nftables, tracefs)")


def rebuild(script: str, out: Path, *args: str, timeout: int = 300) -> Path:
    """lab/SCRIPT --out OUT ARGS...; returns OUT, which holds the fresh captures and manifest.json."""
    res = subprocess.run([sys.executable, str(ROOT / "lab" / script), "--out", str(out), *args],
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    return out


def assert_every_rst_labelled(folder: Path) -> None:
    """Every RST frame tshark sees in each capture of a lab's manifest is labelled, and no more."""
    import json
    entries = json.loads((folder / "manifest.json").read_text())["captures"]
    assert {p.name for p in folder.glob("*.pcap")} == set(entries)
    for name, entry in entries.items():
        out = subprocess.run(["tshark", "-r", str(folder / name), "-Y", "tcp.flags.reset == 1", "-T", "fields",
                              "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
        assert [int(x) for x in out.split()] == [r["frame"] for r in entry["resets"]], name


# The pair the wire cannot always separate, and the kernel's reason for each (Linux's tcp_send_reset)
PAIR_KERNEL = {"linger-zero-abort": {"TCP_STATE"}, "unread-data-close": {"TCP_ABORT_ON_CLOSE"}}
PAIR_OTHER = {"linger-zero-abort": "unread-data-close", "unread-data-close": "linger-zero-abort"}


def judged_captures(folder: Path, causes: set[str]):
    """A lab folder's captures read with its manifest beside them: the manifest holds exactly
    `causes` and a control, each capture's verdicts (frame -> cause) are its manifest's and the
    control reports nothing. Yields (name, manifest entry, findings) of each capture with resets,
    for the lab's own checks."""
    import json
    import rstwatch
    entries = json.loads((folder / "manifest.json").read_text())["captures"]
    assert {e["cause"] for e in entries.values()} == causes | {None}
    for name, entry in entries.items():
        df = rstwatch.read(folder / name)
        got = dict(zip(df["frame"], df["cause"]))
        if entry["cause"] is None:
            assert got == {}, name
            continue
        assert got == {r["frame"]: r["cause"] for r in entry["resets"]}, name
        yield name, entry, df


def assert_pair_lab(folder: Path, more=None) -> None:
    """A lab of SO_LINGER-0 aborts and closes with unread data (the linger and TLS labs): every
    capture's verdicts are its manifest's, each connection's first reset carries its cause's kernel
    reason, the other cause is always offered, the control reports nothing; `more(cause, df, name)`
    checks the lab's own features."""
    for name, entry, df in judged_captures(folder, {"linger-zero-abort", "unread-data-close"}):
        firsts = [r for r in entry["resets"] if "follows" not in r and r.get("kernel_reason")]
        assert firsts and {r["kernel_reason"] for r in firsts} <= PAIR_KERNEL[entry["cause"]], name
        assert all(PAIR_OTHER[entry["cause"]] in list(a) for a in df["alternatives"]), name
        if more is not None:
            more(entry["cause"], df, name)
