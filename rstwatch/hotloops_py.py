"""Pure numpy/Python twin of rstwatch/hotloops.pyx, used when the compiled module is absent.

Same functions, same arguments, same results (tests/test_packaging.py compares both on every
bundled and external capture and on fuzzed bytes). The record walks stay sequential Python
loops (a record's position needs the previous record's length); everything else is numpy
over columns. `rstwatch.loops` picks this module only when `rstwatch.hotloops` cannot be
imported (a platform without a binary wheel and no C compiler) or RSTWATCH_PURE_PYTHON=1.
"""
from __future__ import annotations

import struct

import numpy as np

NEED_MORE = 0        # stopped at an incomplete record at the end of the buffer (or exactly at it)
CORRUPT = 1          # a record header is impossible (absurd length, mismatched trailer)

MAX_CAPLEN = 262144
MAX_BLOCK = 16 * 1024 * 1024 + 4096
SHB = 0x0A0D0D0A
BT_PB, BT_SPB, BT_EPB = 2, 3, 6

SKIP_NAMES = ("not_ip", "ip_short", "v4_fragment", "v6_fragment", "tcp_short", "tcp_offset")
_SKIP = {name: i for i, name in enumerate(SKIP_NAMES)}

_U32 = {True: struct.Struct(">I"), False: struct.Struct("<I")}
_PCAP_HDR = {True: struct.Struct(">III"), False: struct.Struct("<III")}
_BLOCK_HDR = {True: struct.Struct(">II"), False: struct.Struct("<II")}
_SHB_BIG, _SHB_LITTLE = b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a"


def walk_pcap(buf, start: int, big: bool, tick_ns: int = 1000):
    """Complete pcap records from `start`: (header offsets, captured lengths, timestamps in ns,
    stop, status), as hotloops.walk_pcap."""
    mv = memoryview(buf).cast("B")
    end = len(mv)
    hdr = _PCAP_HDR[bool(big)].unpack_from
    offs: list[int] = []
    caplens: list[int] = []
    ts: list[int] = []
    off, status = start, NEED_MORE
    append_off, append_cap, append_ts = offs.append, caplens.append, ts.append
    while off + 16 <= end:
        sec, frac, caplen = hdr(mv, off)
        if caplen > MAX_CAPLEN:
            status = CORRUPT
            break
        nxt = off + 16 + caplen
        if nxt > end:
            break
        append_off(off)
        append_cap(caplen)
        append_ts(sec * 1_000_000_000 + frac * tick_ns)
        off = nxt
    return (np.array(offs, np.int64), np.array(caplens, np.int64), np.array(ts, np.int64), off, status)


def walk_pcapng(buf, start: int, big: bool, with_fields: bool = True):
    """Complete pcapng blocks from `start`: (offsets, types, big-endian flags, stop, status,
    big at stop, packet fields or None), as hotloops.walk_pcapng."""
    mv = memoryview(buf).cast("B")
    end = len(mv)
    big = bool(big)
    offs: list[int] = []
    types: list[int] = []
    bigs: list[bool] = []
    off, status = start, NEED_MORE
    head, u32 = _BLOCK_HDR[big].unpack_from, _U32[big].unpack_from
    while off + 12 <= end:
        btype, blen = head(mv, off)
        if btype == SHB:                     # 0x0A0D0D0A reads the same in either byte order
            # the byte-order magic decides this section's endianness
            magic = bytes(mv[off + 8:off + 12])
            if magic == _SHB_BIG:
                big = True
            elif magic == _SHB_LITTLE:
                big = False
            else:
                status = CORRUPT
                break
            head, u32 = _BLOCK_HDR[big].unpack_from, _U32[big].unpack_from
            btype, blen = head(mv, off)
        if blen < 12 or blen > MAX_BLOCK or blen & 3:
            status = CORRUPT
            break
        if off + blen > end:
            break
        if u32(mv, off + blen - 4)[0] != blen:
            status = CORRUPT
            break
        offs.append(off)
        types.append(btype)
        bigs.append(big)
        off += blen
    offs_a, types_a, bigs_a = np.array(offs, np.int64), np.array(types, np.int64), np.array(bigs, np.bool_)
    fields = _packet_fields(np.frombuffer(mv, np.uint8), offs_a, types_a, bigs_a, off) if with_fields else None
    return offs_a, types_a, bigs_a, off, status, big, fields


