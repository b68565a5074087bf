"""Tunnels in the fast reader (#21 item 1): TCP inside GRE, ERSPAN I/II/III, VXLAN, Geneve,
IP-in-IP, Teredo, MPLS and VLAN stacks is decoded; the inner connection is classified, keyed by
its tunnel too, and the finding names the tunnel; a tunnel not decoded is one warning line.

Public traces (tests/external/, provenance in its README) are checked against tshark; packets
built here cover each layout and its combinations; the numpy twin must agree with the compiled
loops on all of them and on mangled copies."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CAPTURES, EXTERNAL, ROOT, assert_same, run_cli

from rstwatch import hotloops_py as twin
from rstwatch.analyze import analyze_file
from rstwatch.sources.capture import read_segments
from rstwatch.sources.diagnostics import Diagnostics
from rstwatch.sources.segments import address_text

compiled = pytest.importorskip("rstwatch.hotloops", reason="the compiled loops are built by bin/setup")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by bin/setup")

TUNNEL_TRACES = sorted(list((EXTERNAL / "zeek" / "tunnels").glob("*.pcap"))
                       + list((EXTERNAL / "suricata-verify").glob("bug-5437-*/input.pcap")))


def _tshark(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "occurrence=a",
                          *[x for f in fields for x in ("-e", f)]],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def _inner_tuples(path: Path, display_filter: str) -> list[tuple]:
    """(frame, inner src, sport, inner dst, dport, outer src, outer dst) of each frame tshark
    matches: the innermost IP header carries the TCP segment, the outermost the tunnel."""
    rows = []
    for frame, ip_src, ip_dst, ip6_src, ip6_dst, sport, dport, first in _tshark(
            path, display_filter, "frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport",
            "tcp.dstport", "frame.protocols"):
        # the innermost header is the last one listed of the family that comes last in frame.protocols
        inner6 = first.rfind(":ipv6:") > first.rfind(":ip:")
        src, dst = (ip6_src, ip6_dst) if inner6 else (ip_src, ip_dst)
        outer6 = first.find(":ipv6:") != -1 and (first.find(":ip:") == -1 or first.find(":ipv6:") < first.find(":ip:"))
        osrc, odst = (ip6_src, ip6_dst) if outer6 else (ip_src, ip_dst)
        rows.append((int(frame), src.split(",")[-1], int(sport.split(",")[-1]), dst.split(",")[-1],
                     int(dport.split(",")[-1]), osrc.split(",")[0], odst.split(",")[0]))
    return rows


# --- public traces --------------------------------------------------------------------------

def test_public_tunnel_traces_are_there():
    names = {p.name for p in TUNNEL_TRACES} | {p.parent.name for p in TUNNEL_TRACES}
    assert {"gre-aruba.pcap", "bug-5437-02", "vxlan-encapsulated-http.pcap", "geneve-many-options.pcap"} <= names


@needs_tshark
@pytest.mark.parametrize("name, kind", [("suricata-verify/bug-5437-02/input.pcap", "erspan2"),
                                        ("zeek/tunnels/gre-aruba.pcap", "aruba-gre")])
def test_every_tshark_rst_in_a_tunnel_is_reported_with_its_inner_tuple_and_tunnel(name, kind, builtin_rules):
    path = EXTERNAL / name
    want = _inner_tuples(path, "tcp.flags.reset==1")
    assert len(want) >= 2
    df = analyze_file(path, builtin_rules).findings.set_index("frame")
    assert sorted(df.index) == [w[0] for w in want]
    spans = {int(f): s for f, s in _tshark(path, "tcp.flags.reset==1", "frame.number", "erspan.spanid")}
    for frame, src, sport, dst, dport, osrc, odst in want:
        got = df.loc[frame]
        assert (got["src"], got["sport"], got["dst"], got["dport"]) == (src, sport, dst, dport), frame
        ident = f" session {spans[frame]}" if kind == "erspan2" else ""
        assert got["tunnel"] == f"{kind}{ident} {osrc}>{odst}", frame
        assert got["cause"] and got["cause"] != "unknown"


@needs_tshark
@pytest.mark.parametrize("path", TUNNEL_TRACES, ids=lambda p: str(p.relative_to(EXTERNAL)))
def test_tcp_in_tunnels_is_decoded_as_tshark_does(path):
    """Every TCP segment tshark finds (inner 4-tuple), no more, and each marked tunnelled."""
    diag = Diagnostics(str(path))
    seg = read_segments(path, diag)
    got = [(int(f), address_text(bool(v6), int(sh), int(sl)), int(sp), address_text(bool(v6), int(dh), int(dl)), int(dp))
           for f, v6, sh, sl, sp, dh, dl, dp in zip(seg["frame"], seg["v6"], seg["src_hi"], seg["src_lo"],
                                                     seg["sport"], seg["dst_hi"], seg["dst_lo"], seg["dport"])]
    assert got == [w[:5] for w in _inner_tuples(path, "tcp")]
    assert (seg["tunnel"] != 0).all()


def test_a_tunnel_not_decoded_is_one_warning_line(tmp_path):
    path = EXTERNAL / "zeek" / "tunnels" / "gre-pptp.pcap"
    warning = f"rstwatch: warning: {path}: 2 packets in GRE version 1 (PPTP) not decoded"
    res = run_cli("read", str(path), "--format", "jsonl")
    assert res.returncode == 0 and res.stdout == ""
    assert res.stderr.splitlines() == [warning]
    # a report of the same capture says it too (it said nothing of the packets it could not read)
    out = tmp_path / "r.md"
    res = run_cli("report", str(path), "-o", str(out))
    assert res.returncode == 0 and out.is_file()
    assert res.stderr.splitlines() == [warning, f"rstwatch: report written to {out}"]


# --- packets built here: every layout -------------------------------------------------------

def _sum16(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b + b"\0" * (len(b) % 2)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    a, b = (bytes(map(int, x.split("."))) for x in (src, dst))
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, ttl, proto, 0, a, b)
    return hdr[:10] + struct.pack("!H", _sum16(hdr)) + hdr[12:] + payload


def ipv6(src: str, dst: str, nh: int, payload: bytes) -> bytes:
    import ipaddress
    return (struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + ipaddress.IPv6Address(src).packed
            + ipaddress.IPv6Address(dst).packed + payload)


def tcp(sport: int, dport: int, flags: int, seq: int = 1000, ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 0 if flags & 4 else 64240, 0, 0)


def ether(payload: bytes, ethertype: int, vlans: tuple = ()) -> bytes:
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + tags + struct.pack("!H", ethertype) + payload


def gre(payload: bytes, proto: int, key: int | None = None, seq: int | None = None, csum: bool = False) -> bytes:
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    opts = (b"\0\0\0\0" if csum else b"") + (struct.pack("!I", key) if key is not None else b"") \
        + (struct.pack("!I", seq) if seq is not None else b"")
    return struct.pack("!HH", flags, proto) + opts + payload


def erspan2(frame: bytes, session: int) -> bytes:
    return gre(struct.pack("!HHI", (1 << 12) | 7, session, 18) + frame, 0x88BE, seq=0)


def erspan3(frame: bytes, session: int, subheader: bool = True) -> bytes:
    hdr = struct.pack("!HHIHH", (2 << 12) | 7, session, 123456, 0, 1 if subheader else 0)
    return gre(hdr + (b"\0" * 8 if subheader else b"") + frame, 0x22EB, seq=9)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def vxlan(frame: bytes, vni: int) -> bytes:
    return udp(49152, 4789, struct.pack("!II", 0x08000000, vni << 8) + frame)


def geneve(inner: bytes, vni: int, proto: int = 0x6558, options: int = 2) -> bytes:
    return udp(49153, 6081, struct.pack("!BBHI", options, 0, proto, vni << 8) + b"\x01\x02\x03\x04" * options + inner)


def mpls(payload: bytes, labels: int = 2) -> bytes:
    return b"".join(struct.pack("!I", (100 + k) << 12 | (1 << 8 if k == labels - 1 else 0) | 64)
                    for k in range(labels)) + payload


OUTER4, OUTER6 = ("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")
C4, S4, C6, S6 = "10.1.0.1", "10.1.0.2", "fd00::1", "fd00::2"


def refused(wrap, v6: bool = False) -> list[bytes]:
    """SYN and the RST|ACK refusing it, each wrapped the same way (an Ethernet frame)."""
    c, s, ip = (C6, S6, ipv6) if v6 else (C4, S4, ipv4)
    return [wrap(ip(c, s, 6, tcp(40000, 9, 2)), 1), wrap(ip(s, c, 6, tcp(9, 40000, 20, 0, 1001)), 0)]


def e4(inner_ip: bytes, proto: int, vlans: tuple = ()) -> bytes:
    """Ethernet > (VLANs) > outer IPv4 > `proto` carrying `inner_ip`'s encapsulation."""
    return ether(ipv4(*OUTER4, proto, inner_ip), 0x0800, vlans)


