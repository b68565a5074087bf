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
