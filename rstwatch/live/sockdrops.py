"""The kernel's own count of packets dumpcap's capture sockets dropped, read while it runs.

Under overload dumpcap blocks writing into our pipe, its ring buffer (libpcap's TPACKET_V3 ring on
an AF_PACKET socket) fills, and the kernel drops what no longer fits. It counts those drops per
socket in the socket's packet statistics (tp_drops), which only the socket's owner can read, with
getsockopt(PACKET_STATISTICS). The drop counter that sock_diag and `ss -0 -m` show (skmem d<N>)
stays 0 for a ring (measured on Linux 6.18: 0 while tp_drops said 904,105), and dumpcap prints its
own count only when it stops cleanly, which a dumpcap blocked on the pipe and then killed never does.

So rstwatch takes a second handle on dumpcap's packet sockets (pidfd_getfd, Linux >= 5.6; it needs
the right to ptrace dumpcap, which root has) and reads the statistics itself. Reading them resets
them, so dumpcap's count at its stop covers only what came after rstwatch's last read: the two
add up (CaptureStats in dumpcap.py). Without the right (no root, dumpcap with file capabilities,
a seccomp filter) nothing is read and the drops stay unknown until dumpcap reports them.
"""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct

SOL_PACKET = 263
PACKET_STATISTICS = 6
SYS_PIDFD_GETFD = 438          # the same number on every Linux architecture


def _pidfd_getfd(pidfd: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    got = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    if got < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return got


def read_statistics(sock: socket.socket) -> tuple[int, int]:
    """(packets, drops) since the last read (the kernel resets them): struct tpacket_stats or,
    on a TPACKET_V3 socket, tpacket_stats_v3 (with a freeze count after them)."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
    packets, drops = struct.unpack_from("=II", raw)
    return packets, drops


class SocketDrops:
    """Drops per captured interface since dumpcap started, from its AF_PACKET sockets.

    `poll()` returns the running totals ({interface: drops}), or None when the sockets cannot be
    read (then `why` says why, once). Cheap: one getsockopt per socket per call."""

    def __init__(self, pid: int, interfaces: list[str]) -> None:
        self.pid = pid
        self.interfaces = interfaces
        self.drops: dict[str, int] = {}
        self.packets: dict[str, int] = {}
        self.socks: list[tuple[str, socket.socket]] = []
        self.why: str | None = None
        self.readable = False           # the sockets were found and read at least once
        self._pidfd: int | None = None

    def _open(self) -> bool:
        """Find dumpcap's packet sockets (once: it opens them before it writes its first block)."""
        try:
            self._pidfd = os.pidfd_open(self.pid)
            fds = os.listdir(f"/proc/{self.pid}/fd")
        except (OSError, AttributeError) as exc:
            self.why = getattr(exc, "strerror", None) or str(exc)
            return False
        for fd in sorted(fds, key=int):
            try:
                if not os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith("socket:"):
                    continue
                sock = socket.socket(fileno=_pidfd_getfd(self._pidfd, int(fd)))
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOSYS, errno.ESRCH):
                    self.why = exc.strerror
                    self._close_socks()
                    return False
                continue                        # closed meanwhile
            if sock.family != socket.AF_PACKET:
                sock.close()
                continue
            self.socks.append((self._name(sock), sock))
        if not self.socks:
            self.why = "no packet socket found in dumpcap"
            return False
        return True

    def _name(self, sock: socket.socket) -> str:
        """The interface a socket is bound to; `any` (index 0) and a lone interface by what was asked."""
        if len(self.interfaces) == 1:
            return self.interfaces[0]
        try:
            name = sock.getsockname()[0]
        except OSError:
            name = ""
        return name if name in self.interfaces else ("any" if "any" in self.interfaces else name or "?")

    def poll(self) -> dict[str, int] | None:
        if self.why is not None:
            return None
        if not self.socks and not self._open():
            return None
        for name, sock in self.socks:
            try:
                packets, drops = read_statistics(sock)
            except OSError as exc:
                self.why = exc.strerror
                return None
            self.drops[name] = self.drops.get(name, 0) + drops
            self.packets[name] = self.packets.get(name, 0) + packets
        self.readable = True
        return dict(self.drops)

    def total(self) -> int:
        return sum(self.drops.values())

    def _close_socks(self) -> None:
        for _, sock in self.socks:
            sock.close()
        self.socks = []

    def close(self) -> None:
        """Let go of the sockets: held past dumpcap's end they would keep filling and dropping."""
        self._close_socks()
        self.why = self.why or "closed"
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
