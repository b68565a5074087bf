"""`rstwatch live` on real interfaces in network namespaces (root only; CI runs as root).

The lab scenarios make real resets while one `rstwatch live` session watches the client's veth;
its streamed verdicts must match the ground truth, arrive within 2 s of each RST, and replay
identically from the evidence file. Then the ways a session ends: SIGTERM, Ctrl-C, a closed
stdout, an interface that vanishes, and no capture rights.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="live capture tests need root (network namespaces)")
RSTWATCH = [sys.executable, "-m", "rstwatch"]
NS = "rwlive"
# A veth pair (d0, d1) in a namespace with IPv6 off. With it on, each new link sends neighbour
# solicitations, listener reports and router solicitations for seconds after it comes up: two
# sessions started a moment apart saw different frame numbers, and a count taken when the traffic
# ended missed a few frames the capture saw later (both seen in CI).
QUIET_VETH = ("sysctl -qw net.ipv6.conf.all.disable_ipv6=1", "sysctl -qw net.ipv6.conf.default.disable_ipv6=1",
              "ip link add d0 type veth peer name d1", "ip link set d0 up", "ip link set d1 up")


class Session:
    """A `rstwatch live` process whose stdout lines are timestamped as they arrive."""

    def __init__(self, ns: str, *args: str, stdout=subprocess.PIPE) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *RSTWATCH, "live", *args], stdout=stdout,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: list[tuple[float, str]] = []
        self.err: list[str] = []
        self.watching = threading.Event()
        threads = [threading.Thread(target=self._err, daemon=True)]
        if stdout is subprocess.PIPE:
            threads.append(threading.Thread(target=self._out, daemon=True))
        for t in threads:
            t.start()
        self.threads = threads

    def _out(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time(), line))

    def _err(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            if "watching" in line:
                self.watching.set()

    def wait_watching(self) -> None:
        assert self.watching.wait(30), "".join(self.err)

    def finish(self, timeout: float = 10) -> int:
        rc = self.proc.wait(timeout)
        for t in self.threads:
            t.join(5)
        return rc

    def records(self) -> list[dict]:
        return [json.loads(line) for _, line in self.lines]

    def wait_records(self, n: int, timeout: float = 30) -> None:
        """Until `n` findings are out (a fixed sleep was too short on a loaded machine)."""
        end = time.time() + timeout
        while len(self.lines) < n and time.time() < end and self.proc.poll() is None:
            time.sleep(0.1)
        assert len(self.lines) >= n, (self.lines, "".join(self.err))


def ns_pids(ns: str) -> list[str]:
    return subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()


@contextmanager
def namespace(name: str, *setup: str):
    """A fresh network namespace with loopback up and `setup` commands run in it; whatever still
    runs inside is killed and the namespace removed at the end."""
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in ("ip link set lo up", *setup):
            subprocess.run(["ip", "netns", "exec", name, *cmd.split()], check=True)
        yield name
    finally:
        subprocess.run(f"ip netns pids {name} | xargs -r kill -9", shell=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def lone_ns():
    """A namespace with loopback up and a veth pair (d0, d1), for the session-ending tests."""
    with namespace(NS, "ip link add d0 type veth peer name d1", "ip link set d0 up", "ip link set d1 up") as ns:
        yield ns


def refuse(ns: str, n: int, port: int = 9) -> None:
    """n connections to a closed port on loopback: n real RST|ACKs."""
    code = ("import socket\nfor _ in range(%d):\n    s = socket.socket()\n    try: s.connect(('127.0.0.1', %d))\n"
            "    except OSError: pass\n    s.close()\n" % (n, port))
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], check=True)


# Scenarios whose resets all cross the client's veth, each on its own server port.
LIVE_SCENARIOS = ["closed-port", "late-synack", "abort-before-accept", "listener-closed", "unread-data-close",
                  "linger-zero-abort", "data-after-close", "peer-lost-state", "rst-storm"]


@needs_root
def test_live_verdicts_on_a_veth_match_ground_truth(tmp_path: Path):
    from lab import make_captures as M
    from lab import netlab as N
    evidence = tmp_path / "evidence.pcapng"
    N.setup()
    try:
        s = Session(N.CLIENT, "c0", "--format", "jsonl", "--write", str(evidence))
        s.wait_watching()
        expected: dict[int, str] = {}
        for n, name in enumerate(LIVE_SCENARIOS):
            port = 9101 + n
            expected[port] = M.SCENARIOS[name]["cause"]
            try:
                M.SCENARIOS[name]["fn"](port)
            finally:
                N.nft_flush()
        time.sleep(2.5)                        # every verdict is due by now: it must already be out
        streamed_before_stop = len(s.lines)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        rc = s.finish()
        stop_s = time.monotonic() - t0
    finally:
        N.teardown()
    err = "".join(s.err)
    assert rc == 0, err
    assert stop_s < 5, stop_s
    assert "resets:" in err and "capture dropped 0 of" in err, err
    recs = s.records()
    assert streamed_before_stop == len(recs), "verdicts were held back until the stop"

    storms = [r for r in recs if r["cause"] == "rst-storm"]
    assert len(storms) == 1 and storms[0]["resets"] >= 500, storms
    wrong, causes = [], set()
    for (seen_at, _), r in zip(s.lines, recs):
        assert seen_at - r["time"] <= 2.0, f"frame {r['frame']} reported {seen_at - r['time']:.2f} s after the RST"
        if r["cause"] == "rst-storm":
            continue
        port = r["sport"] if r["sport"] in expected else r["dport"]
        assert port in expected, r
        causes.add(r["cause"])
        if r["cause"] != expected[port]:
            wrong.append(f"frame {r['frame']} port {port}: {r['cause']} != {expected[port]}")
    assert not wrong, wrong
    assert causes == {M.SCENARIOS[n]["cause"] for n in LIVE_SCENARIOS} - {"rst-storm"}

    # The evidence file replays to the same verdicts, frame for frame.
    replay = run_cli("read", str(evidence), "--format", "jsonl")
    assert replay.returncode == 0, replay.stderr
    again = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [(r["frame"], r["cause"]) for r in again if r["cause"] != "rst-storm"] == \
           [(r["frame"], r["cause"]) for r in recs if r["cause"] != "rst-storm"]
    assert [r["cause"] for r in again].count("rst-storm") == 1


@needs_root
def test_sigint_flushes_summary_and_reaps_dumpcap(lone_ns):
    s = Session(lone_ns, "lo", "--format", "jsonl")
    s.wait_watching()
    refuse(lone_ns, 3)
    time.sleep(0.5)                            # read (dumpcap hands over within 250 ms), not yet decided:
    s.proc.send_signal(signal.SIGINT)          # the 1 s hold is not over, pending verdicts must still come out
    t0 = time.monotonic()
    rc = s.finish()
    assert time.monotonic() - t0 < 5
    assert rc == 130, "".join(s.err)
    assert [r["cause"] for r in s.records()] == ["closed-port"] * 3
    assert any("3 resets: closed-port 3" in line for line in s.err), s.err
    assert ns_pids(lone_ns) == [], "dumpcap outlived rstwatch"


@needs_root
def test_closed_stdout_ends_quietly(lone_ns):
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    s = Session(lone_ns, "lo", "--format", "jsonl", stdout=reader.stdin)
    reader.stdin.close()                       # only `head` holds the pipe now
    s.wait_watching()
    refuse(lone_ns, 2)
    first = reader.stdout.readline()
    assert json.loads(first)["cause"] == "closed-port"
    reader.wait(5)
    refuse(lone_ns, 2)                         # the next verdicts hit the closed pipe
    rc = s.finish(15)
    err = "".join(s.err)
    assert rc == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert ns_pids(lone_ns) == []


@needs_root
def test_interface_that_vanishes_is_one_line_and_nonzero(lone_ns):
    s = Session(lone_ns, "d0", "--format", "jsonl")
    s.wait_watching()
    subprocess.run(["ip", "netns", "exec", lone_ns, "ip", "link", "del", "d0"], check=True)
    rc = s.finish(15)
    errors = [line for line in s.err if "error" in line]
    assert rc == 1, s.err
    assert len(errors) == 1 and "capture on d0 stopped" in errors[0], s.err
    assert "Traceback" not in "".join(s.err)
    assert ns_pids(lone_ns) == []


@needs_root
def test_killed_capture_process_is_one_line_and_nonzero(lone_ns):
    s = Session(lone_ns, "lo", "--format", "jsonl", "--capture", "dumpcap")
    s.wait_watching()
    refuse(lone_ns, 2)
    # dumpcap hands packets over within its 250 ms ring-buffer timeout; the verdicts wait 1 s.
    # Killing it in between checks that RSTs already read are still decided.
    time.sleep(0.7)
    subprocess.run(f"ip netns pids {lone_ns} | xargs -r ps -o pid=,comm= -p | awk '$2==\"dumpcap\"{{print $1}}' | xargs -r kill -9",
                   shell=True, check=True)
    rc = s.finish(15)
    errors = [line for line in s.err if "error" in line]
    assert rc == 1, s.err
    assert errors == ["rstwatch: error: capture on lo stopped: dumpcap was killed by SIGKILL\n"], s.err
    assert [r["cause"] for r in s.records()] == ["closed-port"] * 2      # verdicts already read still come out


@needs_root
def test_missing_interface_and_bad_filter_are_usage_errors(lone_ns):
    for args, words in ((["nosuch0"], "no device"), (["lo", "--bpf", "port banana"], "")):
        s = Session(lone_ns, *args)
        rc = s.finish(30)
        err = "".join(s.err)
        assert rc == 2, err
        assert len(s.err) == 1 and s.err[0].startswith("rstwatch: error: "), err
        assert words.lower() in err.lower()


@pytest.fixture
def nobody_home():
    """A folder the unprivileged user can write (pytest's tmp_path is root-only)."""
    home = Path(tempfile.mkdtemp(prefix="rstwatch-nobody-"))
    os.chmod(home, 0o777)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@needs_root
def test_without_capture_rights_one_line_says_how_to_fix(lone_ns, nobody_home: Path):
    env = dict(os.environ, HOME=str(nobody_home))
    cmd = ["ip", "netns", "exec", lone_ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           *RSTWATCH, "live", "lo"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "permission" in lines[0] and "wireshark" in lines[0] and "setcap" in lines[0], lines


@needs_root
@pytest.mark.skipif(not shutil.which("setcap"), reason="setcap (libcap2-bin) is not installed")
def test_unprivileged_user_captures_through_a_capable_dumpcap(lone_ns, nobody_home: Path):
    """rstwatch itself needs no root: only dumpcap needs the capture capabilities."""
    dumpcap = nobody_home / "dumpcap"
    shutil.copy(shutil.which("dumpcap"), dumpcap)
    os.chmod(dumpcap, 0o755)
    subprocess.run(["setcap", "cap_net_raw,cap_net_admin=eip", str(dumpcap)], check=True)
    env = dict(os.environ, HOME=str(nobody_home), RSTWATCH_DUMPCAP=str(dumpcap))
    cmd = ["ip", "netns", "exec", lone_ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           *RSTWATCH, "live", "lo", "--format", "jsonl", "--duration", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    time.sleep(2.5)
    refuse(lone_ns, 2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [json.loads(line)["cause"] for line in out.splitlines()] == ["closed-port"] * 2, err


@needs_root
def test_metrics_endpoint_counts_resets_by_cause_and_sender(lone_ns):
    s = Session(lone_ns, "lo", "--format", "jsonl", "--metrics-port", "19108")
    s.wait_watching()
    refuse(lone_ns, 3)
    time.sleep(2.0)
    scrape = subprocess.run(["ip", "netns", "exec", lone_ns, sys.executable, "-c",
                             "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:19108/metrics').read().decode())"],
                            capture_output=True, text=True, timeout=30)
    s.proc.send_signal(signal.SIGTERM)
    assert s.finish() == 0, s.err
    text = scrape.stdout
    assert 'rstwatch_resets_total{cause="closed-port",sender="server"} 3.0' in text, text
    packets = [float(l.split()[-1]) for l in text.splitlines() if l.startswith("rstwatch_packets_total ")]
    assert packets and packets[0] >= 6, text
    for name in ("rstwatch_flows_tracked", "rstwatch_capture_dropped_packets_total", "rstwatch_verdict_delay_seconds_count"):
        assert name in text, name


@needs_root
def test_evidence_ring_keeps_the_newest_files_each_valid(lone_ns, tmp_path: Path):
    s = Session(lone_ns, "lo", "--format", "jsonl", "--write", str(tmp_path / "ev.pcapng"),
                "--ring-files", "2", "--ring-size", "0.01")
    s.wait_watching()
    for _ in range(10):                    # ~300 packets in bursts, well over 2 x 10 KiB
        refuse(lone_ns, 15)
        time.sleep(0.1)
    time.sleep(1.5)
    s.proc.send_signal(signal.SIGTERM)
    assert s.finish() == 0, s.err
    files = sorted(tmp_path.glob("ev_*.pcapng"))
    assert len(files) == 2 and files[-1].name > "ev_00002.pcapng", files
    causes = []
    for f in files:
        res = run_cli("read", str(f), "--format", "jsonl", "--storm-min", "0")
        assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
        rows = [json.loads(l) for l in res.stdout.splitlines()]
        causes += [r["cause"] for r in rows]
        # A file may start with a RST whose SYN went into the previous file: no handshake, no cause.
        assert all(r["cause"] == "closed-port" or r["frame"] == 1 for r in rows), rows
    # The newest file may hold only the tail of the session (a rotation just before the end leaves
    # it with no RST: valid, no finding; seen once in CI on a busy machine), so the verdicts are
    # counted over the files kept.
    assert causes.count("closed-port") >= 5, causes


@needs_root
def test_evidence_file_stays_valid_when_rstwatch_is_killed(lone_ns, tmp_path: Path):
    ev = tmp_path / "ev.pcapng"
    s = Session(lone_ns, "lo", "--format", "jsonl", "--write", str(ev))
    s.wait_watching()
    refuse(lone_ns, 20)
    time.sleep(1.0)
    s.proc.kill()
    s.finish()
    time.sleep(0.5)
    assert ns_pids(lone_ns) == [], "dumpcap outlived a killed rstwatch"
    res = run_cli("read", str(ev), "--format", "jsonl")
    assert res.returncode == 0 and "truncated" not in res.stderr, res.stderr
    assert len(res.stdout.splitlines()) == 20
    tshark = subprocess.run(["tshark", "-r", str(ev), "-Y", "tcp.flags.reset==1"], capture_output=True, text=True)
    assert tshark.returncode == 0 and len(tshark.stdout.splitlines()) == 20, tshark.stderr


@needs_root
def test_existing_evidence_file_is_not_overwritten(lone_ns, tmp_path: Path):
    ev = tmp_path / "ev.pcapng"
    ev.write_bytes(b"precious")
    s = Session(lone_ns, "lo", "--write", str(ev))
    assert s.finish(30) == 2
    assert "already exists" in "".join(s.err)
    assert ev.read_bytes() == b"precious"
