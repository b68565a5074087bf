"""Gzip captures are decompressed by python-isal (rstwatch/sources/fastgzip.py), and a damaged one
reads as the standard library reads it: the same packets before the damage, the same warning or
error. Each case is read twice, once with isal and once with gzip alone, and compared."""
from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import CAPTURES
from rstwatch.errors import CaptureError
from rstwatch.sources import fastgzip
from rstwatch.sources.capture import iter_segments
from rstwatch.sources.diagnostics import Diagnostics
from rstwatch.sources.stream import open_stream

# a capture of a few hundred KB (several of isal's input reads), and a small one
BIG = CAPTURES / "real" / "control-ab-lighttpd.pcap"
SMALL = CAPTURES / "data-after-close.pcap"


def _read(path: Path) -> tuple:
    """What the reader makes of `path`: every segment's frame, time and flags, and what it said."""
    diag = Diagnostics(str(path))
    try:
        parts = list(iter_segments(path, diag))
    except CaptureError as exc:
        return ("error", str(exc))
    rows = [np.stack([p["frame"], p["ts_ns"], p["flags"].astype(np.int64)]) for p in parts if len(p)]
    table = np.concatenate(rows, axis=1).tolist() if rows else []
    return (table, diag.packets, diag.truncated, list(diag.warnings))


def _both(path: Path, monkeypatch) -> tuple[tuple, tuple]:
    fast = _read(path)
    with monkeypatch.context() as m:
        m.setattr(fastgzip, "IGzipFile", None)
        slow = _read(path)
    return fast, slow


def _damaged(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    packed = gzip.compress(data)
    cases = [(f"cut at {cut}", packed[:cut]) for cut in sorted(rng.sample(range(11, len(packed)), 40))]
    for k in range(25):                                 # a byte of the deflate stream changed
        at = rng.randrange(10, len(packed) - 8)
        cases.append((f"byte {at} flipped", packed[:at] + bytes([packed[at] ^ (1 << rng.randrange(8))]) + packed[at + 1:]))
    cases += [("crc wrong", packed[:-8] + bytes([packed[-8] ^ 1]) + packed[-7:]),
              ("length wrong", packed[:-1] + bytes([packed[-1] ^ 1])),
              ("two members", packed + gzip.compress(data)),
              ("garbage after", packed + b"not gzip at all"),
              ("zeros after", packed + bytes(64)),
              ("second member cut", packed + gzip.compress(data)[:len(packed) // 2])]
    return cases


@pytest.mark.parametrize("source", [BIG, SMALL], ids=lambda p: p.name)
def test_damaged_gzip_reads_as_the_standard_library_reads_it(source: Path, tmp_path: Path, monkeypatch):
    assert fastgzip.igzip_class() is not None, "isal is a dependency (pyproject.toml)"
    data = source.read_bytes()
    whole = tmp_path / "whole.pcap.gz"
    whole.write_bytes(gzip.compress(data))
    stream, gz = open_stream(whole)
    assert gz and isinstance(stream, fastgzip.RereadableGzip)
    fast, slow = _both(whole, monkeypatch)
    assert fast == slow and fast[1] > 10 and not fast[2]
    fell_back = 0
    for name, blob in _damaged(data, random.Random(source.name)):
        path = tmp_path / "damaged.pcap.gz"
        path.write_bytes(blob)
        fast, slow = _both(path, monkeypatch)
        assert fast == slow, name
        fell_back += fast[0] == "error" or bool(fast[3])
    assert fell_back >= 40          # most cases were damaged enough to be told


def test_a_cut_gzip_gives_every_packet_before_the_cut(tmp_path: Path):
    """isal alone handed out nothing of the buffer it was filling when the data ended; read
    again by gzip, the packets up to the cut are all there."""
    data = BIG.read_bytes()
    packed = gzip.compress(data)
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(packed[:len(packed) * 3 // 4])
    decompressor = zlib.decompressobj(wbits=31)
    reachable = len(decompressor.decompress(packed[:len(packed) * 3 // 4]))
    diag = Diagnostics(str(cut))
    packets = sum(len(p) for p in iter_segments(cut, diag))
    assert diag.truncated and any("ends early" in w for w in diag.warnings)
    whole = tmp_path / "whole.pcap"
    whole.write_bytes(data[:reachable])
    assert packets == sum(len(p) for p in iter_segments(whole, Diagnostics(str(whole)))) > 0
