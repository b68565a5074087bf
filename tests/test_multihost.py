"""Several vantage points of one incident (issue #23 items 1 and 2), on the multi-host lab's captures.

captures/multihost/SCENARIO/HOST/IFACE.pcap were made by lab/make_multihost_captures.py (one capture
per host interface; manifest.json says what every RST frame is); one test rebuilds a scenario.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

from conftest import CAPTURES, ROOT, run_cli

LAB = CAPTURES / "multihost"
MANIFEST = json.loads((LAB / "manifest.json").read_text())
SCENARIOS = MANIFEST["scenarios"]
INJECTED = [n for n, s in SCENARIOS.items() if s["sent_by"] == "router"]


def read(*args: str) -> tuple[list[dict], subprocess.CompletedProcess]:
    res = run_cli("read", "-T", "jsonl", *args)
    return [json.loads(x) for x in res.stdout.splitlines()], res


def truth_of(scenario: str) -> dict:
    """file -> {frame: cause} of every RST frame the lab labelled in the scenario."""
    return {str(LAB / rel): {r["frame"]: r["cause"] for r in MANIFEST["captures"][rel]["resets"]}
            for rel in SCENARIOS[scenario]["files"]}


def accuracy(joined: bool, rules) -> tuple[int, int, int, int]:
    """(scenarios whose reset the client's view gets right, RST frames right) alone or joined, of
    (scenarios, RST frames): a reset missing from the client's capture counts as wrong. In
    process (the same code `read` and `read --hosts` run; the CLI is tested below)."""
    from pathlib import Path
    from rstwatch.analyze import analyze_file
    from rstwatch.vantage import parse_hosts, read_hosts
    ok_scen = ok_frames = frames = 0
    for name in SCENARIOS:
        truth = truth_of(name)
        frames += sum(len(v) for v in truth.values())
        if joined:
            run = read_hosts(parse_hosts([], LAB / name), rules)
            assert not run.errors
            rows = run.findings.to_dict("records")
        else:
            rows = [r for f in truth for r in analyze_file(Path(f), rules).findings.to_dict("records")]
        ok_frames += sum(truth[str(r["file"])].get(r["frame"]) == r["cause"] for r in rows)
        client = [r for r in rows if "/client/" in r["file"]] if not joined else rows
        want = SCENARIOS[name]["cause"]
        ok_scen += bool(client) and all(r["cause"] == want for r in client)
    return ok_scen, ok_frames, len(SCENARIOS), frames


def test_accuracy_one_view_against_joined(builtin_rules):
    alone, joined = accuracy(False, builtin_rules), accuracy(True, builtin_rules)
    print(f"client view alone: {alone[0]}/{alone[2]} resets; each capture alone: {alone[1]}/{alone[3]} RST frames; "
          f"joined: {joined[0]}/{joined[2]} resets, {joined[1]}/{joined[3]} RST frames")
    assert joined[0] == joined[2] and joined[1] == joined[3], joined      # every labelled reset right when joined
    # the client alone: wrong on the injected resets, blind to the one its capture lost
    assert alone[0] == joined[0] - len(INJECTED) - 1, alone
    assert alone[1] < joined[1]


@pytest.mark.parametrize("name", INJECTED)
def test_injected_reset_is_middlebox_only_when_joined(name):
    client = str(LAB / name / "client")
    alone, _ = read(client)
    assert len(alone) == 1 and alone[0]["cause"] != "middlebox-reset"
    assert "host" not in alone[0]                        # single-host records are unchanged
    rows, res = read("--hosts", str(LAB / name))
    assert res.returncode == 0, res.stderr
    assert {r["host"] for r in rows} == {"client", "router"}      # the server never saw (nor sent) it
    for r in rows:
        assert (r["cause"], r["settled_by"], r["seen_at"]) == ("middlebox-reset", "server", ["client", "router"])
        assert r["confidence"] >= 0.95 and r["single_view_cause"] == alone[0]["cause"]
        assert "by router" in r["summary"]


def test_join_across_nat():
    name = "nat-firewall-reject"
    server_view, _ = read(str(LAB / name / "server"))
    assert server_view == []
    rows, res = read("--host", f"client={LAB / name / 'client'}", "--host", f"server={LAB / name / 'server'}")
    assert res.returncode == 0, res.stderr
    assert [r["joined_across_nat"] for r in rows] == [True]
    assert rows[0]["cause"] == "middlebox-reset" and rows[0]["settled_by"] == "server"
    assert "1 joined across NAT" in res.stderr
    # and the same flow without NAT is joined as such
    rows, _ = read("--hosts", str(LAB / "firewall-reject"))
    assert {r["joined_across_nat"] for r in rows} == {False}


def test_lost_reset_is_taken_from_the_other_captures():
    name = "client-lost-reset"
    assert read(str(LAB / name / "client"))[0] == []
    rows, _ = read("--hosts", str(LAB / name))
    assert rows and {r["cause"] for r in rows} == {SCENARIOS[name]["cause"]}
    assert {r["settled_by"] for r in rows} == {"server"} and {tuple(r["seen_at"]) for r in rows} == {("router", "server")}


def test_sender_capture_decides_unread_data():
    rows, _ = read("--hosts", str(LAB / "unread-data-close"))
    assert len(rows) == 4 and {r["cause"] for r in rows} == {"unread-data-close"}
    assert {r["settled_by"] for r in rows} == {"server"}
    assert {tuple(r["seen_at"]) for r in rows} == {("client", "router", "server")}


def shift_pcap(src, dst, seconds: float) -> None:
    """Rewrite a classic pcap's record timestamps by `seconds` (a host whose clock is off)."""
    data = bytearray(src.read_bytes())
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frac = 1e9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
    off = 24
    while off + 16 <= len(data):
        sec, sub, incl, _ = struct.unpack_from(endian + "IIII", data, off)
        t = round((sec + sub / frac + seconds) * frac)
        struct.pack_into(endian + "II", data, off, t // int(frac), t % int(frac))
        off += 16 + incl
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("shift", [30.0, -2.5])
def test_clock_offset_estimated(tmp_path, shift):
    """The server's clock off by SHIFT s: the estimate is within 1 ms of it (the lab's path delays are
    tens of microseconds), and the injected reset is still found (its time, on the server's clock,
    falls inside the server's capture only once the offset is applied)."""
    name = "firewall-reject"
    shutil.copytree(LAB / name, tmp_path / name)
    s0 = tmp_path / name / "server" / "s0.pcap"
    shift_pcap(LAB / name / "server" / "s0.pcap", s0, shift)
    rows, res = read("--hosts", str(tmp_path / name))
    assert res.returncode == 0, res.stderr
    got = float(re.search(r"server ([+-][0-9.]+) s", res.stderr).group(1))
    assert abs(got - shift) < 1e-3, res.stderr
    router = float(re.search(r"router ([+-][0-9.]+) s", res.stderr).group(1))
    assert abs(router) < 1e-3
    assert {r["cause"] for r in rows} == {"middlebox-reset"}


def test_reused_four_tuple_joins_a_capture_that_began_later(tmp_path):
    """The half-open lab's client reused its port: the older connection, then a SYN answered by a
    challenge ACK and the client's reset. A second capture at the same point that began after the
    older connection still joins the reset (the 4-tuple is split into its connections, as the
    per-file analysis splits it: it was one connection keyed by the older ISN, and nothing joined),
    and of the host's two captures, the one that saw the older connection decides: half-open-lost-connection, which the
    later capture alone cannot tell from a peer that lost its state."""
    full = CAPTURES / "halfopen" / "curl-reconnect-after-client-crash.pcap"
    late = tmp_path / "late.pcap"
    subprocess.run(["editcap", "-r", str(full), str(late), "8-20"], check=True, capture_output=True)
    alone, _ = read(str(late))
    assert [r["cause"] for r in alone] == ["peer-lost-state"]
    rows, res = read("--host", f"web1={late}", "--host", f"web1={full}")     # one host, two captures
    assert res.returncode == 0, res.stderr
    by_file = {r["file"]: r for r in rows}
    assert set(by_file) == {str(full), str(late)}
    assert by_file[str(full)]["frame"] == 10 and by_file[str(late)]["frame"] == 3
    for r in rows:
        assert r["seen_at"] == ["web1"] and r["settled_by"] == "web1"
        assert r["cause"] == "half-open-lost-connection"
    assert by_file[str(full)]["copy_of"] == f"{late}#3" and by_file[str(late)]["copy_of"] is None
    assert by_file[str(late)]["single_view_cause"] == "peer-lost-state"


def test_clock_offset_through_a_host_in_between(tmp_path):
    """The client and the server share no connection (two scenarios), the router saw both: the
    server's clock (30 s off) is placed through the router, and its injected reset still settles."""
    (tmp_path / "router").mkdir()
    shutil.copy(LAB / "unread-data-close" / "router" / "r0.pcap", tmp_path / "router" / "a.pcap")
    shutil.copy(LAB / "firewall-reject" / "router" / "r0.pcap", tmp_path / "router" / "b.pcap")
    server = tmp_path / "server.pcap"
    shift_pcap(LAB / "firewall-reject" / "server" / "s0.pcap", server, 30.0)
    rows, res = read("--host", f"client={LAB / 'unread-data-close' / 'client' / 'c0.pcap'}",
                     "--host", f"router={tmp_path / 'router'}", "--host", f"server={server}")
    assert res.returncode == 0, res.stderr
    got = re.search(r"server ([+-][0-9.]+) s \(.*?, through router\)", res.stderr)
    assert got and abs(float(got.group(1)) - 30.0) < 1e-3, res.stderr
    injected = [r for r in rows if r["host"] == "router" and r["file"].endswith("b.pcap")]
    assert injected and {r["cause"] for r in injected} == {"middlebox-reset"}
    assert {r["settled_by"] for r in injected} == {"server"}


def test_bad_or_missing_host_file(tmp_path):
    name = "unread-data-close"
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all\n" * 10)
    rows, res = read("--host", f"client={LAB / name / 'client'}", "--host", f"server={tmp_path / 'gone.pcap'}",
                     "--host", f"router={junk}", "--host", f"router={LAB / name / 'router'}")
    errors = [x for x in res.stderr.splitlines() if x.startswith("rstwatch: error:")]
    assert len(errors) == 2, res.stderr
    assert errors[0].startswith(f"rstwatch: error: server={tmp_path / 'gone.pcap'}: ")
    assert errors[1].startswith(f"rstwatch: error: router={junk}: ")
    assert "Traceback" not in res.stderr and res.returncode == 1
    assert len(rows) == 3 and {r["host"] for r in rows} == {"client", "router"}   # the rest analysed
    assert {r["cause"] for r in rows} == {"unread-data-close"}
    res = run_cli("read", "--host", "server")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "rstwatch: error: --host: 'server': expected NAME=PATH (e.g. server=/captures/server.pcap)"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces); CI runs it as root")
def test_lab_rebuilds_a_scenario(tmp_path):
    """The injected-reset scenario made again from scratch: four captures, the RST only on the
    client's side of the router, no kernel sent it, and the join finds it."""
    out = tmp_path / "mh"
    res = subprocess.run([sys.executable, "-m", "lab.make_multihost_captures", "--out", str(out), "--only",
                          "firewall-reject"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    files = {rel: e for rel, e in manifest["captures"].items()}
    assert sorted(files) == [f"firewall-reject/{h}" for h in ("client/c0.pcap", "router/r0.pcap", "router/r1.pcap",
                                                            "server/s0.pcap")]
    with_rst = sorted(rel for rel, e in files.items() if e["resets"])
    assert with_rst == ["firewall-reject/client/c0.pcap", "firewall-reject/router/r0.pcap"]
    assert {r["kernel_reason"] for e in files.values() for r in e["resets"]} == {None}
    rows, res = read("--hosts", str(out / "firewall-reject"))
    assert res.returncode == 0, res.stderr
    assert {r["cause"] for r in rows} == {"middlebox-reset"} and {r["settled_by"] for r in rows} == {"server"}
    assert not subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count("mh")


def test_report_shows_vantage_points(tmp_path):
    """Item 4: the HTML report of a joined run has a section with where each RST was seen, which host
    settled it, and a ladder with one column per capture; a one-host report has none."""
    import html as h
    name = "client-lost-reset"
    page = tmp_path / "r.html"
    res = run_cli("read", "--hosts", str(LAB / name), "-T", "html", "-o", str(page))
    assert res.returncode == 0, res.stderr
    text = page.read_text()
    section = text[text.index('<section id="vantage">'):]
    section = section[:section.index("</section>")]
    assert "clock offsets relative to client" in section
    row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", section, re.S).group(1)
    cells = [h.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    assert cells[1:5] == ["linger-zero-abort (0.70)", "server", "router, server", "-"], cells
    svg = re.search(r'<svg[^>]*class="ladder vantage".*?</svg>', section, re.S).group(0)
    heads = re.findall(r'font-weight="bold">([a-z]+)</text><text[^>]*>([a-z0-9.]+)</text>', svg)
    assert heads == [("client", "c0.pcap"), ("router", "r0.pcap"), ("router", "r1.pcap"), ("server", "s0.pcap")]
    rst = re.search(r'<g class="seg rst">.*?</g>', svg).group(0)
    assert rst.count("<circle") == 4 and "not in this capture" in rst     # 3 captures hold it, the client's lacks it
    rep = tmp_path / "report.html"           # `report` takes the hosts too (HTML by default)
    res = run_cli("report", "--hosts", str(LAB / name), "--title", "INC-23", "-o", str(rep))
    assert res.returncode == 0, res.stderr
    assert 'id="vantage"' in rep.read_text() and "INC-23" in rep.read_text()
    # one RST seen in three captures is one reset in the headline, three rows in the table
    headline = re.sub("<[^>]+>", "", re.search(r'<p class="headline">(.*?)</p>', rep.read_text(), re.S).group(1))
    assert headline.startswith("1 TCP reset on 1 connection"), headline
    rows = [json.loads(x) for x in run_cli("read", "--hosts", str(LAB / name), "-T", "jsonl").stdout.splitlines()]
    assert len(rows) == 3 and sum(r["copy_of"] is None for r in rows) == 1, rows
    first = next(r for r in rows if r["copy_of"] is None)
    assert all(r["copy_of"] == f"{first['file']}#{first['frame']}" for r in rows if r is not first)
    # saved as Parquet (list fields such as seen_at come back as arrays) and reported from there
    saved = tmp_path / "joined.parquet"
    assert run_cli("read", "--hosts", str(LAB / name), "-T", "parquet", "-o", str(saved)).returncode == 0
    res = run_cli("report", str(saved), "-o", str(tmp_path / "saved.html"))
    assert res.returncode == 0, res.stderr
    assert "1 TCP reset on 1 connection" in re.sub("<[^>]+>", "", (tmp_path / "saved.html").read_text())
    single = tmp_path / "one.html"
    assert run_cli("read", str(LAB / name / "server"), "-T", "html", "-o", str(single)).returncode == 0
    assert 'id="vantage"' not in single.read_text()


def test_output_never_overwrites_a_host_capture(tmp_path):
    shutil.copytree(LAB / "closed-port", tmp_path / "cp")
    target = tmp_path / "cp" / "client" / "c0.pcap"
    before = target.read_bytes()
    res = run_cli("read", "--hosts", str(tmp_path / "cp"), "-o", str(target), "--force")
    assert res.returncode == 2 and "is one of the inputs" in res.stderr
    assert target.read_bytes() == before
