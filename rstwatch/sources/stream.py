"""Open a capture file (plain or gzip) and read it through one reusable buffer."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from ..errors import CaptureError
from .diagnostics import Diagnostics
from .fastgzip import RereadableGzip, open_gzip

CHUNK_BYTES = 8 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


def open_stream(path: Path) -> tuple[BinaryIO, bool]:
    """Return (binary stream, is_gzip). Missing/unreadable files raise CaptureError."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise CaptureError(str(path), "no such file") from None
    except IsADirectoryError:
        raise CaptureError(str(path), "is a directory") from None
    except PermissionError:
        raise CaptureError(str(path), "permission denied") from None
    except OSError as exc:
        raise CaptureError(str(path), exc.strerror or str(exc)) from None
    if not raw.seekable():
        # a pipe named by its path (`read <(zcat x.gz)`, /dev/stdin, a FIFO): read as `-` is,
        # its first bytes handed back in front of the rest (sources/stdin.py)
        from .stdin import open_stdin
        return open_stdin(raw)
    head = raw.read(2)
    raw.seek(0)
    if head == GZIP_MAGIC:
        return open_gzip(raw), True
    return raw, False


class ChunkBuffer:
    """One read buffer reused for the whole file. A reader takes a view of the bytes held,
    walks the complete records in it, and `consume`s them; the bytes of a record cut by the
    end of the view move to the front and the rest of the buffer is refilled. Compared with
    a new bytes object per chunk plus joining the leftover to it, this saves two copies of
    every byte and the page faults of fresh memory (~40% of reading a plain pcap).

    A view is valid until the next one is asked for: decode what you need before that."""

    def __init__(self, diag: Diagnostics, first: bytes = b"", size: int | None = None) -> None:
        self.diag = diag
        self._mem = np.empty(max(size or CHUNK_BYTES, 2 * len(first)), np.uint8)
        self._mem[:len(first)] = np.frombuffer(first, np.uint8)
        self._have = len(first)
        self._fresh = len(first)          # bytes not yet shown in a view
        self._eof = False
        self._readinto = None
        self._chunks: Iterator[bytes] | None = None

    @classmethod
    def from_stream(cls, stream: BinaryIO, diag: Diagnostics, first: bytes = b"") -> "ChunkBuffer":
        """Fill from a file or gzip stream, a whole buffer at a time."""
        buf = cls(diag, first)
        # gzip: one decompression step a call (readinto1), so a stream that ends early loses
        # nothing before the damage; filling the whole buffer in one call threw away what that
        # call had decompressed (a small truncated .gz gave no packet at all)
        buf._readinto = stream.readinto1 if isinstance(stream, (gzip.GzipFile, RereadableGzip)) else stream.readinto
        return buf

    @classmethod
    def from_chunks(cls, chunks: Iterable[bytes], diag: Diagnostics) -> "ChunkBuffer":
        """Fill from chunks as they come (a pipe): each chunk is shown as soon as it arrives."""
        buf = cls(diag)
        buf._chunks = iter(chunks)
        return buf

    @property
    def leftover(self) -> int:
        """Bytes held but not consumed: at the end of the file, an incomplete record."""
        return self._have

    def views(self) -> Iterator[np.ndarray]:
        while self._fill():
            yield self._mem[:self._have]

    def consume(self, n: int) -> None:
        rest = self._have - n
        if n and rest:
            self._mem[:rest] = self._mem[n:self._have]      # numpy copies overlapping ranges safely
        self._have = rest

    def _room(self, need: int) -> None:
        if len(self._mem) - self._have < need:     # one record larger than the buffer: grow it
            grown = np.empty(max(2 * len(self._mem), self._have + need), np.uint8)
            grown[:self._have] = self._mem[:self._have]
            self._mem = grown

    def _fill(self) -> bool:
        """Read more; True if there are bytes no view has shown yet."""
        if self._chunks is not None:
            chunk = next(self._chunks, None)
            while chunk is not None and not len(chunk):     # an empty chunk is not the end
                chunk = next(self._chunks, None)
            if chunk is not None:
                self._room(len(chunk))
                self._mem[self._have:self._have + len(chunk)] = np.frombuffer(chunk, np.uint8)
                self._have += len(chunk)
                self._fresh = len(chunk)
        else:
            self._room(1)
            while self._have < len(self._mem) and not self._eof:
                n = self._read(memoryview(self._mem)[self._have:])
                if n:
                    self._have += n
                    self._fresh += n
                else:
                    self._eof = True
        shown, self._fresh = self._fresh, 0
        return shown > 0

    def _read(self, into: memoryview) -> int:
        """A damaged gzip stream ends the file with a warning instead of an exception."""
        try:
            return self._readinto(into) or 0
        except EOFError:
            self.diag.warn("gzip stream ends early (file truncated); read what was there")
        except (zlib.error, gzip.BadGzipFile, OSError) as exc:
            self.diag.warn(f"gzip stream is corrupt ({exc}); read what was there")
        self.diag.truncated = True
        return 0
