"""The packets behind a few findings, for their ladder diagrams: one pass per capture with the
fast reader, keeping only the frame ranges of the sampled connections, then each finding's own
4-tuple. Headers only: the reader never keeps payload bytes."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CaptureError
from ..sources.capture import read_segments
from ..sources.diagnostics import Diagnostics
from ..sources.segments import Segments, address_text

FLOOD_WINDOW = 200          # frames either side of a flood's sample RST searched for its connection
_RANGE = re.compile(r"frame\.number>=(\d+) && frame\.number<=(\d+)")


@dataclass
class Packet:
    frame: int
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int
    plen: int
    win: int


def is_flood(row) -> bool:
    return int(row.sport) == 0 and int(row.dport) == 0


def frame_range(row) -> tuple[int, int, int]:
    """(first, last, RST frame) of the packets to look at for a finding."""
    frame = int(row.frame)
    if is_flood(row):
        return max(1, frame - FLOOD_WINDOW), frame + FLOOD_WINDOW, frame
    first, last = getattr(row, "conn_first_frame", None), getattr(row, "conn_last_frame", None)
    if first is None or pd.isna(first):
        m = _RANGE.search(str(row.wireshark_filter))
        first, last = (int(m.group(1)), int(m.group(2))) if m else (frame, frame)
    return int(first), int(last), frame


def _keep_ranges(ranges: list[tuple[int, int]]):
    lo = np.array([r[0] for r in ranges], np.int64)
    hi = np.array([r[1] for r in ranges], np.int64)

    def keep(seg: Segments) -> Segments:
        f = seg["frame"]
        mask = np.zeros(len(f), bool)
        for a, b in zip(lo, hi):
            mask |= (f >= a) & (f <= b)
        return seg.take(np.flatnonzero(mask))
    return keep


def connection_packets(path: Path, findings: pd.DataFrame) -> dict[int, list[Packet]]:
    """For each row of `findings` (all from the capture `path`): its connection's packets, keyed by
    the row's index. A flood finding gets the connection of its first RST."""
    rows = list(findings.itertuples())
    ranges = [frame_range(r)[:2] for r in rows]
    seg = read_segments(path, Diagnostics(str(path)), _keep_ranges(ranges))
    frames = seg["frame"]
    out: dict[int, list[Packet]] = {}
    for row, (first, last) in zip(rows, ranges):
        sel = np.flatnonzero((frames >= first) & (frames <= last))
        pk = [_packet(seg, i) for i in sel]
        rst = next((p for p in pk if p.frame == int(row.frame)), None)
        if rst is None:
            continue
        ends = {(rst.src, rst.sport), (rst.dst, rst.dport)}
        out[row.Index] = [p for p in pk if {(p.src, p.sport), (p.dst, p.dport)} == ends]
    return out


def _packet(seg: Segments, i: int) -> Packet:
    v6 = bool(seg["v6"][i])
    return Packet(frame=int(seg["frame"][i]), ts_ns=int(seg["ts_ns"][i]),
                  src=address_text(v6, int(seg["src_hi"][i]), int(seg["src_lo"][i])), sport=int(seg["sport"][i]),
                  dst=address_text(v6, int(seg["dst_hi"][i]), int(seg["dst_lo"][i])), dport=int(seg["dport"][i]),
                  flags=int(seg["flags"][i]), seq=int(seg["seq"][i]), ack=int(seg["ack"][i]),
                  plen=int(seg["plen"][i]), win=int(seg["win"][i]))


def packets_for_samples(samples: pd.DataFrame, where: dict[str, Path]) -> tuple[dict[int, list[Packet]], list[str]]:
    """Packets per sampled finding, reading each capture once; and a note per capture that could
    not be read (saved findings whose capture moved, a live session without --write)."""
    out: dict[int, list[Packet]] = {}
    notes: list[str] = []
    for label, grp in samples.groupby("file", sort=False):
        path = where.get(str(label), Path(str(label)))
        if path is None:                        # named only inside saved findings: never opened
            notes.append(f"{label}: capture not named on the command line (give its folder with --packets), "
                         "so its examples have no packet ladder")
            continue
        if not path.is_file():
            notes.append(f"{label}: capture not found, so its examples have no packet ladder")
            continue
        try:
            out.update(connection_packets(path, grp))
        except (CaptureError, OSError) as exc:
            notes.append(f"{label}: packets could not be re-read ({exc})")
    return out, notes
