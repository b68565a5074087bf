"""--write: keep the captured packets as pcapng so the verdicts can be replayed with `rstwatch read`.

Only whole blocks are written and each write is flushed, so the file is a valid capture at any
moment, even if rstwatch is killed. With a ring, the file rotates at `ring_mb` and only the
newest `ring_files` files are kept; each new file starts with the stream's header blocks.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError


class Evidence:
    def __init__(self, path: Path, force: bool = False, ring_files: int = 0, ring_mb: float = 100.0) -> None:
        self.path = path
        self.ring_files = ring_files
        self.ring_bytes = int(ring_mb * 1024 * 1024)
        self.index = 0
        self.files: list[Path] = []
        self.fh: BinaryIO | None = None
        self.size = 0
        self.bytes_written = 0
        self.closed = False
        self._lock = threading.Lock()       # the feed thread writes, the main thread closes
        self._check(force)

    def _name(self, index: int) -> Path:
        if not self.ring_files:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{index:05d}{self.path.suffix}")

    def _check(self, force: bool) -> None:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(str(self.path), f"folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise OutputError(str(self.path), f"folder {parent} is not writable")
        existing = [self.path] if not self.ring_files else sorted(parent.glob(f"{self.path.stem}_[0-9][0-9][0-9][0-9][0-9]{self.path.suffix}"))
        existing = [p for p in existing if p.exists()]
        if existing and not force:
            raise OutputError(str(existing[0]), "already exists (use --force to overwrite)")
        if existing and existing[0].is_dir():
            raise OutputError(str(existing[0]), "is a directory")

    def _open_next(self, header: bytes) -> None:
        if self.fh:
            self.fh.close()
        self.index += 1
        name = self._name(self.index)
        self.fh = open(name, "wb")
        self.files.append(name)
        self.size = 0
        if self.ring_files and len(self.files) > self.ring_files:
            old = self.files.pop(0)
            try:
                old.unlink()
            except FileNotFoundError:
                pass
        if header:
            self._write(header)

    def _write(self, data: bytes) -> None:
        self.fh.write(data)
        self.fh.flush()
        self.size += len(data)
        self.bytes_written += len(data)

    def write(self, header: bytes, blocks: bytes) -> None:
        """Called with whole pcapng blocks; the first call's blocks include the header itself."""
        with self._lock:
            if self.closed:
                return
            if self.fh is None:
                self._open_next(b"")
            elif self.ring_files and self.size >= self.ring_bytes:
                self._open_next(header)
            self._write(blocks)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self.fh:
                self.fh.close()
                self.fh = None
