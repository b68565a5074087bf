"""Regenerate the lab captures on this kernel (root only) and check every fresh RST.

This is what keeps the classifier honest about current kernel behaviour rather than only the
committed files. CI runs as root, so it always runs there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from rstwatch.analyze import analyze_file

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")


@needs_root
def test_fresh_lab_captures_match_their_ground_truth(tmp_path: Path, builtin_rules):
    out = tmp_path / "captures"
    res = subprocess.run([sys.executable, str(ROOT / "lab" / "make_captures.py"), "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    causes = set()
    wrong = []
    for name, entry in manifest["captures"].items():
        found = analyze_file(out / name, builtin_rules).findings
        truth = {r["frame"]: r["cause"] for r in entry["resets"]}
        if any(r.get("storm") for r in entry["resets"]):
            assert list(found["cause"]) == [entry["cause"]] and int(found["resets"].iloc[0]) == len(truth), name
            causes.add(entry["cause"])
            continue
        assert sorted(found["frame"]) == sorted(truth), name
        for row in found.itertuples():
            causes.add(truth[row.frame])
            if row.cause != truth[row.frame]:
                wrong.append(f"{name} frame {row.frame}: {row.cause} != {truth[row.frame]}")
    assert not wrong, wrong
    assert len(causes) >= 17