def _uint(buf: np.ndarray, pos: np.ndarray, width: int, big) -> np.ndarray:
    """Unsigned `width`-byte integers at byte offsets `pos` (one gather of width bytes each);
    `big` is a bool or, for pcapng sections of both byte orders, a bool array."""
    raw = buf[np.asarray(pos, np.int64)[:, None] + np.arange(width)]
    if isinstance(big, (bool, np.bool_)):
        return raw.view((">u" if big else "<u") + str(width)).ravel().astype(np.uint64)
    return np.where(big, raw.view(f">u{width}").ravel(), raw.view(f"<u{width}").ravel()).astype(np.uint64)


def _packet_fields(buf: np.ndarray, offs, types, bigs, stop: int):
    n = len(offs)
    # one byte order in the whole buffer (the usual case): a scalar takes the cheaper path
    uniform = bool(bigs[0]) if n and (bigs.all() or not bigs.any()) else None
    order = (lambda idx: bigs[idx]) if uniform is None else (lambda idx: uniform)
    local = np.zeros(n, np.int64)
    ticks = np.zeros(n, np.uint64)
    caplen = np.zeros(n, np.int64)
    data = offs + 28
    blen = np.append(offs[1:], stop) - offs
    spb = np.flatnonzero(types == BT_SPB)
    data[spb] = offs[spb] + 12
    caplen[spb] = np.minimum(_uint(buf, offs[spb] + 8, 4, order(spb)).astype(np.int64), blen[spb] - 16)
    pb = np.flatnonzero(((types == BT_EPB) | (types == BT_PB)) & (blen >= 28))
    o, b = offs[pb], order(pb)
    local[pb] = np.where(types[pb] == BT_EPB, _uint(buf, o + 8, 4, b), _uint(buf, o + 8, 2, b)).astype(np.int64)
    ticks[pb] = (_uint(buf, o + 12, 4, b) << np.uint64(32)) | _uint(buf, o + 16, 4, b)
    caplen[pb] = _uint(buf, o + 20, 4, b).astype(np.int64)
    return local, ticks, caplen, data


_M1 = np.uint64(0xFF51AFD7ED558CCD)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * _M1
    return x ^ (x >> np.uint64(29))


def flow_hash_columns(sh, sl, dh, dl, sp, dp) -> np.ndarray:
    """Direction-independent 64-bit key of each 4-tuple, bit for bit as hotloops computes it."""
    n = len(sh)
    if not (len(sl) == len(dh) == len(dl) == len(sp) == len(dp) == n):
        raise ValueError("flow_hash_columns: columns of different lengths")
    sh, sl, dh, dl = (np.asarray(c, np.uint64) for c in (sh, sl, dh, dl))
    sp, dp = np.asarray(sp, np.uint64), np.asarray(dp, np.uint64)
    low = (sh < dh) | ((sh == dh) & ((sl < dl) | ((sl == dl) & (sp <= dp))))
    ah, al, ap = np.where(low, sh, dh), np.where(low, sl, dl), np.where(low, sp, dp)
    bh, bl, bp = np.where(low, dh, sh), np.where(low, dl, sl), np.where(low, dp, sp)
    with np.errstate(over="ignore"):          # the C code wraps modulo 2^64; so does numpy's uint64
        x = _mix(ah * np.uint64(0x9E3779B97F4A7C15) + al)
        y = _mix(bh * np.uint64(0x165667B19E3779F9) + bl)
        return _mix(x * np.uint64(0xC2B2AE3D27D4EB4F) + y * np.uint64(0xD6E8FEB86659FD93)
                    + ((ap << np.uint64(16)) | bp))


# Link types (LINKTYPE_*) the decoder understands; others go to the tshark engine.
LT_NULL, LT_ETHERNET, LT_RAW_OPENBSD, LT_RAW_BSD, LT_RAW, LT_LOOP = 0, 1, 12, 14, 101, 108
LT_SLL, LT_RAW4, LT_RAW6, LT_SLL2 = 113, 228, 229, 276
_RAW_TYPES = (LT_RAW, LT_RAW4, LT_RAW6, LT_RAW_OPENBSD, LT_RAW_BSD)
_KNOWN = (LT_NULL, LT_ETHERNET, LT_SLL, LT_SLL2, LT_LOOP) + _RAW_TYPES
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_AF_INET6 = (10, 24, 28, 30)          # Linux, NetBSD/OpenBSD, FreeBSD, macOS
_V6_EXT = (0, 43, 60)                 # hop-by-hop, routing, destination options
V4_MAPPED_BITS = np.uint64(0xFFFF00000000)
MAX_EXT_HEADERS = 8


