"""Where results go: stdout, a character device or FIFO written through (like a shell
redirection), or a regular file written atomically (a temporary file renamed into place, so an
interrupted run never leaves half a file). Nothing the user had is replaced without --force; a
non-regular file is never replaced or unlinked; a symbolic link is refused; an input is never the
output. Write errors name the output in one line; a reader that went away ends the run quietly."""
from __future__ import annotations

import codecs
import errno
import os
import re
import secrets
import stat
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

from ..errors import OutputClosed, OutputError

# Names that mean "this open descriptor", not a file to create: written through, never replaced.
_STREAM_NAMES = {"-": 1, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/(?:dev/fd|proc/self/fd)/(\d+)")
# The reader went away: a closed pipe or socket, a hung-up terminal (EIO on a character device).
_GONE = {errno.EPIPE, errno.ECONNRESET}


def stream_fd(path: Path | None) -> int | None:
    """The descriptor a stdout-like name stands for (`-`, /dev/stdout, /dev/fd/N), else None."""
    if path is None:
        return 1
    text = str(path)
    if text in _STREAM_NAMES:
        return _STREAM_NAMES[text]
    m = _FD_PATH.fullmatch(text)
    return int(m.group(1)) if m else None


def has_room_beside(path: Path | None) -> bool:
    """Whether files may be written beside `path` (a report's NAME_files/ and NAME.findings.csv):
    a file's name, not stdout's (-, /dev/stdout, /dev/fd/N) nor an existing device, FIFO or
    socket's (-o /dev/null would make /dev/null_files/)."""
    if stream_fd(path) is not None:
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True                             # not there yet: it will be a file


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _input_ids(inputs: Iterable[Path]) -> set[tuple[int, int]]:
    ids = set()
    for p in inputs:
        try:
            ids.add(_identity(os.stat(p)))
        except OSError:
            pass                        # an unreadable input is reported when it is read
    return ids


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "special file"


def check_output(path: Path | None, force: bool, inputs: Iterable[Path] = ()) -> None:
    """Fail before any work is done when the output cannot or must not be written."""
    ids = _input_ids(inputs)
    fd = stream_fd(path)
    if fd is not None:
        try:
            st = os.fstat(fd)
        except OSError:
            if path is None:
                return
            raise OutputError(str(path), "is not an open descriptor") from None
        if stat.S_ISREG(st.st_mode) and _identity(st) in ids:     # `rstwatch read x.pcap >> x.pcap`
            raise OutputError("stdout" if fd == 1 else str(path), "is one of the inputs; refusing to write findings into a capture")
        return
    name = str(path)
    try:
        if _identity(os.stat(path)) in ids:          # follows links: a link or hard link to an input counts too
            raise OutputError(name, "is one of the inputs; refusing to write over an input (even with --force)")
    except OSError:
        pass
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(name, exc.strerror or str(exc)) from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise OutputError(name, f"is a symbolic link (to {os.readlink(path)}); refusing to follow or replace it, "
                                    "name the file itself")
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            return                      # written through like `> /dev/null`: nothing is replaced
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(name, f"is a {_kind(st.st_mode)}; rstwatch writes regular files, character devices and FIFOs only")
        if not force:
            raise OutputError(name, "already exists (use --force to overwrite)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(name, f"folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(name, f"folder {parent} is not writable")


# Encodings in which ASCII text is its own bytes.
_ASCII_SAFE = {"utf-8", "ascii", "iso8859-1", "cp1252"}


def _codec(name: str | None) -> str | None:
    try:
        return codecs.lookup(name).name if name else None
    except LookupError:
        return None


class GuardedStream:
    """A stream whose write errors say which output failed: a reader that went away becomes
    OutputClosed (a quiet end), anything else (a full disk, a quota) one OutputError line."""

    def __init__(self, stream: IO, name: str, lost: str = "the output is incomplete") -> None:
        self._stream = stream
        self.name = name
        self._lost = lost           # what a failed write means for the user

    def write(self, data):
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise self._translate(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._translate(exc) from None

    def write_ascii(self, data: bytes) -> None:
        """ASCII bytes (compiled JSON Lines rows) straight to the binary stream under the text one
        when its encoding writes ASCII as itself: no decode to text and encode back (~0.15 s per
        100,000 lines). What was written as text before goes first."""
        raw = getattr(self._stream, "buffer", None)
        try:
            if raw is not None and _codec(getattr(self._stream, "encoding", None)) in _ASCII_SAFE:
                self._stream.flush()
                raw.write(data)
            else:
                self._stream.write(data.decode("ascii"))
        except OSError as exc:
            raise self._translate(exc) from None

    def __getattr__(self, attr: str):
        return getattr(self._stream, attr)

    def _gone(self, exc: OSError) -> bool:
        if exc.errno in _GONE:
            return True
        try:
            return exc.errno == errno.EIO and stat.S_ISCHR(os.fstat(self._stream.fileno()).st_mode)
        except (OSError, ValueError):
            return False

    def _translate(self, exc: OSError) -> Exception:
        # No silencing here: a library probe (click writes b"" to test a stream) may swallow the
        # error, and the next write must fail again rather than vanish.
        if self._gone(exc):
            return OutputClosed(self.name)
        return OutputError(self.name, f"{exc.strerror or exc}; {self._lost}")


def flush_stdout() -> None:
    """Flush stdout while the command still runs, so a full disk or a closed pipe is reported
    (or ignored) by rstwatch rather than by Python's exit."""
    if sys.stdout is not None:
        GuardedStream(sys.stdout, "stdout").flush()


def settle_stdout() -> None:
    """At the very end: if stdout cannot take what is still buffered (the error was already
    reported), send it to /dev/null so Python's own flush at exit neither fails nor prints."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


def guarded_stdout(binary: bool = False) -> GuardedStream:
    return GuardedStream(sys.stdout.buffer if binary else sys.stdout, "stdout")


@contextmanager
def open_output(path: Path | None, force: bool, binary: bool = False) -> Iterator[GuardedStream]:
    """The output stream for `path` (None: stdout); see the module docstring for what is allowed."""
    fd = stream_fd(path)
    if fd in (1, 2):
        stream = sys.stdout if fd == 1 else sys.stderr
        yield GuardedStream(stream.buffer if binary else stream, "stdout" if path is None else str(path))
        return
    if fd is not None:
        with _through_fd(os.dup(fd), str(path), binary) as out:
            yield out
        return
    check_output(path, force)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        with _write_through(path, binary) as out:
            yield out
    else:
        with _write_atomic(path, st, force, binary) as out:
            yield out


@contextmanager
def _through_fd(fd: int, name: str, binary: bool) -> Iterator[GuardedStream]:
    fh = os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""}))
    out = GuardedStream(fh, name)
    try:
        yield out
        out.flush()
    finally:
        try:
            fh.close()
        except OSError:
            pass                    # the error (if any) was reported by the flush above


@contextmanager
def _write_through(path: Path, binary: bool) -> Iterator[GuardedStream]:
    """A character device or FIFO: open what is there (never create, never follow a link) and write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(str(path), exc.strerror or str(exc)) from None
    if stat.S_ISREG(os.fstat(fd).st_mode):      # swapped for a file since the check: do not overwrite it
        os.close(fd)
        raise OutputError(str(path), "became a regular file while rstwatch ran; not overwritten")
    with _through_fd(fd, str(path), binary) as out:
        yield out


def _create_temp(path: Path) -> tuple[int, Path]:
    parent = path.parent if str(path.parent) else Path(".")
    for _ in range(100):
        tmp = parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            # mode 0666 minus the user's umask, like any file a shell redirection creates
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(str(path), f"cannot create a file in {parent}: {exc.strerror or exc}") from None
    raise OutputError(str(path), f"cannot create a temporary file in {parent}")


@contextmanager
def _write_atomic(path: Path, existing: os.stat_result | None, force: bool, binary: bool) -> Iterator[GuardedStream]:
    fd, tmp = _create_temp(path)
    if existing is not None:
        os.fchmod(fd, stat.S_IMODE(existing.st_mode) & 0o777)     # --force keeps the mode the owner gave it
    fh = os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""}))
    out = GuardedStream(fh, str(path), lost="nothing was written" + (" (the old file is untouched)" if existing else ""))
    committed = False
    try:
        yield out
        out.flush()
        try:
            os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(str(path), f"{exc.strerror or exc}; nothing was written") from None
        fh.close()
        _commit(tmp, path, force)
        committed = True
    finally:
        if not committed:
            try:
                fh.close()
            except OSError:
                pass
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _commit(tmp: Path, path: Path, force: bool) -> None:
    """Move the finished file into place without ever replacing something that is not a regular file."""
    try:
        os.link(tmp, path)          # fails if anything appeared at `path` meanwhile: nothing is clobbered
        os.unlink(tmp)
        return
    except FileExistsError:
        pass
    except OSError:                 # a filesystem without hard links: check, then rename
        if not os.path.lexists(path):
            os.replace(tmp, path)
            return
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(str(path), f"is now a {_kind(st.st_mode)}; not replaced")
    if not force:
        raise OutputError(str(path), "appeared while rstwatch ran; not overwritten (use --force)")
    os.replace(tmp, path)


