"""`rstwatch live any` on a forwarding namespace counts each reset once (issue #19 item 2).

A router namespace between a client and a server sees every forwarded segment twice on `any`
(in on one veth, out on the other). Three refused connects must give three resets, each naming
both interfaces, and no follow-ups made of the copies; `read` of the evidence file the same.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from test_live import Session

sys.path.insert(0, str(ROOT))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="live capture tests need root (network namespaces)")
NAMES = ("rwac", "rwar", "rwas")          # own names and prefixes: other lab tests may run at once
V4, V6 = "10.78", "fd78"


def refuse(ns: str, addr: str, n: int, port: int = 9) -> None:
    code = ("import socket\nfor _ in range(%d):\n    s = socket.socket()\n    s.settimeout(2)\n"
            "    try: s.connect((%r, %d))\n    except OSError: pass\n    s.close()\n" % (n, addr, port))
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], check=True)


@needs_root
def test_any_on_a_router_counts_each_forwarded_reset_once(tmp_path: Path):
    from lab import netlab as N
    client, router, server = NAMES
    evidence = tmp_path / "any.pcapng"
    N.setup(NAMES, V4, V6)
    try:
        s = Session(router, "any", "--format", "jsonl", "--no-kernel", "--write", str(evidence))
        s.wait_watching()
        refuse(client, f"{V4}.2.2", 3)
        time.sleep(1.8)
        s.proc.send_signal(signal.SIGTERM)
        rc = s.finish()
    finally:
        N.teardown(NAMES)
    err = "".join(s.err)
    assert rc == 0, err
    recs = s.records()
    assert len(recs) == 3, [(r["frame"], r["cause"], r.get("follows_frame")) for r in recs]
    assert {r["cause"] for r in recs} == {"closed-port"}, recs
    assert all(not r.get("follows_frame") for r in recs), recs
    assert all(r["interfaces"] == ["r1", "r0"] for r in recs), [r.get("interfaces") for r in recs]
    assert "3 resets: closed-port 3" in err, err

    # The evidence file holds both copies (it is what dumpcap saw); `read` counts each once too.
    replay = run_cli("read", str(evidence), "--format", "jsonl")
    assert replay.returncode == 0, replay.stderr
    again = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [(r["frame"], r["cause"]) for r in again] == [(r["frame"], r["cause"]) for r in recs]


def _forwarded(ip: bytes) -> bytes:
    """The same packet leaving a router: TTL (IPv4) or hop limit (IPv6) one less."""
    b = bytearray(ip)
    b[8 if ip[0] >> 4 == 4 else 7] -= 1
    return bytes(b)


@pytest.mark.parametrize("linktype", [113, 276])
def test_read_of_an_any_capture_counts_each_forwarded_segment_once(tmp_path: Path, linktype: int):
    """Every packet of a real capture twice, as `tcpdump -i any` (cooked v1: in, then out) or
    `live any` (cooked v2: two interface indexes) records a router forwarding it, 30 us apart:
    the same verdicts as the original capture, at the first copy's frame."""
    import struct
    from pcapgen import frame_for, l3_of, read_pcap_raw, write_pcap
    original = ROOT / "captures" / "data-after-close.pcap"
    lt, packets = read_pcap_raw(original)
    doubled = []
    for sec, usec, frame in packets:
        ip = l3_of(lt, frame)
        first, again = frame_for(linktype, ip), frame_for(linktype, _forwarded(ip))
        if linktype == 113:                                  # packet type: to us (0), then outgoing (4)
            again = struct.pack("!H", 4) + again[2:]
        else:                                                # interface index 2, then 3
            first, again = first[:4] + struct.pack("!I", 2) + first[8:], again[:4] + struct.pack("!I", 3) + again[8:]
        doubled += [(sec, usec, first), (sec, usec + 30, again)]
    path = tmp_path / "any.pcap"
    write_pcap(path, linktype, doubled)
    want = [json.loads(l) for l in run_cli("read", str(original), "--format", "jsonl").stdout.splitlines()]
    res = run_cli("read", str(path), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    got = [json.loads(l) for l in res.stdout.splitlines()]
    assert len(want) >= 1 and [(2 * r["frame"] - 1, r["cause"], r["confidence"]) for r in want] == \
           [(r["frame"], r["cause"], r["confidence"]) for r in got]
    assert f"{len(packets)} segment(s) seen again on another interface" in res.stderr, res.stderr
