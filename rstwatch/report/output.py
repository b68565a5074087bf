"""Write results to stdout or to a file atomically: a temporary file renamed into place, so an
interrupted run never leaves half a file, and an existing file survives unless --force."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from ..errors import OutputError


def check_output(path: Path | None, force: bool) -> None:
    """Fail before any work is done when the output cannot be written."""
    if path is None:
        return
    if path.exists() and not force:
        raise OutputError(str(path), "already exists (use --force to overwrite)")
    if path.exists() and path.is_dir():
        raise OutputError(str(path), "is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(str(path), f"folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(str(path), f"folder {parent} is not writable")


@contextmanager
def open_output(path: Path | None, force: bool) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    check_output(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
