"""The TLS lab (captures/tls/, lab/make_tls_captures.py; issue #22 item 1): httperf --ssl
--close-with-reset reads each whole response over TLS 1.2 and 1.3 and closes with SO_LINGER {1, 0}
(kernel: TCP_STATE); gnutls-cli refusing a certificate stops reading the server's TLS 1.3 flight and
closes with the rest unread (TCP_ABORT_ON_CLOSE). rstwatch must call the first `linger-zero-abort`
and the second `unread-data-close`, each with the other as an alternative, and the clean control
nothing. As root, every scenario is rebuilt on the running kernel and checked the same way.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import CAPTURES
from labcheck import assert_every_rst_labelled, needs_root, rebuild

import rstwatch

TLS = CAPTURES / "tls"
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
        firsts = [r for r in entry["resets"] if "follows" not in r and r.get("kernel_reason")]
        assert firsts and {r["kernel_reason"] for r in firsts} <= KERNEL[entry["cause"]], name
        assert all(OTHER[entry["cause"]] in list(a) for a in df["alternatives"]), name
        first = df[df["frame"] == min(want)].iloc[0]
        if entry["cause"] == "unread-data-close":     # the handshake refused: the server's last record was handshake
            assert first["receiver.tls_last_record"] == 1 and first["sender.tls_last_record"] in (2, 3), name
        else:                                         # both sides had sent application data or alerts
            assert first["receiver.tls_last_record"] in (2, 3), name


def test_bundled_tls_lab():
    check_lab(TLS)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is needed to cross-check the RST frames")
def test_every_rst_tshark_sees_is_labelled():
    assert_every_rst_labelled(TLS)


@needs_root
def test_fresh_tls_lab(tmp_path: Path):
    """Every scenario rebuilt with real programs on this kernel (about 20 s), then judged as above."""
    check_lab(rebuild("make_tls_captures.py", tmp_path / "tls"))
