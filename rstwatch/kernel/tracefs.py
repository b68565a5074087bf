"""A private tracefs instance with `tcp:tcp_send_reset` enabled, created per run and removed on
every exit path; instances left by a killed run are removed at the next start."""
from __future__ import annotations

import atexit
import os
import re
import subprocess
import sys
from pathlib import Path

from ..errors import RstwatchError

ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
EVENT = "events/tcp/tcp_send_reset"
PREFIX = "rstwatch-"
NAME = re.compile(r"rstwatch-(\d+)$")     # only our own pid-named instances are ever touched
BUFFER_KB = 2048                          # per CPU: ~20,000 events before the ring overwrites


class KernelUnavailable(RstwatchError):
    """The kernel's reset reasons cannot be read here; `reason` says why in one line."""

    def __init__(self, reason: str):
        super().__init__("kernel reasons unavailable", reason)


# What an unprivileged run needs for kernel reasons (tracefs is root's, mode 700): said once,
# and the run goes on with wire-only verdicts (docs/deploy.md, "Capabilities").
NEEDS = "root, or CAP_DAC_OVERRIDE (tracefs is root's) and a tracefs already mounted"


def _has_instances(root: Path) -> bool:
    try:
        return (root / "instances").is_dir()
    except PermissionError:         # a non-root user cannot even look inside tracefs (mode 700)
        raise KernelUnavailable(f"no permission to use {root} (needs {NEEDS})") from None


def find_tracefs(mount: bool = True) -> Path:
    """The tracefs root; mounts it at /sys/kernel/tracing when nothing is mounted there."""
    if not sys.platform.startswith("linux"):
        raise KernelUnavailable(f"needs Linux (this is {sys.platform})")
    for root in ROOTS:
        if _has_instances(root):
            return _check_event(root)
    if mount and ROOTS[0].is_dir():
        res = subprocess.run(["mount", "-t", "tracefs", "nodev", str(ROOTS[0])], capture_output=True, text=True)
        if _has_instances(ROOTS[0]):
            return _check_event(ROOTS[0])
        why = (res.stderr.strip().splitlines() or ["mount failed"])[0].strip()   # not util-linux's dmesg hint
        raise KernelUnavailable(f"tracefs is not mounted and mounting it failed ({why}); "
                                f"run as root or mount -t tracefs nodev {ROOTS[0]} first")
    raise KernelUnavailable("no tracefs on this system (container without /sys/kernel/tracing?)")


def _check_event(root: Path) -> Path:
    fmt = root / EVENT / "format"
    release = os.uname().release
    try:
        text = fmt.read_text()
    except FileNotFoundError:
        raise KernelUnavailable(f"Linux {release} has no tcp:tcp_send_reset tracepoint") from None
    except PermissionError:
        raise KernelUnavailable(f"no permission to read {root} (needs {NEEDS})") from None
    if "reason" not in text:
        raise KernelUnavailable(f"Linux {release} traces resets without their reason (needs Linux >= 6.10)")
    # effective ids: a non-root user holding CAP_DAC_OVERRIDE may write there (access() alone says no)
    if not os.access(root / "instances", os.W_OK, effective_ids=os.access in os.supports_effective_ids):
        raise KernelUnavailable(f"no permission to create a tracing instance in {root}/instances (needs {NEEDS})")
    return root


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(root: Path) -> list[str]:
    """Remove `rstwatch-<pid>` instances whose pid is gone. The kernel refuses (EBUSY) to remove an
    instance whose trace_pipe is open, so a live reader in another pid namespace is never hurt."""
    removed = []
    try:
        instances = sorted((root / "instances").iterdir())
    except OSError:                 # cannot list them: nothing of ours to clean either
        return removed
    for inst in instances:
        m = NAME.match(inst.name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        if _rmdir_instance(inst):
            removed.append(inst.name)
    return removed


def _rmdir_instance(inst: Path) -> bool:
    """Remove one instance; True when this call removed it. Never raises: cleaning up is best effort,
    and the callers look at what is left. The usual refusals: EBUSY (its trace_pipe is open: a live
    reader, perhaps in another pid namespace), ENOENT, and ENODEV when another run removed it between
    our lookup and our rmdir (two runs starting together clean the same stale instance; a CI run
    died on it)."""
    try:
        os.rmdir(inst)
        return True
    except OSError:
        return False


class TraceInstance:
    """`with TraceInstance() as t:` -> t.pipe is the path of the instance's trace_pipe."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or find_tracefs()
        self.name = f"{PREFIX}{os.getpid()}"
        self.dir = self.root / "instances" / self.name
        self.stale_removed: list[str] = []
        self._made = False

    def __enter__(self) -> "TraceInstance":
        self.stale_removed = remove_stale(self.root)
        if self.dir.exists():                      # our own pid: a previous run in this process
            _rmdir_instance(self.dir)
        try:
            self.dir.mkdir()
        except OSError as exc:
            raise KernelUnavailable(f"cannot create {self.dir}: {exc.strerror}") from None
        self._made = True
        atexit.register(self.remove)              # a normal interpreter exit that skips __exit__
        # Clock and buffer are per instance: other tracing on the host is not touched.
        try:
            (self.dir / "trace_clock").write_text("mono")
            (self.dir / "buffer_size_kb").write_text(str(BUFFER_KB))
            (self.dir / EVENT / "enable").write_text("1")
        except OSError as exc:                    # made, but not ours to set up (a locked-down tracefs)
            self.remove()
            raise KernelUnavailable(f"cannot set up {self.dir}: {exc.strerror}") from None
        return self

    @property
    def pipe(self) -> Path:
        return self.dir / "trace_pipe"

    def overruns(self) -> int:
        """Events the kernel overwrote before we read them (all CPUs)."""
        total = 0
        for stats in self.dir.glob("per_cpu/cpu*/stats"):
            try:
                for line in stats.read_text().splitlines():
                    if line.startswith("overrun:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def remove(self) -> None:
        if not self._made:
            return
        try:
            (self.dir / EVENT / "enable").write_text("0")
        except OSError:
            pass
        if not _rmdir_instance(self.dir) and self.dir.exists():
            return                                  # still open somewhere: the next start cleans it
        self._made = False
        atexit.unregister(self.remove)

    def __exit__(self, *exc) -> None:
        self.remove()
