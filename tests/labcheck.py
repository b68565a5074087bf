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
