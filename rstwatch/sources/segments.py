"""Column layouts shared by every engine.

`RecordIndex` points at packets inside a byte buffer (what a walker found); `Segments` holds
the decoded TCP header fields, one numpy array per field, one row per TCP segment.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# name -> dtype of each TCP segment column. Addresses are 128-bit (IPv4 mapped into IPv6).
SEGMENT_COLUMNS: dict[str, str] = {
    "frame": "i8",      # the capture's own 1-based frame number
    "ts_ns": "i8",      # epoch nanoseconds
    "v6": "?",
    "src_hi": "u8", "src_lo": "u8", "dst_hi": "u8", "dst_lo": "u8",
    "sport": "u2", "dport": "u2",
    "seq": "u4", "ack": "u4",
    "flags": "u2",      # FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128, NS 256
    "win": "u2",
    "hlen": "u1",       # TCP header length in bytes
    "plen": "i4",       # TCP payload length from the IP length (not the snapped length)
    "ttl": "u1",        # IPv4 TTL or IPv6 hop limit
    "ipid": "i4",       # IPv4 identification, -1 for IPv6
    "tunnel": "u8",     # key of the tunnels the segment came in (sources/tunnels.py), 0 for none
    "app": "i4",        # application framing of the first payload bytes (sources/framing.py), 0 for none
}

FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
V4_MAPPED = np.uint64(0xFFFF << 32)


@lru_cache(maxsize=65536)          # the same hosts recur across resets
def address_text(v6: bool, hi: int, lo: int) -> str:
    """The printable address of a 128-bit (hi, lo) column pair."""
    if not v6:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


@dataclass
class Segments:
    cols: dict[str, np.ndarray] = field(default_factory=dict)
    # each row's flow key (track.flows.flow_hash) once it was computed: a table is hashed by
    # several passes (forget_closed, settled, the flood detectors, the grouping), and the rows
    # kept between passes again each time; concat and take carry the keys along
    flow_keys: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls) -> "Segments":
        return cls({k: np.zeros(0, dtype=t) for k, t in SEGMENT_COLUMNS.items()})

    @classmethod
    def concat(cls, parts: list["Segments"]) -> "Segments":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        keys = None
        if all(p.flow_keys is not None for p in parts):
            keys = np.concatenate([p.flow_keys for p in parts])
        return cls({k: np.concatenate([p.cols[k] for p in parts]) for k in SEGMENT_COLUMNS}, keys)

    @classmethod
    def gather(cls, parts: list["Segments"], idx: np.ndarray) -> "Segments":
        """The rows `idx` (increasing positions) of the parts' concatenation, copied once, without
        building the concatenation. Flow keys come along when every part has them."""
        sizes = [len(p) for p in parts]
        ends = np.cumsum(sizes)
        starts = ends - sizes
        cut = np.searchsorted(idx, np.concatenate(([0], ends)))

        def gathered(columns: list[np.ndarray]) -> np.ndarray:
            out = np.empty(len(idx), columns[0].dtype)
            for col, start, a, b in zip(columns, starts, cut[:-1], cut[1:]):
                if a < b:
                    np.take(col, idx[a:b] - start, out=out[a:b])
            return out
        keys = None
        if all(p.flow_keys is not None for p in parts):
            keys = gathered([p.flow_keys for p in parts])
        return cls({k: gathered([p.cols[k] for p in parts]) for k in SEGMENT_COLUMNS}, keys)

    def take(self, idx: np.ndarray) -> "Segments":
        """The rows `idx` (integer positions). Every row in order is the table itself, not a copy
        (a reset-heavy capture's RST flows are often all of it: ~40 MB copied per 600,000 rows);
        tables are never changed in place."""
        idx = np.asarray(idx)
        n = len(self)
        if (n and len(idx) == n and idx.dtype.kind in "iu" and idx[0] == 0 and idx[-1] == n - 1
                and bool((np.diff(idx) == 1).all())):
            return self
        return Segments({k: v[idx] for k, v in self.cols.items()},
                        self.flow_keys[idx] if self.flow_keys is not None else None)

    def __len__(self) -> int:
        return len(self.cols["frame"]) if self.cols else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


@dataclass
class RecordIndex:
    """Packets found in one buffer: where their bytes start and how to interpret them."""
    data: np.ndarray       # offset of the first link-layer byte
    caplen: np.ndarray
    linktype: np.ndarray   # per packet (pcapng interfaces may differ)
    frame: np.ndarray
    ts_ns: np.ndarray
    iface: np.ndarray      # pcapng interface id (global across sections), 0 for pcap

    def __len__(self) -> int:
        return len(self.frame)
