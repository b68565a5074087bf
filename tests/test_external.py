"""Real captures written by other projects: every RST tshark sees is reported once with its
frame number, and the Zeek-style conn_state agrees with Zeek's own expected output."""
from __future__ import annotations

import collections
import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EXTERNAL
from rstwatch.analyze import analyze_file

FILES = sorted(p for p in EXTERNAL.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng"))


def tshark_rst_frames(path: Path) -> list[int]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.reset==1", "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


@pytest.fixture(scope="module")
def findings_of(builtin_rules):
    """The findings of a public capture, each analysed once for this module: the RST count and
    the Zeek agreement below read the same files."""
    return functools.cache(lambda path: analyze_file(path, builtin_rules).findings)


def test_external_captures_are_there():
    assert len(FILES) >= 30


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by .ci/run")
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(EXTERNAL)))
def test_every_tshark_rst_is_reported_once(path, findings_of):
    findings = findings_of(path)
    assert sorted(findings["frame"]) == tshark_rst_frames(path)
    assert findings["cause"].notna().all()


def zeek_oracle(path: Path) -> list[dict]:
    """Connections with a RST from Zeek's conn.log or btest output beside the capture."""
    out = []
    log = path.with_name(path.name + ".conn.log")
    if log.exists():
        fields = None
        for line in log.read_text().splitlines():
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif fields and not line.startswith("#"):
                rec = dict(zip(fields, line.split("\t")))
                if "conn_state" in rec and "r" in rec.get("history", "").lower():
                    out.append(rec)
    out += btest_lines(path)
    return out


def btest_lines(path: Path) -> list[dict]:
    """`history, conn_state` lines printed by a btest that may read several traces in turn:
    each trace's line is found through the test's own @TEST-EXEC order."""
    found = []
    for btest in path.parent.glob("*.btest-out.txt"):
        script = btest.with_name(btest.name.replace(".btest-out.txt", ".btest.zeek"))
        traces = re.findall(r"\$TRACES/\S+/([^/\s]+\.pcap)", script.read_text()) if script.exists() else []
        lines = [x for x in btest.read_text().splitlines() if "," in x and not x.startswith("#")]
        for trace, line in zip(traces, lines):
            if trace == path.name:
                hist, state = [x.strip() for x in line.split(",")]
                found.append({"history": hist, "conn_state": state})
    return found


def test_zeek_conn_state_agreement(findings_of):
    agree = total = 0
    details = []
    for path in FILES:
        oracle = zeek_oracle(path)
        if not oracle:
            continue
        conns = list(findings_of(path).drop_duplicates("conn_first_frame").itertuples())
        # each connection's rows by its two ends, in order, and how many earlier oracle lines had the
        # same originator: one pass each, not a scan of every row per line (llc.pcap has 1333 of each)
        by_ends = collections.defaultdict(list)
        for r in conns:
            by_ends[frozenset([(r.src, r.sport), (r.dst, r.dport)])].append(r)
        seen = collections.Counter()
        for want in oracle:
            if "id.orig_h" in want:
                ends = frozenset([(want["id.orig_h"], int(want["id.orig_p"])), (want["id.resp_h"], int(want["id.resp_p"]))])
                cands = by_ends.get(ends, [])
                same_tuple = seen[(want["id.orig_h"], want["id.orig_p"])]
                row = cands[same_tuple] if len(cands) > same_tuple else None
            else:
                row = conns[0] if conns else None
            seen[(want.get("id.orig_h"), want.get("id.orig_p"))] += 1
            total += 1
            ok = row is not None and row.conn_state == want["conn_state"]
            agree += ok
            if not ok:
                details.append(f"{path.name}: zeek {want['conn_state']} {want['history']} vs "
                               f"{None if row is None else (row.conn_state, row.history)}")
    assert total >= 1300
    assert agree / total >= 0.90, details
    # Distinct connection shapes (not dominated by llc.pcap's 1333 identical ones) agree too.
    assert len(details) <= 3, details
