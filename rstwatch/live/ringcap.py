"""Capturing in rstwatch's own process: an AF_PACKET socket with a TPACKET_V3 ring, read by
compiled code (afring.pyx) into the pcapng stream the dumpcap path reads.

Why (docs/performance.md, the live path): with dumpcap every packet is copied by the kernel into
dumpcap's ring, by dumpcap into pcapng, through a pipe, and read again; dumpcap took ~40% of a core
at 273,000 packets/s. Here the kernel writes into memory rstwatch reads, truncated to the snap
length by the socket filter, with nothing in between.

Used for one Ethernet or loopback interface when rstwatch may open a packet socket (root or
CAP_NET_RAW); `any`, several interfaces, other link types, or no right to capture go through dumpcap
(`--capture dumpcap` always does). A --bpf filter is compiled by libpcap (the library dumpcap
uses), so it means exactly what it means there."""
from __future__ import annotations

import ctypes
import mmap
import socket
import struct
import threading
import time
from typing import Iterator

from ..sources.bpf import kernel_program
from ..sources.pcapng import block, option
from .dumpcap import CaptureStartError, CaptureStats, SNAPLEN

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 1, 1
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
LINKTYPE_ETHERNET = 1

BLOCK_BYTES = 1 << 20       # 1 MiB blocks ...
BLOCK_TIMEOUT_MS = 10       # ... handed over when full or after this long, whichever first
READ_WAIT_MS = 100          # how long one read waits for a block (the stop flag is checked between)
ERROR_PAUSE_S = 0.05        # after the socket reported an error (a link going down), before reading on


def link_type(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/type") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def ring_possible(interfaces: list[str]) -> str | None:
    """Why the in-process ring cannot capture these interfaces (None: it can)."""
    if len(interfaces) != 1 or interfaces[0] == "any":
        return "only one interface, not `any`, is captured through the ring"
    kind = link_type(interfaces[0])
    if kind is None:
        return f"there is no device named {interfaces[0]!r}"
    if kind not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return f"{interfaces[0]} is not an Ethernet or loopback interface"
    try:
        from . import afring  # noqa: F401  (compiled; absent on the pure-Python build)
    except ImportError:
        return "the compiled ring reader is not built"
    return None


def compile_filter(expr: str | None, snaplen: int, where: str = "--bpf") -> bytes:
    """The classic BPF program for `expr` (libpcap syntax) on interface `where`, as packed
    instructions. Its accept returns `snaplen`, so the kernel copies only that much of a packet
    into the ring; with no expression, every packet is accepted (truncated)."""
    if not expr:
        return struct.pack("=HBBI", 0x06, 0, 0, snaplen)        # BPF_RET|BPF_K snaplen
    return kernel_program(expr, where, snaplen)


def _attach(sock: socket.socket, program: bytes) -> None:
    insns = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(insns))      # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def pcapng_header(name: str, snaplen: int) -> bytes:
    """A section header and one Ethernet interface block (microsecond timestamps, as dumpcap's).
    Little-endian, as afring's packet blocks are on every platform rstwatch is built for."""
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + option(4, b"rstwatch") + option(0, b""))
    idb = block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, snaplen) + option(2, name.encode()) + option(0, b""))
    return shb + idb


