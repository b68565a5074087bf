"""The tshark engine: Wireshark's dissectors through pyshark, for frames the fast reader does
not decode (odd link types, tunnels). Slow (~2,000 packets/s) but it understands everything."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import CaptureError
from .diagnostics import Diagnostics
from .segments import SEGMENT_COLUMNS, Segments, V4_MAPPED


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


def _addr(text: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return 0, int(V4_MAPPED) | int(ip)
    v = int(ip)
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF


def _epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _first_line(exc: BaseException) -> str:
    """tshark's own complaint if pyshark passed it on, else the exception's first line."""
    text = str(exc)
    for line in text.splitlines():
        if line.startswith("Last error line:"):
            return line.split(":", 1)[1].strip()
    return text.splitlines()[0] if text else type(exc).__name__


UNKNOWN_EXIT = 255


class _UnknownChildFilter(logging.Filter):
    """asyncio's child watcher logs a warning when tshark was reaped by someone else's waitpid();
    rstwatch handles that exit itself (UNKNOWN_EXIT), so the user is not shown the log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unknown child process pid")


def read_with_tshark(path: Path, diag: Diagnostics, display_filter: str = "tcp",
                     only: np.ndarray | None = None) -> Segments:
    """Decode the TCP segments of `path` matching `display_filter` with pyshark; with `only`, keep
    those frame numbers alone (the filter may take more: frames the fast reader already decoded)."""
    if not tshark_available():
        raise CaptureError(str(path), "needs the tshark engine (link type not decoded by the fast reader) "
                                      "but tshark is not installed (apt-get install tshark)")
    import pyshark  # imported lazily: only this engine needs it
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _UnknownChildFilter) for f in asyncio_log.filters):
        asyncio_log.addFilter(_UnknownChildFilter())

    rows: dict[str, list] = {k: [] for k in SEGMENT_COLUMNS}
    # Our own event loop, closed when done: left to itself pyshark installs a SIGCHLD watcher on a
    # loop that never runs again, and once its wake-up pipe is full every later child process's
    # exit prints a traceback (thousands in a notebook or a test run).
    loop = asyncio.new_event_loop()
    try:
        return _read(pyshark.FileCapture(str(path), display_filter=display_filter, use_json=True,
                                         keep_packets=False, eventloop=loop), path, diag, rows, only)
    finally:
        loop.close()


def _read(cap, path: Path, diag: Diagnostics, rows: dict[str, list], only: np.ndarray | None = None) -> Segments:
    try:
        for pkt in cap:
            ips = [layer for layer in pkt.layers if layer.layer_name in ("ip", "ipv6")]
            if not ips or not hasattr(pkt, "tcp"):
                continue
            ip, tcp = ips[-1], pkt.tcp      # innermost IP header carries this TCP segment
            v6 = ip.layer_name == "ipv6"
            s_hi, s_lo = _addr(ip.src)
            d_hi, d_lo = _addr(ip.dst)
            try:   # build the whole row first so a field tshark left out cannot misalign columns
                row = (int(pkt.frame_info.number), _epoch_ns(pkt.frame_info.time_epoch), v6, s_hi, s_lo, d_hi, d_lo,
                       int(tcp.srcport), int(tcp.dstport), int(tcp.seq_raw), int(tcp.ack_raw),
                       int(str(tcp.flags), 16), int(tcp.window_size_value), int(tcp.hdr_len), int(tcp.len),
                       int(ip.hlim if v6 else ip.ttl), -1 if v6 else int(str(ip.id), 16), 0, 0)   # tunnel, app framing: none told
            except (AttributeError, ValueError):
                diag.skip("tshark engine: TCP segment with missing fields", 1)
                continue
            for name, value in zip(SEGMENT_COLUMNS, row):
                rows[name].append(value)
    except Exception as exc:  # tshark stops on damaged files; keep what it gave
        failure = _first_line(exc)
    else:
        failure = None
    try:
        cap.close()
    except Exception as exc:   # pyshark reports tshark's exit status when closing
        procs = getattr(cap, "_running_processes", set())
        # asyncio reports 255 when another waitpid() reaped tshark first ("Unknown child process
        # pid"): the exit status is unknown, not a failure (tshark's own codes are small numbers).
        if not (procs and all(p.returncode == UNKNOWN_EXIT for p in procs)):
            failure = failure or _first_line(exc)
        # pyshark keeps the dead process listed when close() raises, and its __del__ would
        # raise the same error again at garbage collection: it has been reported once here.
        procs.clear()
    if failure:
        if not rows["frame"]:
            raise CaptureError(str(path), f"the tshark engine could not read it ({failure})")
        diag.warn(f"tshark engine stopped early ({failure})")
    seg = Segments({k: np.asarray(v, dtype=SEGMENT_COLUMNS[k]) for k, v in rows.items()})
    if only is not None:
        seg = seg.take(np.flatnonzero(np.isin(seg["frame"], only)))
    diag.tcp_segments += len(seg)
    return seg