# ---------------------------------------------------------------- side files (evidence, CSV, SVG)

def write_file(path: Path, data: bytes, force: bool, *, dir_fd: int | None = None) -> None:
    """Write a whole side file (an evidence pcapng, the CSV beside a report, a report's SVG) as
    the main output is written: a temporary name of its own, created exclusively and never
    through a link, fsynced, then moved into place; what is there is replaced only if it is a
    regular file, and only with `force`. With `dir_fd`, `path.name` is taken inside that open
    folder (a folder rstwatch made, held so that it cannot be swapped for a link meanwhile).
    Any failure (a full disk) is one OutputError naming the file, and no temporary file stays."""
    own_fd = dir_fd is None
    where = str(path)
    if own_fd:
        parent = path.parent if str(path.parent) else Path(".")
        try:
            dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise OutputError(where, f"folder {parent}: {exc.strerror or exc}") from None
    name = path.name
    tmp = None
    try:
        _check_replaceable(name, dir_fd, where, force)
        fd, tmp = _create_temp_in(dir_fd, name, where)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(where, f"{exc.strerror or exc}; nothing was written") from None
        _commit_in(dir_fd, tmp, name, where, force)
        tmp = None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
        if own_fd:
            os.close(dir_fd)


def _check_replaceable(name: str, dir_fd: int, where: str, force: bool) -> None:
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(where, exc.strerror or str(exc)) from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(where, "is a symbolic link; refusing to follow or replace it")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(where, f"is a {_kind(st.st_mode)}; not replaced")
    if not force:
        raise OutputError(where, "already exists (use --force to overwrite)")


