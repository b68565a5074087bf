"""The pipe path: pcapng bytes from dumpcap's stdout -> whole blocks -> the fast reader ->
TCP segment batches on a queue. Runs in a thread so the main loop can keep its clock
(verdict deadlines, signals) while this one blocks on the pipe."""
from __future__ import annotations

import fcntl
import os
import queue
import socket
import threading
import time
from typing import Callable, Iterator

import numpy as np

from ..sources.copies import CopyFilter
from ..sources.decode import decode
from ..sources.diagnostics import Diagnostics
from ..sources.pcapng import PACKET_BLOCKS, read_pcapng
from ..sources.stream import ChunkBuffer
from ..loops import CORRUPT, walk_pcapng

READ_BYTES = 1 << 20      # one read takes whatever the pipe holds, up to this much
PIPE_BYTES = 1 << 20      # the capture pipe's size asked for (Linux's default cap for a user, fs.pipe-max-size)
SMALL_READ = 1 << 14      # a read shorter than this is followed by a short wait ...
COALESCE_S = 0.005        # ... of this long, so the next one takes more at once
END = None                # queue sentinel: the pipe reached end of file
QUEUE_BATCHES = 16        # a slow consumer blocks the reader (and so the pipe, then dumpcap): memory stays bounded


class BlockSplitter:
    """Cut a pcapng byte stream at block boundaries, so that whoever gets the bytes (the
    reader, the evidence file) only ever sees whole blocks. Remembers the header blocks
    (section header, interfaces) that start the stream, which a new ring file repeats."""

    def __init__(self) -> None:
        self.pending = b""
        self.big = False
        self.header = b""
        self.header_done = False
        self.corrupt = False

    def feed(self, data: bytes) -> bytes:
        self.pending = self.pending + data if self.pending else data
        buf = np.frombuffer(self.pending, dtype=np.uint8)
        offs, types, _, stop, status, big_after, _ = walk_pcapng(buf, 0, self.big, with_fields=False)
        self.big = bool(big_after)
        if status == CORRUPT:
            self.corrupt = True
        if not self.header_done and len(offs):
            pkt = np.flatnonzero(np.isin(types, PACKET_BLOCKS))
            end = int(offs[pkt[0]]) if len(pkt) else stop
            self.header += self.pending[:end]
            self.header_done = bool(len(pkt))
        whole, self.pending = self.pending[:stop], self.pending[stop:]
        return whole


class PipeFeed:
    """Reads the capture pipe in its own thread; `batches` gets (Segments, arrival monotonic
    time) tuples and END once the pipe closes."""

    def __init__(self, fd: int | None, label: str, on_blocks: Callable[[bytes, bytes], None] | None = None,
                 interfaces: list[str] | None = None, source: Iterator[bytes] | None = None) -> None:
        self.fd = fd
        self.source = source                # pcapng bytes made in this process (ringcap.py) instead of a pipe
        if fd is not None:
            try:    # a larger pipe: dumpcap blocks less in a burst, and each read takes more at once
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except (OSError, AttributeError):   # not a pipe, a kernel that refuses, not Linux
                pass
        self.copies = CopyFilter(live_name(interfaces or []))     # `any`: a forwarded segment is seen twice
        self.diag = Diagnostics(label)
        self.batches: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self.on_blocks = on_blocks          # evidence writer: (header blocks, whole blocks)
        self.splitter = BlockSplitter()
        self.bytes_read = 0
        self.frames_seen = 0                # packets decoded and (if TCP) queued: set after the put
        self.unsupported = 0
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rstwatch-feed", daemon=True)

    def start(self) -> "PipeFeed":
        self._thread.start()
        return self

    def wait_started(self, timeout: float) -> bool:
        """True once dumpcap has sent data (its header comes as soon as the interface is open);
        False if the pipe closed first or nothing came in time."""
        deadline = time.monotonic() + timeout
        while not self._started.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                return self._started.is_set()
        return True

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _chunks(self) -> Iterator[bytes]:
        for data in self.source if self.source is not None else self._pipe():
            self.bytes_read += len(data)
            self._started.set()
            whole = self.splitter.feed(data)
            if whole:
                if self.on_blocks:
                    self.on_blocks(self.splitter.header, whole)
                yield whole
            if self.splitter.corrupt:
                self.diag.warn("the capture stream is corrupt; stopped reading")
                return

    def _pipe(self) -> Iterator[bytes]:
        while True:
            try:
                data = os.read(self.fd, READ_BYTES)
            except OSError:
                return
            if not data:
                return
            if len(data) < SMALL_READ:
                # dumpcap writes as packets come: a few hundred bytes a read, each then a batch of its
                # own through decoding, the queue and the tracker (the cost of a batch, not of its
                # packets, was what limited a real capture). Letting the pipe fill a little first
                # makes a busy link's batches large; a quiet one waits COALESCE_S more, against the
                # verdicts' 1 s hold.
                time.sleep(COALESCE_S)
            yield data

    def _run(self) -> None:
        try:
            for buf, rec in read_pcapng(ChunkBuffer.from_chunks(self._chunks(), self.diag), self.diag):
                seg, odd = decode(buf, rec, self.diag)
                seg = self.copies.apply(buf, rec, seg)
                self.unsupported += len(odd)
                if len(seg):
                    self.batches.put((seg, time.monotonic()))
                self.frames_seen = self.diag.packets
        except BaseException as exc:       # surfaced by the main loop, never lost in a thread
            self.error = exc
        finally:
            self.batches.put(END)


def live_name(interfaces: list[str]) -> Callable[[int], str | None]:
    """Interface names as this host knows them: an SLL2 index through the kernel (dumpcap captures
    in our namespace), a pcapng interface by the order of the -i options (dumpcap keeps it)."""
    def name(key: int) -> str | None:
        if key >> 63:
            index = key & 0xFFFFFFFF
            try:
                return socket.if_indextoname(index)
            except OSError:
                return f"ifindex {index}"          # gone since (a pod's veth): the index still tells copies apart
        if key >> 62:
            return None
        i = (key >> 32) & 0x3FFFFFFF
        return interfaces[i] if i < len(interfaces) else f"interface {i}"
    return name


def settled_frame(feed: PipeFeed, tracker, join) -> int:
    """The last frame before which no reset of this host still waits for its kernel event (a reset
    waits until it is joined or its verdict is out): evidence held for kernel reasons may be
    written up to it. Typically a tick (0.25 s) behind the wire."""
    seen = feed.frames_seen                 # read before the queue: its batch is queued by then
    upto = seen if feed.batches.empty() else tracker.last_frame
    waiting = join.unmatched_frames()
    if waiting and len(tracker.pend_frame):
        still = np.intersect1d(np.asarray(waiting, np.int64), tracker.pend_frame)
        if len(still):
            upto = min(upto, int(still.min()) - 1)
    return upto