def inner_eth(ip: bytes) -> bytes:
    return ether(ip, 0x86DD if ip[0] >> 4 == 6 else 0x0800)


# name: (how a packet is wrapped given its inner IP packet and direction, inner IPv6?, expected tunnel text)
LAYOUTS = {
    "erspan2-over-vlan": (lambda ip, d: e4(erspan2(inner_eth(ip), 5), 47, ((0x8100, 300),)), False,
                          "erspan2 session 5 192.0.2.1>192.0.2.2"),
    "erspan3-subheader": (lambda ip, d: e4(erspan3(inner_eth(ip), 77), 47), False, "erspan3 session 77 192.0.2.1>192.0.2.2"),
    "erspan3-qinq-inner": (lambda ip, d: e4(erspan3(ether(ip, 0x0800, ((0x88A8, 10), (0x8100, 20))), 3, False), 47),
                           False, "erspan3 session 3 192.0.2.1>192.0.2.2"),
    "erspan1": (lambda ip, d: e4(gre(inner_eth(ip), 0x88BE), 47), False, "erspan1 192.0.2.1>192.0.2.2"),
    "gre-key-seq-csum": (lambda ip, d: e4(gre(ip, 0x0800, key=42, seq=d, csum=True), 47), False,
                         "gre key 42 192.0.2.1>192.0.2.2"),
    "gre-ipv6-inside": (lambda ip, d: e4(gre(ip, 0x86DD), 47), True, "gre 192.0.2.1>192.0.2.2"),
    "gretap": (lambda ip, d: e4(gre(inner_eth(ip), 0x6558, key=7), 47), False, "gre key 7 192.0.2.1>192.0.2.2"),
    "gre-mpls": (lambda ip, d: e4(gre(mpls(ip), 0x8847), 47), False, "gre 192.0.2.1>192.0.2.2"),
    "vxlan": (lambda ip, d: e4(udp(49152, 4789, struct.pack("!II", 0x08000000, 42 << 8) + inner_eth(ip)), 17), False,
              "vxlan vni 42 192.0.2.1>192.0.2.2"),
    "vxlan-over-ipv6": (lambda ip, d: ether(ipv6(*OUTER6, 17, vxlan(inner_eth(ip), 9)), 0x86DD), True,
                        "vxlan vni 9 2001:db8::1>2001:db8::2"),
    "geneve-options": (lambda ip, d: e4(geneve(inner_eth(ip), 4242), 17), False, "geneve vni 4242 192.0.2.1>192.0.2.2"),
    "geneve-ip": (lambda ip, d: e4(geneve(ip, 1, 0x0800, 0), 17), False, "geneve vni 1 192.0.2.1>192.0.2.2"),
    "ipip": (lambda ip, d: e4(ip, 4), False, "ipip 192.0.2.1>192.0.2.2"),
    "6in4": (lambda ip, d: e4(ip, 41), True, "6in4 192.0.2.1>192.0.2.2"),
    "4in6": (lambda ip, d: ether(ipv6(*OUTER6, 4, ip), 0x86DD), False, "4in6 2001:db8::1>2001:db8::2"),
    "teredo-origin": (lambda ip, d: e4(udp(3544, 50000, b"\0\0" + b"\x9c\x40" + b"\xc0\x00\x02\x09" + ip), 17), True,
                      "teredo 192.0.2.1>192.0.2.2"),
    "mpls-pseudowire": (lambda ip, d: ether(mpls(b"\0\0\0\0" + inner_eth(ip), 3), 0x8847), False, None),
    "mpls-vlan": (lambda ip, d: ether(mpls(ip), 0x8847, ((0x8100, 5),)), False, None),
    "qinq-3-tags": (lambda ip, d: ether(ip, 0x0800, ((0x88A8, 1), (0x8100, 2), (0x8100, 3))), False, None),
    "vxlan-in-gre": (lambda ip, d: e4(gre(ipv4("198.51.100.1", "198.51.100.2", 17, vxlan(inner_eth(ip), 8)), 0x0800,
                                          key=1), 47), False,
                     "vxlan vni 8 198.51.100.1>198.51.100.2 (inside 1 more tunnel)"),
}


