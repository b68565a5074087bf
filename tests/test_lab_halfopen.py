"""The half-open discovery lab (captures/halfopen/, lab/make_halfopen_captures.py; issue #22 item 2):
curl reconnecting from a fixed source port meets the server's older connection (its host crashed)
or older attempt (its SYN-ACK came late) on the same 4-tuple; the server's challenge ACK is reset
by the client's kernel (TCP_INVALID_ACK_SEQUENCE). rstwatch must see the challenge ACK in the walk
(compiled and pure Python alike: tests/test_walk_twin.py), link the RST to the older connection
(its first frame, in the evidence) and name which of the two it was; the control reports nothing.
As root, every scenario is rebuilt on the running kernel and checked the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

from conftest import CAPTURES
from labcheck import needs_root, rebuild

import rstwatch

HALFOPEN = CAPTURES / "halfopen"
CAUSES = {"half-open-lost-connection", "half-open-abandoned-attempt"}


def check_lab(folder: Path) -> None:
    entries = json.loads((folder / "manifest.json").read_text())["captures"]
    assert {e["cause"] for e in entries.values()} == CAUSES | {None}
    for name, entry in entries.items():
        df = rstwatch.read(folder / name)
        if entry["cause"] is None:
            assert df.empty, name
            continue
        assert [(r["frame"], r["cause"], r["kernel_reason"]) for r in entry["resets"]] == \
            [(int(f), c, "TCP_INVALID_ACK_SEQUENCE") for f, c in zip(df["frame"], df["cause"])], name
        row = df.iloc[0]
        assert row["sender"] == "client" and bool(row["rst.answers_challenge_ack"])
        assert row["conn.older_established"] == (entry["cause"] == "half-open-lost-connection")
        # linked to the older connection: the 4-tuple's first SYN, before this connection began
        older = int(row["conn.older_first_frame"])
        assert older == 1 and older < int(row["conn_first_frame"]) and older in list(row["evidence"])
        assert set(row["alternatives"]) & (CAUSES - {entry["cause"]}), name


def test_bundled_halfopen_lab():
    check_lab(HALFOPEN)


@needs_root
def test_fresh_halfopen_lab(tmp_path: Path):
    """Every scenario rebuilt with real programs on this kernel (about 25 s), then judged as above."""
    check_lab(rebuild("make_halfopen_captures.py", tmp_path / "halfopen"))
