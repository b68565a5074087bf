"""--write: keep the captured packets as pcapng so the verdicts can be replayed with `rstwatch read`.

Only whole blocks are written, straight to the file descriptor, so the file is a valid capture
at any moment, even if rstwatch is killed. With a ring, the file rotates at `ring_mb` and only the
newest `ring_files` files are kept; each new file starts with the stream's header blocks.

Files are created with O_CREAT|O_EXCL|O_NOFOLLOW: rstwatch (often root) never follows a symbolic
link someone planted, and never writes into a file it did not create; --force replaces a regular
file only (unlink, then create anew: never truncate through a hard link), and never one another
running rstwatch holds: each file a session creates is made at the start (the first one before
the capture starts, so a clash is an exit 2, not a lost file) and kept locked (flock) for the
life of the session, ring files included, so a second `--write` run on the same path is refused
with the first one's pid rather than unlinking the file the first one's summary names. If the disk fills up
(or any write fails), the file is cut back to its last whole block, one warning names it, and
the session goes on classifying and reporting without evidence.
"""
from __future__ import annotations

import fcntl
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import OutputError
from ..kernel.stored import with_comment
from ..loops import walk_pcapng
from ..report.plaintext import visible
from ..sources.pcapng import EPB, PACKET_BLOCKS

CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_HELD_BYTES = 64 << 20       # held for kernel reasons: beyond this the oldest go out without them


def _default_warn(message: str) -> None:
    try:
        print(f"rstwatch: warning: {visible(message)}", file=sys.stderr, flush=True)
    except OSError:
        pass


