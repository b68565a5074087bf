"""Fast reader for pcapng: several sections and interfaces, per-interface link type and
timestamp resolution, Enhanced/Simple/obsolete Packet Blocks."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..arrays import distinct
from .diagnostics import Diagnostics
from .segments import RecordIndex
from .stream import ChunkBuffer
from ..loops import CORRUPT, SHB, walk_pcapng

IDB, PB, SPB, EPB = 1, 2, 3, 6
PACKET_BLOCKS = (PB, SPB, EPB)


def is_pcapng(head: bytes) -> bool:
    return head[:4] == b"\x0a\x0d\x0d\x0a"


MAX_NS = np.iinfo(np.int64).max        # 2262-04-11T23:47:16.854775807Z


@dataclass
class Interface:
    linktype: int
    snaplen: int
    resol_pow10: int | None = 6      # timestamps in 10^-n s ...
    resol_pow2: int | None = None    # ... or 2^-n s
    offset_s: int = 0

    def to_ns(self, ticks: np.ndarray) -> tuple[np.ndarray, int]:
        """Epoch nanoseconds of each timestamp, and how many lie beyond what 64-bit nanoseconds
        hold (after 2262-04-11; coarse units such as whole seconds reach that with large values).
        Those are shown as the last representable time rather than wrapped around to 1677-1738."""
        ticks = ticks.astype(np.uint64)
        offset_ns = max(-MAX_NS, min(self.offset_s * 1_000_000_000, MAX_NS))     # if_tsoffset
        room = max(0, MAX_NS - max(offset_ns, 0))          # what the ticks may add up to
        if self.resol_pow2 is not None:
            exact = ticks.astype(np.float64) * (1e9 / 2.0 ** self.resol_pow2)
            over = exact >= float(room) - 4096.0          # a double's step near 2^63 is 1,024
            ns = np.where(over, 0.0, exact).astype(np.int64)
        elif self.resol_pow10 <= 9:
            mult = 10 ** (9 - self.resol_pow10)
            over = ticks > np.uint64(room // mult)
            ns = np.where(over, np.uint64(0), ticks).astype(np.int64) * mult
        else:
            ns = (ticks // np.uint64(10 ** (self.resol_pow10 - 9))).astype(np.uint64)
            over = ns > np.uint64(room)
            ns = np.where(over, np.uint64(0), ns).astype(np.int64)
        ns = ns + offset_ns
        bad = int(np.count_nonzero(over))
        if bad:
            ns[over] = MAX_NS
        return ns, bad

    def unit(self) -> str:
        return f"2^-{self.resol_pow2} s" if self.resol_pow2 is not None else f"10^-{self.resol_pow10} s"


def _parse_idb(body: bytes, big: bool) -> Interface:
    e = ">" if big else "<"
    linktype, _, snaplen = struct.unpack(e + "HHI", body[:8])
    iface = Interface(linktype=linktype, snaplen=snaplen)
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack(e + "HH", body[pos:pos + 4])
        value = body[pos + 4:pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:          # if_tsresol
            v = value[0]
            if v & 0x80:
                iface.resol_pow10, iface.resol_pow2 = None, v & 0x7F
            else:
                iface.resol_pow10 = v
        elif code == 14 and length >= 8:       # if_tsoffset, seconds
            iface.offset_s = struct.unpack(e + "q", value[:8])[0]
        pos += 4 + ((length + 3) & ~3)
    return iface


@dataclass
class PcapngRecords(RecordIndex):
    """Records of a pcapng file, with where each interface is: `where[iface]` is its (section
    number from 1, id inside that section), as tshark's frame.section_number / frame.interface_id
    name it (tshark counts interfaces per section; `iface` counts them across the file)."""
    where: list[tuple[int, int]] = field(default_factory=list)


class _State:
    def __init__(self) -> None:
        self.big = False
        self.ifaces: list[Interface] = []
        self.section_base = 0       # global index of this section's interface 0
        self.sections = 0
        self.where: list[tuple[int, int]] = []      # PcapngRecords.where, shared by every chunk
        self.next_frame = 1
        self.seen_shb = False
        self.last_ts_ns = 0         # time of the last timed packet, for Simple Packet Blocks


def option(code: int, value: bytes) -> bytes:
    """One little-endian pcapng option, padded to 32 bits (code 0 with b"" ends a list)."""
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def block(kind: int, body: bytes) -> bytes:
    """One little-endian pcapng block: type, total length, body, total length again."""
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def read_pcapng(src: ChunkBuffer, diag: Diagnostics) -> Iterator[tuple[np.ndarray, RecordIndex]]:
    st = _State()
    file_off = 0                  # where the current view starts in the file
    for buf in src.views():
        offs, types, bigs, stop, status, st_big_after, fields = walk_pcapng(buf, 0, st.big)
        if len(offs):
            idx = _index_blocks(buf, offs, types, bigs, stop, fields, st, diag)
            if idx is not None and len(idx):
                yield buf, idx
        st.big = bool(st_big_after)
        if status == CORRUPT:
            diag.warn(f"corrupt block at byte {file_off + stop} (after frame {st.next_frame - 1}); stopped reading")
            diag.truncated = True
            return
        src.consume(stop)
        file_off += stop
    if src.leftover:
        diag.warn(f"truncated: block at byte {file_off} is incomplete ({src.leftover} bytes left, after frame {st.next_frame - 1})")
        diag.truncated = True


def _index_blocks(buf, offs, types, bigs, stop: int, fields, st: _State, diag: Diagnostics) -> RecordIndex | None:
    is_pkt = (types == EPB) | (types == SPB) | (types == PB)     # PACKET_BLOCKS (np.isin sorts: ~5 ms per 1 M)
    # Control blocks are rare: handle them in order in Python, remembering for each packet
    # block which section base applied when it was read.
    ctrl = np.flatnonzero(~is_pkt)
    block_end = np.append(offs[1:], stop)          # blocks are contiguous
    section_base = np.empty(len(offs), np.int64)
    prev = 0
    for i in ctrl:
        section_base[prev:i] = st.section_base
        prev = i
        t, off, end, big = int(types[i]), int(offs[i]), int(block_end[i]), bool(bigs[i])
        if t == SHB:
            st.section_base = len(st.ifaces)
            st.seen_shb = True
            st.sections += 1
        elif t == IDB:
            st.ifaces.append(_parse_idb(bytes(buf[off + 8:end - 4]), big))
            st.where.append((max(st.sections, 1), len(st.ifaces) - 1 - st.section_base))
    section_base[prev:] = st.section_base
    # a buffer of packet blocks only (all but a file's first): its arrays as they are, not copies
    pk = slice(None) if not len(ctrl) else np.flatnonzero(is_pkt)
    n = len(offs) if not len(ctrl) else len(pk)
    if n == 0:
        return None
    frames = np.arange(st.next_frame, st.next_frame + n, dtype=np.int64)
    st.next_frame += n
    diag.packets += n
    block_end = block_end[pk]
    local, ticks, caplen, data = (f[pk] for f in fields)
    types = types[pk]
    is_spb = types == SPB
    any_spb = bool(is_spb.any())
    iface = section_base[pk] + local
    ok = (iface < len(st.ifaces)) & (data + caplen <= block_end - 4) & (caplen >= 0)
    all_ok = bool(ok.all())
    if not all_ok:
        bad = int((~ok).sum())
        diag.skip("packet block references an undefined interface or overruns its block", bad)
        diag.warn(f"{bad} packet block(s) reference an undefined interface or overrun their block; skipped")
    linktype = np.full(n, -1, np.int32)
    ts_ns = np.zeros(n, np.int64)
    used = iface if all_ok else iface[ok]
    one_iface = len(used) and (used == used[0]).all()       # the common case: skip the sort
    for k in (used[:1] if one_iface else distinct(used)):
        itf = st.ifaces[int(k)]
        if one_iface and all_ok:                # every row: no mask to apply
            linktype[:] = itf.linktype
            ts_ns, beyond = itf.to_ns(ticks)
        else:
            sel = ok & (iface == k)
            linktype[sel] = itf.linktype
            ts_ns[sel], beyond = itf.to_ns(ticks[sel])
        if beyond:
            diag.warn(f"packets of interface {int(k)} have times after 2262-04-11 (its timestamps count {itf.unit()}): "
                      f"they are shown as 2262-04-11T23:47:16Z, where tshark shows the later date")
        if itf.snaplen and any_spb:
            sel_spb = ok & (iface == k) & is_spb
            caplen[sel_spb] = np.minimum(caplen[sel_spb], itf.snaplen)
    timed = ok & ~is_spb
    if any_spb:
        # Simple Packet Blocks carry no time: reuse the previous timed packet's, or the last
        # one of the previous buffer (0, the epoch, as Wireshark shows, before any).
        last_timed = np.maximum.accumulate(np.where(timed, np.arange(n), -1))
        ts_ns = np.where(last_timed >= 0, ts_ns[np.maximum(last_timed, 0)], st.last_ts_ns)
    if timed.any():
        st.last_ts_ns = int(ts_ns[np.flatnonzero(timed)[-1]])
    _stored_reasons(buf, offs[pk], block_end, data, caplen, bigs[pk], ok & (types == EPB), ts_ns)
    keep = slice(None) if all_ok else np.flatnonzero(ok)     # all of them: views, not copies
    return PcapngRecords(data=data[keep], caplen=caplen[keep], linktype=linktype[keep],
                         frame=frames[keep], ts_ns=ts_ns[keep], iface=iface[keep].astype(np.int32), where=st.where)


def _stored_reasons(buf, starts, ends, data, caplen, bigs, epb, ts_ns) -> None:
    """Kernel reasons a `live --write` file keeps as packet comments (kernel/stored.py). Only EPBs
    whose options start with a comment are looked at, and those one at a time: capture tools
    rarely write options at all, so the common file costs a few array operations per chunk."""
    opts_at = data + ((caplen + 3) & ~3)
    has = epb & (ends - 4 >= opts_at + 4)
    if not has.any():
        return
    at = np.where(has, opts_at, 0)
    lo, hi = buf[at].astype(np.int64), buf[at + 1].astype(np.int64)
    code = np.where(bigs.astype(bool), (lo << 8) | hi, lo | (hi << 8))
    from ..kernel.stored import first_comment, parse_comment, remember
    for i in np.flatnonzero(has & (code == 1)).tolist():
        start, end = int(starts[i]), int(ends[i])
        text = first_comment(bytes(buf[start:end]), int(opts_at[i]) - start, bool(bigs[i]))
        ev = parse_comment(text) if text else None
        if ev is not None:
            remember(int(ts_ns[i]), ev)
