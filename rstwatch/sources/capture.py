"""Read one capture file into TCP segment columns, whatever its format, with a fallback to the
tshark engine for link types the fast reader does not decode."""
from __future__ import annotations

import gzip
import os
import re
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..arrays import distinct
from ..errors import CaptureError
from .copies import CopyFilter
from .decode import decode
from .diagnostics import Diagnostics
from .pcap import is_pcap, read_pcap
from .pcapng import is_pcapng, read_pcapng
from .segments import Segments
from .readfilter import ReadFilter
from .stdin import is_stdin, open_input
from .stream import ChunkBuffer, open_stream

SegmentFilter = Callable[[Segments], Segments]


def sniff(path: Path) -> str | None:
    """'pcap', 'pcapng' or None, looking through gzip."""
    try:
        stream, _ = open_stream(path)
        with stream:
            head = stream.read(4)
    except (CaptureError, OSError, EOFError, gzip.BadGzipFile, zlib.error):
        return None
    if is_pcap(head):
        return "pcap"
    if is_pcapng(head):
        return "pcapng"
    return None


@dataclass
class Skipped:
    """Something a folder holds that is not read, and why. `error`: an input that could not be
    read (the exit status says so); otherwise a note (a file that is not a capture)."""
    folder: Path
    path: Path
    reason: str
    error: bool


# Named like a capture: if such a file is not one (empty, corrupt at byte 0), that is an error.
CAPTURE_NAME = re.compile(r"\.(pcap|pcapng|cap|ntar)\d*(\.gz)?$", re.IGNORECASE)


def expand_inputs(paths: list[Path], skipped: list[Skipped] | None = None) -> list[Path]:
    """Files named directly are kept as given (errors surface when read); directories contribute
    every capture file below them, sorted, so the order is deterministic. What a folder holds but
    is not read (unreadable entries, files that are not captures) goes to `skipped` with the
    reason; without `skipped`, a folder with no capture at all raises CaptureError."""
    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        found, problems = _walk(p)
        if not found and not any(s.error and s.path == p for s in problems):
            others = [str(s.path.relative_to(p)) for s in problems if not s.error]
            reason = "directory holds no pcap or pcapng files" + (
                f" (only {', '.join(others[:5])}{' ...' if len(others) > 5 else ''})" if others else "")
            if skipped is None:
                raise CaptureError(str(p), reason)
            problems = [s for s in problems if s.error] + [Skipped(p, p, reason, True)]   # one line, not two
        out.extend(found)
        if skipped is not None:
            skipped.extend(problems)
    return out


def _walk(folder: Path) -> tuple[list[Path], list[Skipped]]:
    found: list[Path] = []
    problems: list[Skipped] = []

    def unreadable(exc: OSError) -> None:
        problems.append(Skipped(folder, Path(exc.filename), f"{_why(exc)} (folder skipped)", True))

    for top, dirs, files in os.walk(folder, onerror=unreadable):   # never follows links to folders
        for name in dirs:
            if os.path.islink(os.path.join(top, name)):
                problems.append(Skipped(folder, Path(top, name), "symbolic link to a folder, not followed", False))
        for name in files:
            path = Path(top, name)
            kind = _probe(folder, path)
            if isinstance(kind, Skipped):
                problems.append(kind)
            else:
                found.append(path)
    found.sort()
    problems.sort(key=lambda s: s.path)
    return found, problems


