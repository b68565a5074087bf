"""Gzip captures decompressed by python-isal (Intel's ISA-L), about twice as fast as the standard
library's zlib (a 136 MB capture: 0.16 -> 0.08 s of CPU), with the standard library's outcome
on a damaged file.

isal fills the whole buffer it is given before it returns, so at a truncation it loses what it
had decompressed into that call (a 5 MB cut of a 16 MB file: 40.0 MB handed out, against
gzip's 42.8 MB). At isal's first error the file is decompressed again by the standard library
up to where isal got, and that goes on from there: the packets before the damage and the
warning are those of `gzip`. Only a file can be read again, so standard input keeps `gzip`.
Without isal (a platform it has no wheel for), every file is read by `gzip` as before."""
from __future__ import annotations

import gzip
from typing import BinaryIO

SKIP_BYTES = 1 << 20                # what the standard library decompresses a call while catching up
_UNLOADED = object()
IGzipFile = _UNLOADED               # isal's reader, imported with the first gzip file (a plain capture needs none)


def igzip_class():
    """isal's IGzipFile, or None where isal is not installed."""
    global IGzipFile
    if IGzipFile is _UNLOADED:
        try:
            from isal.igzip import IGzipFile as loaded
        except ImportError:         # pragma: no cover - isal is a dependency; this is its absence
            loaded = None
        IGzipFile = loaded
    return IGzipFile


def open_gzip(raw: BinaryIO):
    """A gzip reader over `raw`, a file at the start of its gzip data that can seek back there."""
    reader = igzip_class()
    if reader is None:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return RereadableGzip(raw, reader)


class RereadableGzip:
    """The few calls the readers make of a gzip stream (read, readinto1, fileobj, close), from
    isal while it has no complaint, then from `gzip` resumed where isal left off."""

    def __init__(self, raw: BinaryIO, fast_reader) -> None:
        self.fileobj = raw
        self._start = raw.tell()
        self._reader = fast_reader(fileobj=raw, mode="rb")
        self._fast = True
        self._given = 0                 # decompressed bytes handed out so far

    def read(self, n: int = -1) -> bytes:
        data = self._call("read", n)
        self._given += len(data)
        return data

    def readinto1(self, b) -> int:
        n = self._call("readinto1", b)
        self._given += n
        return n

    def _call(self, name: str, arg):
        if self._fast:
            try:
                return getattr(self._reader, name)(arg)
            except Exception:           # isal's errors and EOFError: the standard library says what is there
                self._resume_with_gzip()
        return getattr(self._reader, name)(arg)

    def _resume_with_gzip(self) -> None:
        self._reader.close()
        self._fast = False
        self.fileobj.seek(self._start)
        self._reader = gzip.GzipFile(fileobj=self.fileobj, mode="rb")
        left = self._given
        scratch = memoryview(bytearray(min(left, SKIP_BYTES) or 1))
        while left:
            n = self._reader.readinto(scratch[:min(left, len(scratch))])
            if not n:
                break
            left -= n

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "RereadableGzip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