class RingCapture:
    """The Dumpcap interface (a context manager with chunks, stop, kernel_drops, stats, failure),
    captured in this process. `chunks()` yields the pcapng header, then batches of whole EPBs."""

    owner = "rstwatch's ring"

    def __init__(self, interfaces: list[str], bpf: str | None = None, snaplen: int = SNAPLEN,
                 buffer_mib: int = 32) -> None:
        self.interfaces = interfaces
        self.name = interfaces[0]
        self.snaplen = snaplen
        self.program = compile_filter(bpf, snaplen, self.name)
        self.block_nr = max(4, (buffer_mib << 20) // BLOCK_BYTES)
        self.sock: socket.socket | None = None
        self.ring: mmap.mmap | None = None
        self.reader = None
        self.skips_outgoing = False
        self.stopping = False
        self.why = ""
        self.drops = 0
        self._lock = threading.Lock()

    def __enter__(self) -> "RingCapture":
        from .afring import RingReader
        where = self.name
        try:
            index = socket.if_nametoindex(where)
            # protocol 0: no packet is taken until bind() names the interface and the protocol
            # (opened with ETH_P_ALL the socket would take every interface's packets meanwhile)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise CaptureStartError(where, _why(exc)) from None
        try:
            _attach(sock, self.program)
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            # tpacket_req3: block size, blocks, frame size, frames, block timeout (ms), priv size, features
            req = struct.pack("=7I", BLOCK_BYTES, self.block_nr, 2048, BLOCK_BYTES // 2048 * self.block_nr,
                              BLOCK_TIMEOUT_MS, 0, 0)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self.ring = mmap.mmap(sock.fileno(), BLOCK_BYTES * self.block_nr, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
            # promiscuous while the socket lives, as dumpcap captures by default (a mirror port's
            # traffic is addressed to other hosts); struct packet_mreq, PACKET_MR_PROMISC
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("=iHH8s", index, PACKET_MR_PROMISC, 0, b""))
            sock.bind((where, ETH_P_ALL))
        except OSError as exc:
            if self.ring is not None:       # the mapping holds the socket open: let both go
                self.ring.close()
                self.ring = None
            sock.close()
            raise CaptureStartError(where, _why(exc)) from None
        self.sock = sock
        self.skips_outgoing = link_type(where) == ARPHRD_LOOPBACK
        self.reader = RingReader(self.ring, sock.fileno(), BLOCK_BYTES, self.block_nr, self.snaplen,
                                 self.skips_outgoing)
        self._index = index
        return self

    def chunks(self) -> Iterator[bytes]:
        """The stream until stop() or the interface goes away."""
        yield pcapng_header(self.name, self.snaplen)
        errors = 0
        while not self.stopping:
            data = self.reader.read(READ_WAIT_MS)
            if data:
                yield data
            if self.reader.error_events != errors and not self.stopping:
                # The socket reports an error (the interface went down, or away). Reading it clears
                # it: left pending, every poll returned at once and the loop spun a core while the
                # link was down. Down and up again, the capture goes on, as dumpcap's does.
                errors = self.reader.error_events
                self._clear_error()
                if not _exists(self.name, self._index):
                    self.why = f"the interface {self.name} went away"
                    return
                time.sleep(ERROR_PAUSE_S)
        # What the ring already holds when asked to stop: no new packet enters it (stop()), so
        # this ends; at most one pass over the ring, whatever happens.
        for _ in range(self.block_nr):
            data = self.reader.read(0)
            if data is None:
                return
            if data:
                yield data

    def _clear_error(self) -> None:
        with self._lock:
            if self.sock is not None:
                try:
                    self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                except OSError:
                    pass

    def kernel_drops(self) -> dict[str, int] | None:
        """Packets the kernel could not put in the ring so far (read now; the kernel resets its count)."""
        with self._lock:
            if self.sock is not None:
                raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
                _, drops = struct.unpack_from("=II", raw)      # tpacket_stats_v3: packets, drops
                self.drops += drops
            return {self.name: self._packets(self.drops)}

    def _packets(self, count: int) -> int:
        """A count of the kernel's in packets: on loopback it counts (and drops) each packet twice,
        leaving and arriving, and one copy is kept; both copies meet a full ring alike."""
        return count // 2 if self.skips_outgoing else count

    def stop(self, timeout: float = 2.0) -> None:
        """No new packet enters the ring (a filter that takes none), so draining it ends."""
        self.stopping = True
        with self._lock:
            if self.sock is not None:
                try:
                    _attach(self.sock, struct.pack("=HBBI", 0x06, 0, 0, 0))     # BPF_RET|BPF_K 0
                except OSError:
                    pass

    def __exit__(self, *exc) -> None:
        self.stop()
        self.kernel_drops()
        # The reader first (a feed thread still in its last read sees it closed and returns), then
        # the mapping, which holds the socket open (and promiscuous) until it is closed too.
        if self.reader is not None:
            self.reader.close()
        with self._lock:
            if self.ring is not None:
                try:
                    self.ring.close()
                except BufferError:         # a view of it still exported: it goes with the object
                    pass
                self.ring = None
            if self.sock is not None:
                self.sock.close()
                self.sock = None

    def failure(self) -> str:
        return self.why or "the capture ended"

    def stats(self) -> CaptureStats:
        taken = self.reader.packets if self.reader is not None else 0
        dropped = self._packets(self.drops)
        return CaptureStats(received=taken, dropped=dropped, per_interface={self.name: (taken, dropped)},
                            from_kernel=True, from_ring=True)


def _exists(name: str, index: int) -> bool:
    try:
        return socket.if_nametoindex(name) == index
    except OSError:
        return False


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "no permission to open a packet socket (run as root, or use --capture dumpcap with a capable dumpcap)"
    if exc.errno == 19 or "no such device" in str(exc).lower():
        return "no such device"
    return exc.strerror or str(exc)
