"""Fast reader for classic pcap: micro- and nanosecond magic, either byte order."""
from __future__ import annotations

import struct
from typing import Iterator

import numpy as np

from .diagnostics import Diagnostics
from .segments import RecordIndex
from .stream import ChunkBuffer
from ..loops import CORRUPT, walk_pcap

MAGICS = {
    b"\xd4\xc3\xb2\xa1": (False, 1000),       # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (True, 1000),
    b"\x4d\x3c\xb2\xa1": (False, 1),          # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (True, 1),
}
HEADER_BYTES = 24


def is_pcap(head: bytes) -> bool:
    return head[:4] in MAGICS


def read_pcap(src: ChunkBuffer, diag: Diagnostics) -> Iterator[tuple[np.ndarray, RecordIndex]]:
    """Yield (buffer, records) per buffer-full of the file."""
    big = tick_ns = linktype = None
    file_off = 0                  # where the current view starts in the file
    next_frame = 1
    for buf in src.views():
        start = 0
        if big is None:
            if len(buf) < HEADER_BYTES:
                continue
            big, tick_ns = MAGICS[bytes(buf[:4])]
            linktype = struct.unpack((">" if big else "<") + "I", bytes(buf[20:24]))[0] & 0xFFFF
            start = HEADER_BYTES
        offs, caplen, ts_ns, stop, status = walk_pcap(buf, start, big, tick_ns)
        n = len(offs)
        if n:
            frames = np.arange(next_frame, next_frame + n, dtype=np.int64)
            next_frame += n
            diag.packets += n           # counted before the hand-over: a reader stopped there (-c) still counts it
            yield buf, RecordIndex(
                data=offs + 16, caplen=caplen,
                linktype=np.full(n, linktype, np.int32),
                frame=frames, ts_ns=ts_ns, iface=np.zeros(n, np.int32))
        if status == CORRUPT:
            diag.warn(f"corrupt record header at byte {file_off + stop} (after frame {next_frame - 1}); stopped reading")
            diag.truncated = True
            return
        src.consume(stop)
        file_off += stop
    if big is None:
        diag.warn("truncated: the pcap file header is incomplete")
        diag.truncated = True
    elif src.leftover:
        diag.warn(f"truncated: record at byte {file_off} is incomplete ({src.leftover} bytes left, after frame {next_frame - 1})")
        diag.truncated = True
