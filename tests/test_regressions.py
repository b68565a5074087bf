"""captures/regressions/: lab runs that once went wrong (in CI or a rebuild), kept with their lab
labels so each case is checked on every run, whatever the lab's timing does next time. Every
labelled RST must get its cause, and a follow-up must point at the reset it follows."""
from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import CAPTURES
from rstwatch.analyze import analyze_file

FOLDER = CAPTURES / "regressions"
ENTRIES = json.loads((FOLDER / "manifest.json").read_text())["captures"]


def test_every_file_is_in_the_manifest_with_why_it_is_kept():
    assert {p.name for p in FOLDER.glob("*.pcap*")} == set(ENTRIES)
    assert all(e["why_kept"] and e["resets"] for e in ENTRIES.values())


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_each_labelled_reset_gets_its_cause_and_follow_up(name: str, builtin_rules):
    found = analyze_file(FOLDER / name, builtin_rules).findings.set_index("frame")
    truth = {r["frame"]: r for r in ENTRIES[name]["resets"]}
    assert set(found.index) == set(truth)
    wrong = []
    for frame, r in truth.items():
        got = found.loc[frame]
        follows = None if pd.isna(got["follows_frame"]) else int(got["follows_frame"])
        if got["cause"] != r["cause"] or follows != r.get("follows"):
            wrong.append(f"frame {frame}: {got['cause']} follows {follows}, want {r['cause']} follows {r.get('follows')}")
    assert not wrong, wrong


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark cross-checks the RST frames")
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_the_labels_cover_every_rst_tshark_sees(name: str):
    out = subprocess.run(["tshark", "-r", str(FOLDER / name), "-Y", "tcp.flags.reset == 1", "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    assert [int(x) for x in out.split()] == sorted(r["frame"] for r in ENTRIES[name]["resets"])
