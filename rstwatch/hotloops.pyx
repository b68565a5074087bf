# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Every per-packet loop rstwatch has, compiled to C by Cython when the package is installed.

Why compiled: a pcap/pcapng file is a chain of variable-length records (finding record N+1
needs the length of record N), so the walk cannot be vectorised, and a Python loop costs
~0.5 us per packet. Why Cython rather than a JIT: the module loads in about a millisecond,
while numba needed ~0.35 s per process to import and load its cached code, as long as
reading a million packets. Everything else in rstwatch is numpy over columns.
"""
import numpy as np

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# Status codes returned by the walkers.
cdef enum:
    C_NEED_MORE = 0   # stopped at an incomplete record at the end of the buffer (or exactly at the end)
    C_CORRUPT = 1     # a record header is impossible (absurd length, mismatched trailer)
NEED_MORE = C_NEED_MORE
CORRUPT = C_CORRUPT

MAX_CAPLEN = 262144          # Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD
MAX_BLOCK = 16 * 1024 * 1024 + 4096
SHB = 0x0A0D0D0A

cdef int64_t C_MAX_CAPLEN = MAX_CAPLEN
cdef int64_t C_MAX_BLOCK = MAX_BLOCK
cdef int64_t C_SHB = SHB


cdef inline int64_t _u32(const uint8_t* b, bint big) noexcept nogil:
    if big:
        return (<int64_t>b[0] << 24) | (<int64_t>b[1] << 16) | (<int64_t>b[2] << 8) | <int64_t>b[3]
    return (<int64_t>b[3] << 24) | (<int64_t>b[2] << 16) | (<int64_t>b[1] << 8) | <int64_t>b[0]


def walk_pcap(const uint8_t[::1] buf, Py_ssize_t start, bint big, int64_t tick_ns=1000):
    """Complete pcap records from `start`: returns (offsets of their headers, captured lengths,
    timestamps in ns, stop, status). `tick_ns` is 1000 for microsecond files, 1 for nanosecond."""
    cdef Py_ssize_t end = buf.shape[0]
    cdef Py_ssize_t n_max = max((end - start) // 16, 0)
    offs_arr = np.empty(n_max, np.int64)
    caplen_arr = np.empty(n_max, np.int64)
    ts_arr = np.empty(n_max, np.int64)
    cdef int64_t[::1] offs = offs_arr, caplens = caplen_arr, ts = ts_arr
    cdef Py_ssize_t n = 0, off = start
    cdef int64_t caplen
    cdef int status = C_NEED_MORE
    cdef const uint8_t* b
    if end > 0:
        b = &buf[0]
        with nogil:
            while off + 16 <= end:
                caplen = _u32(b + off + 8, big)
                if caplen > C_MAX_CAPLEN:
                    status = C_CORRUPT
                    break
                if off + 16 + caplen > end:
                    break
                offs[n] = off
                caplens[n] = caplen
                ts[n] = _u32(b + off, big) * 1000000000 + _u32(b + off + 4, big) * tick_ns
                n += 1
                off += 16 + caplen
    return offs_arr[:n], caplen_arr[:n], ts_arr[:n], off, status


cdef enum:
    BT_PB = 2        # obsolete Packet Block
    BT_SPB = 3       # Simple Packet Block
    BT_EPB = 6       # Enhanced Packet Block


cdef inline int64_t _u16(const uint8_t* b, bint big) noexcept nogil:
    if big:
        return (<int64_t>b[0] << 8) | <int64_t>b[1]
    return (<int64_t>b[1] << 8) | <int64_t>b[0]


def walk_pcapng(const uint8_t[::1] buf, Py_ssize_t start, bint big, bint with_fields=True):
    """Complete pcapng blocks from `start`.

    Returns (offsets, types, big_endian_flags, stop, status, big_at_stop, packet_fields). A
    Section Header Block sets the byte order of the blocks that follow it. `packet_fields` is
    (interface id within its section, timestamp ticks, captured length, offset of the packet
    data), one entry per block, read from Enhanced, Simple and obsolete Packet Blocks (0 for
    other blocks; a Simple Packet Block has no interface id or time), or None when not
    `with_fields` (a caller that only cuts the stream at block boundaries).
    """
    cdef Py_ssize_t end = buf.shape[0]
    cdef Py_ssize_t n_max = max((end - start) // 12, 0)
    offs_arr = np.empty(n_max, np.int64)
    types_arr = np.empty(n_max, np.int64)
    bigs_arr = np.empty(n_max, np.bool_)
    cdef int64_t[::1] offs = offs_arr, types = types_arr
    cdef uint8_t[::1] bigs = bigs_arr.view(np.uint8)
    cdef Py_ssize_t n = 0, off = start
    cdef int64_t btype, blen
    cdef int status = C_NEED_MORE
    cdef const uint8_t* b
    if end > 0:
        b = &buf[0]
        with nogil:
            while off + 12 <= end:
                btype = _u32(b + off, big)
                if btype == C_SHB:
                    # the byte-order magic 0x1A2B3C4D decides this section's endianness
                    if b[off + 8] == 0x1A and b[off + 9] == 0x2B and b[off + 10] == 0x3C and b[off + 11] == 0x4D:
                        big = True
                    elif b[off + 8] == 0x4D and b[off + 9] == 0x3C and b[off + 10] == 0x2B and b[off + 11] == 0x1A:
                        big = False
                    else:
                        status = C_CORRUPT
                        break
                blen = _u32(b + off + 4, big)
                if blen < 12 or blen > C_MAX_BLOCK or (blen & 3) != 0:
                    status = C_CORRUPT
                    break
                if off + blen > end:
                    break
                if _u32(b + off + blen - 4, big) != blen:
                    status = C_CORRUPT
                    break
                offs[n] = off
                types[n] = btype
                bigs[n] = big
                n += 1
                off += blen
    fields = None
    if with_fields:
        fields = _packet_fields(b if end > 0 else NULL, offs_arr[:n], types_arr[:n], bigs_arr[:n].view(np.uint8), off)
    return offs_arr[:n], types_arr[:n], bigs_arr[:n], off, status, big, fields


cdef tuple _packet_fields(const uint8_t* b, const int64_t[::1] offs, const int64_t[::1] types,
                          const uint8_t[::1] bigs_u8, int64_t stop):
    """Second pass over the blocks found, into arrays of exactly their number (the first pass
    can only guess an upper bound, and numpy backs big arrays with huge pages)."""
    cdef Py_ssize_t n = offs.shape[0], i
    # empty, each element written below: np.zeros' calloc made the kernel zero fresh pages first
    local_arr = np.empty(n, np.int64)
    ticks_arr = np.empty(n, np.uint64)
    caplen_arr = np.empty(n, np.int64)
    data_arr = np.empty(n, np.int64)
    cdef int64_t[::1] local = local_arr, caplen = caplen_arr, data = data_arr
    cdef uint64_t[::1] ticks = ticks_arr
    cdef int64_t off, blen, btype
    cdef bint big
    with nogil:
        for i in range(n):
            off = offs[i]
            blen = (offs[i + 1] if i + 1 < n else stop) - off
            btype = types[i]
            big = bigs_u8[i]
            data[i] = off + 28
            local[i] = 0
            ticks[i] = 0
            caplen[i] = 0
            if btype == BT_SPB:
                data[i] = off + 12
                # the packet's original length, bounded by the block (a negative result is skipped)
                caplen[i] = min(_u32(b + off + 8, big), blen - 16)
            elif (btype == BT_EPB or btype == BT_PB) and blen >= 28:
                local[i] = _u32(b + off + 8, big) if btype == BT_EPB else _u16(b + off + 8, big)
                ticks[i] = (<uint64_t>_u32(b + off + 12, big) << 32) | <uint64_t>_u32(b + off + 16, big)
                caplen[i] = _u32(b + off + 20, big)
    return local_arr, ticks_arr, caplen_arr, data_arr


cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCDULL
    x ^= x >> 29
    return x


def flow_hash_columns(const uint64_t[:] sh, const uint64_t[:] sl, const uint64_t[:] dh,
                      const uint64_t[:] dl, const uint16_t[:] sp, const uint16_t[:] dp):
    """Direction-independent 64-bit key of each 4-tuple: the endpoint that sorts lower is
    always hashed first, so both directions of a connection get the same key."""
    cdef Py_ssize_t n = sh.shape[0], i
    if not (sl.shape[0] == dh.shape[0] == dl.shape[0] == sp.shape[0] == dp.shape[0] == n):
        raise ValueError("flow_hash_columns: columns of different lengths")     # bounds are not checked below
    out_arr = np.empty(n, np.uint64)
    cdef uint64_t[::1] out = out_arr
    cdef uint64_t ah, al, bh, bl, ap, bp, x, y
    cdef bint low
    with nogil:
        for i in range(n):
            low = sh[i] < dh[i] or (sh[i] == dh[i] and (sl[i] < dl[i] or (sl[i] == dl[i] and sp[i] <= dp[i])))
            if low:
                ah, al, bh, bl, ap, bp = sh[i], sl[i], dh[i], dl[i], sp[i], dp[i]
            else:
                ah, al, bh, bl, ap, bp = dh[i], dl[i], sh[i], sl[i], dp[i], sp[i]
            x = _mix(ah * 0x9E3779B97F4A7C15ULL + al)
            y = _mix(bh * 0x165667B19E3779F9ULL + bl)
            out[i] = _mix(x * 0xC2B2AE3D27D4EB4FULL + y * 0xD6E8FEB86659FD93ULL + ((ap << 16) | bp))
    return out_arr


# The slot table of factorize_keys, kept between calls up to this many slots (16 MiB): the
# flow table is factorized several times a chunk, and a fresh table each time was fresh pages
# the kernel had to zero (pandas' factorize: ~18% of a reset-heavy read's page faults).
cdef Py_ssize_t KEEP_SLOTS = 1 << 22
cdef object _slots = None


def factorize_keys(const uint64_t[::1] keys):
    """(codes, uniques) of 64-bit keys, as pandas.factorize gives them: codes int64 numbering
    the distinct keys in order of first appearance, uniques in that order. Open addressing
    over a power-of-two table at most half full; the keys are hashes already, so a multiply
    and shift spreads them."""
    global _slots
    cdef Py_ssize_t n = keys.shape[0], i
    if n >= (<Py_ssize_t>1 << 31):
        raise ValueError("factorize_keys: more than 2**31 keys")
    cdef int bits = 4
    while (<Py_ssize_t>1 << bits) < 2 * n:
        bits += 1
    cdef Py_ssize_t cap = <Py_ssize_t>1 << bits
    # taken out while in use: another thread (dask's threaded scheduler) then makes its own
    table, _slots = _slots, None
    if table is None or table.shape[0] < cap:
        table = np.empty(cap, np.int32)
    cdef int32_t[::1] slot = table
    codes_arr = np.empty(n, np.int64)
    uniq_arr = np.empty(n, np.uint64)
    cdef int64_t[::1] codes = codes_arr
    cdef uint64_t[::1] uniq = uniq_arr
    cdef uint64_t k, h, mask = <uint64_t>cap - 1
    cdef int32_t s, found = 0
    cdef int shift = 64 - bits
    with nogil:
        for i in range(cap):
            slot[i] = -1
        for i in range(n):
            k = keys[i]
            h = (k * 0x9E3779B97F4A7C15ULL) >> shift
            while True:
                s = slot[h]
                if s < 0:
                    slot[h] = found
                    uniq[found] = k
                    codes[i] = found
                    found += 1
                    break
                if uniq[s] == k:
                    codes[i] = s
                    break
                h = (h + 1) & mask
    if cap <= KEEP_SLOTS:
        _slots = table
    return codes_arr, uniq_arr[:found].copy()



def group_order(const int64_t[::1] codes, Py_ssize_t groups):
    """np.argsort(codes, kind="stable") for codes in [0, groups): a counting sort, O(n)."""
    cdef Py_ssize_t n = codes.shape[0], i, g
    cdef int64_t c
    for i in range(n):
        if codes[i] < 0 or codes[i] >= groups:
            raise ValueError("group_order: a code outside [0, groups)")
    start_arr = np.zeros(groups + 1, np.int64)
    order_arr = np.empty(n, np.int64)
    cdef int64_t[::1] start = start_arr
    cdef int64_t[::1] order = order_arr
    with nogil:
        for i in range(n):
            start[codes[i] + 1] += 1
        for g in range(groups):
            start[g + 1] += start[g]
        for i in range(n):
            c = codes[i]
            order[start[c]] = i
            start[c] += 1
    return order_arr

# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# Link, IP and TCP decoding: one pass over the packets a walker found.


# Link types (LINKTYPE_*) the decoder understands; others go to the tshark engine.
cdef enum:
    LT_NULL = 0
    LT_ETHERNET = 1
    LT_RAW_OPENBSD = 12
    LT_RAW_BSD = 14
    LT_RAW = 101
    LT_LOOP = 108
    LT_SLL = 113
    LT_RAW4 = 228
    LT_RAW6 = 229
    LT_SLL2 = 276

# Why a frame is not a TCP segment: indexes into the `skipped` counts decode_tcp returns.
cdef enum:
    SKIP_NOT_IP = 0            # ARP, other ethertypes, frames too short for their link header
    SKIP_IP_SHORT = 1          # IP header cut short, or the version nibble disagrees with the link
    SKIP_V4_FRAGMENT = 2       # IPv4 non-first fragment or bad header length
    SKIP_V6_FRAGMENT = 3       # IPv6 non-first fragment
    SKIP_TCP_SHORT = 4         # TCP header cut short by the snap length
    SKIP_TCP_OFFSET = 5        # TCP data offset below 5 (malformed)
    N_SKIP = 6

SKIP_NAMES = ("not_ip", "ip_short", "v4_fragment", "v6_fragment", "tcp_short", "tcp_offset")

# Tunnel kinds: the `kind` of decode_tcp's tunnel table (names: TUNNEL_KINDS).
cdef enum:
    TK_GRE = 1            # GRE carrying IP, Ethernet (gretap) or MPLS
    TK_ERSPAN1 = 2        # GRE 0x88BE without a sequence number: the mirrored frame follows GRE
    TK_ERSPAN2 = 3        # GRE 0x88BE with a sequence number, 8-byte ERSPAN header
    TK_ERSPAN3 = 4        # GRE 0x22EB, 12-byte header (+ 8-byte platform subheader)
    TK_VXLAN = 5          # UDP 4789
    TK_GENEVE = 6         # UDP 6081
    TK_IP4 = 7            # IP protocol 4: IPv4 inside IPv4 (ipip) or IPv6 (4in6)
    TK_IP6 = 8            # IP protocol 41: IPv6 inside IPv4 (6in4, sit) or IPv6 (ip6ip6)
    TK_TEREDO = 9         # UDP 3544: IPv6 inside UDP
    TK_ARUBA = 10         # GRE 0x8200-0x8300: Aruba access points' 802.11 frames

TUNNEL_KINDS = ("", "gre", "erspan1", "erspan2", "erspan3", "vxlan", "geneve", "ip4", "ip6", "teredo", "aruba")

# Tunnels seen but not decoded: code = (what << 32) | value, named by sources/tunnels.py.
cdef enum:
    UD_GRE_PROTO = 1          # value: the GRE protocol type
    UD_GRE_VERSION = 2        # value: the GRE version (1: PPTP's enhanced GRE)
    UD_GRE_ROUTING = 3        # RFC 1701 source routing
    UD_GRE_SHORT = 4          # GRE or ERSPAN header cut short
    UD_ERSPAN_VERSION = 5     # value: the ERSPAN version field
    UD_ERSPAN_FRAME = 6       # value: ERSPAN III frame type other than Ethernet
    UD_GENEVE_VERSION = 7
    UD_GENEVE_PROTO = 8       # value: the Geneve protocol type
    UD_WLAN = 9               # value: 1 protected 802.11 frame, 2 A-MSDU
    UD_DEPTH = 10             # tunnels nested deeper than MAX_TUNNELS
    UD_UDP_PORT = 11          # value: the UDP port of a tunnel not decoded (GTP-U, AYIYA, VXLAN-GPE, GUE)

cdef uint64_t V4_MAPPED_BITS = 0xFFFF00000000ULL
cdef int MAX_EXT_HEADERS = 8
cdef int MAX_VLAN_TAGS = 4          # 802.1Q, QinQ and deeper stacks
cdef int MAX_MPLS_LABELS = 8
MAX_TUNNELS = 4
cdef int C_MAX_TUNNELS = MAX_TUNNELS


cdef inline uint64_t _be(const uint8_t* b, int width) noexcept nogil:
    cdef uint64_t v = 0
    cdef int k
    for k in range(width):
        v = (v << 8) | b[k]
    return v


cdef inline int _ethertype_version(uint64_t et) noexcept nogil:
    if et == 0x0800:
        return 4
    if et == 0x86DD:
        return 6
    return 0


cdef inline bint _is_ext_header(int64_t nh) noexcept nogil:
    return nh == 0 or nh == 43 or nh == 60     # hop-by-hop, routing, destination options


cdef inline bint _is_vlan(uint64_t et) noexcept nogil:
    return et == 0x8100 or et == 0x88A8 or et == 0x9100


cdef inline int64_t _after_ethertype(const uint8_t* B, uint64_t et, int64_t p, int64_t end,
                                     int* ver, uint64_t* last_et) noexcept nogil:
    """Where the IP header starts, given an ethertype `et` whose payload starts at `p`: VLAN tags
    and an MPLS label stack are stepped over (under MPLS the first nibble tells IPv4 or IPv6; 0
    is a pseudowire control word and an Ethernet frame). *ver: 4, 6, or 0 when not IP."""
    cdef int k, rounds = 0, nib
    cdef bint bottom
    while True:
        for k in range(MAX_VLAN_TAGS):
            if _is_vlan(et) and p + 4 <= end:
                et = _be(B + p + 2, 2)
                p += 4
        last_et[0] = et
        if et != 0x8847 and et != 0x8848:
            ver[0] = _ethertype_version(et)
            return p
        bottom = False
        for k in range(MAX_MPLS_LABELS):
            if p + 4 > end:
                break
            bottom = (B[p + 2] & 1) != 0
            p += 4
            if bottom:
                break
        ver[0] = 0
        if not bottom or p >= end:
            return p
        nib = B[p] >> 4
        if nib == 4 or nib == 6:
            ver[0] = nib
            return p
        if nib != 0 or p + 18 > end or rounds == 1:
            return p
        rounds += 1
        et = _be(B + p + 16, 2)          # control word (4), then Ethernet's addresses (12)
        p += 18


cdef inline int64_t _ethernet(const uint8_t* B, int64_t p, int64_t end, int* ver) noexcept nogil:
    """The IP header inside the Ethernet frame at `p` (*ver 0 when there is none)."""
    cdef uint64_t et
    if p + 14 > end:
        ver[0] = 0
        return p
    return _after_ethertype(B, _be(B + p + 12, 2), p + 14, end, ver, &et)


ctypedef struct IpHeader:
    int64_t l4
    int64_t l4_len
    int proto
    int ttl
    int ipid
    uint64_t sh, sl, dh, dl


cdef inline int _ip(const uint8_t* B, int64_t b, int64_t end, int ver, IpHeader* h) noexcept nogil:
    """Decode the IP header at `b` into *h: -1, or the SKIP_* reason it is not decodable."""
    cdef int64_t ihl, total, payload, nh, pos, hdr_len
    cdef int k
    cdef bint is_ext, is_frag, is_ah
    if ver == 0:
        return SKIP_NOT_IP
    # the version nibble must agree with what the link layer said
    if not ((ver == 4 and b + 20 <= end and (B[b] >> 4) == 4) or
            (ver == 6 and b + 40 <= end and (B[b] >> 4) == 6)):
        return SKIP_IP_SHORT
    if ver == 4:
        ihl = (B[b] & 0x0F) * 4
        total = <int64_t>_be(B + b + 2, 2)
        if total == 0:            # TCP segmentation offload captures: trust the capture
            total = end - b
        if ihl < 20 or (_be(B + b + 6, 2) & 0x1FFF) != 0 or total < ihl:
            return SKIP_V4_FRAGMENT
        h.l4 = b + ihl
        h.l4_len = total - ihl
        h.proto = B[b + 9]
        h.ttl = B[b + 8]
        h.ipid = <int>_be(B + b + 4, 2)
        h.sh = 0
        h.dh = 0
        h.sl = V4_MAPPED_BITS | _be(B + b + 12, 4)
        h.dl = V4_MAPPED_BITS | _be(B + b + 16, 4)
        return -1
    payload = <int64_t>_be(B + b + 4, 2)
    if payload == 0:          # jumbogram / offload
        payload = end - b - 40
    nh = B[b + 6]
    pos = b + 40
    for k in range(MAX_EXT_HEADERS):     # walk the extension-header chain
        if pos + 8 > end:
            break
        is_ext = _is_ext_header(nh)
        is_frag = nh == 44
        is_ah = nh == 51
        if not (is_ext or is_frag or is_ah):
            break
        if is_frag and (_be(B + pos + 2, 2) >> 3) != 0:
            return SKIP_V6_FRAGMENT
        hdr_len = (B[pos + 1] + 1) * 8 if is_ext else ((B[pos + 1] + 2) * 4 if is_ah else 8)
        nh = B[pos]
        pos += hdr_len
    h.l4 = pos
    h.l4_len = payload - (pos - b - 40)
    h.proto = <int>nh
    h.ttl = B[b + 7]
    h.ipid = -1
    h.sh = _be(B + b + 8, 8)
    h.sl = _be(B + b + 16, 8)
    h.dh = _be(B + b + 24, 8)
    h.dl = _be(B + b + 32, 8)
    return -1


cdef inline int _gre(const uint8_t* B, int64_t p, int64_t end, int64_t* l3, int* ver, int64_t* tid,
                     int64_t* code) noexcept nogil:
    """GRE at `p` (and ERSPAN, Aruba 802.11 under it): the tunnel kind, or 0 with *code set."""
    cdef uint64_t fl, proto, et
    cdef int64_t q, hdr
    cdef int kind = TK_GRE, fc0, fc1
    if p + 4 > end:
        code[0] = <int64_t>UD_GRE_SHORT << 32
        return 0
    fl = _be(B + p, 2)
    proto = _be(B + p + 2, 2)
    if fl & 7:
        code[0] = (<int64_t>UD_GRE_VERSION << 32) | <int64_t>(fl & 7)
        return 0
    if fl & 0x4000:
        code[0] = <int64_t>UD_GRE_ROUTING << 32
        return 0
    q = p + 4 + (4 if fl & 0x8000 else 0)          # checksum
    if fl & 0x2000:                                 # key
        if q + 4 <= end:
            tid[0] = <int64_t>_be(B + q, 4)
        q += 4
    q += 4 if fl & 0x1000 else 0                    # sequence number
    if q > end:
        code[0] = <int64_t>UD_GRE_SHORT << 32
        return 0
    if proto == 0x0800 or proto == 0x86DD or proto == 0x8847 or proto == 0x8848:
        l3[0] = _after_ethertype(B, proto, q, end, ver, &et)
        return TK_GRE
    if proto == 0x6558:                             # transparent Ethernet bridging (gretap)
        l3[0] = _ethernet(B, q, end, ver)
        return TK_GRE
    if proto == 0x88BE or proto == 0x22EB:
        tid[0] = -1
        if proto == 0x88BE and not (fl & 0x1000):
            kind = TK_ERSPAN1
        else:
            kind = TK_ERSPAN2 if proto == 0x88BE else TK_ERSPAN3
            hdr = 8 if kind == TK_ERSPAN2 else 12
            if q + hdr > end:
                code[0] = <int64_t>UD_GRE_SHORT << 32
                return 0
            if (B[q] >> 4) != (1 if kind == TK_ERSPAN2 else 2):
                code[0] = (<int64_t>UD_ERSPAN_VERSION << 32) | <int64_t>(B[q] >> 4)
                return 0
            tid[0] = <int64_t>(_be(B + q + 2, 2) & 0x3FF)        # session id
            if kind == TK_ERSPAN3:
                if (B[q + 10] >> 2) & 0x1F:
                    code[0] = (<int64_t>UD_ERSPAN_FRAME << 32) | <int64_t>((B[q + 10] >> 2) & 0x1F)
                    return 0
                hdr += 8 if B[q + 11] & 1 else 0                # platform-specific subheader
            q += hdr
        l3[0] = _ethernet(B, q, end, ver)
        return kind
    if 0x8200 <= proto <= 0x8300:
        # 802.11 data frame: 24-byte header, + address 4 (to and from DS), + QoS control,
        # + HT control (order bit on a QoS frame); then LLC/SNAP and an ethertype
        tid[0] = -1
        ver[0] = 0
        l3[0] = q
        if q + 24 > end:
            return TK_ARUBA
        fc0 = B[q]
        fc1 = B[q + 1]
        if (fc0 >> 2) & 3 != 2 or fc0 & 0x40:       # not data, or data without a body
            return TK_ARUBA
        if fc1 & 0x40:
            code[0] = (<int64_t>UD_WLAN << 32) | 1
            return 0
        hdr = 24 + (6 if fc1 & 3 == 3 else 0)
        if fc0 & 0x80:                              # QoS data
            if q + hdr + 2 <= end and B[q + hdr] & 0x80:
                code[0] = (<int64_t>UD_WLAN << 32) | 2
                return 0
            hdr += 2 + (4 if fc1 & 0x80 else 0)
        q += hdr
        if (q + 8 <= end and B[q] == 0xAA and B[q + 1] == 0xAA and B[q + 2] == 3 and B[q + 3] == 0
                and B[q + 4] == 0 and B[q + 5] == 0):
            l3[0] = _after_ethertype(B, _be(B + q + 6, 2), q + 8, end, ver, &et)
        return TK_ARUBA
    code[0] = (<int64_t>UD_GRE_PROTO << 32) | <int64_t>proto
    return 0


cdef inline int _udp_tunnel(const uint8_t* B, int64_t p, int64_t end, int64_t* l3, int* ver, int64_t* tid,
                            int64_t* code) noexcept nogil:
    """VXLAN, Geneve or Teredo in the UDP datagram at `p`: the tunnel kind, or 0."""
    cdef uint64_t sport, dport, proto
    cdef int64_t q
    cdef int k
    if p + 8 > end:
        return 0
    sport = _be(B + p, 2)
    dport = _be(B + p + 2, 2)
    q = p + 8
    if dport == 4754:                               # GRE in UDP (RFC 8086)
        return _gre(B, q, end, l3, ver, tid, code)
    if dport == 4789:
        if q + 8 > end:
            return 0
        tid[0] = <int64_t>_be(B + q + 4, 3)
        l3[0] = _ethernet(B, q + 8, end, ver)
        return TK_VXLAN
    if dport == 6081:
        if q + 8 > end:
            return 0
        if B[q] >> 6:
            code[0] = (<int64_t>UD_GENEVE_VERSION << 32) | <int64_t>(B[q] >> 6)
            return 0
        proto = _be(B + q + 2, 2)
        tid[0] = <int64_t>_be(B + q + 4, 3)
        q += 8 + (B[q] & 0x3F) * 4                  # options
        if proto == 0x6558:
            l3[0] = _ethernet(B, q, end, ver)
        elif proto == 0x0800 or proto == 0x86DD:
            l3[0] = q
            ver[0] = _ethertype_version(proto)
        else:
            code[0] = (<int64_t>UD_GENEVE_PROTO << 32) | <int64_t>proto
            return 0
        return TK_GENEVE
    if dport == 3544 or sport == 3544:
        for k in range(2):                          # authentication, then origin indication
            if q + 2 <= end and B[q] == 0 and B[q + 1] == 1 and q + 4 <= end:
                q += 13 + B[q + 2] + B[q + 3]
            elif q + 2 <= end and B[q] == 0 and B[q + 1] == 0:
                q += 8
        if q + 40 > end or (B[q] >> 4) != 6:
            return 0                                # a bubble or not Teredo: plain UDP
        tid[0] = -1
        l3[0] = q
        ver[0] = 6
        return TK_TEREDO
    if dport == 2152 or dport == 5072 or dport == 4790 or dport == 6080:
        code[0] = (<int64_t>UD_UDP_PORT << 32) | <int64_t>dport
    elif sport == 2152 or sport == 5072:
        code[0] = (<int64_t>UD_UDP_PORT << 32) | <int64_t>sport
    return 0


cdef inline uint64_t _tunnel_hash(uint64_t key, int kind, int64_t tid, IpHeader* h) noexcept nogil:
    """Fold one tunnel level into the key: the same both ways through the tunnel (outer
    endpoints in sorted order), never 0."""
    cdef uint64_t ah = h.sh, al = h.sl, bh = h.dh, bl = h.dl, x
    if bh < ah or (bh == ah and bl < al):
        ah, al, bh, bl = h.dh, h.dl, h.sh, h.sl
    x = _mix(_mix(ah * 0x9E3779B97F4A7C15ULL + al) * 0xC2B2AE3D27D4EB4FULL
                           + _mix(bh * 0x165667B19E3779F9ULL + bl))
    x = _mix(x + (<uint64_t>kind << 56) + <uint64_t>tid * 0xD6E8FEB86659FD93ULL + key * 0x9E3779B97F4A7C15ULL)
    return x if x != 0 else 1


# --- application framing of a segment's first payload bytes: sources/framing.py's frame_code in C
# (the codes and why are documented there; tests/test_framing.py checks both agree)
cdef enum:
    FR_REQUEST = 1
    FR_REPLY = 2
    FR_ERROR_REPLY = 3
    FR_TLS_ALERT = 4
    FR_TLS_HANDSHAKE = 5
    FR_TLS_APP_DATA = 6
    FR_LAST_CHUNK = 8
    FR_LENGTH_SHIFT = 4
cdef int64_t FR_MAX_LENGTH = (1 << 27) - 1


cdef inline bint _is_digit(uint8_t c) noexcept nogil:
    return 48 <= c <= 57


cdef inline uint8_t _lower(uint8_t c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint _starts(const uint8_t* b, int64_t n, const char* word) noexcept nogil:
    cdef int64_t k = 0
    while word[k] != 0:
        if k >= n or b[k] != <uint8_t>word[k]:
            return False
        k += 1
    return True


cdef inline bint _name_is(const uint8_t* b, int64_t n, const char* lower_name) noexcept nogil:
    """The header name b[:n] is lower_name, ASCII case aside."""
    cdef int64_t k = 0
    while lower_name[k] != 0:
        if k >= n or _lower(b[k]) != <uint8_t>lower_name[k]:
            return False
        k += 1
    return k == n


cdef inline int64_t _find_crlf(const uint8_t* b, int64_t start, int64_t n) noexcept nogil:
    cdef int64_t k
    for k in range(start, n - 1):
        if b[k] == 13 and b[k + 1] == 10:
            return k
    return -1


cdef int64_t _message_length(const uint8_t* b, int64_t n, int kind, bint no_body) noexcept nogil:
    cdef int64_t end = -1, k, pos, start, line_end, colon, v0, v1, body = -2, head, total
    cdef bint chunked = False
    for k in range(0, n - 3):
        if b[k] == 13 and b[k + 1] == 10 and b[k + 2] == 13 and b[k + 3] == 10:
            end = k
            break
    if end < 0:
        return 0
    head = end + 4
    pos = _find_crlf(b, 0, n)
    while pos < end:
        start = pos + 2
        line_end = _find_crlf(b, start, n)
        pos = line_end
        colon = -1
        for k in range(start, line_end):
            if b[k] == 58:
                colon = k
                break
        if colon < 0:
            continue
        if body == -2 and _name_is(b + start, colon - start, b"content-length"):
            v0, v1 = colon + 1, line_end
            while v0 < v1 and (b[v0] == 32 or b[v0] == 9):
                v0 += 1
            while v1 > v0 and (b[v1 - 1] == 32 or b[v1 - 1] == 9):
                v1 -= 1
            if v1 - v0 < 1 or v1 - v0 > 9:
                body = -1
            else:
                body = 0
                for k in range(v0, v1):
                    if not _is_digit(b[k]):
                        body = -1
                        break
                    body = body * 10 + (b[k] - 48)
        elif _name_is(b + start, colon - start, b"transfer-encoding"):
            chunked = True
    if chunked or body == -1:
        return 0
    if no_body:
        total = head
    elif body >= 0:
        total = head + body
    elif kind == FR_REQUEST:
        total = head
    else:
        return 0
    return total if total <= FR_MAX_LENGTH else 0


cdef int32_t _framing(const uint8_t* b, int64_t n, int64_t plen) noexcept nogil:
    """frame_code of the n captured payload bytes at b (plen on the wire)."""
    cdef int32_t code = 0
    cdef int kind, status
    cdef bint no_body = False
    if n <= 0:
        return 0
    if n == plen and n >= 5 and b[n - 5] == 48 and b[n - 4] == 13 and b[n - 3] == 10 and b[n - 2] == 13 \
            and b[n - 1] == 10 and (n == 5 or (n >= 7 and b[n - 7] == 13 and b[n - 6] == 10)):
        code = FR_LAST_CHUNK
    if n >= 5 and b[1] == 3 and b[2] <= 4 and 20 <= b[0] <= 23:    # a TLS record header: its content type
        if b[0] == 21:
            return code | FR_TLS_ALERT
        return code | (FR_TLS_APP_DATA if b[0] == 23 else FR_TLS_HANDSHAKE)
    if (n >= 12 and _starts(b, n, b"HTTP/1.") and (b[7] == 48 or b[7] == 49) and b[8] == 32
            and 49 <= b[9] <= 53 and _is_digit(b[10]) and _is_digit(b[11])):
        status = (b[9] - 48) * 100 + (b[10] - 48) * 10 + (b[11] - 48)
        kind = FR_REPLY if status < 400 else FR_ERROR_REPLY
        no_body = status < 200 or status == 204 or status == 304
    elif (_starts(b, n, b"GET ") or _starts(b, n, b"HEAD ") or _starts(b, n, b"POST ") or _starts(b, n, b"PUT ")
          or _starts(b, n, b"DELETE ") or _starts(b, n, b"OPTIONS ") or _starts(b, n, b"PATCH ")
          or _starts(b, n, b"CONNECT ") or _starts(b, n, b"TRACE ")):
        kind = FR_REQUEST
    else:
        return code
    return code | kind | <int32_t>(_message_length(b, n, kind, no_body) << FR_LENGTH_SHIFT)


def decode_tcp(const uint8_t[::1] buf, const int64_t[::1] data, const int64_t[::1] caplen,
               const int32_t[::1] linktype, const int64_t[::1] frame, const int64_t[::1] ts_ns):
    """Decode link, IP and TCP headers of every packet (Ethernet with VLAN tags and MPLS labels,
    Linux cooked v1/v2, raw IP, BSD loopback; IPv4, IPv6 with its extension-header chain), and
    the tunnels TCP comes in (GRE, ERSPAN I/II/III, VXLAN, Geneve, IP-in-IP, Teredo, Aruba GRE;
    up to MAX_TUNNELS nested): the innermost TCP segment is what is decoded.

    Returns (columns, skipped, ethertypes, unsupported, tunnels, undecoded): the Segments columns
    of the TCP segments in packet order (`tunnel`: a key of the tunnels around the segment, 0
    for none); frames not decoded per reason (in SKIP_NAMES order); the ethertype of every
    Ethernet frame that was neither IPv4 nor IPv6; indexes of packets with an unknown link
    type; one row per tunnelled segment (`row` in the columns, the innermost tunnel's `kind`,
    `id` (VNI, GRE key, ERSPAN session; -1 none), outer addresses, `depth`); the code of every
    packet in a tunnel that is not decoded (UD_*).
    """
    cdef Py_ssize_t n = data.shape[0], blen = buf.shape[0]
    if not (caplen.shape[0] == linktype.shape[0] == frame.shape[0] == ts_ns.shape[0] == n):
        raise ValueError("decode_tcp: record columns of different lengths")     # bounds are not checked below
    cols = {
        "frame": np.empty(n, np.int64), "ts_ns": np.empty(n, np.int64), "v6": np.empty(n, np.bool_),
        "src_hi": np.empty(n, np.uint64), "src_lo": np.empty(n, np.uint64),
        "dst_hi": np.empty(n, np.uint64), "dst_lo": np.empty(n, np.uint64),
        "sport": np.empty(n, np.uint16), "dport": np.empty(n, np.uint16),
        "seq": np.empty(n, np.uint32), "ack": np.empty(n, np.uint32),
        "flags": np.empty(n, np.uint16), "win": np.empty(n, np.uint16),
        "hlen": np.empty(n, np.uint8), "plen": np.empty(n, np.int32),
        "ttl": np.empty(n, np.uint8), "ipid": np.empty(n, np.int32),
        "tunnel": np.empty(n, np.uint64), "app": np.empty(n, np.int32),
    }
    cdef int64_t[::1] o_frame = cols["frame"], o_ts = cols["ts_ns"]
    cdef uint8_t[::1] o_v6 = cols["v6"].view(np.uint8)
    cdef uint64_t[::1] o_sh = cols["src_hi"], o_sl = cols["src_lo"], o_dh = cols["dst_hi"], o_dl = cols["dst_lo"]
    cdef uint16_t[::1] o_sport = cols["sport"], o_dport = cols["dport"], o_flags = cols["flags"], o_win = cols["win"]
    cdef uint32_t[::1] o_seq = cols["seq"], o_ack = cols["ack"]
    cdef uint8_t[::1] o_hlen = cols["hlen"], o_ttl = cols["ttl"]
    cdef int32_t[::1] o_plen = cols["plen"], o_ipid = cols["ipid"], o_app = cols["app"]
    cdef uint64_t[::1] o_tunnel = cols["tunnel"]
    tun = {"row": np.empty(n, np.int64), "kind": np.empty(n, np.uint8), "id": np.empty(n, np.int64),
           "v6": np.empty(n, np.bool_), "src_hi": np.empty(n, np.uint64), "src_lo": np.empty(n, np.uint64),
           "dst_hi": np.empty(n, np.uint64), "dst_lo": np.empty(n, np.uint64), "depth": np.empty(n, np.uint8)}
    cdef int64_t[::1] u_row = tun["row"], u_id = tun["id"]
    cdef uint8_t[::1] u_kind = tun["kind"], u_v6 = tun["v6"].view(np.uint8), u_depth = tun["depth"]
    cdef uint64_t[::1] u_sh = tun["src_hi"], u_sl = tun["src_lo"], u_dh = tun["dst_hi"], u_dl = tun["dst_lo"]
    skipped_arr = np.zeros(N_SKIP, np.int64)
    ethertypes_arr = np.empty(n, np.int64)
    unsupported_arr = np.empty(n, np.int64)
    undecoded_arr = np.empty(n, np.int64)
    cdef int64_t[::1] skipped = skipped_arr, ethertypes = ethertypes_arr, unsupported = unsupported_arr
    cdef int64_t[::1] undecoded = undecoded_arr
    cdef Py_ssize_t i, t = 0, n_et = 0, n_un = 0, n_tun = 0, n_ud = 0
    cdef int64_t off, end, l3, l4, hlen, fam, le, be, tid, code, inner_l3, pay, pay_len
    cdef int32_t lt
    cdef int ver, inner_ver, r, kind, depth, last_kind = 0, last_v6 = 0
    cdef uint64_t et, key
    cdef int64_t last_id = 0
    cdef IpHeader h, outer
    cdef const uint8_t* B
    if blen == 0:
        n = 0
    else:
        B = &buf[0]
    with nogil:
        for i in range(n):
            off = data[i]
            end = min(off + caplen[i], <int64_t>blen)
            lt = linktype[i]
            ver = 0
            l3 = -1
            # --- link layer: where the IP header starts and which version the link says it is
            if lt == LT_ETHERNET:
                if end - off >= 14:
                    l3 = _after_ethertype(B, _be(B + off + 12, 2), off + 14, end, &ver, &et)
                    if ver == 0:
                        ethertypes[n_et] = <int64_t>et
                        n_et += 1
            elif lt == LT_SLL:
                if end - off >= 16:
                    ver = _ethertype_version(_be(B + off + 14, 2))
                    l3 = off + 16
            elif lt == LT_SLL2:
                if end - off >= 20:
                    ver = _ethertype_version(_be(B + off, 2))
                    l3 = off + 20
            elif lt == LT_RAW or lt == LT_RAW4 or lt == LT_RAW6 or lt == LT_RAW_OPENBSD or lt == LT_RAW_BSD:
                if end > off:
                    ver = B[off] >> 4
                    if ver != 4 and ver != 6:
                        ver = 0
                    l3 = off
            elif lt == LT_NULL or lt == LT_LOOP:
                if end - off >= 4:
                    # DLT_NULL stores the family in the writer's byte order; accept either.
                    be = <int64_t>_be(B + off, 4)
                    le = <int64_t>_u32(B + off, False)
                    fam = be if lt == LT_LOOP else (le if le < 256 else be)
                    ver = 4 if fam == 2 else (6 if (fam == 10 or fam == 24 or fam == 28 or fam == 30) else 0)
                    l3 = off + 4
            else:
                unsupported[n_un] = i
                n_un += 1
                continue
            # --- IP, then the tunnels around the TCP segment, one level at a time
            r = _ip(B, l3, end, ver, &h)
            depth = 0
            key = 0
            code = 0
            while r < 0 and h.proto != 6:
                kind = 0
                tid = -1
                inner_ver = 0
                inner_l3 = h.l4
                if h.proto == 47:
                    kind = _gre(B, h.l4, end, &inner_l3, &inner_ver, &tid, &code)
                elif h.proto == 17:
                    kind = _udp_tunnel(B, h.l4, end, &inner_l3, &inner_ver, &tid, &code)
                elif h.proto == 4 or h.proto == 41:
                    kind = TK_IP4 if h.proto == 4 else TK_IP6
                    inner_ver = 4 if h.proto == 4 else 6
                if kind == 0:
                    break
                if depth == C_MAX_TUNNELS:
                    code = <int64_t>UD_DEPTH << 32
                    break
                key = _tunnel_hash(key, kind, tid, &h)
                outer = h
                last_kind = kind
                last_id = tid
                last_v6 = ver == 6
                depth += 1
                ver = inner_ver
                r = _ip(B, inner_l3, end, ver, &h)
            if r >= 0:
                skipped[r] += 1
                continue
            if h.proto != 6:
                if code != 0:
                    undecoded[n_ud] = code
                    n_ud += 1
                continue                  # not TCP: counted by no reason, as before
            # --- TCP
            l4 = h.l4
            if l4 + 20 > end:
                skipped[SKIP_TCP_SHORT] += 1
                continue
            hlen = (B[l4 + 12] >> 4) * 4
            if hlen < 20:
                skipped[SKIP_TCP_OFFSET] += 1
                continue
            o_frame[t] = frame[i]
            o_ts[t] = ts_ns[i]
            o_v6[t] = ver == 6
            o_sh[t] = h.sh
            o_sl[t] = h.sl
            o_dh[t] = h.dh
            o_dl[t] = h.dl
            o_sport[t] = <uint16_t>_be(B + l4, 2)
            o_dport[t] = <uint16_t>_be(B + l4 + 2, 2)
            o_seq[t] = <uint32_t>_be(B + l4 + 4, 4)
            o_ack[t] = <uint32_t>_be(B + l4 + 8, 4)
            o_flags[t] = B[l4 + 13] | ((B[l4 + 12] & 1) << 8)
            o_win[t] = <uint16_t>_be(B + l4 + 14, 2)
            o_hlen[t] = <uint8_t>hlen
            o_plen[t] = <int32_t>max(h.l4_len - hlen, 0)
            pay = l4 + hlen                 # the payload bytes the capture kept: framing only
            pay_len = min(end, pay + o_plen[t]) - pay
            o_app[t] = _framing(B + pay, pay_len, o_plen[t]) if pay_len > 0 else 0
            o_ttl[t] = <uint8_t>h.ttl
            o_ipid[t] = h.ipid
            o_tunnel[t] = key
            if depth:
                u_row[n_tun] = t
                u_kind[n_tun] = <uint8_t>last_kind
                u_id[n_tun] = last_id
                u_v6[n_tun] = last_v6
                u_sh[n_tun] = outer.sh
                u_sl[n_tun] = outer.sl
                u_dh[n_tun] = outer.dh
                u_dl[n_tun] = outer.dl
                u_depth[n_tun] = <uint8_t>depth
                n_tun += 1
            t += 1
    cols = {name: column[:t] for name, column in cols.items()}
    tun = {name: column[:n_tun].copy() for name, column in tun.items()}
    return cols, skipped_arr, ethertypes_arr[:n_et], unsupported_arr[:n_un], tun, undecoded_arr[:n_ud].copy()
