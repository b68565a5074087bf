"""The holdout lab (captures/holdout/, lab/make_holdout_captures.py): resets from real software the
rules were not built against, each labelled from the scenario's design and the kernel's own
tcp_send_reset reason. These tests keep the ground truth honest; they do not judge rstwatch's
accuracy on it (lab/holdout_score.py measures that, docs/holdout.md reports it).

As root, one fast scenario per family is rebuilt on the running kernel and must reproduce the
manifest's labels and kernel reasons.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CAPTURES, ROOT
from labcheck import needs_root, rebuild

HOLDOUT = Path(os.environ.get("RSTWATCH_HOLDOUT_CAPTURES", CAPTURES / "holdout"))
MANIFEST = json.loads((HOLDOUT / "manifest.json").read_text())
ENTRIES = MANIFEST["captures"]
# Programs whose resets the rules were built against (captures/real/): the holdout's resets must
# come from other servers.
REAL_LAB_SERVERS = {"nginx", "haproxy", "redis-server", "memcached", "gunicorn", "lighttpd"}
# One quick scenario per family; none depends on a Node.js version's keep-alive timing.
FAST = {"keep-alive": "uvicorn-keepalive-race", "idle-close": "postgres-idle-session-timeout",
        "unread-data": "python-http-server-post-501", "abort": "socat-linger-zero-last-ack",
        "listener": "apache-stop-with-queue", "refused": "psql-wget-closed-port",
        "lost-state": "postgres-reboot-service-back", "middlebox": "iptables-string-reject",
        "control": "control-node-agent"}


def tshark_rst_frames(path: Path) -> list[int]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.reset == 1", "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


def first_resets(entry: dict) -> list[dict]:
    return [r for r in entry["resets"] if "follows" not in r]


def test_the_holdout_is_broad_and_out_of_sample():
    """At least 10 scenarios with resets in several families, controls, and no server program
    the rules were built against."""
    with_resets = [e for e in ENTRIES.values() if e["cause"] is not None]
    assert len(with_resets) >= 10
    assert len({e["family"] for e in with_resets}) >= 6
    assert any(e["cause"] is None for e in ENTRIES.values())
    programs = {s.split(" ")[0] for e in ENTRIES.values() for s in e["software"]}
    assert len(programs) >= 8, programs
    assert not programs & REAL_LAB_SERVERS, programs & REAL_LAB_SERVERS
    assert set(FAST.values()) <= {e["scenario"] for e in ENTRIES.values()}
    for e in ENTRIES.values():   # the lab's own addresses only: it never shares the other labs' namespaces
        assert all(r["src"].startswith("10.79.") and r["dst"].startswith("10.79.") for r in e["resets"]), e["scenario"]


def test_every_file_is_in_the_manifest():
    pcaps = {p.name for p in HOLDOUT.glob("*.pcap")}
    assert pcaps == set(ENTRIES)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is needed to cross-check the RST frames")
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_rst_tshark_sees_is_labelled(name: str):
    """Each RST frame Wireshark's dissector finds is in the manifest with a cause, and nothing
    labelled is missing from the capture; a control has none."""
    entry = ENTRIES[name]
    labelled = [r["frame"] for r in entry["resets"]]
    assert tshark_rst_frames(HOLDOUT / name) == sorted(labelled)
    if entry["cause"] is None:
        assert labelled == []
        return
    assert labelled, "a scenario with a cause must hold a reset"
    assert all(r["cause"] for r in entry["resets"])


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["cause"] is not None))
def test_follow_ups_point_at_an_earlier_first_reset_of_their_connection(name: str):
    entry = ENTRIES[name]
    firsts = {r["frame"]: r for r in first_resets(entry)}
    for r in entry["resets"]:
        if "follows" not in r:
            continue
        root = firsts[r["follows"]]
        assert root["frame"] < r["frame"]
        assert {(r["src"], r["sport"]), (r["dst"], r["dport"])} == {(root["src"], root["sport"]), (root["dst"], root["dport"])}
        assert r["cause"] == root["cause"]


@needs_root
def test_fresh_holdout_captures_reproduce_the_labels(tmp_path: Path):
    out = rebuild("make_holdout_captures.py", tmp_path / "holdout", "--only", ",".join(FAST.values()), timeout=600)
    fresh = json.loads((out / "manifest.json").read_text())["captures"]
    assert set(fresh) == {f"{n}.pcap" for n in FAST.values()}
    for name, entry in fresh.items():
        old = ENTRIES[name]
        assert entry["cause"] == old["cause"]
        new_firsts, old_firsts = first_resets(entry), first_resets(old)
        # How many connections a run resets can vary (two wget runs may race differently); what each
        # first reset is labelled, and the kernel's reason for it, may not.
        assert bool(new_firsts) == bool(old_firsts), name
        assert {(r["cause"], r["kernel_reason"]) for r in new_firsts} == \
            {(r["cause"], r["kernel_reason"]) for r in old_firsts}, name


def test_rstwatch_on_the_holdout():
    """What the issue counts: resets from software the rules were not written against. The first
    run (before any rule was changed for the holdout) was 19/20 first resets; the bar here is the
    issue's: at least 95% right, every one right or among the alternatives, follow-ups pointing at
    their reset, controls silent."""
    sys.path.insert(0, str(ROOT / "lab"))
    from holdout_score import rows
    rs = rows(HOLDOUT)
    firsts = [r for r in rs if not r["control"] and r["follows"] is None]
    follows = [r for r in rs if not r["control"] and r["follows"] is not None]
    wrong = [f"{r['scenario']} frame {r['frame']}: {r['got']} (want {r['want']})" for r in firsts if r["got"] != r["want"]]
    assert len(firsts) >= 20 and len(wrong) <= 0.05 * len(firsts), wrong
    assert all(r["got"] == r["want"] or r["want"] in r["alternatives"] for r in firsts), wrong
    assert all(r["follows_got"] == r["follows"] and r["got"] == r["want"] for r in follows)
    assert all(not c["extra"] for c in rs if c["control"])
