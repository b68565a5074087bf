"""Fast reader for classic pcap: micro- and nanosecond magic, either byte order."""
from __future__ import annotations

import struct
from typing import Iterable, Iterator

import numpy as np

from . import gather
from .diagnostics import Diagnostics
from .segments import RecordIndex
from ..hotloops import CORRUPT, walk_pcap

MAGICS = {
    b"\xd4\xc3\xb2\xa1": (False, 1000),       # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (True, 1000),
    b"\x4d\x3c\xb2\xa1": (False, 1),          # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (True, 1),
}
HEADER_BYTES = 24


def is_pcap(head: bytes) -> bool:
    return head[:4] in MAGICS


def read_pcap(chunks: Iterable[bytes], diag: Diagnostics) -> Iterator[tuple[np.ndarray, RecordIndex]]:
    """Yield (buffer, records) per chunk. The global header must be in the first chunk."""
    it = iter(chunks)
    data = b""
    for chunk in it:
        data += chunk
        if len(data) >= HEADER_BYTES:
            break
    if len(data) < HEADER_BYTES:
        diag.warn("truncated: the pcap file header is incomplete")
        diag.truncated = True
        return
    big, tick_ns = MAGICS[data[:4]]
    linktype = struct.unpack((">" if big else "<") + "I", data[20:24])[0] & 0xFFFF
    carry = data[HEADER_BYTES:]
    file_off = HEADER_BYTES
    next_frame = 1

    def batches() -> Iterator[bytes]:
        yield carry
        yield from it

    pending = b""
    for chunk in batches():
        pending = pending + chunk if pending else chunk
        buf = np.frombuffer(pending, dtype=np.uint8)
        offs, stop, status = walk_pcap(buf, 0, big)
        if len(offs):
            sec = gather.uint(buf, offs, 4, big).astype(np.int64)
            frac = gather.uint(buf, offs + 4, 4, big).astype(np.int64)
            caplen = gather.uint(buf, offs + 8, 4, big).astype(np.int64)
            n = len(offs)
            yield buf, RecordIndex(
                data=offs + 16, caplen=caplen,
                linktype=np.full(n, linktype, np.int32),
                frame=np.arange(next_frame, next_frame + n, dtype=np.int64),
                ts_ns=sec * 1_000_000_000 + frac * tick_ns,
                iface=np.zeros(n, np.int32))
            next_frame += n
            diag.packets += n
        if status == CORRUPT:
            diag.warn(f"corrupt record header at byte {file_off + stop} (after frame {next_frame - 1}); stopped reading")
            diag.truncated = True
            return
        file_off += stop
        pending = pending[stop:]
    if pending:
        diag.warn(f"truncated: record at byte {file_off} is incomplete ({len(pending)} bytes left, after frame {next_frame - 1})")
        diag.truncated = True
