"""The TLS lab (captures/tls/, lab/make_tls_captures.py; issue #22 item 1): httperf --ssl
--close-with-reset reads each whole response over TLS 1.2 and 1.3 and closes with SO_LINGER {1, 0}
(kernel: TCP_STATE); gnutls-cli refusing a certificate stops reading the server's TLS 1.3 flight and
closes with the rest unread (TCP_ABORT_ON_CLOSE). rstwatch must call the first `linger-zero-abort`
and the second `unread-data-close`, each with the other as an alternative, and the clean control
nothing. As root, every scenario is rebuilt on the running kernel and checked the same way.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import CAPTURES
from labcheck import assert_every_rst_labelled, assert_pair_lab, needs_root, rebuild

TLS = CAPTURES / "tls"


def tls_records(cause: str, df, name: str) -> None:
    first = df[df["frame"] == df["frame"].min()].iloc[0]
    if cause == "unread-data-close":     # the handshake refused: the server's last record was handshake
        assert first["receiver.tls_last_record"] == 1 and first["sender.tls_last_record"] in (2, 3), name
    else:                                # both sides had sent application data or alerts
        assert first["receiver.tls_last_record"] in (2, 3), name


def check_lab(folder: Path) -> None:
    assert_pair_lab(folder, tls_records)


def test_bundled_tls_lab():
    check_lab(TLS)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is needed to cross-check the RST frames")
def test_every_rst_tshark_sees_is_labelled():
    assert_every_rst_labelled(TLS)


@needs_root
def test_fresh_tls_lab(tmp_path: Path):
    """Every scenario rebuilt with real programs on this kernel (about 20 s), then judged as above."""
    check_lab(rebuild("make_tls_captures.py", tmp_path / "tls"))