def _pcap(frames: list[bytes], path: Path, t0: float = 1_700_000_000.0) -> Path:
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for k, f in enumerate(frames):
        ts = t0 + k * 0.001
        out += struct.pack("<IIII", int(ts), int(round((ts % 1) * 1e6)), len(f), len(f)) + f
    path.write_bytes(bytes(out))
    return path


def _decode(frames: list[bytes]):
    blob, starts = b"", []
    for f in frames:
        starts.append(len(blob))
        blob += f
    n = len(frames)
    args = (np.frombuffer(blob, np.uint8), np.array(starts, np.int64), np.array([len(f) for f in frames], np.int64),
            np.ones(n, np.int32), np.arange(1, n + 1, dtype=np.int64), np.arange(n, dtype=np.int64))
    want = compiled.decode_tcp(*args)
    assert_same(want, twin.decode_tcp(*args), "decode_tcp")
    return want


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_layout_gives_the_inner_refusal_and_its_tunnel(name, tmp_path, builtin_rules):
    wrap, v6, text = LAYOUTS[name]
    cols, skipped, _, _, tun, undecoded = _decode(refused(wrap, v6))
    assert len(cols["frame"]) == 2 and not skipped.any() and not len(undecoded), name
    assert (cols["tunnel"] != 0).all() == (text is not None) and len(set(cols["tunnel"].tolist())) == 1
    df = analyze_file(_pcap(refused(wrap, v6), tmp_path / f"{name}.pcap"), builtin_rules).findings
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["src"], row["sport"], row["dst"], row["dport"]) == ((S6, 9, C6, 40000) if v6 else (S4, 9, C4, 40000))
    assert row["cause"] == "closed-port" and row["history"] == "Sr"
    assert (row["tunnel"] if text else None) == text


