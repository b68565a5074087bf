"""The real-software lab's path (lab/topology.py) and the helpers its scenarios run programs with.

    client rsc (c0 10.78.1.2) -- wire rsw (latency, lab/wire.py) -- router rsr (nftables, NAT) -- server rss (s0 10.78.2.2)

Separate namespaces from the scripted lab (rwc/rwr/rws) so both labs can be rebuilt independently.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from lab.netlab import sh  # noqa: F401 - scenarios run shell steps through R.sh
from lab.topology import Topology, nsx  # noqa: F401 - nsx is part of this module's helpers

NET = Topology(client="rsc", wire="rsw", router="rsr", server="rss", net="10.78", c_if="c0", s_if="s0",
               r_c_if="r0", r_s_if="r1", w_c_if="wc", w_r_if="wr")
CLIENT, WIRE, ROUTER, SERVER = NET.namespaces()
C_ADDR, S_ADDR, R_CLIENT_SIDE = NET.c_addr, NET.s_addr, NET.r_client_side
HERE = Path(__file__).resolve().parent
setup, teardown, nft, flush_firewalls = NET.setup, NET.teardown, NET.nft, NET.flush_firewalls


def reboot_server() -> None:
    """The server host crashes and comes back with the same address and no memory of any connection."""
    NET.crash_server(then_up=True)


class Proc:
    """A real program in a namespace; its output is kept for the manifest."""

    def __init__(self, ns: str, argv: list[str], stdin: bool = False, cwd: Path | None = None):
        self.argv = argv
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)

    def readline(self, timeout: float = 10.0) -> str:
        return self.proc.stdout.readline()

    def tell(self, line: str = "go") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> dict:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        res = {"exit": self.proc.returncode}
        for line in out.splitlines():
            if line.startswith('{"result"'):
                import json
                res.update(json.loads(line)["result"])
                break
        else:
            tail = (err.strip() or out.strip()).splitlines()[-2:]
            if tail:
                res["said"] = " | ".join(t.strip()[:160] for t in tail)
        return res

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            pass


def wait_listening(ns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if f":{port} " in nsx(ns, f"ss -Hltn sport = :{port}", check=False):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {ns}:{port}")


def client_py(script: str, *args: str, stdin: bool = False) -> Proc:
    """lab/realclients.py under this interpreter (which has requests and redis-py)."""
    return Proc(CLIENT, [sys.executable, str(HERE / "realclients.py"), script, *map(str, args)], stdin=stdin)


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        raise RuntimeError(f"{name} is not installed (bin/setup --lab installs it)")
    return path
