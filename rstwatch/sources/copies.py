"""One segment seen on several interfaces is one segment (`any` on a router, a bridge, a node).

A capture on Linux's `any` device sees a forwarded packet as it comes in on one interface and
again as it leaves by another: the same IP and TCP header (only the TTL / hop limit and the IP
checksum change), microseconds apart. Kept twice, every reset counts twice and each copy looks
like a follow-up of the first. Here the later copies are dropped before any tracking, and for
each reset the interfaces that saw it are remembered, for the `interfaces` field of its finding.

Which interface a packet was seen on: the interface index of a Linux cooked v2 header (SLL2,
what `rstwatch live any` asks dumpcap for), else the packet type of a cooked v1 header (in /
out: enough to tell copies apart, not to name them), else the pcapng interface (`-i a -i b`).
Copies on the same interface are never merged: that is a retransmission or a capture artefact,
not a forwarded copy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from .segments import RST, RecordIndex, Segments

if TYPE_CHECKING:       # findings tables are made elsewhere; reading a capture needs no pandas
    import pandas as pd

COPY_WINDOW_NS = 5_000_000       # copies of one forwarded segment: microseconds apart, even on a busy host
MAX_REMEMBERED = 100_000         # resets whose interfaces wait for their finding
LT_SLL, LT_SLL2 = 113, 276
# A segment's identity: every header field a router leaves alone (not ttl).
IDENTITY = ("v6", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "seq", "ack", "flags", "win",
            "hlen", "plen", "ipid", "tunnel")
_SLL2_TAG, _SLL_TAG = np.uint64(1 << 63), np.uint64(1 << 62)     # bits 32-61: the pcapng interface


def _identity(seg: Segments) -> np.ndarray:
    h = np.full(len(seg), 0xCBF29CE484222325, np.uint64)
    prime = np.uint64(0x100000001B3)
    for name in IDENTITY:
        h = (h ^ seg[name].astype(np.uint64)) * prime
        h ^= h >> np.uint64(29)
    return h


def _one_interface(rec: RecordIndex) -> bool:
    lt = rec.linktype
    return not ((lt == LT_SLL) | (lt == LT_SLL2)).any() and not (rec.iface != rec.iface[0]).any()


def seen_on(buf: np.ndarray, rec: RecordIndex, seg: Segments) -> np.ndarray:
    """The interface key of each segment: (pcapng interface << 32) | SLL2 index or SLL packet type,
    tagged by which of the two it is."""
    at = np.searchsorted(rec.frame, seg["frame"])
    key = rec.iface[at].astype(np.uint64) << np.uint64(32)
    lt, off = rec.linktype[at], rec.data[at]
    for linktype, field, width, tag in ((LT_SLL2, 4, 4, _SLL2_TAG), (LT_SLL, 0, 2, _SLL_TAG)):
        i = np.flatnonzero(lt == linktype)
        if len(i):
            value = np.zeros(len(i), np.uint64)
            for b in range(width):                   # big-endian field in the cooked header
                value = (value << np.uint64(8)) | buf[off[i] + field + b].astype(np.uint64)
            key[i] |= tag | value
    return key


class CopyFilter:
    """Drops the later copies of each segment, batch after batch (a copy may come in the next
    batch); `names(frame)` gives the interfaces that saw the reset kept at that frame."""

    def __init__(self, name: Callable[[int], str | None] | None = None, remember: bool = True) -> None:
        self.name = name or default_name
        self.remember = remember                     # False: copies dropped, interfaces not kept (read)
        self.copies = 0
        self._recent = (np.zeros(0, np.uint64),) * 2 + (np.zeros(0, np.int64),) * 3   # ident, key, ts, frame, flags
        self._keys: dict[int, list[int]] = {}        # reset frame -> interface keys, in order seen
        self._named = False

    def apply(self, buf: np.ndarray, rec: RecordIndex, seg: Segments) -> Segments:
        if not len(seg):
            return seg
        if not len(self._recent[0]) and _one_interface(rec):
            return seg                                 # the common capture: nothing can be a copy
        key = seen_on(buf, rec, seg)
        many = bool((key != key[0]).any()) or bool(key[0] & _SLL2_TAG)
        if not many and not len(self._recent[0]):
            return seg                                 # one interface: nothing can be a copy
        # names exist for SLL2 indexes and for several pcapng interfaces, not for cooked v1's in/out
        self._named |= bool((key & _SLL2_TAG).any()) or bool((key >> np.uint64(32) != key[0] >> np.uint64(32)).any())
        ident, ts, frame = _identity(seg), seg["ts_ns"], seg["frame"]
        old_i, old_k, old_t, old_f, old_fl = self._recent
        I, K = np.concatenate([old_i, ident]), np.concatenate([old_k, key])
        T, F = np.concatenate([old_t, ts]), np.concatenate([old_f, frame])
        FL = np.concatenate([old_fl, seg["flags"].astype(np.int64)])
        order = np.lexsort((T, I))
        Is, Ts, Ks = I[order], T[order], K[order]
        start = np.ones(len(order), bool)
        start[1:] = (Is[1:] != Is[:-1]) | (Ts[1:] - Ts[:-1] > COPY_WINDOW_NS)
        head = np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
        copy_sorted = ~start & (Ks != Ks[head])
        copy = np.zeros(len(order), bool)
        copy[order] = copy_sorted
        if self.remember:
            self._remember(order >= len(old_i), head, copy_sorted, Ks, F[order], FL[order])
        drop = copy[len(old_i):]
        kept = seg if not drop.any() else seg.take(np.flatnonzero(~drop))
        self.copies += int(drop.sum())
        # what a copy in the next batch could still match: the last window's kept segments
        keep_old = ~copy & (T >= T.max() - COPY_WINDOW_NS)
        self._recent = (I[keep_old], K[keep_old], T[keep_old], F[keep_old], FL[keep_old])
        return kept

    def _remember(self, new, head, copy_sorted, Ks, Fs, FLs) -> None:
        """Interface keys of each reset: its own (the first copy's), then its later copies'."""
        rst = new & ((FLs & RST) != 0)
        for pos in np.flatnonzero(rst).tolist():
            h = int(head[pos]) if copy_sorted[pos] else pos
            seen = self._keys.setdefault(int(Fs[h]), [int(Ks[h])])
            if int(Ks[pos]) not in seen:
                seen.append(int(Ks[pos]))
        if len(self._keys) > MAX_REMEMBERED:
            for frame in sorted(self._keys)[: len(self._keys) - MAX_REMEMBERED // 2]:
                del self._keys[frame]

    def names(self, frame: int) -> list[str] | None:
        """The interfaces that saw the reset at `frame` (None where they cannot be named)."""
        keys = self._keys.get(int(frame))
        if not keys or not self._named:
            return None
        names = [self.name(k) for k in keys]
        return None if any(n is None for n in names) else names

    def annotate(self, df: pd.DataFrame) -> pd.DataFrame:
        """`interfaces` on each finding whose reset was seen on named interfaces; each reset's
        entry is then forgotten (its finding is out)."""
        if not self._named or not len(df) or "frame" not in df.columns:
            return df
        import pandas as pd
        frames = df["frame"].tolist()
        out = df.copy()
        out["interfaces"] = pd.Series([self.names(f) for f in frames], index=out.index, dtype=object)
        for f in frames:
            self._keys.pop(int(f), None)
        return out


def default_name(key: int) -> str | None:
    """A file's view: SLL2 interface indexes, pcapng interface numbers; cooked v1 cannot be named."""
    if key & int(_SLL2_TAG):
        return f"ifindex {key & 0xFFFFFFFF}"
    if key & int(_SLL_TAG):
        return None
    return f"interface {(key >> 32) & 0x3FFFFFFF}"
