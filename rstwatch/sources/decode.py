"""Vectorised link, IP and TCP decoding of the packets a walker found.

Each step works on arrays of offsets: no Python object per packet. Frames that are not
TCP/IP are counted by reason; link types this module does not know are returned so the
caller can hand those frames to the tshark engine.
"""
from __future__ import annotations

import numpy as np

from .diagnostics import Diagnostics
from .gather import be16, be32, be64, u8, uint
from .segments import V4_MAPPED, RecordIndex, Segments

ETHERNET, NULL, RAW_OPENBSD, RAW_BSD, RAW, LOOP, SLL, RAW4, RAW6, SLL2 = 1, 0, 12, 14, 101, 108, 113, 228, 229, 276
SUPPORTED_LINKTYPES = {ETHERNET, NULL, RAW_OPENBSD, RAW_BSD, RAW, LOOP, SLL, RAW4, RAW6, SLL2}
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
AF_INET6_VALUES = (10, 24, 28, 30)       # Linux, NetBSD/OpenBSD, FreeBSD, macOS
IPV6_EXT = (0, 43, 60)                   # hop-by-hop, routing, destination options
IPV6_FRAG, IPV6_AH, TCP = 44, 51, 6
MAX_EXT_HEADERS = 8


def decode(buf: np.ndarray, rec: RecordIndex, diag: Diagnostics) -> tuple[Segments, np.ndarray]:
    """Return (TCP segments, frames whose link type is unsupported)."""
    off, end = rec.data, rec.data + rec.caplen
    n = len(off)
    l3 = np.full(n, -1, np.int64)
    ver = np.zeros(n, np.int8)          # 4, 6, or 0 = not IP
    lt = rec.linktype

    unsupported = ~np.isin(lt, list(SUPPORTED_LINKTYPES))
    _ethernet(buf, off, end, lt == ETHERNET, l3, ver, diag)
    _cooked(buf, off, end, lt == SLL, l3, ver, type_at=14, header=16)
    _cooked(buf, off, end, lt == SLL2, l3, ver, type_at=0, header=20)
    _raw(buf, off, end, np.isin(lt, [RAW, RAW4, RAW6, RAW_OPENBSD, RAW_BSD]), l3, ver)
    _null(buf, off, end, (lt == NULL) | (lt == LOOP), lt, l3, ver)

    diag.skip("not IP (ARP, other ethertypes, short frames)", int(((ver == 0) & ~unsupported).sum()))
    seg = _ip_tcp(buf, rec, l3, ver, end, diag)
    return seg, rec.frame[unsupported]


def _ethertype_to_ver(et: np.ndarray) -> np.ndarray:
    return np.where(et == ETH_IPV4, 4, np.where(et == ETH_IPV6, 6, 0)).astype(np.int8)


def _ethernet(buf, off, end, sel, l3, ver, diag: Diagnostics) -> None:
    i = np.flatnonzero(sel & (end - off >= 14))
    if not len(i):
        return
    pos = off[i] + 12
    et = be16(buf, pos).astype(np.int64)
    for _ in range(2):                       # 802.1Q, then QinQ
        tagged = np.isin(et, VLAN_TPIDS) & (pos + 6 <= end[i])
        pos = np.where(tagged, pos + 4, pos)
        et = np.where(tagged, be16(buf, pos).astype(np.int64), et)
    v = _ethertype_to_ver(et)
    other = et[v == 0]
    if len(other):
        for code, count in zip(*np.unique(other, return_counts=True)):
            if code >= 0x0600 and code not in (0x0806, 0x88CC, 0x8035):  # ARP, LLDP, RARP are plainly not TCP
                diag.skip(f"ethertype 0x{int(code):04x} not decoded", int(count))
    l3[i] = pos + 2
    ver[i] = v


def _cooked(buf, off, end, sel, l3, ver, type_at: int, header: int) -> None:
    i = np.flatnonzero(sel & (end - off >= header))
    if len(i):
        ver[i] = _ethertype_to_ver(be16(buf, off[i] + type_at).astype(np.int64))
        l3[i] = off[i] + header


def _raw(buf, off, end, sel, l3, ver) -> None:
    i = np.flatnonzero(sel & (end > off))
    if len(i):
        nib = u8(buf, off[i]) >> 4
        ver[i] = np.where(nib == 4, 4, np.where(nib == 6, 6, 0))
        l3[i] = off[i]


def _null(buf, off, end, sel, lt, l3, ver) -> None:
    i = np.flatnonzero(sel & (end - off >= 4))
    if not len(i):
        return
    # DLT_NULL stores the family in the writer's byte order; accept either.
    le = uint(buf, off[i], 4, False).astype(np.int64)
    be = uint(buf, off[i], 4, True).astype(np.int64)
    fam = np.where(lt[i] == LOOP, be, np.where(le < 256, le, be))
    ver[i] = np.where(fam == 2, 4, np.where(np.isin(fam, AF_INET6_VALUES), 6, 0))
    l3[i] = off[i] + 4