def holder(path: Path) -> str | None:
    """'another rstwatch (pid N) is writing it' when a running session holds `path`, else None.
    The probe takes a shared lock for an instant: never blocks, never writes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        pid = _lock_pid(os.fstat(fd))
        return f"another rstwatch{f' (pid {pid})' if pid else ''} is writing it; not replaced (stop that run first)"
    except OSError:
        return None
    finally:
        os.close(fd)


def _lock_pid(st: os.stat_result) -> int | None:
    """The pid holding a flock on this file, from /proc/locks (best effort: None if not found)."""
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == key and parts[4].isdigit():
                    return int(parts[4])
    except OSError:
        pass
    return None


def _whole_blocks(data: bytes, limit: int, big: bool) -> int:
    """The length of the longest run of whole pcapng blocks at the start of `data` that ends
    within its first `limit` bytes (a section header block says its own byte order)."""
    pos = 0
    while pos + 12 <= limit:
        if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":          # the same either way round
            big = data[pos + 8:pos + 12] == b"\x1a\x2b\x3c\x4d"
        length = int.from_bytes(data[pos + 4:pos + 8], "big" if big else "little")
        if length < 12 or pos + length > limit:
            break
        pos += length
    return pos


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
        self._locks: dict[Path, int] = {}   # each file kept (ring included): its descriptor, flocked until unlock()
        self._lock = threading.Lock()   # the feed thread writes, the main thread closes
        # With kernel reasons (`hold`), blocks wait until every reset in them has its verdict, so that
        # the kernel's reason goes into the file as the reset's packet comment (kernel/stored.py).
        self._holding = False
        self._held: list[tuple] = []    # (header, blocks, block offsets, types, big-endian flags, first frame)
        self._held_bytes = 0
        self._frames = 0                # packet blocks seen: the live session's frame numbers
        self._big = False
        self._comments: dict[int, str] = {}
        self._check(force)
        self._open_next(b"")            # made and locked now: a clash is refused before the capture starts

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
            why = _not_regular(st) or holder(p)
            if why:
                raise OutputError(str(p), why)
            if not force:
                raise OutputError(str(p), "already exists (use --force to overwrite)")

    def _create(self, name: Path) -> int:
        for _ in range(5):
            try:
                fd = os.open(name, CREATE, 0o666)       # the user's umask applies
                fcntl.flock(fd, fcntl.LOCK_EX)          # blocking: a probe holds its shared lock for an instant
                st = os.fstat(fd)
                self._ids[name] = (st.st_dev, st.st_ino)
                self._locks[name] = fd
                return fd
            except FileExistsError:
                if not self.force:
                    raise OutputError(str(name), "already exists (use --force to overwrite)") from None
                try:
                    st = os.lstat(name)
                except FileNotFoundError:
                    continue
                why = _not_regular(st) or holder(name)
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
            if self._ids.get(name) == (st.st_dev, st.st_ino):
                os.unlink(name)
        except OSError:
            pass
        fd = self._locks.pop(name, None)            # unlinked first: no moment unlocked under its name
        if fd is not None and fd != self.fd:
            os.close(fd)

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
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done:])
        except OSError:
            # cut back to the last whole block that fit: still a valid capture, and as many packets
            # as the disk took (held blocks go out in chunks of up to MAX_HELD_BYTES: cutting the
            # whole chunk off lost every packet of a short session on a full disk)
            kept = _whole_blocks(data, done, self._big)
            try:
                os.ftruncate(self.fd, self.size + kept)
            except OSError:
                kept = 0
            self.size += kept
            self.bytes_written += kept
            raise
        self.size += len(data)
        self.bytes_written += len(data)

    def hold(self) -> None:
        self._holding = True

    def note(self, frame: int, comment: str) -> None:
        """The comment the packet at `frame` gets when it is written (a kernel reason)."""
        with self._lock:
            self._comments[frame] = comment

    def write(self, header: bytes, blocks: bytes) -> None:
        """Called with whole pcapng blocks; the first call's blocks include the header itself."""
        with self._lock:
            if self.closed or self.failed:
                return
            if not self._holding:
                self._put(header, blocks)
                return
            offs, types, bigs, _, _, big_after, _ = walk_pcapng(np.frombuffer(blocks, np.uint8), 0, self._big,
                                                                with_fields=False)
            first = self._frames + 1
            self._frames += int(np.count_nonzero(np.isin(types, PACKET_BLOCKS)))
            self._held.append((header, blocks, offs, types, bigs, first))
            self._big = bool(big_after)
            self._held_bytes += len(blocks)
            while self._held_bytes > MAX_HELD_BYTES and len(self._held) > 1:
                self._write_held()

    def release(self, upto_frame: int | None = None) -> None:
        """Write the held blocks whose packets are all at or before `upto_frame` (None: all)."""
        with self._lock:
            if self._comments:                      # joined after their packet went out: too late
                written = self._held[0][5] if self._held else self._frames + 1
                for frame in [f for f in self._comments if f < written]:
                    del self._comments[frame]
            while self._held:
                _, _, _, types, _, first = self._held[0]
                last = first + int(np.count_nonzero(np.isin(types, PACKET_BLOCKS))) - 1
                if upto_frame is not None and last > upto_frame:
                    return
                self._write_held()

    def _write_held(self) -> None:
        header, blocks, offs, types, bigs, first = self._held.pop(0)
        self._held_bytes -= len(blocks)
        if self.closed or self.failed:
            return
        if self._comments:
            blocks = self._commented(blocks, offs, types, bigs, first)
        self._put(header, blocks)

    def _commented(self, blocks: bytes, offs, types, bigs, first: int) -> bytes:
        ends = np.append(offs[1:], len(blocks))
        pkt = np.flatnonzero(np.isin(types, PACKET_BLOCKS))
        parts, done = [], 0
        for n, k in enumerate(pkt.tolist()):
            text = self._comments.pop(first + n, None)
            if text is None or types[k] != EPB:
                continue
            a, b = int(offs[k]), int(ends[k])
            parts += [blocks[done:a], with_comment(blocks[a:b], text, bool(bigs[k]))]
            done = b
        return b"".join(parts + [blocks[done:]]) if parts else blocks

    def _put(self, header: bytes, blocks: bytes) -> None:
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
        """Stop writing the current file; its descriptor stays open (and locked) in _locks."""
        if self.fd is not None and self.fd not in self._locks.values():
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None

    def close(self) -> None:
        """No more writes. The files stay locked until unlock() (after the summary and report)."""
        if self.closed:
            return
        self.release()                  # what was held goes out, with the reasons known by now
        with self._lock:
            self.closed = True
            if self.fd is not None and self.size == 0 and self.files:     # no packet came: no empty file left
                self._unlink_own(self.files.pop())
            self._close_fd()

    def unlock(self) -> None:
        """The session is over: another run may now replace the files (with --force)."""
        self.close()
        for fd in self._locks.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._locks.clear()
