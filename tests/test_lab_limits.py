"""The connection-limit lab (captures/limits/, lab/make_limits_captures.py; issue #22 item 3): git
daemon at --max-connections accepts and closes new connections with their request unread while it
serves others (kernel: TCP_ABORT_ON_CLOSE); the control kills the daemon with connections queued
(TCP_STATE). rstwatch must call the first `connection-limit`, the second `listener-closed`, and the
clean control nothing. As root, every scenario is rebuilt on the running kernel and checked the same way.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import CAPTURES
from labcheck import assert_every_rst_labelled, judged_captures, needs_root, rebuild


LIMITS = CAPTURES / "limits"


def check_lab(folder: Path, want_reasons: bool = True) -> None:
    for name, entry, df in judged_captures(folder, {"connection-limit", "listener-closed"}):
        assert len(entry["resets"]) >= 3, name          # a run of refusals, a queue of three
        reasons = {r["kernel_reason"] for r in entry["resets"]}
        expected = {"connection-limit": {"TCP_ABORT_ON_CLOSE"}, "listener-closed": {"TCP_STATE"}}[entry["cause"]]
        assert reasons == expected, name
        if entry["cause"] == "connection-limit":         # the port went on serving: the later client got its answer
            assert entry["applications_saw"]["later"]["exit"] == 0
            assert (df["conn.server_alive_in_burst"] >= 1).all()


def test_bundled_limits_lab():
    check_lab(LIMITS)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is needed to cross-check the RST frames")
def test_every_rst_tshark_sees_is_labelled():
    assert_every_rst_labelled(LIMITS)


@needs_root
def test_fresh_limits_lab(tmp_path: Path):
    """Every scenario rebuilt with real programs on this kernel (about 15 s), then judged as above."""
    check_lab(rebuild("make_limits_captures.py", tmp_path / "limits"))
