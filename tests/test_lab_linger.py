"""The linger lab (captures/linger/, lab/make_linger_captures.py; issue #22 item 1): httperf
--close-with-reset reads each whole HTTP/1 response and closes with SO_LINGER {1, 0} (kernel:
TCP_STATE); small static servers given a POST close with its body still arriving (TCP_ABORT_ON_CLOSE).
rstwatch must call the first `linger-zero-abort` and the second `unread-data-close`, each with the
other as an alternative, and the clean control nothing. As root, every scenario is rebuilt on the
running kernel and checked the same way.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import CAPTURES
from labcheck import assert_every_rst_labelled, needs_root, rebuild

import rstwatch

LINGER = CAPTURES / "linger"
KERNEL = {"linger-zero-abort": {"TCP_STATE"}, "unread-data-close": {"TCP_ABORT_ON_CLOSE"}}
OTHER = {"linger-zero-abort": "unread-data-close", "unread-data-close": "linger-zero-abort"}


def check_lab(folder: Path) -> None:
    entries = json.loads((folder / "manifest.json").read_text())["captures"]
    assert {e["cause"] for e in entries.values()} == {"linger-zero-abort", "unread-data-close", None}
    for name, entry in entries.items():
        df = rstwatch.read(folder / name)
        got = dict(zip(df["frame"], df["cause"]))
        if entry["cause"] is None:
            assert got == {}, name
            continue
        want = {r["frame"]: r["cause"] for r in entry["resets"]}
        assert got == want, name
        firsts = [r for r in entry["resets"] if r.get("kernel_reason")]
        assert firsts and {r["kernel_reason"] for r in firsts} == KERNEL[entry["cause"]], name
        # the pair the wire cannot always separate: the other one is offered
        assert all(OTHER[entry["cause"]] in list(a) for a in df["alternatives"]), name
        if entry["cause"] == "linger-zero-abort":     # the reset came after an HTTP/1 response to the client
            assert (df["receiver.reply_framing"] >= 1).all(), name


def test_bundled_linger_lab():
    check_lab(LINGER)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is needed to cross-check the RST frames")
def test_every_rst_tshark_sees_is_labelled():
    assert_every_rst_labelled(LINGER)


@needs_root
def test_fresh_linger_lab(tmp_path: Path):
    """Every scenario rebuilt with real programs on this kernel (about 20 s), then judged as above."""
    check_lab(rebuild("make_linger_captures.py", tmp_path / "linger"))
