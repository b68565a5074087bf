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

from .sources.framing import frame_code

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
_MPLS = (0x8847, 0x8848)
_AF_INET6 = (10, 24, 28, 30)          # Linux, NetBSD/OpenBSD, FreeBSD, macOS
_V6_EXT = (0, 43, 60)                 # hop-by-hop, routing, destination options
V4_MAPPED_BITS = np.uint64(0xFFFF00000000)
MAX_EXT_HEADERS = 8
MAX_VLAN_TAGS = 4
MAX_MPLS_LABELS = 8
MAX_TUNNELS = 4

# Tunnel kinds and the codes of tunnels not decoded: as hotloops.pyx (TK_*, UD_*).
TK_GRE, TK_ERSPAN1, TK_ERSPAN2, TK_ERSPAN3, TK_VXLAN, TK_GENEVE, TK_IP4, TK_IP6, TK_TEREDO, TK_ARUBA = range(1, 11)
TUNNEL_KINDS = ("", "gre", "erspan1", "erspan2", "erspan3", "vxlan", "geneve", "ip4", "ip6", "teredo", "aruba")
(UD_GRE_PROTO, UD_GRE_VERSION, UD_GRE_ROUTING, UD_GRE_SHORT, UD_ERSPAN_VERSION, UD_ERSPAN_FRAME,
 UD_GENEVE_VERSION, UD_GENEVE_PROTO, UD_WLAN, UD_DEPTH, UD_UDP_PORT) = range(1, 12)
_TUNNEL_PROTOS = (47, 17, 4, 41)      # GRE, UDP (VXLAN, Geneve, Teredo), IPv4 and IPv6 inside IP
_M64 = (1 << 64) - 1


def factorize_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) of 64-bit keys in order of first appearance: pandas' factorize."""
    import pandas as pd
    codes, uniques = pd.factorize(keys)
    return codes.astype(np.int64, copy=False), np.asarray(uniques, np.uint64)


def group_order(codes: np.ndarray, groups: int) -> np.ndarray:
    """np.argsort(codes, kind="stable") for codes in [0, groups)."""
    return np.argsort(codes, kind="stable")


def _ethertype_version(et: np.ndarray) -> np.ndarray:
    return np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0))


# --- one packet at a time: the tunnel headers (only packets that carry a tunnel come here) ---

def _be(M, p: int, width: int) -> int:
    return int.from_bytes(M[p:p + width], "big")


def _after_ethertype(M, et: int, p: int, end: int) -> tuple[int, int, int]:
    """(where the IP header starts, IP version or 0, last ethertype) after ethertype `et`
    whose payload starts at `p`: VLAN tags and MPLS labels stepped over, as hotloops."""
    rounds = 0
    while True:
        for _ in range(MAX_VLAN_TAGS):
            if et in _VLAN_TPIDS and p + 4 <= end:
                et = _be(M, p + 2, 2)
                p += 4
        if et not in _MPLS:
            return p, (4 if et == 0x0800 else 6 if et == 0x86DD else 0), et
        bottom = False
        for _ in range(MAX_MPLS_LABELS):
            if p + 4 > end:
                break
            bottom = (M[p + 2] & 1) != 0
            p += 4
            if bottom:
                break
        if not bottom or p >= end:
            return p, 0, et
        nib = M[p] >> 4
        if nib in (4, 6):
            return p, nib, et
        if nib != 0 or p + 18 > end or rounds == 1:
            return p, 0, et
        rounds += 1
        et = _be(M, p + 16, 2)          # control word (4), then Ethernet's addresses (12)
        p += 18


def _ethernet(M, p: int, end: int) -> tuple[int, int]:
    if p + 14 > end:
        return p, 0
    l3, ver, _ = _after_ethertype(M, _be(M, p + 12, 2), p + 14, end)
    return l3, ver


