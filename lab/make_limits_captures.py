"""The connection-limit lab (issue #22 item 3): a refusal under load is not a dead listener.

Run as root:  python3 lab/make_limits_captures.py [--out captures/limits] [--only name,...]

A server at its connection limit that accepts and closes what it cannot take (here `git daemon
--max-connections`: it waits a second for a child to exit, then closes the new connection with the
client's request unread: kernel reason TCP_ABORT_ON_CLOSE) resets never-served connections one after
another while it goes on serving others; a listener that dies resets its whole queue at once
(TCP_STATE) and answers nothing after. Both with real git clients, in the lab's own namespaces and
addresses (lm*, 10.86/16, lab/limits_net.py). Ground truth and kernel labels as in the other labs
(lab/driver.py); the manifest has their shape, so lab/calibration.py scores it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import driver as D  # noqa: E402
from lab import limits_net as L  # noqa: E402
from lab.driver import Scenario  # noqa: E402
from lab.realnet import Proc, tool, wait_listening  # noqa: E402

HERE = Path(__file__).resolve().parent
SCENARIOS: dict[str, Scenario] = {}
PORTS = range(7600, 7700)            # this lab's server ports: a listener's traced reset names only its port
DEBIAN_PACKAGES = {"git": "git", "socat": "socat", "tcpdump": "tcpdump", "editcap": "wireshark-common"}
SNAPLEN = 200
# Clients that hold the server's slots connect from their own addresses: git daemon, at its limit,
# kills an older child when two come from one address (kill_some_child), and the lab wants none killed.
HOLDER_ADDRS = ("10.86.1.10", "10.86.1.11")


scenario = D.scenario_registry(SCENARIOS, family="limits")


def ensure_tools() -> None:
    D.install_missing(DEBIAN_PACKAGES)


def repository(work: Path, blob_kb: int = 0) -> Path:
    """A bare repository to serve; with `blob_kb`, one incompressible file that big (a slow reader
    of its archive keeps the server's child busy)."""
    bare, src = work / "repo.git", work / "src"
    git = ["git", "-c", "user.name=lab", "-c", "user.email=lab@lab", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run([*git, "init", "-q", str(src)], check=True)
    (src / "README").write_text("connection-limit lab\n")
    if blob_kb:
        (src / "big.bin").write_bytes(os.urandom(blob_kb << 10))
    subprocess.run([*git, "-C", str(src), "add", "."], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-qm", "one"], check=True)
    subprocess.run([*git, "-C", str(src), "push", "-q", str(bare), "HEAD:refs/heads/main"], check=True)
    return bare


def git_daemon(work: Path, port: int, *extra: str) -> Proc:
    # git-daemon itself, not `git daemon` (which runs it as a child that would outlive a stop)
    exe = subprocess.run([tool("git"), "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    p = Proc(L.SERVER, [f"{exe}/git-daemon", "--reuseaddr", f"--base-path={work}", "--export-all",
                        "--enable=upload-archive", f"--port={port}", "--listen=0.0.0.0", *extra, str(work)])
    wait_listening(L.SERVER, port)
    return p


def ls_remote(port: int) -> Proc:
    return Proc(L.CLIENT, [tool("git"), "ls-remote", f"git://{L.S_ADDR}:{port}/repo.git"])


def slow_archive(work: Path, port: int, addr: str, stall_s: float) -> Proc:
    """`git archive --remote` whose reader stalls `stall_s` before draining it (a slow consumer),
    connecting from `addr` through git's own proxy hook (core.gitProxy) and socat."""
    proxy = work / f"proxy-{addr}"
    proxy.write_text(f"#!/bin/sh\nexec {tool('socat')} - TCP:$1:$2,bind={addr}\n")
    proxy.chmod(0o755)
    return Proc(L.CLIENT, ["sh", "-c", f"{tool('git')} -c core.gitProxy={proxy} archive --remote=git://{L.S_ADDR}:{port}/repo.git "
                                       f"HEAD | (sleep {stall_s}; cat > /dev/null); echo \"archive exit $?\" >&2"])


def holder_addresses() -> None:
    for addr in HOLDER_ADDRS:
        L.nsx(L.CLIENT, f"ip addr add {addr}/24 dev {L.C_IF}", check=False)


@scenario("git-daemon-max-connections", "connection-limit", ["git daemon", "git ls-remote", "git archive", "socat"],
          reasons={"TCP_ABORT_ON_CLOSE"})
def git_daemon_limit(work: Path):
    """git daemon --max-connections=2 serves two slow `git archive --remote` readers (each stalls its
    pipe, so the daemon's child blocks writing); meanwhile four `git ls-remote` clients connect 0.3 s
    apart: the daemon accepts each, waits a second for a slot, and closes it with the client's request
    unread. The readers then drain and finish, and a later `git ls-remote` is served."""
    repository(work, blob_kb=512)
    holder_addresses()
    # Small socket buffers, so that half a megabyte stalls a reader's transfer (and the capture stays small)
    L.nsx(L.CLIENT, "sysctl -qw net.ipv4.tcp_rmem='4096 16384 16384'")
    L.nsx(L.SERVER, "sysctl -qw net.ipv4.tcp_wmem='4096 16384 16384'")
    s = git_daemon(work, 7601, "--max-connections=2")
    holders = [slow_archive(work, 7601, a, 6) for a in HOLDER_ADDRS]
    time.sleep(0.8)
    refused = []
    for _ in range(4):
        refused.append(ls_remote(7601))
        time.sleep(0.3)
    res = [c.finish() for c in refused]
    held = [h.finish(timeout=20) for h in holders]
    time.sleep(0.3)
    later = ls_remote(7601).finish()
    time.sleep(0.3)
    s.stop()
    return {"refused": res, "slow_readers": held, "later": later}


@scenario("git-daemon-killed-with-queue", "listener-closed", ["git daemon", "git ls-remote"], reasons={"TCP_STATE"})
def git_daemon_killed(work: Path):
    """The control: git daemon is frozen (SIGSTOP, as a hung process), three `git ls-remote` clients
    complete their handshakes with the kernel and wait in the accept queue, then the daemon is killed:
    its listener closes and resets the queued connections at once."""
    repository(work)
    s = git_daemon(work, 7602, "--max-connections=8")
    pid = s.proc.pid                    # `ip netns exec` execs the daemon: this is its pid
    os.kill(pid, signal.SIGSTOP)
    queued = [ls_remote(7602) for _ in range(3)]
    time.sleep(0.8)
    os.kill(pid, signal.SIGKILL)
    res = [c.finish() for c in queued]
    s.stop()
    return {"queued": res}


@scenario("control-git-ls-remote", None, ["git daemon", "git ls-remote"])
def control(work: Path):
    """git ls-remote three times against git daemon under its limit: clean closes."""
    repository(work)
    s = git_daemon(work, 7603, "--max-connections=2")
    res = [ls_remote(7603).finish() for _ in range(3)]
    s.stop()
    return {"client": res}


ours = D.lab_trace_filter("10.86.", PORTS)     # trace lines of this lab only


LAB = D.Lab(name="make_limits_captures", tracer="rstwatch-limits", setup=L.setup, teardown=L.teardown,
            flush_firewalls=L.flush_firewalls, client=(L.CLIENT, L.C_IF), server=(L.SERVER, L.S_IF), ours=ours,
            scenarios=SCENARIOS)


def main() -> None:
    D.main(LAB, HERE.parent / "captures" / "limits", ensure_tools, SNAPLEN, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
