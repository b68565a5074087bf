"""`-` as an input: a pcap or pcapng stream on standard input, plain or gzip
(`tcpdump -w - | rstwatch read -`, `ssh host tcpdump -w - | ...`, `zcat x.gz | ...`, `gzip -c x | ...`).

A pipe cannot seek, so the two bytes that tell gzip from a capture are read once and handed
back in front of the rest."""
from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path
from typing import BinaryIO

from ..errors import CaptureError
from .stream import GZIP_MAGIC, open_stream

STDIN_NAME = "-"


def is_stdin(path: Path | str) -> bool:
    return str(path) == STDIN_NAME


class _Prefixed(io.RawIOBase):
    """A raw stream that gives `head` first, then whatever `raw` gives; counts bytes for progress."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            n = self._raw.readinto(view) or 0
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos


def open_stdin(raw: BinaryIO | None = None) -> tuple[BinaryIO, bool]:
    """(binary stream, is_gzip) over standard input (or `raw`)."""
    raw = raw if raw is not None else sys.stdin.buffer
    if raw is None:
        raise CaptureError(STDIN_NAME, "no standard input")
    head = b""
    while len(head) < 2:                 # a pipe may hand over a single byte first
        more = raw.read(2 - len(head))
        if not more:
            break
        head += more
    stream = io.BufferedReader(_Prefixed(head, raw), buffer_size=1 << 20)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb"), True
    return stream, False


def open_input(path: Path) -> tuple[BinaryIO, bool]:
    """A file on disk, or standard input for `-`."""
    return open_stdin() if is_stdin(path) else open_stream(path)