def _ethertype_version(et: np.ndarray) -> np.ndarray:
    return np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0))


def _link(B, off, end, lt):
    """Where each packet's IP header starts and the IP version its link header announces
    (0: not IP); plus non-IP ethertypes and the indexes of unknown link types."""
    n = len(off)
    ver = np.zeros(n, np.int64)
    l3 = np.full(n, -1, np.int64)
    i = np.flatnonzero((lt == LT_ETHERNET) & (end - off >= 14))
    pos = off[i] + 12
    et = _uint(B, pos, 2, True)
    for _ in range(2):                                   # 802.1Q, then QinQ
        tagged = np.isin(et, _VLAN_TPIDS) & (pos + 6 <= end[i])
        pos = np.where(tagged, pos + 4, pos)
        et = np.where(tagged, _uint(B, pos, 2, True), et)
    ver[i] = _ethertype_version(et)
    l3[i] = pos + 2
    ethertypes = et[ver[i] == 0].astype(np.int64)
    for linktype, type_at, header in ((LT_SLL, 14, 16), (LT_SLL2, 0, 20)):
        i = np.flatnonzero((lt == linktype) & (end - off >= header))
        ver[i] = _ethertype_version(_uint(B, off[i] + type_at, 2, True))
        l3[i] = off[i] + header
    i = np.flatnonzero(np.isin(lt, _RAW_TYPES) & (end > off))
    nib = B[off[i]] >> 4
    ver[i] = np.where((nib == 4) | (nib == 6), nib, 0)
    l3[i] = off[i]
    i = np.flatnonzero(((lt == LT_NULL) | (lt == LT_LOOP)) & (end - off >= 4))
    # DLT_NULL stores the family in the writer's byte order; accept either.
    be = _uint(B, off[i], 4, True).astype(np.int64)
    le = _uint(B, off[i], 4, False).astype(np.int64)
    fam = np.where(lt[i] == LT_LOOP, be, np.where(le < 256, le, be))
    ver[i] = np.where(fam == 2, 4, np.where(np.isin(fam, _AF_INET6), 6, 0))
    l3[i] = off[i] + 4
    return ver, l3, ethertypes, np.flatnonzero(~np.isin(lt, _KNOWN)).astype(np.int64)