def _gre(M, p: int, end: int) -> tuple[int, int, int, int, int]:
    """(kind or 0, inner IP offset, its version, tunnel id, undecoded code), as hotloops._gre."""
    l3, ver, tid = p, 0, -1
    if p + 4 > end:
        return 0, l3, ver, tid, UD_GRE_SHORT << 32
    fl, proto = _be(M, p, 2), _be(M, p + 2, 2)
    if fl & 7:
        return 0, l3, ver, tid, (UD_GRE_VERSION << 32) | (fl & 7)
    if fl & 0x4000:
        return 0, l3, ver, tid, UD_GRE_ROUTING << 32
    q = p + 4 + (4 if fl & 0x8000 else 0)          # checksum
    if fl & 0x2000:                                 # key
        if q + 4 <= end:
            tid = _be(M, q, 4)
        q += 4
    q += 4 if fl & 0x1000 else 0                    # sequence number
    if q > end:
        return 0, l3, ver, tid, UD_GRE_SHORT << 32
    if proto in (0x0800, 0x86DD) + _MPLS:
        l3, ver, _ = _after_ethertype(M, proto, q, end)
        return TK_GRE, l3, ver, tid, 0
    if proto == 0x6558:                             # transparent Ethernet bridging (gretap)
        l3, ver = _ethernet(M, q, end)
        return TK_GRE, l3, ver, tid, 0
    if proto in (0x88BE, 0x22EB):
        tid = -1
        if proto == 0x88BE and not fl & 0x1000:
            kind = TK_ERSPAN1
        else:
            kind = TK_ERSPAN2 if proto == 0x88BE else TK_ERSPAN3
            hdr = 8 if kind == TK_ERSPAN2 else 12
            if q + hdr > end:
                return 0, l3, ver, tid, UD_GRE_SHORT << 32
            if M[q] >> 4 != (1 if kind == TK_ERSPAN2 else 2):
                return 0, l3, ver, tid, (UD_ERSPAN_VERSION << 32) | (M[q] >> 4)
            tid = _be(M, q + 2, 2) & 0x3FF                          # session id
            if kind == TK_ERSPAN3:
                if (M[q + 10] >> 2) & 0x1F:
                    return 0, l3, ver, tid, (UD_ERSPAN_FRAME << 32) | ((M[q + 10] >> 2) & 0x1F)
                hdr += 8 if M[q + 11] & 1 else 0                    # platform-specific subheader
            q += hdr
        l3, ver = _ethernet(M, q, end)
        return kind, l3, ver, tid, 0
    if 0x8200 <= proto <= 0x8300:                   # Aruba: an 802.11 data frame, LLC/SNAP
        tid, l3 = -1, q
        if q + 24 > end:
            return TK_ARUBA, l3, 0, tid, 0
        fc0, fc1 = M[q], M[q + 1]
        if (fc0 >> 2) & 3 != 2 or fc0 & 0x40:
            return TK_ARUBA, l3, 0, tid, 0
        if fc1 & 0x40:
            return 0, l3, 0, tid, (UD_WLAN << 32) | 1
        hdr = 24 + (6 if fc1 & 3 == 3 else 0)
        if fc0 & 0x80:
            if q + hdr + 2 <= end and M[q + hdr] & 0x80:
                return 0, l3, 0, tid, (UD_WLAN << 32) | 2
            hdr += 2 + (4 if fc1 & 0x80 else 0)
        q += hdr
        if q + 8 <= end and bytes(M[q:q + 6]) == b"\xaa\xaa\x03\x00\x00\x00":
            l3, ver, _ = _after_ethertype(M, _be(M, q + 6, 2), q + 8, end)
        return TK_ARUBA, l3, ver, tid, 0
    return 0, l3, ver, tid, (UD_GRE_PROTO << 32) | proto


def _udp_tunnel(M, p: int, end: int) -> tuple[int, int, int, int, int]:
    """VXLAN, Geneve or Teredo, as hotloops._udp_tunnel."""
    l3, ver, tid = p, 0, -1
    if p + 8 > end:
        return 0, l3, ver, tid, 0
    sport, dport, q = _be(M, p, 2), _be(M, p + 2, 2), p + 8
    if dport == 4754:                               # GRE in UDP (RFC 8086)
        return _gre(M, q, end)
    if dport == 4789:
        if q + 8 > end:
            return 0, l3, ver, tid, 0
        l3, ver = _ethernet(M, q + 8, end)
        return TK_VXLAN, l3, ver, _be(M, q + 4, 3), 0
    if dport == 6081:
        if q + 8 > end:
            return 0, l3, ver, tid, 0
        if M[q] >> 6:
            return 0, l3, ver, tid, (UD_GENEVE_VERSION << 32) | (M[q] >> 6)
        proto, tid = _be(M, q + 2, 2), _be(M, q + 4, 3)
        q += 8 + (M[q] & 0x3F) * 4                  # options
        if proto == 0x6558:
            l3, ver = _ethernet(M, q, end)
        elif proto in (0x0800, 0x86DD):
            l3, ver = q, (4 if proto == 0x0800 else 6)
        else:
            return 0, l3, ver, tid, (UD_GENEVE_PROTO << 32) | proto
        return TK_GENEVE, l3, ver, tid, 0
    if dport == 3544 or sport == 3544:
        for _ in range(2):                          # authentication, then origin indication
            if q + 2 <= end and M[q] == 0 and M[q + 1] == 1 and q + 4 <= end:
                q += 13 + M[q + 2] + M[q + 3]
            elif q + 2 <= end and M[q] == 0 and M[q + 1] == 0:
                q += 8
        if q + 40 > end or M[q] >> 4 != 6:
            return 0, l3, ver, tid, 0
        return TK_TEREDO, q, 6, -1, 0
    if dport in (2152, 5072, 4790, 6080):
        return 0, l3, ver, tid, (UD_UDP_PORT << 32) | dport
    if sport in (2152, 5072):
        return 0, l3, ver, tid, (UD_UDP_PORT << 32) | sport
    return 0, l3, ver, tid, 0


