"""The evidence keeps the verdict (issue #19 item 5): `live --write` stores the kernel's reason for
each reset as its packet's comment, and `read` of the file settles the verdict with it as live did.

Unit parts (no root): a comment written into an EPB (with and without earlier options, either byte
order) is found by the fast reader and only where it is ours. As root: SO_LINGER 0 on a socket with
unread bytes, which the wire alone takes for linger-zero-abort and the kernel's TCP_ABORT_ON_CLOSE
settles as unread-data-close, live and then from the file.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from rstwatch.kernel import stored
from rstwatch.kernel.events import KernelEvent
from rstwatch.sources.diagnostics import Diagnostics
from rstwatch.sources.pcapng import read_pcapng
from rstwatch.sources.stream import ChunkBuffer

sys.path.insert(0, str(ROOT))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="tracefs and network namespaces need root")
NAMES = ("rwec", "rwer", "rwes")           # own names and prefixes: other lab tests may run at once
V4, V6 = "10.79", "fd79"


def _event(reason="TCP_ABORT_ON_CLOSE") -> KernelEvent:
    return KernelEvent(mono=0.0, time=0.0, src="10.0.0.2", sport=80, dst="10.0.0.1", dport=5000, state="TCP_CLOSE",
                       reason=reason, active=True, context="process", pid=42, comm="srv x", cpu=0)


def _pcapng(big: bool, epb_options: bytes, ts_us: int) -> bytes:
    e = ">" if big else "<"

    def block(kind: int, body: bytes) -> bytes:
        n = 12 + len(body)
        return struct.pack(e + "II", kind, n) + body + struct.pack(e + "I", n)

    shb = block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack(e + "HHI", 1, 0, 0))
    frame = bytes(54)
    epb = block(6, struct.pack(e + "IIIII", 0, ts_us >> 32, ts_us & 0xFFFFFFFF, len(frame), len(frame))
                + frame + b"\0\0" + epb_options)
    return shb + idb + epb, epb, len(shb + idb)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("options", ["none", "flags"])
def test_comment_written_into_an_epb_is_read_back(big, options):
    e = ">" if big else "<"
    opts = b"" if options == "none" else struct.pack(e + "HHI", 2, 4, 1) + b"\0\0\0\0"     # epb_flags: inbound
    ts_us = 1_700_000_000_123_456
    whole, epb, at = _pcapng(big, opts, ts_us)
    commented = stored.with_comment(epb, stored.comment_text(_event()), big)
    stored.STORED.clear()
    diag = Diagnostics("t")
    for _ in read_pcapng(ChunkBuffer.from_chunks([whole[:at] + commented], diag), diag):
        pass
    assert not diag.warnings, diag.warnings
    [ev] = stored.STORED.pop(ts_us)
    assert (ev.reason, ev.state, ev.comm, ev.pid, ev.sport, ev.dport) == ("TCP_ABORT_ON_CLOSE", "TCP_CLOSE", "srv x", 42, 80, 5000)
    if options == "flags":                 # the earlier option is kept after the comment
        assert commented.endswith(opts + struct.pack(e + "I", len(commented)))
    # Someone else's comment, or none: nothing is taken for a kernel reason.
    for other in (stored.with_comment(epb, "looked at by alice", big), epb):
        diag = Diagnostics("t")
        for _ in read_pcapng(ChunkBuffer.from_chunks([whole[:at] + other], diag), diag):
            pass
        assert stored.STORED == {}


def test_a_forged_comment_cannot_carry_odd_values():
    bad = stored.PREFIX + json.dumps({"reason": 7, "state": None, "context": "x", "pid": None, "comm": None,
                                      "src": "a", "sport": 1, "dst": "b", "dport": 2})
    assert stored.parse_comment(bad) is None
    assert stored.parse_comment(stored.PREFIX + "{not json") is None
    long = stored.parse_comment(stored.comment_text(_event("X" * 500)))
    assert long is not None and len(long.reason) == 64


def _app(ns, name, host, port, arg=None):
    from lab.netlab import App
    app = App(ns, name, host, port, arg)
    return app


@needs_root
def test_read_of_live_evidence_keeps_the_kernel_verdict(tmp_path: Path):
    from lab import netlab as N
    from test_live import Session
    client, router, server = NAMES
    evidence = tmp_path / "server.pcapng"
    port = 9601
    N.setup(NAMES, V4, V6)
    try:
        s = Session(server, "s0", "--format", "jsonl", "--write", str(evidence))
        s.wait_watching()
        # SO_LINGER 0 with 10 kB sent, 4 kB read: nothing after the answer on the wire (linger-zero-abort),
        # the kernel says TCP_ABORT_ON_CLOSE (unread-data-close). As benchmarks/kernel_agreement.py.
        srv = _app(server, "server_linger_zero", f"{V4}.2.2", port)
        srv.wait_for("ready")
        _app(client, "client_request", f"{V4}.2.2", port, 10000).result()
        srv.result()
        time.sleep(1.8)
        s.proc.send_signal(signal.SIGTERM)
        rc = s.finish()
    finally:
        N.teardown(NAMES)
    err = "".join(s.err)
    assert rc == 0, err
    if "wire-only verdicts" in err:
        pytest.skip("kernel reasons unavailable here: " + err)
    [live] = [r for r in s.records() if r["sport"] == port]
    assert (live["wire_cause"], live["cause"], live["kernel_reason"], live["decided_by"]) == \
           ("linger-zero-abort", "unread-data-close", "TCP_ABORT_ON_CLOSE", "kernel"), live

    shown = subprocess.run(["tshark", "-r", str(evidence), "-Y", "frame.comment", "-T", "fields", "-e", "frame.number",
                            "-e", "frame.comment"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert f"{live['frame']}\t{stored.PREFIX}" in shown.stdout, shown.stdout

    replay = run_cli("read", str(evidence), "--format", "jsonl")
    assert replay.returncode == 0, replay.stderr
    [again] = [r for r in map(json.loads, replay.stdout.splitlines()) if r["sport"] == port]
    assert again["frame"] == live["frame"]
    for field in ("cause", "rule", "confidence", "alternatives", "summary", "wire_cause", "kernel_reason",
                  "kernel_state", "kernel_comm", "decided_by", "kernel_agrees"):
        assert again[field] == live[field], field
    assert again["kernel_match"] == "from-file" and live["kernel_match"] == "matched"