def decode_tcp(buf, data, caplen, linktype, frame, ts_ns):
    """Decode link, IP and TCP headers of every packet: (columns, skipped, ethertypes,
    unsupported), as hotloops.decode_tcp."""
    n = len(data)
    if not (len(caplen) == len(linktype) == len(frame) == len(ts_ns) == n):
        raise ValueError("decode_tcp: record columns of different lengths")
    B = np.frombuffer(memoryview(buf).cast("B"), np.uint8)
    if len(B) == 0:
        n = 0
    off = np.asarray(data, np.int64)[:n]
    end = np.minimum(off + np.asarray(caplen, np.int64)[:n], len(B))
    lt = np.asarray(linktype, np.int32)[:n]
    skipped = np.zeros(len(SKIP_NAMES), np.int64)
    ver, l3, ethertypes, unsupported = _link(B, off, end, lt)
    known = np.isin(lt, _KNOWN)
    skipped[_SKIP["not_ip"]] = int((known & (ver == 0)).sum())

    # IP: the version nibble must agree with what the link layer said.
    nib = np.zeros(n, np.int64)
    has = l3 >= 0
    nib[has] = B[np.minimum(l3[has], max(len(B) - 1, 0))] >> 4
    is4 = (ver == 4) & (l3 + 20 <= end) & (nib == 4)
    is6 = (ver == 6) & (l3 + 40 <= end) & (nib == 6)
    skipped[_SKIP["ip_short"]] = int(((ver != 0) & ~is4 & ~is6).sum())

    l4 = np.zeros(n, np.int64)
    l4_len = np.zeros(n, np.int64)
    proto = np.full(n, -1, np.int64)
    ttl = np.zeros(n, np.uint8)
    ipid = np.full(n, -1, np.int32)
    sh, sl = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    dh, dl = np.zeros(n, np.uint64), np.zeros(n, np.uint64)

    i = np.flatnonzero(is4)
    b = l3[i]
    ihl = (B[b] & 0x0F).astype(np.int64) * 4
    total = _uint(B, b + 2, 2, True).astype(np.int64)
    total = np.where(total == 0, end[i] - b, total)          # segmentation offload: trust the capture
    good = (ihl >= 20) & ((_uint(B, b + 6, 2, True) & np.uint64(0x1FFF)) == 0) & (total >= ihl)
    skipped[_SKIP["v4_fragment"]] = int((~good).sum())
    g, b, ihl, total = i[good], b[good], ihl[good], total[good]
    l4[g] = b + ihl
    l4_len[g] = total - ihl
    proto[g] = B[b + 9]
    ttl[g] = B[b + 8]
    ipid[g] = _uint(B, b + 4, 2, True).astype(np.int32)
    sl[g] = V4_MAPPED_BITS | _uint(B, b + 12, 4, True)
    dl[g] = V4_MAPPED_BITS | _uint(B, b + 16, 4, True)

    i = np.flatnonzero(is6)
    b = l3[i]
    payload = _uint(B, b + 4, 2, True).astype(np.int64)
    payload = np.where(payload == 0, end[i] - b - 40, payload)  # jumbogram / offload
    nh = B[b + 6].astype(np.int64)
    pos = b + 40
    walking = np.ones(len(i), bool)        # still inside the extension-header chain
    alive = np.ones(len(i), bool)          # not a non-first fragment
    for _ in range(MAX_EXT_HEADERS):
        walking &= pos + 8 <= end[i]
        is_ext, is_frag, is_ah = np.isin(nh, _V6_EXT), nh == 44, nh == 51
        walking &= is_ext | is_frag | is_ah
        if not walking.any():
            break
        w = np.flatnonzero(walking)
        p = pos[w]
        later = is_frag[w] & ((_uint(B, p + 2, 2, True) >> np.uint64(3)) != 0)
        alive[w[later]] = False
        walking[w[later]] = False
        w, p = w[~later], p[~later]
        second = B[p + 1].astype(np.int64)
        hdr_len = np.where(is_ext[w], (second + 1) * 8, np.where(is_ah[w], (second + 2) * 4, 8))
        nh[w] = B[p]
        pos[w] = p + hdr_len
    skipped[_SKIP["v6_fragment"]] = int((~alive).sum())
    g, b, a = i[alive], b[alive], alive
    l4[g] = pos[a]
    l4_len[g] = payload[a] - (pos[a] - b - 40)
    proto[g] = nh[a]
    ttl[g] = B[b + 7]
    sh[g], sl[g] = _uint(B, b + 8, 8, True), _uint(B, b + 16, 8, True)
    dh[g], dl[g] = _uint(B, b + 24, 8, True), _uint(B, b + 32, 8, True)

    # TCP
    is_tcp = proto == 6
    fits = is_tcp & (l4 + 20 <= end)
    skipped[_SKIP["tcp_short"]] = int((is_tcp & ~fits).sum())
    t = np.flatnonzero(fits)
    p = l4[t]
    hlen = (B[p + 12] >> 4).astype(np.int64) * 4
    sane = hlen >= 20
    skipped[_SKIP["tcp_offset"]] = int((~sane).sum())
    t, p, hlen = t[sane], p[sane], hlen[sane]
    cols = {
        "frame": np.asarray(frame, np.int64)[t], "ts_ns": np.asarray(ts_ns, np.int64)[t],
        "v6": ver[t] == 6,
        "src_hi": sh[t], "src_lo": sl[t], "dst_hi": dh[t], "dst_lo": dl[t],
        "sport": _uint(B, p, 2, True).astype(np.uint16), "dport": _uint(B, p + 2, 2, True).astype(np.uint16),
        "seq": _uint(B, p + 4, 4, True).astype(np.uint32), "ack": _uint(B, p + 8, 4, True).astype(np.uint32),
        "flags": (B[p + 13].astype(np.uint16) | ((B[p + 12].astype(np.uint16) & 1) << 8)).astype(np.uint16),
        "win": _uint(B, p + 14, 2, True).astype(np.uint16),
        "hlen": hlen.astype(np.uint8),
        "plen": np.maximum(l4_len[t] - hlen, 0).astype(np.int32),
        "ttl": ttl[t], "ipid": ipid[t],
    }
    return cols, skipped, ethertypes, unsupported
