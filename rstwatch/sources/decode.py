"""Link, IP and TCP decoding of the packets a walker found.

The per-packet work is one compiled pass (hotloops.decode_tcp); this module turns its counts
into the diagnostics a user reads. Frames that are not TCP/IP are counted by reason; frames of
link types the fast reader does not know are returned so the caller can hand them to the
tshark engine.
"""
from __future__ import annotations

import numpy as np

from ..loops import SKIP_NAMES, decode_tcp
from .diagnostics import Diagnostics
from .segments import RecordIndex, Segments
from .tunnels import register, undecoded_reason

# What each skip counter means to a user (keys: hotloops.SKIP_NAMES).
SKIP_TEXT = {
    "not_ip": "not IP (ARP, other ethertypes, short frames)",
    "ip_short": "IP header cut short or version mismatch",
    "v4_fragment": "IPv4 non-first fragment or bad header length",
    "v6_fragment": "IPv6 non-first fragment",
    "tcp_short": "TCP header cut short by the snap length",
    "tcp_offset": "TCP data offset below 5 (malformed)",
}
PLAINLY_NOT_TCP = (0x0806, 0x88CC, 0x8035)     # ARP, LLDP, RARP: not worth a line of their own


def _compact(cols: dict[str, np.ndarray], allocated: int) -> dict[str, np.ndarray]:
    """The compiled pass fills columns sized for every packet and returns views of the TCP
    rows; a view keeps its whole base alive. When most packets were not TCP (a capture of
    zero-length records, ARP, UDP), copy the few rows out so the chunk's arrays are freed:
    otherwise memory grows ~75 bytes per non-TCP frame for as long as the chunk is held."""
    rows = len(cols["frame"])
    if rows * 2 > allocated:
        return cols
    return {name: column.copy() for name, column in cols.items()}


def decode(buf: np.ndarray, rec: RecordIndex, diag: Diagnostics) -> tuple[Segments, np.ndarray]:
    """Return (TCP segments, frames whose link type is unsupported)."""
    cols, skipped, ethertypes, unsupported, tunnels, undecoded = decode_tcp(
        buf, np.ascontiguousarray(rec.data, np.int64), np.ascontiguousarray(rec.caplen, np.int64),
        np.ascontiguousarray(rec.linktype, np.int32), np.ascontiguousarray(rec.frame, np.int64),
        np.ascontiguousarray(rec.ts_ns, np.int64))
    if len(ethertypes):
        for code, count in zip(*np.unique(ethertypes, return_counts=True)):
            if code >= 0x0600 and code not in PLAINLY_NOT_TCP:
                diag.skip(f"ethertype 0x{int(code):04x} not decoded", int(count))
    register(cols["tunnel"], tunnels)
    if len(undecoded):                 # tunnels seen but not decoded: one warning each (run.py)
        for code, count in zip(*np.unique(undecoded, return_counts=True)):
            diag.skip(undecoded_reason(int(code)), int(count))
    for name, count in zip(SKIP_NAMES, skipped):
        diag.skip(SKIP_TEXT[name], int(count))
    malformed = int(skipped[SKIP_NAMES.index("tcp_offset")])
    if malformed:
        diag.warn(f"{malformed} TCP segment(s) with data offset < 5 skipped (malformed)")
    seg = Segments(_compact(cols, len(rec)))
    diag.tcp_segments += len(seg)
    return seg, rec.frame[unsupported]
