"""The linger lab (captures/linger/, lab/make_linger_captures.py; issue #22 item 1): httperf
--close-with-reset reads each whole HTTP/1 response and closes with SO_LINGER {1, 0} (kernel:
TCP_STATE); small static servers given a POST close with its body still arriving (TCP_ABORT_ON_CLOSE).
rstwatch must call the first `linger-zero-abort` and the second `unread-data-close`, each with the
other as an alternative, and the clean control nothing. As root, every scenario is rebuilt on the
running kernel and checked the same way.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import CAPTURES
from labcheck import assert_every_rst_labelled, assert_pair_lab, needs_root, rebuild

LINGER = CAPTURES / "linger"


def linger_framing(cause: str, df, name: str) -> None:
    if cause == "linger-zero-abort":     # the reset came after an HTTP/1 response to the client
        assert (df["receiver.reply_framing"] >= 1).all(), name


def check_lab(folder: Path) -> None:
    assert_pair_lab(folder, linger_framing)


def test_bundled_linger_lab():
    check_lab(LINGER)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is needed to cross-check the RST frames")
def test_every_rst_tshark_sees_is_labelled():
    assert_every_rst_labelled(LINGER)


@needs_root
def test_fresh_linger_lab(tmp_path: Path):
    """Every scenario rebuilt with real programs on this kernel (about 20 s), then judged as above."""
    check_lab(rebuild("make_linger_captures.py", tmp_path / "linger"))
