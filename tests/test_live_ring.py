"""`rstwatch live --capture ring` (an AF_PACKET ring read in rstwatch's process, live/ringcap.py)
against `--capture dumpcap` on the same packets: two sessions watch the same interface at once and
must report the same resets, count the same packets and keep evidence files that `read` turns into
the same verdicts. On 802.1Q traffic (the kernel takes the tag out of the frame; the ring puts it
back) and on loopback (each packet is seen leaving and arriving; one copy is kept). Root only."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


from conftest import ROOT, run_cli
from test_live import QUIET_VETH, Session, namespace, needs_root, refuse

NS = "rwring"
SUMMARY = re.compile(r"(\d[\d,]*) packets \((\d[\d,]*) TCP\)")


def _both(ns: str, iface: str, tmp: Path, traffic, *extra: str) -> dict[str, tuple[Session, Path]]:
    sessions = {}
    for kind in ("ring", "dumpcap"):
        ev = tmp / f"{kind}.pcapng"
        sessions[kind] = (Session(ns, iface, "--format", "jsonl", "--capture", kind, "--write", str(ev), *extra), ev)
    for s, _ in sessions.values():
        s.wait_watching()
    time.sleep(0.5)
    traffic()
    time.sleep(2.0)                 # past the 1 s verdict hold
    for s, _ in sessions.values():
        s.proc.send_signal(signal.SIGTERM)
    for kind, (s, _) in sessions.items():
        assert s.finish(15) == 0, (kind, s.err)
    return sessions


def _same_verdicts(sessions) -> list[dict]:
    keep = ("frame", "src", "sport", "dst", "dport", "sender", "cause", "rule", "confidence", "summary")
    (ring, ring_ev), (_, dump_ev) = sessions["ring"], sessions["dumpcap"]
    got = {k: [{f: r.get(f) for f in keep} for r in s.records()] for k, (s, _) in sessions.items()}
    assert got["ring"] == got["dumpcap"], got
    counts = {k: SUMMARY.search("".join(s.err)).groups() for k, (s, _) in sessions.items()}
    assert counts["ring"] == counts["dumpcap"], counts
    assert "(rstwatch's ring)" in "".join(ring.err) and "capture dropped 0 of" in "".join(ring.err), ring.err
    replays = []
    for ev in (ring_ev, dump_ev):
        res = run_cli("read", str(ev), "--format", "jsonl")
        assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
        replays.append([{f: r.get(f) for f in keep} for r in map(json.loads, res.stdout.splitlines())])
    assert replays[0] == replays[1] == got["ring"]
    return got["ring"]


TAGGED_SENDER = r"""
import socket, struct, sys
sys.path.insert(0, sys.argv[1])
from lab.forge import checksum

def frame(src, sport, dst, dport, seq, ack, flags):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 0 if flags & 4 else 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    # Ethernet, then an 802.1Q tag (VLAN 10) before the IPv4 type
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!HHH", 0x8100, 10, 0x0800) + ip + tcp

out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
out.bind(("d0", 0))
for n in range(4):
    port = 40000 + n
    out.send(frame("10.77.0.1", port, "10.77.0.2", 9, 1000, 0, 0x02))            # SYN
    out.send(frame("10.77.0.2", 9, "10.77.0.1", port, 0, 1001, 0x14))           # RST|ACK: nobody listens