def _probe(folder: Path, path: Path) -> Path | Skipped:
    """The file if it is to be read (a capture, or named like one), else why it is skipped."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):        # a FIFO would block the read; devices are not captures
            return Skipped(folder, path, "not a regular file", False)
        with open(path, "rb"):
            pass
    except OSError as exc:
        return Skipped(folder, path, _why(exc), True)
    if sniff(path) or CAPTURE_NAME.search(path.name):
        return path
    return Skipped(folder, path, "not a capture", False)


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError) and exc.filename and os.path.islink(exc.filename):
        return "broken symbolic link"
    return exc.strerror or str(exc)


Progress = Callable[[int, int], None]     # (bytes of the file read so far, packets so far)


def iter_segments(path: Path, diag: Diagnostics, progress: Progress | None = None,
                  keep: ReadFilter | None = None) -> Iterator[Segments]:
    """Yield TCP segments chunk by chunk; unsupported link types go to the tshark engine.
    `keep` (--bpf, --since/--until, -c) picks packets before decoding; `-` is standard input."""
    stream, gz = open_input(path)
    raw = stream.fileobj if gz else stream      # position in the file on disk, for progress
    with stream:
        try:
            head = stream.read(4)
        except (EOFError, OSError, gzip.BadGzipFile, zlib.error) as exc:     # zlib: its first block damaged
            raise CaptureError(str(path), f"not a readable gzip file ({exc})") from None
        if not head:
            raise CaptureError(str(path), "empty file")
        if is_pcap(head):
            reader = read_pcap
        elif is_pcapng(head):
            reader = read_pcapng
        elif head == b"PAR1":
            raise CaptureError(str(path), "a Parquet file, not a capture (saved findings: `rstwatch report` reads them)"
                               if not gz and not is_stdin(path) and path.is_file() else
                               "Parquet, not a capture (`rstwatch report` reads saved findings from a file, uncompressed)")
        else:
            kind = "gzip data that is not a capture" if gz else "not a pcap or pcapng file"
            raise CaptureError(str(path), f"{kind} (starts with {head.hex()})")
        unsupported: list[np.ndarray] = []
        linktypes: set[int] = set()
        odd_ifaces: set[int] = set()
        where: list[tuple[int, int]] | None = None      # pcapng: each interface's (section, id)
        copies = CopyFilter(remember=False)     # `any`: a forwarded segment is seen twice (as live counts it)
        for buf, rec in reader(ChunkBuffer.from_stream(stream, diag, first=head), diag):
            where = getattr(rec, "where", where)
            if keep is not None:
                rec = keep(buf, rec)
            seg, odd = decode(buf, rec, diag)
            seg = copies.apply(buf, rec, seg)
            if progress:
                progress(raw.tell(), diag.packets)
            if len(odd):
                unsupported.append(odd)
                sel = np.isin(rec.frame, odd)
                linktypes.update(int(x) for x in distinct(rec.linktype[sel]))
                odd_ifaces.update(int(x) for x in distinct(rec.iface[sel]))
            yield seg
            if keep is not None and keep.done:
                # -c: what was read is the packets up to the last one kept, not the rest of its chunk
                if len(rec):
                    diag.packets = int(rec.frame[-1])
                break
        if diag.truncated and not diag.packets:
            # cut (or broken) before its first whole packet: nothing could be read, an error
            # (exit 2), not a warning beside an empty result
            damage = [w for w in diag.warnings if w.startswith(("truncated", "corrupt"))]
            raise CaptureError(str(path), damage[-1] if damage else "truncated before its first packet")
        if not diag.packets:
            diag.warn("no packets: the capture holds only its header")
        if copies.copies:
            diag.warn(f"{copies.copies:,} segment(s) seen again on another interface (a capture on `any` of a "
                      f"forwarding host) were counted once")
    if unsupported and not _read_again(path):   # the tshark engine reads files, and a pipe is gone
        diag.warn(f"{sum(len(f) for f in unsupported)} frame(s) with link type "
                  f"{', '.join(map(str, sorted(linktypes)))} skipped: only the tshark engine decodes them "
                  f"and it needs a file (save the stream, then `rstwatch read FILE`)")
        return
    if unsupported:
        frames = np.concatenate(unsupported)
        names = ", ".join(str(x) for x in sorted(linktypes))
        diag.warn(f"{len(frames)} frame(s) with link type {names} decoded by the tshark engine")
        diag.engine = "fast+tshark"
        from .tshark import read_with_tshark      # asyncio and pyshark load only when needed
        if len(frames) == diag.packets and keep is None:
            yield read_with_tshark(path, diag)
        else:
            iface_ids = [where[k] for k in sorted(odd_ifaces)] if where is not None else None
            yield read_with_tshark(path, diag, _frame_filter(frames, iface_ids), only=frames)


def _read_again(path: Path) -> bool:
    """Whether `path` can be opened and read a second time: a regular file, not `-` or a pipe."""
    if is_stdin(path):
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


MAX_INTERFACE_TERMS = 64       # past that the filter names frame numbers only


def _frame_filter(frames: np.ndarray, interfaces: list[tuple[int, int]] | None = None) -> str:
    """A display filter any tshark accepts (no sets: 4.0 wants commas, older ones spaces) for at
    least `frames`: their frame range and, in a pcapng, their interfaces (a link type is one
    interface's). It may take more (frames of other link types between them); the tshark engine
    keeps only `frames`, so its size does not grow with the frames (15,000 frame numbers made a
    filter tshark refused and a line pyshark could not read)."""
    lo, hi = int(frames.min()), int(frames.max())
    text = f"tcp && frame.number >= {lo} && frame.number <= {hi}"
    if interfaces and len(interfaces) <= MAX_INTERFACE_TERMS and hi - lo + 1 != len(frames):
        text += " && (" + " || ".join(f"(frame.section_number == {s} && frame.interface_id == {i})"
                                      for s, i in interfaces) + ")"
    return text


def read_segments(path: Path, diag: Diagnostics, keep: SegmentFilter | None = None) -> Segments:
    parts = []
    for seg in iter_segments(path, diag):
        parts.append(keep(seg) if keep else seg)
    out = Segments.concat(parts)
    if len(out) and np.any(np.diff(out["frame"]) < 0):   # tshark part merged in: restore capture order
        out = out.take(np.argsort(out["frame"], kind="stable"))
    return out
