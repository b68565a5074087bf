"""--extract DIR: per finding, the packets of its connection as a small pcapng named after the
finding (`closed-port.pcap` frame 2 -> `closed-port-f2-closed-port.pcapng`), so a reviewer opens
exactly the proof in Wireshark. Each packet carries a comment with its frame number in the
original capture; the RST's comment also names the cause. A flood finding gets the packets
around its first sample resets that touch its target host.

One pass per capture: the fast reader's record index gives each packet's bytes, and the
decoded TCP columns select the ones that belong to a finding (ports and frame range first,
vectorised, then the exact addresses)."""
from __future__ import annotations

import os
import re
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CaptureError, OutputError
from ..sources.decode import decode
from ..sources.diagnostics import Diagnostics
from ..sources.pcap import is_pcap, read_pcap
from ..sources.pcapng import block, is_pcapng, option, read_pcapng
from ..sources.segments import address_text
from ..sources.stream import ChunkBuffer, open_stream
from .output import write_file
from .packets import frame_range, is_flood

FLOOD_PACKETS = 2000            # at most this many packets in a flood finding's file


@dataclass
class _Want:
    name: str
    cause: str
    rst: int
    first: int
    last: int
    ends: frozenset | None              # {(addr, port), (addr, port)}, None for a flood
    target: str = ""
    packets: list = field(default_factory=list)     # (frame, linktype, ts_ns, origlen, bytes)


_EVIDENCE = re.compile(r"(.*)-f\d+-.+\.pcapng")      # STEM-fFRAME-CAUSE[-N].pcapng: the last -fN- is the frame


def capture_name(label: str) -> str:
    """A capture's file name; a chained URL's is its member's (zip://a.pcap::s3://b/c.zip: a.pcap)."""
    return Path(label.split("::", 1)[0] if _is_url(label) else label).name


def evidence_name(label: str, frame: int, cause: str) -> str:
    stem = capture_name(label)
    stem = re.sub(r"(\.gz)?$", "", stem)
    stem = re.sub(r"\.(pcapng|pcap|cap|dmp)$", "", stem)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)
    return f"{stem}-f{frame}-{cause}.pcapng"


def plan(findings: pd.DataFrame, folder: Path, force: bool) -> dict[tuple[str, int], Path]:
    """The file each finding goes to; refuses to overwrite files that exist (without --force)."""
    names = _Names(folder)
    out = {(str(label), int(frame)): folder / names.new(str(label), int(frame), str(cause))
           for label, frame, cause in zip(findings["file"], findings["frame"], findings["cause"])}
    names.check(list(out.values()), force)
    return out


class _Names:
    """Evidence file names, unique over a whole run (the same capture name in two folders gets
    `-2`), remembered as hashes: 300,000 findings cost a few MB, not their names."""

    def __init__(self, folder: Path) -> None:
        if folder.exists() and not folder.is_dir():
            raise OutputError(str(folder), "exists and is not a folder")
        self.used: set[int] = set()
        self.existing = set(os.listdir(folder)) if folder.is_dir() else set()

    def new(self, label: str, frame: int, cause: str) -> str:
        name = evidence_name(label, frame, cause)
        base, n = name, 2
        while hash(name) in self.used:
            name = base.replace(".pcapng", f"-{n}.pcapng")
            n += 1
        self.used.add(hash(name))
        return name

    def check(self, paths: list[Path], force: bool) -> None:
        clash = [p for p in paths if p.name in self.existing]
        if clash and not force:
            raise OutputError(str(clash[0]), f"already exists (use --force to overwrite; {len(clash)} file(s) would be)")


