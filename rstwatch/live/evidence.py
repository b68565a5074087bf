"""--write: keep the captured packets as pcapng so the verdicts can be replayed with `rstwatch read`.

Only whole blocks are written, straight to the file descriptor, so the file is a valid capture
at any moment, even if rstwatch is killed. With a ring, the file rotates at `ring_mb` and only the
newest `ring_files` files are kept; each new file starts with the stream's header blocks.

Files are created with O_CREAT|O_EXCL|O_NOFOLLOW: rstwatch (often root) never follows a symbolic
link someone planted, and never writes into a file it did not create; --force replaces a regular
file only (unlink, then create anew: never truncate through a hard link). If the disk fills up
(or any write fails), the file is cut back to its last whole block, one warning names it, and
the session goes on classifying and reporting without evidence.
"""
from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path
from typing import Callable

from ..errors import OutputError
from ..report.plaintext import visible

CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _default_warn(message: str) -> None:
    try:
        print(f"rstwatch: warning: {visible(message)}", file=sys.stderr, flush=True)
    except OSError:
        pass


def _not_regular(st: os.stat_result) -> str | None:
    """Why a file at the evidence path must not be replaced, or None for a regular file."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "is a symbolic link; refusing to follow or replace it (name the file itself)"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file; --write keeps packets in regular files only"
    return None


class Evidence:
    def __init__(self, path: Path, force: bool = False, ring_files: int = 0, ring_mb: float = 100.0,
                 warn: Callable[[str], None] = _default_warn) -> None:
        self.path = path
        self.force = force
        self.ring_files = ring_files
        self.ring_bytes = int(ring_mb * 1024 * 1024)
        self.index = 0
        self.files: list[Path] = []
        self.fd: int | None = None
        self.size = 0                   # bytes of whole blocks in the current file
        self.bytes_written = 0
        self.closed = False
        self.failed: str | None = None  # why writing stopped early ("FILE: reason"), once it did
        self._warn = warn
        self._ids: dict[Path, tuple[int, int]] = {}     # files we created: only those are ever unlinked
        self._lock = threading.Lock()   # the feed thread writes, the main thread closes
        self._check(force)

    def _name(self, index: int) -> Path:
        if not self.ring_files:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{index:05d}{self.path.suffix}")

    def _check(self, force: bool) -> None:
        """Refuse before the capture starts what is bound to fail (the open itself is the real guard)."""
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(str(self.path), f"folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise OutputError(str(self.path), f"folder {parent} is not writable")
        existing = [self.path] if not self.ring_files else sorted(parent.glob(f"{self.path.stem}_[0-9][0-9][0-9][0-9][0-9]{self.path.suffix}"))
        for p in existing:
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            why = _not_regular(st)
            if why:
                raise OutputError(str(p), why)
            if not force:
                raise OutputError(str(p), "already exists (use --force to overwrite)")

    def _create(self, name: Path) -> int:
        for _ in range(5):
            try:
                fd = os.open(name, CREATE, 0o666)       # the user's umask applies
                st = os.fstat(fd)
                self._ids[name] = (st.st_dev, st.st_ino)
                return fd
            except FileExistsError:
                if not self.force:
                    raise OutputError(str(name), "already exists (use --force to overwrite)") from None
                try:
                    st = os.lstat(name)
                except FileNotFoundError:
                    continue
                why = _not_regular(st)
                if why:
                    raise OutputError(str(name), why) from None
                os.unlink(name)
            except OSError as exc:
                raise OutputError(str(name), exc.strerror or str(exc)) from None
        raise OutputError(str(name), "keeps reappearing while rstwatch creates it; not written")

    def _unlink_own(self, name: Path) -> None:
        """Remove a file this session created, and only if the name still points to it."""
        try:
            st = os.lstat(name)
        except OSError:
            return
        if self._ids.get(name) == (st.st_dev, st.st_ino):
            os.unlink(name)

    def _open_next(self, header: bytes) -> None:
        self._close_fd()
        self.index += 1
        name = self._name(self.index)
        self.fd = self._create(name)
        self.files.append(name)
        self.size = 0
        if self.ring_files and len(self.files) > self.ring_files:
            self._unlink_own(self.files.pop(0))
        if header:
            self._write(header)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            try:
                os.ftruncate(self.fd, self.size)        # cut back to the last whole block: still a valid capture
            except OSError:
                pass
            raise
        self.size += len(data)
        self.bytes_written += len(data)

    def write(self, header: bytes, blocks: bytes) -> None:
        """Called with whole pcapng blocks; the first call's blocks include the header itself."""
        with self._lock:
            if self.closed or self.failed:
                return
            try:
                if self.fd is None:
                    self._open_next(b"")
                elif self.ring_files and self.size >= self.ring_bytes:
                    self._open_next(header)
                self._write(blocks)
            except OutputError as exc:
                self._fail(exc.where, exc.reason)
            except OSError as exc:
                self._fail(str(self.files[-1]) if self.files else str(self.path), exc.strerror or str(exc))

    def _fail(self, where: str, reason: str) -> None:
        self.failed = f"{where}: {reason}"
        if self.fd is not None and self.size == 0 and self.files:      # a new file that got nothing
            self._unlink_own(self.files.pop())
        self._close_fd()
        self._warn(f"{where}: {reason}; no more packets are written to it (resets are still classified and reported)")

    def _close_fd(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._close_fd()