def _mix1(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    return x ^ (x >> 29)


def _tunnel_hash(key: int, kind: int, tid: int, sh: int, sl: int, dh: int, dl: int) -> int:
    """One tunnel level folded into the key, bit for bit as hotloops._tunnel_hash."""
    (ah, al), (bh, bl) = sorted(((sh, sl), (dh, dl)))
    x = _mix1((_mix1((ah * 0x9E3779B97F4A7C15 + al) & _M64) * 0xC2B2AE3D27D4EB4F
               + _mix1((bh * 0x165667B19E3779F9 + bl) & _M64)) & _M64)
    x = _mix1((x + (kind << 56) + (tid & _M64) * 0xD6E8FEB86659FD93 + key * 0x9E3779B97F4A7C15) & _M64)
    return x or 1


# --- whole columns: link layer, IP layer ---

def _link(B, M, off, end, lt):
    """Where each packet's IP header starts and the IP version its link header announces
    (0: not IP); plus non-IP ethertypes and the indexes of unknown link types."""
    n = len(off)
    ver = np.zeros(n, np.int64)
    l3 = np.full(n, -1, np.int64)
    i = np.flatnonzero((lt == LT_ETHERNET) & (end - off >= 14))
    p = off[i] + 14
    et = _uint(B, p - 2, 2, True)
    for _ in range(MAX_VLAN_TAGS):                       # 802.1Q, QinQ and deeper stacks
        tagged = np.isin(et, _VLAN_TPIDS) & (p + 4 <= end[i])
        p = np.where(tagged, p + 4, p)
        et = np.where(tagged, _uint(B, p - 2, 2, True), et)
    v = _ethertype_version(et)
    for k in np.flatnonzero(np.isin(et, _MPLS)):          # MPLS labels: a packet at a time
        p[k], v[k], et[k] = _after_ethertype(M, int(et[k]), int(p[k]), int(end[i[k]]))
    ver[i] = v
    l3[i] = p
    ethertypes = et[v == 0].astype(np.int64)
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


_IP_FIELDS = ("l4", "l4_len", "proto", "ttl", "ipid", "sh", "sl", "dh", "dl")


def _ip_layer(B, l3, end, ver):
    """The IP headers at `l3` (as hotloops._ip, a column at a time): (reason: -1 decoded, else
    the skip index; the header fields)."""
    m = len(l3)
    reason = np.full(m, -1, np.int64)
    f = {"l4": np.zeros(m, np.int64), "l4_len": np.zeros(m, np.int64), "proto": np.full(m, -1, np.int64),
         "ttl": np.zeros(m, np.int64), "ipid": np.full(m, -1, np.int64),
         "sh": np.zeros(m, np.uint64), "sl": np.zeros(m, np.uint64), "dh": np.zeros(m, np.uint64),
         "dl": np.zeros(m, np.uint64)}
    nib = np.zeros(m, np.int64)
    has = (l3 >= 0) & (l3 < len(B))
    nib[has] = B[l3[has]] >> 4
    # the version nibble must agree with what the link layer said
    is4 = (ver == 4) & (l3 + 20 <= end) & (nib == 4)
    is6 = (ver == 6) & (l3 + 40 <= end) & (nib == 6)
    reason[(ver != 0) & ~is4 & ~is6] = _SKIP["ip_short"]
    reason[ver == 0] = _SKIP["not_ip"]

    i = np.flatnonzero(is4)
    b = l3[i]
    ihl = (B[b] & 0x0F).astype(np.int64) * 4
    total = _uint(B, b + 2, 2, True).astype(np.int64)
    total = np.where(total == 0, end[i] - b, total)          # segmentation offload: trust the capture
    good = (ihl >= 20) & ((_uint(B, b + 6, 2, True) & np.uint64(0x1FFF)) == 0) & (total >= ihl)
    reason[i[~good]] = _SKIP["v4_fragment"]
    g, b, ihl, total = i[good], b[good], ihl[good], total[good]
    f["l4"][g] = b + ihl
    f["l4_len"][g] = total - ihl
    f["proto"][g] = B[b + 9]
    f["ttl"][g] = B[b + 8]
    f["ipid"][g] = _uint(B, b + 4, 2, True).astype(np.int64)
    f["sl"][g] = V4_MAPPED_BITS | _uint(B, b + 12, 4, True)
    f["dl"][g] = V4_MAPPED_BITS | _uint(B, b + 16, 4, True)

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
    reason[i[~alive]] = _SKIP["v6_fragment"]
    g, b, a = i[alive], b[alive], alive
    f["l4"][g] = pos[a]
    f["l4_len"][g] = payload[a] - (pos[a] - b - 40)
    f["proto"][g] = nh[a]
    f["ttl"][g] = B[b + 7]
    f["sh"][g], f["sl"][g] = _uint(B, b + 8, 8, True), _uint(B, b + 16, 8, True)
    f["dh"][g], f["dl"][g] = _uint(B, b + 24, 8, True), _uint(B, b + 32, 8, True)
    return reason, f


_TUN_COLUMNS = {"row": np.int64, "kind": np.uint8, "id": np.int64, "v6": np.bool_, "src_hi": np.uint64,
                "src_lo": np.uint64, "dst_hi": np.uint64, "dst_lo": np.uint64, "depth": np.uint8}


def _tunnels(B, M, end, ver, reason, f):
    """Follow the tunnels of the packets whose IP payload is one, a level at a time (their
    headers read a packet at a time; the IP headers inside a column at a time). Updates `ver`,
    `reason` and `f` in place; returns (key, depth, innermost tunnel columns, undecoded code)."""
    n = len(end)
    key, depth, code = np.zeros(n, np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    last = {"kind": np.zeros(n, np.uint8), "id": np.zeros(n, np.int64), "v6": np.zeros(n, bool),
            "src_hi": np.zeros(n, np.uint64), "src_lo": np.zeros(n, np.uint64),
            "dst_hi": np.zeros(n, np.uint64), "dst_lo": np.zeros(n, np.uint64)}
    todo = np.flatnonzero((reason < 0) & np.isin(f["proto"], _TUNNEL_PROTOS))
    while len(todo):
        went, inner_l3, inner_ver = [], [], []
        for i in todo.tolist():
            proto, l4, e = int(f["proto"][i]), int(f["l4"][i]), int(end[i])
            if proto == 47:
                kind, l3, v, tid, c = _gre(M, l4, e)
            elif proto == 17:
                kind, l3, v, tid, c = _udp_tunnel(M, l4, e)
            else:
                kind, l3, v, tid, c = (TK_IP4, l4, 4, -1, 0) if proto == 4 else (TK_IP6, l4, 6, -1, 0)
            if kind == 0:
                code[i] = c
                continue
            if depth[i] == MAX_TUNNELS:
                code[i] = UD_DEPTH << 32
                continue
            sh, sl, dh, dl = (int(f[k][i]) for k in ("sh", "sl", "dh", "dl"))
            key[i] = _tunnel_hash(int(key[i]), kind, tid, sh, sl, dh, dl)
            last["kind"][i], last["id"][i], last["v6"][i] = kind, tid, ver[i] == 6
            last["src_hi"][i], last["src_lo"][i], last["dst_hi"][i], last["dst_lo"][i] = sh, sl, dh, dl
            depth[i] += 1
            went.append(i)
            inner_l3.append(l3)
            inner_ver.append(v)
        went_a = np.array(went, np.int64)
        ver[went_a] = inner_ver
        r, inner = _ip_layer(B, np.array(inner_l3, np.int64), end[went_a], ver[went_a])
        reason[went_a] = r
        for k in _IP_FIELDS:
            f[k][went_a] = inner[k]
        todo = went_a[(r < 0) & np.isin(inner["proto"], _TUNNEL_PROTOS)]
    return key, depth, last, code


def _framing_column(B: np.ndarray, start: np.ndarray, stop: np.ndarray, plen: np.ndarray) -> np.ndarray:
    """The `app` column: sources/framing.frame_code of each segment's captured payload."""
    out = np.zeros(len(start), np.int32)
    for k in np.flatnonzero(stop > start).tolist():
        out[k] = frame_code(B[start[k]:stop[k]].tobytes(), int(plen[k]))
    return out


def decode_tcp(buf, data, caplen, linktype, frame, ts_ns):
    """Decode link, IP and TCP headers of every packet, and the tunnels around TCP: (columns,
    skipped, ethertypes, unsupported, tunnels, undecoded), as hotloops.decode_tcp."""
    n = len(data)
    if not (len(caplen) == len(linktype) == len(frame) == len(ts_ns) == n):
        raise ValueError("decode_tcp: record columns of different lengths")
    B = np.frombuffer(memoryview(buf).cast("B"), np.uint8)
    M = memoryview(B)                     # single bytes as Python ints (no uint8 wrap-around)
    if len(B) == 0:
        n = 0
    off = np.asarray(data, np.int64)[:n]
    end = np.minimum(off + np.asarray(caplen, np.int64)[:n], len(B))
    lt = np.asarray(linktype, np.int32)[:n]
    skipped = np.zeros(len(SKIP_NAMES), np.int64)
    ver, l3, ethertypes, unsupported = _link(B, M, off, end, lt)
    known = np.flatnonzero(np.isin(lt, _KNOWN))
    reason = np.full(n, -2, np.int64)                    # -2: an unknown link type, not counted
    f = {"l4": np.zeros(n, np.int64), "l4_len": np.zeros(n, np.int64), "proto": np.full(n, -1, np.int64),
         "ttl": np.zeros(n, np.int64), "ipid": np.full(n, -1, np.int64),
         "sh": np.zeros(n, np.uint64), "sl": np.zeros(n, np.uint64), "dh": np.zeros(n, np.uint64),
         "dl": np.zeros(n, np.uint64)}
    reason[known], outer = _ip_layer(B, l3[known], end[known], ver[known])
    for k in _IP_FIELDS:
        f[k][known] = outer[k]
    key, depth, last, code = _tunnels(B, M, end, ver, reason, f)
    counted = np.bincount(reason[reason >= 0], minlength=len(SKIP_NAMES))
    skipped[:] = counted[:len(SKIP_NAMES)]
    decoded = reason == -1
    undecoded = code[decoded & (f["proto"] != 6) & (code != 0)]

    # TCP
    l4 = f["l4"]
    is_tcp = decoded & (f["proto"] == 6)
    fits = is_tcp & (l4 + 20 <= end)
    skipped[_SKIP["tcp_short"]] += int((is_tcp & ~fits).sum())
    t = np.flatnonzero(fits)
    p = l4[t]
    hlen = (B[p + 12] >> 4).astype(np.int64) * 4
    sane = hlen >= 20
    skipped[_SKIP["tcp_offset"]] += int((~sane).sum())
    t, p, hlen = t[sane], p[sane], hlen[sane]
    cols = {
        "frame": np.asarray(frame, np.int64)[t], "ts_ns": np.asarray(ts_ns, np.int64)[t],
        "v6": ver[t] == 6,
        "src_hi": f["sh"][t], "src_lo": f["sl"][t], "dst_hi": f["dh"][t], "dst_lo": f["dl"][t],
        "sport": _uint(B, p, 2, True).astype(np.uint16), "dport": _uint(B, p + 2, 2, True).astype(np.uint16),
        "seq": _uint(B, p + 4, 4, True).astype(np.uint32), "ack": _uint(B, p + 8, 4, True).astype(np.uint32),
        "flags": (B[p + 13].astype(np.uint16) | ((B[p + 12].astype(np.uint16) & 1) << 8)).astype(np.uint16),
        "win": _uint(B, p + 14, 2, True).astype(np.uint16),
        "hlen": hlen.astype(np.uint8),
        "plen": np.maximum(f["l4_len"][t] - hlen, 0).astype(np.int32),
        "ttl": f["ttl"][t].astype(np.uint8), "ipid": f["ipid"][t].astype(np.int32),
        "tunnel": key[t],
    }
    cols["app"] = _framing_column(B, p + hlen, np.minimum(end[t], p + hlen + cols["plen"]), cols["plen"])
    rows = np.flatnonzero(depth[t] > 0)
    inner = t[rows]
    tun = {"row": rows.astype(np.int64), "depth": depth[inner].astype(np.uint8),
           **{k: v[inner] for k, v in last.items()}}
    tun = {k: tun[k].astype(dtype) for k, dtype in _TUN_COLUMNS.items()}
    return cols, skipped, ethertypes, unsupported, tun, undecoded.astype(np.int64)
