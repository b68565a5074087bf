"""Hostile and broken capture bytes never crash, hang or blow up the reader and tracker.

Outcome is always one of: findings for what could be read (maybe with warnings), or a
CaptureError (a one-line message, exit 2 in the CLI). Any other exception is a bug.
`FUZZ_EXAMPLES=20000 bin/test tests/test_fuzz.py` runs a longer campaign.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CAPTURES
from pcapgen import frame_for, l3_of, read_pcap_raw, write_pcap, write_pcapng
from rstwatch.analyze import analyze_file
from rstwatch.engine.loader import load_rules
from rstwatch.errors import CaptureError

RULES = load_rules()
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
SEEDS = [CAPTURES / n for n in ("data-after-close.pcap", "out-of-window-rst.pcapng", "keepalive-timeout.pcap.gz",
                                  "linger-zero-abort.pcap", "closed-port-ipv6.pcapng")]
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=list(HealthCheck), derandomize=True)


def survives(data: bytes, tmp: Path, name: str = "f.pcap"):
    path = tmp / name
    path.write_bytes(data)
    try:
        res = analyze_file(path, RULES)
    except CaptureError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    frames = list(res.findings["frame"])
    assert len(frames) == len(set(frames)), "every RST at most once"
    return res


@pytest.mark.parametrize("seed", [SEEDS[0], SEEDS[2], SEEDS[4]], ids=lambda p: p.name)
def test_truncation_at_every_offset(seed, tmp_path):
    import gzip
    raw = seed.read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    full = survives(data, tmp_path)
    n_full = len(full.findings)
    ends = _record_ends(data)
    for cut in range(len(data)):
        res = survives(data[:cut], tmp_path)
        if res is not None:
            assert len(res.findings) <= n_full
            if cut not in ends:       # cut inside a record: the user must be told
                assert res.diag.truncated, cut


def _record_ends(data: bytes) -> set[int]:
    """Offsets where a prefix of `data` is itself a complete capture."""
    import numpy as np
    from rstwatch.hotloops import walk_pcap, walk_pcapng
    buf = np.frombuffer(data, np.uint8)
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        offs = walk_pcapng(buf, 0, False)[0]
        return {int(o) for o in offs[1:]} | {len(data)}
    offs = walk_pcap(buf, 24, data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"))[0]
    return {int(o) for o in offs} | {len(data)}


@pytest.mark.parametrize("seed", SEEDS[:2], ids=lambda p: p.name)
def test_truncated_gzip_at_many_offsets(seed, tmp_path):
    import gzip
    data = gzip.compress(seed.read_bytes())
    for cut in range(0, len(data), 7):
        survives(data[:cut], tmp_path, "f.pcap.gz")


@FUZZ
@given(data=st.data())
def test_bit_flips(tmp_path_factory, data):
    seed = data.draw(st.sampled_from(SEEDS[:2] + SEEDS[3:]))
    buf = bytearray(seed.read_bytes())
    for _ in range(data.draw(st.integers(1, 12))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    survives(bytes(buf), tmp_path_factory.mktemp("flip"))


@FUZZ
@given(data=st.data())
def test_overwritten_fields(tmp_path_factory, data):
    """Absurd values written over 1-8 byte fields anywhere (lengths, ids, timestamps...)."""
    seed = data.draw(st.sampled_from(SEEDS[:2] + SEEDS[3:]))
    buf = bytearray(seed.read_bytes())
    width = data.draw(st.sampled_from([1, 2, 4, 8]))
    pos = data.draw(st.integers(0, len(buf) - width))
    value = data.draw(st.sampled_from([0, 1, 0xFF, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 65535, 262145]))
    buf[pos:pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, data.draw(st.sampled_from(["little", "big"])))
    survives(bytes(buf), tmp_path_factory.mktemp("field"))


def _packets():
    lt, pk = read_pcap_raw(CAPTURES / "data-after-close.pcap")
    return [(s, u, l3_of(lt, f)) for s, u, f in pk]


@FUZZ
@given(data=st.data())
def test_random_ip_and_tcp_headers(tmp_path_factory, data):
    """Random bytes in the IP and TCP headers: IPv4 options, IPv6 extension chains, data offset
    below 5, wrapped and overlapping sequence numbers, zero/huge/out-of-order timestamps."""
    pk = _packets()
    out = []
    for s, u, ip in pk:
        ip = bytearray(ip)
        if data.draw(st.booleans()):
            k = data.draw(st.integers(0, min(len(ip) - 1, 60)))
            ip[k] = data.draw(st.integers(0, 255))
        ts = data.draw(st.sampled_from([s, 0, 0xFFFFFFFF, s - 100]))
        out.append((ts & 0xFFFFFFFF, u, bytes(ip)))
    six = data.draw(st.booleans())
    if six:   # rewrap as IPv6 with a random next-header chain in front of TCP
        chain = data.draw(st.lists(st.sampled_from([0, 43, 60, 44, 51, 6, 17, 59]), max_size=10))
        out = [(s, u, _v6(ip, chain, data)) for s, u, ip in out]
    path = tmp_path_factory.mktemp("hdr") / "h.pcap"
    write_pcap(path, 101, out)
    survives(path.read_bytes(), path.parent)


def _v6(ip4: bytes, chain: list[int], data) -> bytes:
    ihl = (ip4[0] & 15) * 4 if len(ip4) > 0 else 20
    tcp = ip4[ihl:]
    nxt_hdrs = chain + [6]
    body = b""
    for k, nh in enumerate(chain):
        length = data.draw(st.integers(0, 3))
        body += bytes([nxt_hdrs[k + 1], length]) + b"\0" * (6 + 8 * length)
    payload = body + tcp
    first = chain[0] if chain else 6
    return struct.pack("!IHBB", 6 << 28, data.draw(st.sampled_from([len(payload), 0, 65535, 3])), first, 64) \
        + b"\xfd" + b"\0" * 15 + b"\xfd" + b"\0" * 14 + b"\1" + payload


@FUZZ
@given(iface=st.integers(0, 2**32 - 1), caplen=st.integers(0, 2**32 - 1), resol=st.integers(0, 255))
def test_pcapng_absurd_interface_and_lengths(tmp_path_factory, iface, caplen, resol):
    pk = _packets()
    path = tmp_path_factory.mktemp("ng") / "x.pcapng"
    write_pcapng(path, [(1, 6)], [(0, s, u, frame_for(1, ip)) for s, u, ip in pk])
    buf = bytearray(path.read_bytes())
    # first EPB follows SHB (28) and IDB (20 + options)
    off = buf.index(struct.pack("<I", 6))
    buf[off + 8:off + 12] = struct.pack("<I", iface)
    buf[off + 20:off + 24] = struct.pack("<I", caplen)
    idb = buf.index(struct.pack("<HH", 9, 1))
    buf[idb + 4] = resol
    survives(bytes(buf), path.parent, "x.pcapng")


def test_huge_caplen_beyond_snaplen(tmp_path):
    pk = _packets()
    path = tmp_path / "snap.pcap"
    write_pcap(path, 1, [(s, u, frame_for(1, ip)) for s, u, ip in pk], snaplen=40)   # TCP header cut
    res = survives(path.read_bytes(), tmp_path)
    assert res is not None and len(res.findings) == 0
    assert any("cut short" in r for r in res.diag.skipped)


@pytest.mark.parametrize("resol", [0, 0x80])          # if_tsresol 10^0 and 2^0: whole seconds
def test_pcapng_times_beyond_2262_are_clamped_with_a_warning(tmp_path, resol):
    """Large timestamps in coarse units used to wrap around int64 silently (year 1738 where tshark
    says 36812), with a numpy RuntimeWarning and `report` ending in exit 70. Now each is the last
    time 64-bit nanoseconds hold, the file gets one warning, and every command still works."""
    import subprocess
    import sys
    import warnings
    linktype, pk = read_pcap_raw(CAPTURES / "closed-port.pcap")
    out = tmp_path / "future.pcapng"
    seconds = 1_100_000_000_000                          # ~36800 AD
    blocks = [struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)]
    opts = struct.pack("<HH", 9, 1) + bytes([resol]) + b"\0\0\0" + struct.pack("<HH", 0, 0)
    body = struct.pack("<HHI", linktype, 0, 0) + opts
    blocks.append(struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
    for k, (_, _, frame) in enumerate(pk):
        ticks = seconds + k
        pad = b"\0" * (-len(frame) % 4)
        body = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame + pad
        blocks.append(struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
    out.write_bytes(b"".join(blocks))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # no numpy RuntimeWarning on the way
        res = analyze_file(out, load_rules([]))
    assert len(res.findings) == 1 and res.findings["ts"][0].startswith("2262-04-11T23:47:16")
    assert any("after 2262-04-11" in w for w in res.diag.warnings), res.diag.warnings
    from conftest import run_cli
    rep = run_cli("report", str(out), "-o", str(tmp_path / "r.html"))
    assert rep.returncode == 0 and "Traceback" not in rep.stderr, rep.stderr