def test_one_tuple_in_two_vnis_is_two_connections(tmp_path, builtin_rules):
    """The same inner 4-tuple in VNI 1 and VNI 2, interleaved: two refusals, not one connection
    with a retransmitted SYN and two resets; and a plain twin of it stays a third."""
    one, two = (lambda ip, d, v=v: e4(vxlan(inner_eth(ip), v), 17) for v in (1, 2))
    a, b, plain = refused(one), refused(two), refused(lambda ip, d: inner_eth(ip))
    path = _pcap([a[0], b[0], plain[0], a[1], b[1], plain[1]], tmp_path / "vnis.pcap")
    res = run_cli("read", str(path), "--format", "jsonl")
    assert res.returncode == 0 and res.stderr == ""
    recs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["frame"], r["cause"], r["history"], r.get("tunnel")) for r in recs] == [
        (4, "closed-port", "Sr", "vxlan vni 1 192.0.2.1>192.0.2.2"),
        (5, "closed-port", "Sr", "vxlan vni 2 192.0.2.1>192.0.2.2"),
        (6, "closed-port", "Sr", None)]
    assert "tunnel" not in recs[2]             # an untunnelled finding has no tunnel field at all
    assert list(recs[0])[-1] == "tunnel" and list(recs[0])[:-1] == list(recs[2])


def test_undecoded_tunnels_are_named(tmp_path):
    inner = ipv4(C4, S4, 6, tcp(1, 2, 2))
    frames = [e4(gre(inner, 0x1234), 47), e4(gre(inner, 0x1234), 47), e4(udp(40000, 2152, b"\x30\xff" + inner), 17),
              e4(b"\0\x01" + struct.pack("!H", 0x880B) + inner, 47),
              e4(geneve(inner, 5, 0x9999), 17), e4(gre(b"\x40" + b"\0" * 11 + inner_eth(inner), 0x22EB, seq=1), 47)]
    cols, _, _, _, _, undecoded = _decode(frames)
    assert not len(cols["frame"])
    res = run_cli("read", str(_pcap(frames, tmp_path / "odd.pcap")), "--format", "jsonl")
    assert res.returncode == 0 and res.stdout == ""
    assert sorted(res.stderr.splitlines()) == sorted(
        f"rstwatch: warning: {tmp_path / 'odd.pcap'}: {what}" for what in (
            "2 packets in GRE protocol 0x1234 not decoded", "1 packet in GTP-U (UDP 2152) not decoded",
            "1 packet in GRE version 1 (PPTP) not decoded", "1 packet in Geneve protocol 0x9999 not decoded",
            "1 packet in ERSPAN version 4 not decoded"))


