"""Every RST in the lab captures gets the cause the lab produced; FIN/FIN traffic yields nothing.

RSTWATCH_CAPTURES points the same checks at freshly regenerated captures (CI does this as root).
"""
from __future__ import annotations

import json

import pytest

from conftest import CAPTURES, run_cli
from rstwatch.analyze import analyze_file

REQUIRED_CAUSES = {"port-scan", "rst-storm", "syn-flood", "closed-port", "late-synack", "abort-before-accept", "accept-queue-overflow", "listener-closed",
                   "unread-data-close", "linger-zero-abort", "data-after-close", "keepalive-race", "peer-lost-state",
                   "keepalive-timeout", "middlebox-reset", "idle-timeout-reset", "out-of-window-rst"}
ENTRIES = json.loads((CAPTURES / "manifest.json").read_text())["captures"]


def test_every_cause_has_a_real_capture(manifest):
    produced = {r["cause"] for c in manifest["captures"].values() for r in c["resets"]}
    assert REQUIRED_CAUSES <= produced, REQUIRED_CAUSES - produced


def test_every_builtin_cause_is_backed_by_a_capture(manifest, builtin_rules):  # noqa: F811
    """In the scripted lab or one of the real-software labs beside it (captures/*/manifest.json)."""
    manifests = [manifest] + [json.loads(m.read_text()) for m in sorted(CAPTURES.glob("*/manifest.json"))]
    produced = {r["cause"] for m in manifests for c in m["captures"].values() for r in c["resets"]}
    causes = {r.name for r in builtin_rules} - {"unknown"}
    assert causes <= produced, causes - produced


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_capture_matches_ground_truth(name, builtin_rules):
    entry = ENTRIES[name]
    got = analyze_file(CAPTURES / name, builtin_rules).findings
    truth = {r["frame"]: r for r in entry["resets"]}
    if any(r.get("storm") for r in entry["resets"]):
        check_flood(got, entry)
        return
    assert sorted(got["frame"]) == sorted(truth), "every RST reported exactly once"
    for row in got.itertuples():
        want = truth[row.frame]
        assert row.cause == want["cause"], f"frame {row.frame}: {row.cause} != {want['cause']}"
        assert (row.src, row.sport, row.dst, row.dport) == (want["src"], want["sport"], want["dst"], want["dport"])
        assert 0 < row.confidence <= 1
        assert row.frame in row.evidence


def check_flood(got, entry):
    """A flood is one finding that accounts for every RST in it."""
    assert len(got) == 1, list(got["cause"])
    row = got.iloc[0]
    assert row["cause"] == entry["cause"]
    assert int(row["resets"]) == len(entry["resets"])
    assert row["frame"] == min(r["frame"] for r in entry["resets"])


def test_flood_is_reported_row_by_row_when_asked(manifest):
    scan = [n for n, e in manifest["captures"].items() if e["scenario"] == "port-scan"][0]
    res = run_cli("read", str(CAPTURES / scan), "--format", "jsonl", "--storm-min", "0")
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(rows) == len(manifest["captures"][scan]["resets"])
    assert {r["cause"] for r in rows} == {"closed-port"}


def test_normal_close_has_no_finding(manifest):
    normal = [n for n, e in manifest["captures"].items() if e["scenario"] == "normal-close"]
    assert normal
    res = run_cli("read", str(CAPTURES / normal[0]), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""


def test_kernel_reasons_recorded_where_the_kernel_sent_the_reset(manifest):
    # Ground truth from the tcp_send_reset tracepoint: endpoint resets carry a reason,
    # middlebox/forged ones do not.
    by_cause = {}
    for entry in manifest["captures"].values():
        for r in entry["resets"]:
            if "follows" not in r:          # a follow-up is sent by an endpoint's kernel whatever began it
                by_cause.setdefault(r["cause"], set()).add(r.get("kernel_reason"))
    assert by_cause["closed-port"] == {"NO_SOCKET"}
    assert by_cause["unread-data-close"] == {"TCP_ABORT_ON_CLOSE"}
    assert by_cause["keepalive-timeout"] == {"TCP_KEEPALIVE_TIMEOUT"}
    assert by_cause["middlebox-reset"] == {None}
    assert by_cause["out-of-window-rst"] == {None}
