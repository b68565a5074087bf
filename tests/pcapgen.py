"""Write the same packets in every container/link-layer variant the reader claims to support.

Packets come from a real capture (read back with the standard library only), so the tests
compare rstwatch's reading of each variant against the original.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


def read_pcap_raw(path: Path) -> tuple[int, list[tuple[int, int, bytes]]]:
    """(linktype, [(ts_sec, ts_usec, frame bytes)]) of a little- or big-endian microsecond pcap."""
    data = path.read_bytes()
    magic = data[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        out.append((sec, frac // 1000 if nano else frac, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return linktype, out


def l3_of(linktype: int, frame: bytes) -> bytes:
    """The IP packet inside a frame of the lab's link types (Ethernet, SLL2)."""
    if linktype == 1:
        return frame[14:]
    if linktype == 276:
        return frame[20:]
    if linktype == 113:
        return frame[16:]
    raise ValueError(linktype)


def ethertype(ip: bytes) -> int:
    return ETH_IPV6 if ip[0] >> 4 == 6 else ETH_IPV4


def frame_for(linktype: int, ip: bytes, tags: int = 0, null_be: bool = False) -> bytes:
    et = ethertype(ip)
    if linktype == 1:
        tag_bytes = b"".join(struct.pack("!HH", 0x88A8 if (k == 0 and tags == 2) else 0x8100, 100 + k) for k in range(tags))
        return b"\x02" * 6 + b"\x04" * 6 + tag_bytes + struct.pack("!H", et) + ip
    if linktype == 113:   # Linux cooked v1
        return struct.pack("!HHH", 0, 1, 6) + b"\x02" * 6 + b"\0\0" + struct.pack("!H", et) + ip
    if linktype == 276:   # Linux cooked v2
        return struct.pack("!HHIHBB", et, 0, 2, 1, 0, 6) + b"\x02" * 6 + b"\0\0" + ip
    if linktype in (101, 228, 229):
        return ip
    if linktype == 0:     # BSD loopback, family in host order of the writer
        fam = 2 if et == ETH_IPV4 else 30
        return struct.pack(">I" if null_be else "<I", fam) + ip
    if linktype == 108:
        return struct.pack(">I", 2 if et == ETH_IPV4 else 24) + ip
    raise ValueError(linktype)


def write_pcap(path: Path, linktype: int, packets, big: bool = False, nano: bool = False, gz: bool = False,
               snaplen: int = 65535) -> None:
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, usec, frame in packets:
        frac = usec * 1000 if nano else usec
        cap = frame[:snaplen]
        out.append(struct.pack(e + "IIII", sec, frac, len(cap), len(frame)) + cap)
    blob = b"".join(out)
    path.write_bytes(gzip.compress(blob) if gz else blob)


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def write_pcapng(path: Path, interfaces: list[tuple[int, int | None]], packets, big: bool = False,
                 simple: bool = False) -> None:
    """interfaces: [(linktype, tsresol byte or None)]; packets: [(iface, ts_sec, ts_usec, frame)]."""
    e = ">" if big else "<"
    blocks = [_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for linktype, resol in interfaces:
        opts = b""
        if resol is not None:
            opts = struct.pack(e + "HH", 9, 1) + bytes([resol]) + b"\0\0\0" + struct.pack(e + "HH", 0, 0)
        blocks.append(_block(e, 1, struct.pack(e + "HHI", linktype, 0, 0) + opts))
    for iface, sec, usec, frame in packets:
        if simple:
            blocks.append(_block(e, 3, struct.pack(e + "I", len(frame)) + frame))
            continue
        resol = interfaces[iface][1]
        if resol is None or resol == 6:
            ticks = sec * 1_000_000 + usec
        elif resol == 9:
            ticks = (sec * 1_000_000 + usec) * 1000
        else:
            raise ValueError(resol)
        blocks.append(_block(e, 6, struct.pack(e + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame))
    path.write_bytes(b"".join(blocks))


def merge_pcaps(path: Path, sources: list[tuple[Path, float]]) -> Path:
    """One capture of the packets of each (capture, seconds to move its clock by) in time order,
    as mergecap makes it: captures of one link type, moved to interleave their resets."""
    linktypes, packets = set(), []
    for source, shift in sources:
        linktype, records = read_pcap_raw(source)
        linktypes.add(linktype)
        moved = round(shift * 1_000_000)
        packets += [(*divmod(sec * 1_000_000 + usec + moved, 1_000_000), frame) for sec, usec, frame in records]
    assert len(linktypes) == 1, f"{sources}: link types {linktypes}"
    write_pcap(path, linktypes.pop(), sorted(packets, key=lambda p: (p[0], p[1])))
    return path
