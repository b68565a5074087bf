"""Open a capture file (plain or gzip) as a stream of byte chunks with the carry-over handled by callers."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import CaptureError
from .diagnostics import Diagnostics

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
    head = raw.read(2)
    raw.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), True
    return raw, False


def read_chunks(stream: BinaryIO, diag: Diagnostics, first: bytes = b"",
                chunk_bytes: int | None = None) -> Iterator[bytes]:
    """Yield chunks; a damaged gzip stream ends the iteration with a warning instead of an exception."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    if first:
        yield first
    while True:
        try:
            chunk = stream.read(chunk_bytes)
        except EOFError:
            diag.warn("gzip stream ends early (file truncated); read what was there")
            diag.truncated = True
            return
        except (zlib.error, gzip.BadGzipFile, OSError) as exc:
            diag.warn(f"gzip stream is corrupt ({exc}); read what was there")
            diag.truncated = True
            return
        if not chunk:
            return
        yield chunk
