"""A pcapng whose interfaces mix a link type the fast reader decodes (Ethernet) with one only the
tshark engine decodes (PPP), frames interleaved (issue 20, item 4): the fast reader's findings are
kept, the PPP frames go to tshark under a filter it accepts whatever their number, and both merge.
It used to exit 2 with no findings (tshark 4.0 refused `frame.number in {3 4 7 8}`) and, with
15,000 PPP frames, print a pyshark traceback."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from pcapgen import write_pcapng
from rstwatch.sources.capture import _frame_filter

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by bin/setup")
ETHERNET, PPP = 1, 9
T0 = 1_700_000_000


def _checksum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def _ip_tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 0 if flags & 4 else 64240, 0, 0)


def _frame(linktype: int, ip: bytes) -> bytes:
    if linktype == ETHERNET:
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip
    return b"\xff\x03\x00\x21" + ip            # PPP in HDLC-like framing, IPv4


def _refused(linktype: int, k: int, t_us: int) -> list[tuple[int, int, bytes]]:
    """A SYN and the server's RST|ACK: client 10.1.x.x on Ethernet, 10.2.x.x on PPP."""
    cli, srv = bytes([10, 1 if linktype == ETHERNET else 2, k >> 8 & 255, k & 255]), bytes([10, 9, 0, 1])
    port, isn = 20000 + k % 40000, k * 2654435761 & 0xFFFFFFFF
    return [(t_us, 0, _frame(linktype, _ip_tcp(cli, srv, port, 80, isn, 0, 0x02))),
            (t_us + 100, 0, _frame(linktype, _ip_tcp(srv, cli, 80, port, 0, isn + 1 & 0xFFFFFFFF, 0x14)))]


def write_mixed(path: Path, eth: int, ppp: int, interfaces=(ETHERNET, PPP), t0_us: int = 0) -> None:
    """One section: Ethernet and PPP connections interleaved (so the PPP frames are no one range)."""
    conns = [(ETHERNET, k, k / max(eth, 1)) for k in range(eth)] + [(PPP, k, (k + 0.5) / max(ppp, 1)) for k in range(ppp)]
    packets = []
    for n, (lt, k, _) in enumerate(sorted(conns, key=lambda c: c[2])):
        for t_us, _, frame in _refused(lt, k + (0 if t0_us == 0 else 30000), t0_us + n * 1000):
            t = T0 * 1_000_000 + t_us
            packets.append((interfaces.index(lt), t // 1_000_000, t % 1_000_000, frame))
    write_pcapng(path, [(lt, None) for lt in interfaces], packets)


def read(path: Path) -> tuple[list[dict], str]:
    res = run_cli("read", str(path), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "error" not in res.stderr, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()], res.stderr


def by_link(findings: list[dict]) -> dict[str, int]:
    """RSTs found per client network: 10.1 came over Ethernet, 10.2 over PPP."""
    out: dict[str, int] = {}
    for f in findings:
        assert f["cause"] == "closed-port", f
        net = ".".join(f["dst"].split(".")[:2])
        out[net] = out.get(net, 0) + 1
    return out


def test_small_mix_keeps_both_engines_findings(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pcapng"
    write_mixed(path, 2, 2)                          # frames 1-2 Ethernet, 3-4 PPP, 5-6 Ethernet, 7-8 PPP
    findings, stderr = read(path)
    assert [f["frame"] for f in findings] == [2, 4, 6, 8]
    assert by_link(findings) == {"10.1": 2, "10.2": 2}
    assert "4 frame(s) with link type 9 decoded by the tshark engine" in stderr


def test_15000_ppp_frames_among_ethernet(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pcapng"
    write_mixed(path, 100, 7500)
    findings, stderr = read(path)
    assert by_link(findings) == {"10.1": 100, "10.2": 7500}
    assert "15000 frame(s) with link type 9 decoded by the tshark engine" in stderr
    frames = [f["frame"] for f in findings]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)


def test_sections_number_their_interfaces_apart(tmp_path: Path) -> None:
    """tshark counts interfaces per section: in the second section PPP is interface 0."""
    first, second = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    write_mixed(first, 2, 2)
    write_mixed(second, 2, 3, interfaces=(PPP, ETHERNET), t0_us=10_000_000)
    path = tmp_path / "two-sections.pcapng"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    findings, _ = read(path)
    assert by_link(findings) == {"10.1": 4, "10.2": 5}
    assert _frame_filter(np.array([3, 4, 7, 8, 11, 13]), [(1, 1), (2, 0)]).endswith(
        "((frame.section_number == 1 && frame.interface_id == 1) || "
        "(frame.section_number == 2 && frame.interface_id == 0))")


def test_the_filter_does_not_grow_with_the_frames() -> None:
    frames = np.arange(3, 60_000, 2)
    assert len(_frame_filter(frames, [(1, 1)])) < 200
    assert len(_frame_filter(frames, [(1, k) for k in range(1000)])) < 200      # too many interfaces: range only
