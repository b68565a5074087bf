"""Wireshark's dumpcap as the capture process: found through pyshark, owned by a context manager
that always reaps it, and its stderr turned into one-line reasons (permissions, no such device)
and the final drop counts."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field

from ..errors import RstwatchError
from .sockdrops import SocketDrops

# Headers only: Ethernet + QinQ (22) + IPv6 (40) + a few extension headers + TCP with options (60).
SNAPLEN = 192


class CaptureStartError(RstwatchError):
    """dumpcap could not start capturing (no rights, no such interface, bad filter)."""


PERMISSION_HELP = ("run rstwatch as root, or let dumpcap capture for you: "
                   "`sudo dpkg-reconfigure wireshark-common` (answer Yes) and `sudo usermod -aG wireshark $USER` "
                   "then log in again; or `sudo setcap cap_net_raw,cap_net_admin=eip {dumpcap}`")


def find_dumpcap() -> str:
    """RSTWATCH_DUMPCAP, else where pyshark finds Wireshark's tools, else PATH."""
    override = os.environ.get("RSTWATCH_DUMPCAP")
    if override:
        return override
    try:
        from pyshark.tshark.tshark import get_process_path
        return get_process_path(process_name="dumpcap")
    except Exception:       # pyshark raises its own not-found exception; fall back to PATH
        found = shutil.which("dumpcap")
        if found:
            return found
    raise CaptureStartError("dumpcap", "not found: install Wireshark's capture tool (`sudo apt-get install tshark`) "
                                       "or set RSTWATCH_DUMPCAP")