def _ip_tcp(buf, rec: RecordIndex, l3, ver, end, diag: Diagnostics) -> Segments:
    is4 = (ver == 4) & (l3 + 20 <= end)
    is6 = (ver == 6) & (l3 + 40 <= end)
    # The version nibble must agree with what the link layer said.
    nib = u8(buf, np.maximum(l3, 0)) >> 4
    is4 &= nib == 4
    is6 &= nib == 6
    diag.skip("IP header cut short or version mismatch", int(((ver > 0) & ~is4 & ~is6).sum()))

    n = len(l3)
    l4 = np.full(n, -1, np.int64)
    l4_len = np.zeros(n, np.int64)
    proto = np.full(n, -1, np.int64)
    ttl = np.zeros(n, np.uint8)
    ipid = np.full(n, -1, np.int32)
    src_hi = np.zeros(n, np.uint64); src_lo = np.zeros(n, np.uint64)
    dst_hi = np.zeros(n, np.uint64); dst_lo = np.zeros(n, np.uint64)

    i = np.flatnonzero(is4)
    if len(i):
        b = l3[i]
        ihl = (u8(buf, b) & 0x0F).astype(np.int64) * 4
        total = be16(buf, b + 2).astype(np.int64)
        frag_off = be16(buf, b + 6) & 0x1FFF
        # total length 0 happens with TCP segmentation offload captures: trust the capture.
        total = np.where(total == 0, end[i] - b, total)
        good = (ihl >= 20) & (frag_off == 0) & (total >= ihl)
        diag.skip("IPv4 non-first fragment or bad header length", int((~good).sum()))
        g = i[good]
        bg = l3[g]
        l4[g] = bg + ihl[good]
        l4_len[g] = total[good] - ihl[good]
        proto[g] = u8(buf, bg + 9)
        ttl[g] = u8(buf, bg + 8)
        ipid[g] = be16(buf, bg + 4)
        src_hi[g] = 0; dst_hi[g] = 0
        src_lo[g] = V4_MAPPED | be32(buf, bg + 12).astype(np.uint64)
        dst_lo[g] = V4_MAPPED | be32(buf, bg + 16).astype(np.uint64)

    i = np.flatnonzero(is6)
    if len(i):
        b = l3[i]
        payload = be16(buf, b + 4).astype(np.int64)
        payload = np.where(payload == 0, end[i] - b - 40, payload)   # jumbogram / offload
        nh = u8(buf, b + 6).astype(np.int64)
        pos = b + 40
        alive = np.ones(len(i), bool)
        for _ in range(MAX_EXT_HEADERS):     # walk the extension-header chain
            ext = alive & np.isin(nh, IPV6_EXT) & (pos + 8 <= end[i])
            frag = alive & (nh == IPV6_FRAG) & (pos + 8 <= end[i])
            ah = alive & (nh == IPV6_AH) & (pos + 8 <= end[i])
            if not (ext.any() or frag.any() or ah.any()):
                break
            hdr_len = np.where(ext, (u8(buf, pos + 1).astype(np.int64) + 1) * 8,
                               np.where(ah, (u8(buf, pos + 1).astype(np.int64) + 2) * 4, 8))
            later_fragment = frag & ((be16(buf, pos + 2) >> 3) != 0)
            alive &= ~later_fragment
            step = ext | frag | ah
            nh = np.where(step, u8(buf, pos).astype(np.int64), nh)
            pos = np.where(step, pos + hdr_len, pos)
        diag.skip("IPv6 non-first fragment", int((~alive).sum()))
        g = i[alive]
        a = alive
        l4[g] = pos[a]
        l4_len[g] = payload[a] - (pos[a] - b[a] - 40)
        proto[g] = nh[a]
        ttl[g] = u8(buf, b[a] + 7)
        src_hi[g] = be64(buf, b[a] + 8); src_lo[g] = be64(buf, b[a] + 16)
        dst_hi[g] = be64(buf, b[a] + 24); dst_lo[g] = be64(buf, b[a] + 32)

    is_tcp = proto == TCP
    fits = is_tcp & (l4 + 20 <= end)
    diag.skip("TCP header cut short by the snap length", int((is_tcp & ~fits).sum()))
    t = np.flatnonzero(fits)
    p = l4[t]
    hlen = (u8(buf, p + 12) >> 4).astype(np.int64) * 4
    sane = hlen >= 20
    diag.skip("TCP data offset below 5 (malformed)", int((~sane).sum()))
    if (~sane).any():
        diag.warn(f"{int((~sane).sum())} TCP segment(s) with data offset < 5 skipped (malformed)")
    t, p, hlen = t[sane], p[sane], hlen[sane]
    diag.tcp_segments += len(t)
    flags = (u8(buf, p + 13).astype(np.uint16)) | ((u8(buf, p + 12).astype(np.uint16) & 1) << 8)
    return Segments({
        "frame": rec.frame[t],
        "ts_ns": rec.ts_ns[t],
        "v6": ver[t] == 6,
        "src_hi": src_hi[t], "src_lo": src_lo[t], "dst_hi": dst_hi[t], "dst_lo": dst_lo[t],
        "sport": be16(buf, p), "dport": be16(buf, p + 2),
        "seq": be32(buf, p + 4), "ack": be32(buf, p + 8),
        "flags": flags, "win": be16(buf, p + 14),
        "hlen": hlen.astype(np.uint8),
        "plen": np.maximum(l4_len[t] - hlen, 0).astype(np.int32),
        "ttl": ttl[t], "ipid": ipid[t],
    })