"""


@needs_root
def test_ring_and_dumpcap_agree_on_tagged_traffic(tmp_path: Path):
    """Frames tagged VLAN 10 sent into d0 arrive on d1, where the kernel moves the tag out of the
    frame before any capture sees it: both captures must put it back."""
    setup = QUIET_VETH
    with namespace(NS, *setup) as ns:
        sessions = _both(ns, "d1", tmp_path, lambda: subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", TAGGED_SENDER, str(ROOT)], check=True))
    verdicts = _same_verdicts(sessions)
    assert [v["cause"] for v in verdicts] == ["closed-port"] * 4, verdicts
    for kind in ("ring", "dumpcap"):
        tags = subprocess.run(["tshark", "-r", str(tmp_path / f"{kind}.pcapng"), "-Y", "tcp", "-T", "fields",
                               "-e", "vlan.id"], capture_output=True, text=True).stdout.split()
        assert tags == ["10"] * 8, (kind, tags)         # the tag is back in every frame


@needs_root
def test_ring_vlan_filter_looks_where_the_kernel_keeps_the_tag(tmp_path: Path):
    """`--bpf 'vlan 10'` compiled for no interface tests the frame's bytes, where a received
    tag no longer is: nothing matched. Compiled on the interface it tests the kernel's tag."""
    setup = QUIET_VETH
    with namespace(NS, *setup) as ns:
        sessions = _both(ns, "d1", tmp_path, lambda: subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", TAGGED_SENDER, str(ROOT)], check=True),
            "--bpf", "vlan 10 and tcp", "--no-kernel")
    verdicts = _same_verdicts(sessions)
    assert [v["cause"] for v in verdicts] == ["closed-port"] * 4, verdicts


@needs_root
def test_ring_and_dumpcap_agree_on_loopback(tmp_path: Path):
    with namespace(NS) as ns:
        sessions = _both(ns, "lo", tmp_path, lambda: refuse(ns, 5))
    verdicts = _same_verdicts(sessions)
    assert [v["cause"] for v in verdicts] == ["closed-port"] * 5, verdicts


@needs_root
def test_ring_filter_is_libpcaps(tmp_path: Path):
    """--bpf means what it means to dumpcap: compiled by libpcap, applied by the kernel."""
    with namespace(NS) as ns:
        def traffic():
            refuse(ns, 2, port=9)
            refuse(ns, 3, port=13)
        sessions = _both(ns, "lo", tmp_path, traffic, "--bpf", "tcp port 13", "--no-kernel")   # wire only: the kernel would add the filtered resets
    verdicts = _same_verdicts(sessions)
    assert [(v["cause"], v["sport"]) for v in verdicts] == [("closed-port", 13)] * 3, verdicts


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@needs_root
def test_ring_survives_the_link_going_down_and_up(tmp_path: Path):
    """A link that goes down makes the socket report an error; left unread it woke every poll at
    once (a core spun while the link was down). Down and up again, the capture goes on."""
    setup = QUIET_VETH
    with namespace(NS, *setup) as ns:
        s = Session(ns, "d1", "--format", "jsonl", "--capture", "ring")
        s.wait_watching()
        cpu0 = _cpu_seconds(s.proc.pid)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "d1", "down"], check=True)
        time.sleep(3)
        cpu_down = _cpu_seconds(s.proc.pid) - cpu0
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "d1", "up"], check=True)
        time.sleep(0.5)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", TAGGED_SENDER, str(ROOT)], check=True)
        s.wait_records(4)
        s.proc.send_signal(signal.SIGTERM)
        assert s.finish(15) == 0, s.err
    assert cpu_down < 1.0, f"{cpu_down:.2f} s of CPU in 3 s with the link down"
    assert [r["cause"] for r in s.records()] == ["closed-port"] * 4, s.err


RELEASE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from rstwatch.live.ringcap import RingCapture
def sockets():
    return len(open('/proc/net/packet').read().splitlines()) - 1
before = sockets()
with RingCapture(['lo'], None, 192) as cap:
    during = sockets()
    stream = cap.chunks()
    next(stream)
    cap.stop()
    rest = list(stream)
print(before, during, sockets())
"""


@needs_root
def test_ring_socket_is_gone_after_the_capture():
    """The mapping holds the socket open: closing the socket alone left it capturing, promiscuous,
    as long as the objects lived (an API user's every watch() would leave one)."""
    with namespace(NS) as ns:
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", RELEASE, str(ROOT)],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "1", "0"], res.stdout
