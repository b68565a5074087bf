"""Read one capture file into TCP segment columns, whatever its format, with a fallback to the
tshark engine for link types the fast reader does not decode."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import CaptureError
from .decode import decode
from .diagnostics import Diagnostics
from .pcap import is_pcap, read_pcap
from .pcapng import is_pcapng, read_pcapng
from .segments import Segments
from .readfilter import ReadFilter
from .stdin import is_stdin, open_input
from .stream import ChunkBuffer, open_stream
from .tshark import read_with_tshark

SegmentFilter = Callable[[Segments], Segments]


def sniff(path: Path) -> str | None:
    """'pcap', 'pcapng' or None, looking through gzip."""
    try:
        stream, _ = open_stream(path)
        with stream:
            head = stream.read(4)
    except (CaptureError, OSError, EOFError, gzip.BadGzipFile):
        return None
    if is_pcap(head):
        return "pcap"
    if is_pcapng(head):
        return "pcapng"
    return None


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files named directly are kept as given (errors surface when read); directories contribute
    every capture file below them, sorted, so the order is deterministic."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and sniff(f))
            if not found:
                raise CaptureError(str(p), "directory holds no pcap or pcapng files")
            out.extend(found)
        else:
            out.append(p)
    return out


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
        except (EOFError, OSError, gzip.BadGzipFile) as exc:
            raise CaptureError(str(path), f"not a readable gzip file ({exc})") from None
        if not head:
            raise CaptureError(str(path), "empty file")
        if is_pcap(head):
            reader = read_pcap
        elif is_pcapng(head):
            reader = read_pcapng
        else:
            kind = "gzip data that is not a capture" if gz else "not a pcap or pcapng file"
            raise CaptureError(str(path), f"{kind} (starts with {head.hex()})")
        unsupported: list[np.ndarray] = []
        linktypes: set[int] = set()
        for buf, rec in reader(ChunkBuffer.from_stream(stream, diag, first=head), diag):
            if keep is not None:
                rec = keep(buf, rec)
            seg, odd = decode(buf, rec, diag)
            if progress:
                progress(raw.tell(), diag.packets)
            if len(odd):
                unsupported.append(odd)
                linktypes.update(int(x) for x in np.unique(rec.linktype[np.isin(rec.frame, odd)]))
            yield seg
            if keep is not None and keep.done:
                break
    if unsupported and is_stdin(path):          # the tshark engine reads files, and a pipe is gone
        diag.warn(f"{sum(len(f) for f in unsupported)} frame(s) with link type "
                  f"{', '.join(map(str, sorted(linktypes)))} skipped: only the tshark engine decodes them "
                  f"and it needs a file (save the stream, then `rstwatch read FILE`)")
        return
    if unsupported:
        frames = np.concatenate(unsupported)
        names = ", ".join(str(x) for x in sorted(linktypes))
        diag.warn(f"{len(frames)} frame(s) with link type {names} decoded by the tshark engine")
        diag.engine = "fast+tshark"
        if len(frames) == diag.packets and keep is None:
            yield read_with_tshark(path, diag)
        else:
            yield read_with_tshark(path, diag, _frame_filter(frames))


def _frame_filter(frames: np.ndarray) -> str:
    lo, hi = int(frames.min()), int(frames.max())
    if hi - lo + 1 == len(frames):
        return f"tcp && frame.number >= {lo} && frame.number <= {hi}"
    return "tcp && frame.number in {" + " ".join(str(int(f)) for f in frames) + "}"


def read_segments(path: Path, diag: Diagnostics, keep: SegmentFilter | None = None) -> Segments:
    parts = []
    for seg in iter_segments(path, diag):
        parts.append(keep(seg) if keep else seg)
    out = Segments.concat(parts)
    if len(out) and np.any(np.diff(out["frame"]) < 0):   # tshark part merged in: restore capture order
        out = out.take(np.argsort(out["frame"], kind="stable"))
    return out