def check_folder(folder: Path, force: bool = True, inputs: list[Path] = ()) -> None:
    """Before any work: the folder can be made or written, and (without --force) holds no
    evidence files of these inputs from an earlier run. Which frames clash is known only after
    the work (plan() checks that exactly); a file named after an input is refused now, since a
    rerun on the same capture writes the same names (issue #20 item 8)."""
    parent = folder.parent if str(folder.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise OutputError(str(folder), "exists and is not a folder")
    if not folder.exists() and not parent.is_dir():
        raise OutputError(str(folder), f"folder {parent} does not exist")
    target = folder if folder.exists() else parent
    if not os.access(target, os.W_OK):
        raise OutputError(str(folder), f"folder {target} is not writable")
    if force or not inputs or not folder.is_dir():
        return
    stems = {evidence_name(str(p), 0, "x").removesuffix("-f0-x.pcapng") for p in inputs}
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise OutputError(str(folder), exc.strerror or str(exc)) from None
    clash = sorted(n for n in names if (m := _EVIDENCE.fullmatch(n)) and m.group(1) in stems)
    if clash:
        raise OutputError(str(folder / clash[0]), f"already exists (use --force to overwrite; {len(clash)} evidence "
                                                  "file(s) of these inputs are in the folder)")


def extract(findings: pd.DataFrame, where: dict[str, Path], folder: Path, force: bool) -> tuple[dict, list[str]]:
    """Write one pcapng per finding; returns ((file, frame) -> path written, problems)."""
    targets = plan(findings, folder, force)
    stream = EvidenceStream(where, folder, force, keep_paths=True, names=targets)
    stream.add(findings)
    stream.finish()
    return stream.written, stream.problems


PASS_WANTS = 20_000         # findings whose packets one pass over a capture collects


class EvidenceStream:
    """--extract a table of findings at a time (`read` streaming its spilled batches): findings
    are gathered per capture and, every PASS_WANTS of them, one pass over that capture takes
    their packets and writes their files. Memory holds one pass's findings and packets."""

    def __init__(self, where: dict[str, Path], folder: Path, force: bool, keep_paths: bool = False,
                 names: dict[tuple[str, int], Path] | None = None) -> None:
        self.where, self.folder, self.force = where, folder, force
        self.targets = names                    # planned names (the whole table at once), or made here
        self.names = _Names(folder) if names is None else None
        self.written: dict[tuple[str, int], Path] = {}
        self.keep_paths, self.count = keep_paths, 0
        self.problems: list[str] = []
        self.label: str | None = None
        self.wants: list[_Want] = []
        folder.mkdir(parents=False, exist_ok=True)

    def add(self, findings: pd.DataFrame) -> None:
        for label, grp in findings.groupby("file", sort=False):
            label = str(label)
            if label != self.label:
                self._pass()
                self.label = label
            for row in grp.itertuples(index=False):
                frame = int(row.frame)
                name = (self.targets[(label, frame)].name if self.targets is not None
                        else self.names.new(label, frame, str(row.cause)))
                self.wants.append(_want(row, name))
                if len(self.wants) >= PASS_WANTS:
                    self._pass()

    def finish(self) -> None:
        self._pass()

    def _pass(self) -> None:
        wants, label = self.wants, self.label
        self.wants = []
        if not wants:
            return
        if self.names is not None:              # names made here: a clash is refused before this pass writes
            self.names.check([self.folder / w.name for w in wants], self.force)
        path = self.where.get(label, Path(label))
        if path is not None and label in self.where and not path.is_file() and _is_url(label):
            # a URL the command line named (read on Dask): its packets from the same place
            from ..cluster import _opened
            with _opened(label, label, False) as (local, problem):
                if problem is None and not local.is_file():      # file:// naming a FIFO: never opened
                    problem = "not a regular file"
                if problem is not None:
                    self.problems.append(f"{label}: evidence not extracted ({problem.removeprefix(label + ': ')})")
                    return
                self._write(local, label, wants)
            return
        if path is None or not path.is_file():  # named only inside saved findings, or a FIFO: never opened
            why = "capture not named on the command line (give its folder with --packets)" if path is None \
                else "not a regular file"
            self.problems.append(f"{label}: evidence not extracted ({why})")
            return
        self._write(path, label, wants)

    def _write(self, path: Path, label: str, wants: list[_Want]) -> None:
        """One pass over the capture at `path` for `wants`, then their evidence files."""
        try:
            _collect(path, wants)
        except (CaptureError, OSError) as exc:
            self.problems.append(f"{label}: evidence not extracted ({exc})")
            return
        from .. import __version__
        for w in wants:
            if not any(p[0] == w.rst for p in w.packets):
                self.problems.append(f"{label}: frame {w.rst}: not extracted (its link type is not decoded by the fast reader)")
                continue
            dest = self.folder / w.name
            write_file(dest, pcapng_bytes(w.packets, w.rst, f"{w.cause}", label, __version__), self.force)
            self.count += 1
            if self.keep_paths:
                self.written[(label, w.rst)] = dest


def _is_url(label: str) -> bool:
    from ..cluster import URL
    return URL.fullmatch(label) is not None


def _want(row, name: str) -> _Want:
    first, last, rst = frame_range(row)
    if is_flood(row):
        ev = [int(x) for x in (row.evidence or [rst])][:10]
        return _Want(name, str(row.cause), rst, max(1, min(ev) - 200), max(ev) + 200, None, target=str(row.dst))
    return _Want(name, str(row.cause), rst, first, last,
                 frozenset({(str(row.src), int(row.sport)), (str(row.dst), int(row.dport))}))


def _big_endian(path: Path) -> bool:
    stream, _ = open_stream(path)
    with stream:
        head = stream.read(12)
    if is_pcap(head):
        return head[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
    return head[8:12] == b"\x1a\x2b\x3c\x4d"


def _collect(path: Path, wants: list[_Want]) -> None:
    big = _big_endian(path)
    by_ports: dict[int, list[_Want]] = defaultdict(list)
    floods = [w for w in wants if w.ends is None]
    for w in wants:
        if w.ends is not None:
            (_, a), (_, b) = sorted(w.ends) if len(w.ends) == 2 else (next(iter(w.ends)),) * 2
            by_ports[min(a, b) << 16 | max(a, b)].append(w)
    keys = np.array(sorted(by_ports), np.int64)
    lo = min((w.first for w in wants), default=0)
    hi = max((w.last for w in wants), default=0)
    diag = Diagnostics(str(path))
    stream, _ = open_stream(path)
    with stream:
        head = stream.read(4)
        if not head:
            raise CaptureError(str(path), "empty file")
        reader = read_pcap if is_pcap(head) else read_pcapng if is_pcapng(head) else None
        if reader is None:
            raise CaptureError(str(path), "not a pcap or pcapng file")
        for buf, rec in reader(ChunkBuffer.from_stream(stream, diag, first=head), diag):
            if rec.frame[-1] < lo or rec.frame[0] > hi:
                if rec.frame[0] > hi:
                    break
                continue
            seg, _ = decode(buf, rec, diag)
            f = seg["frame"]
            sp, dp = seg["sport"].astype(np.int64), seg["dport"].astype(np.int64)
            pk = np.minimum(sp, dp) << 16 | np.maximum(sp, dp)
            hit = (f >= lo) & (f <= hi) & np.isin(pk, keys)
            rows = np.flatnonzero(hit)
            if floods:
                rows = np.union1d(rows, np.flatnonzero((f >= lo) & (f <= hi)))
            pos = np.searchsorted(rec.frame, f)
            for i in rows:
                _take(seg, int(i), buf, rec, int(pos[i]), big, by_ports.get(int(pk[i]), []), floods)


def _take(seg, i: int, buf, rec, j: int, big: bool, cands: list[_Want], floods: list[_Want]) -> None:
    frame = int(seg["frame"][i])
    v6 = bool(seg["v6"][i])
    src = (address_text(v6, int(seg["src_hi"][i]), int(seg["src_lo"][i])), int(seg["sport"][i]))
    dst = (address_text(v6, int(seg["dst_hi"][i]), int(seg["dst_lo"][i])), int(seg["dport"][i]))
    ends = frozenset({src, dst})
    owners = [w for w in cands if w.first <= frame <= w.last and w.ends == ends]
    owners += [w for w in floods if w.first <= frame <= w.last and len(w.packets) < FLOOD_PACKETS
               and w.target in (src[0], dst[0])]
    if not owners:
        return
    start, cap = int(rec.data[j]), int(rec.caplen[j])
    data = bytes(buf[start:start + cap])
    origlen = struct.unpack(">I" if big else "<I", bytes(buf[start - 4:start]))[0] if start >= 4 else cap
    item = (frame, int(rec.linktype[j]), int(rec.ts_ns[j]), max(origlen, cap), data)
    for w in owners:
        w.packets.append(item)


def pcapng_bytes(packets: list, rst_frame: int, cause: str, label: str, version: str) -> bytes:
    """A little-endian pcapng: one interface per link type, nanosecond timestamps, a comment per packet."""
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + option(1, f"rstwatch evidence: {cause} at frame {rst_frame} of {label}".encode())
                 + option(4, f"rstwatch {version}".encode()) + option(0, b""))
    ifaces: dict[int, int] = {}
    blocks = [shb]
    for _, linktype, _, _, _ in packets:
        if linktype not in ifaces:
            ifaces[linktype] = len(ifaces)
            blocks.append(block(1, struct.pack("<HHI", linktype, 0, 0) + option(9, b"\x09") + option(0, b"")))
    for frame, linktype, ts_ns, origlen, data in sorted(packets, key=lambda p: p[0]):
        note = f"frame {frame} of {capture_name(label)}" + (f"; the RST: {cause}" if frame == rst_frame else "")
        body = struct.pack("<IIIII", ifaces[linktype], ts_ns >> 32 & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF, len(data), origlen)
        body += data + b"\0" * (-len(data) % 4) + option(1, note.encode()) + option(0, b"")
        blocks.append(block(6, body))
    return b"".join(blocks)