def _create_temp_in(dir_fd: int, name: str, where: str) -> tuple[int, str]:
    for _ in range(100):
        tmp = f".{name}.{secrets.token_hex(4)}.part"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(tmp, flags, 0o666, dir_fd=dir_fd), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(where, f"cannot create a file beside it: {exc.strerror or exc}") from None
    raise OutputError(where, "cannot create a temporary file beside it")


def _commit_in(dir_fd: int, tmp: str, name: str, where: str, force: bool) -> None:
    """Move the finished temporary file to `name`, replacing at most a regular file (with force)."""
    try:
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.unlink(tmp, dir_fd=dir_fd)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise OutputError(where, f"{exc.strerror or exc}; nothing was written") from None
    _check_replaceable(name, dir_fd, where, force)
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        raise OutputError(where, f"{exc.strerror or exc}; nothing was written") from None


def private_folder(folder: Path, force: bool) -> int:
    """Open (making it if needed) a folder rstwatch writes its own files into, never through a
    link; returns its descriptor (the caller closes it). An existing folder that holds files is
    refused without `force`."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise OutputError(str(folder), "is a symbolic link; refusing to follow it")
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise OutputError(str(folder), "exists and is not a folder")
    if st is None:
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass                        # made meanwhile: opened below without following a link
        except OSError as exc:
            raise OutputError(str(folder), exc.strerror or str(exc)) from None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(str(folder), f"cannot open it without following a link ({exc.strerror or exc})") from None
    if st is not None and os.listdir(fd) and not force:
        os.close(fd)
        raise OutputError(str(folder), "already exists (use --force to overwrite)")
    return fd