def test_nesting_is_bounded():
    ip = ipv4(C4, S4, 6, tcp(1, 2, 2))
    for _ in range(5):
        ip = ipv4(*OUTER4, 4, ip)
    cols, _, _, _, _, undecoded = _decode([ether(ip, 0x0800)])
    assert not len(cols["frame"]) and (undecoded >> 32).tolist() == [10]


def test_twin_agrees_on_mangled_tunnel_packets():
    """Every layout, bytes overwritten and cut at random: the compiled loops and the numpy twin
    give the same columns, counts, tunnel rows and undecoded codes."""
    rng = np.random.default_rng(21)
    seeds = [f for wrap, v6, _ in LAYOUTS.values() for f in refused(wrap, v6)]
    for round_ in range(150):
        frames = []
        for _ in range(60):
            f = bytearray(seeds[int(rng.integers(len(seeds)))])
            for _ in range(int(rng.integers(0, 4))):
                f[int(rng.integers(12, len(f)))] = int(rng.integers(0, 256))
            if rng.random() < 0.3:
                f = f[:int(rng.integers(0, len(f) + 1))]
            frames.append(bytes(f))
        _decode(frames)


# --- lab captures: refusals through tunnels, captured on the outer link ----------------------

TUNNEL_LAB = CAPTURES / "tunnels"
LAB_ENTRIES = json.loads((TUNNEL_LAB / "manifest.json").read_text())["captures"]
SAME_AS_PLAIN = ("cause", "rule", "confidence", "sender", "conn_state", "history", "summary_shape")


def _verdicts(folder: Path, name: str, rules) -> dict[int, dict]:
    df = analyze_file(folder / name, rules).findings
    out = {}
    for row in df.to_dict("records"):
        # the summary names addresses and ports: compare its words around them
        row["summary_shape"] = " ".join(w for w in row["summary"].split() if not any(c.isdigit() for c in w))
        out[int(row["frame"])] = row
    return out


def check_lab(folder: Path, entries: dict, rules) -> None:
    """Every RST the lab's tshark saw, with its inner 4-tuple and tunnel, classified as its
    plain twin (the same refusal on the outer link itself)."""
    plain = list(_verdicts(folder, "plain.pcap", rules).values())
    assert len(plain) == 1 and plain[0]["cause"] == "closed-port"
    for name, entry in entries.items():
        got = _verdicts(folder, name, rules)
        assert sorted(got) == sorted(r["frame"] for r in entry["resets"]), name
        for r in entry["resets"]:
            row = got[r["frame"]]
            assert (row["src"], row["sport"], row["dst"], row["dport"]) == (r["src"], r["sport"], r["dst"], r["dport"])
            assert row["tunnel"] == r["tunnel"], name
            assert {k: row[k] for k in SAME_AS_PLAIN} == {k: plain[0][k] for k in SAME_AS_PLAIN}, name
            assert r["kernel_reason"] == "NO_SOCKET"


def test_lab_tunnels_are_there():
    kinds = {e["resets"][0]["tunnel"].split()[0] for e in LAB_ENTRIES.values() if e["resets"][0]["tunnel"]}
    assert {"vxlan", "geneve", "gre", "erspan1", "erspan2", "erspan3", "ipip", "6in4", "4in6", "teredo"} <= kinds
    assert {p.name for p in TUNNEL_LAB.glob("*.pcap")} == set(LAB_ENTRIES)


def test_lab_refusals_through_tunnels_classify_like_their_plain_twin(builtin_rules):
    check_lab(TUNNEL_LAB, LAB_ENTRIES, builtin_rules)


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")
def test_fresh_tunnel_lab(tmp_path: Path, builtin_rules):
    """A few kinds rebuilt on this kernel (~8 s; the whole lab takes ~30 s): Linux's own vxlan,
    and devices this kernel lacks through lab/tunnel_wire.py (Linux's where a kernel has them)."""
    out = tmp_path / "tunnels"
    kinds = ["plain", "vxlan", "erspan2", "geneve"]
    res = subprocess.run([sys.executable, str(ROOT / "lab" / "make_tunnel_captures.py"), "--out", str(out),
                          "--only", ",".join(kinds)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    fresh = json.loads((out / "manifest.json").read_text())["captures"]
    assert set(fresh) == {f"{k}.pcap" for k in kinds}
    check_lab(out, fresh, builtin_rules)
