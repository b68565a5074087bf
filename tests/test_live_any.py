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