def list_interfaces(dumpcap: str | None = None) -> list[tuple[str, str]]:
    """(name, description) of every interface dumpcap can open."""
    dumpcap = dumpcap or find_dumpcap()
    try:
        proc = subprocess.run([dumpcap, "-D"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise CaptureStartError(dumpcap, exc.strerror or str(exc)) from None
    if proc.returncode != 0:
        raise CaptureStartError(dumpcap, _reason(proc.stderr, dumpcap))
    out = []
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*\d+\.\s+(\S+)(?:\s+\((.*)\))?", line)
        if m:
            out.append((m.group(1), m.group(2) or ""))
    return out


def _reason(stderr: str, dumpcap: str) -> str:
    """The one line a user needs out of dumpcap's error text."""
    text = stderr.strip()
    if re.search(r"permission|Operation not permitted", text, re.I):
        return f"no permission to capture; {PERMISSION_HELP.format(dumpcap=dumpcap)}"
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("dumpcap:"):
            return line[len("dumpcap:"):].strip()
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("Capturing on")]
    return lines[0] if lines else "dumpcap failed"


def _die_with_parent() -> None:
    """In the child before exec: if rstwatch is killed outright (SIGKILL), the kernel stops dumpcap
    too instead of leaving it capturing into a dead pipe. (Linux clears this for binaries with file
    capabilities; those still stop at their next write into the closed pipe.)"""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _has_sll2(dumpcap: str) -> bool:
    """Whether `any` offers Linux cooked v2 here (libpcap >= 1.10); older ones give cooked v1,
    whose copies are told apart by direction but not named."""
    try:
        proc = subprocess.run([dumpcap, "-L", "-i", "any"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "LINUX_SLL2" in proc.stdout


_DROPS = re.compile(r"Packets received/dropped on interface '(.*)': (\d+)/(\d+)")


@dataclass
class CaptureStats:
    received: int = 0
    dropped: int = 0
    per_interface: dict[str, tuple[int, int]] = field(default_factory=dict)
    from_dumpcap: bool = False      # dumpcap printed its statistics when it stopped
    from_kernel: bool = False       # rstwatch read the kernel's drop count of dumpcap's sockets
    taken_known: bool = True        # `received` is what dumpcap took (not so from the kernel on lo/any)
    from_ring: bool = False         # rstwatch's own ring (ringcap.py): the kernel's count, exact

    @property
    def known(self) -> bool:
        return self.from_dumpcap or self.from_kernel


def _loopback_twice(name: str) -> bool:
    """Whether a packet socket on this interface sees loopback packets twice (outgoing and
    incoming; libpcap keeps one), so the kernel's packet count is no count of packets."""
    if name == "any":
        return True
    try:
        with open(f"/sys/class/net/{name}/type") as fh:
            return fh.read().strip() == "772"        # ARPHRD_LOOPBACK
    except OSError:
        return False


class Dumpcap:
    """`with Dumpcap(...) as cap:` read pcapng from cap.stdout; leaving the block stops and reaps it."""

    owner = "dumpcap's socket"      # whose socket the kernel's drops are counted on, as told to the user

    def __init__(self, interfaces: list[str], bpf: str | None = None, snaplen: int = SNAPLEN,
                 buffer_mib: int = 16, dumpcap: str | None = None) -> None:
        self.dumpcap = dumpcap or find_dumpcap()
        self.interfaces = interfaces
        # dumpcap writes only into our pipe (`-w -`) and never opens a path, so a planted symlink
        # cannot redirect it; evidence files are created by evidence.py (O_EXCL|O_NOFOLLOW).
        self.cmd = [self.dumpcap, "-q", "-n", "-w", "-", "-s", str(snaplen), "-B", str(buffer_mib)]
        for name in interfaces:
            self.cmd += ["-i", name]
            if name == "any" and _has_sll2(self.dumpcap):    # cooked v2 carries the interface index:
                self.cmd += ["-y", "LINUX_SLL2"]                # copies are told apart and named
        if bpf:
            self.cmd += ["-f", bpf]
        self.proc: subprocess.Popen | None = None
        self.stderr_lines: list[str] = []
        self._stderr_thread: threading.Thread | None = None
        self.stopping = False

    def __enter__(self) -> "Dumpcap":
        try:
            # Own session: a Ctrl-C in the terminal reaches rstwatch only, which then stops
            # dumpcap itself and still reads what it flushes on the way out.
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        except PermissionError:
            raise CaptureStartError(self.dumpcap, f"not allowed to run it; {PERMISSION_HELP.format(dumpcap=self.dumpcap)}") from None
        except OSError as exc:
            raise CaptureStartError(self.dumpcap, exc.strerror or str(exc)) from None
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.sockets = SocketDrops(self.proc.pid, self.interfaces)
        self._sockets_lock = threading.Lock()     # read from overload.py's thread and from stop()
        return self

    def kernel_drops(self) -> dict[str, int] | None:
        """Packets the kernel dropped on dumpcap's capture sockets so far, by interface (read
        now), or None where they cannot be read (sockdrops.py)."""
        with self._sockets_lock:
            if self.proc is None or self.proc.poll() is not None:
                self.sockets.close()            # its sockets, if still held, would count drops of no one
                return dict(self.sockets.drops) if self.sockets.readable else None
            return self.sockets.poll()

    def _drain_stderr(self) -> None:
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def stdout_fd(self) -> int:
        return self.proc.stdout.fileno()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask dumpcap to finish (it flushes and prints its statistics), then make sure it is gone."""
        self.stopping = True
        if self.proc is None or self.proc.poll() is not None:
            return
        self.kernel_drops()         # dumpcap's own count, if it gives one, starts from here
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Blocked on the pipe (overload): it will print no statistics, so take the kernel's
            # count up to the moment it goes.
            self.kernel_drops()
            self.proc.kill()
            self.proc.wait()
        except ProcessLookupError:
            pass
        finally:
            with self._sockets_lock:
                self.sockets.close()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.proc is not None:
            with self._sockets_lock:
                self.sockets.close()
        if self.proc is not None:
            self.proc.wait()
            if self._stderr_thread:
                self._stderr_thread.join(2.0)
            for stream in (self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass

    def failure(self) -> str:
        """Why dumpcap ended, in one line (call after it exited)."""
        if self._stderr_thread:
            self._stderr_thread.join(2.0)
        code = self.proc.returncode if self.proc else None
        chatter = ("Capturing on", "File:", "Packets captured", "Packets received/dropped")
        text = "\n".join(l for l in self.stderr_lines if l.strip() and not l.startswith(chatter))
        if text:
            return _reason(text, self.dumpcap)
        if code is not None and code < 0:
            return f"dumpcap was killed by {signal.Signals(-code).name}"
        return f"dumpcap exited with status {code}"

    def _asked_name(self, shown: str) -> str:
        """The interface as it was asked for: dumpcap shows some with a description ('Loopback: lo')."""
        for name in self.interfaces:
            if shown == name or shown.endswith(f": {name}"):
                return name
        return shown

    def stats(self) -> CaptureStats:
        """dumpcap's own received/dropped counts (it prints them when it stops), plus the drops
        rstwatch read from the kernel while it ran: reading resets the kernel's counter, so
        dumpcap's count starts where rstwatch's last read ended and the two add up."""
        st = CaptureStats()
        for line in self.stderr_lines:
            m = _DROPS.search(line)
            if m:
                st.per_interface[self._asked_name(m.group(1))] = (int(m.group(2)), int(m.group(3)))
                st.from_dumpcap = True
        sockets = getattr(self, "sockets", None)
        if sockets is not None and sockets.readable:
            st.from_kernel = True
            for name, lost in sockets.drops.items():
                if name in st.per_interface:
                    rec, drop = st.per_interface[name]
                    st.per_interface[name] = (rec, drop + lost)
                elif _loopback_twice(name):   # the kernel counts each loopback packet in and out
                    st.per_interface[name] = (0, lost)
                    st.taken_known = False
                else:                       # what dumpcap took from the ring = offered - dropped
                    st.per_interface[name] = (sockets.packets.get(name, 0) - lost, lost)
        st.received = sum(rec for rec, _ in st.per_interface.values())
        st.dropped = sum(drop for _, drop in st.per_interface.values())
        return st
