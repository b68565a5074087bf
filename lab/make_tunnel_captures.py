"""Refused connections through tunnels, captured on the outer link (#21 item 1).

Run as root:  python3 lab/make_tunnel_captures.py [--out captures/tunnels] [--only vxlan,...]
For each kind (KINDS) a client connects to a closed port of a server across the tunnel and the
server's kernel refuses (RST|ACK, NO_SOCKET); tcpdump captures the OUTER link, so the file holds
the tunnel's packets. Linux's own device is used where the kernel has it (two namespaces joined
by a veth pair, 10.79.0.1 -- 10.79.0.2, fd79::1 -- fd79::2, a device on each end); this lab's
kernel has only vxlan, so the other kinds go through lab/tunnel_wire.py, a user-space endpoint
in a third namespace that wraps the same hosts' frames on an outer veth pair. plain.pcap is the
same refusal on the outer link itself: the twin every inner RST must classify like. Ground truth
(captures/tunnels/manifest.json): the RST frames and inner 4-tuples as tshark decodes them, the
kernel's reasons, the tunnel as the lab configured it, and what made it (`what_happened`).

Traps: netlab.Capture filters `tcp`, which drops every tunnelled packet (the outer header is UDP,
GRE or IP): capture without it. Linux's vxlan default port is 8472, not IANA's 4789: set dstport.
A packet socket reads an 802.1Q tag apart from the frame (tunnel_wire.py allows for it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import netlab as N  # noqa: E402
from lab.netlab import App  # noqa: E402

A, B, W = "rtun-a", "rtun-b", "rtun-w"         # client, server, and the user-space tunnel's namespace
OUTER = {A: ("10.79.0.1", "fd79::1", "ta0"), B: ("10.79.0.2", "fd79::2", "tb0")}
INNER = {A: ("10.91.0.1", "fd91::1", "02:00:00:00:00:0a"), B: ("10.91.0.2", "fd91::2", "02:00:00:00:00:0b")}
PORT = 9500                                     # nothing listens on it

# name: (Linux's device (ip link add tun0 ...; {lo}/{re}, {lo6}/{re6}: the outer ends) or None,
#        lab/tunnel_wire.py's kind when this kernel has no such device, inner family,
#        the tunnel as rstwatch names it, seen from the client's end (None: no tunnel identity))
KINDS = {
    "vxlan": ("type vxlan id 42 local {lo} remote {re} dstport 4789", None, 4, "vxlan vni 42 {lo}>{re}"),
    "vxlan6": ("type vxlan id 43 local {lo6} remote {re6} dstport 4789", None, 4, "vxlan vni 43 {lo6}>{re6}"),
    "gretap": ("type gretap local {lo} remote {re} key 7", "gretap", 4, "gre key 7 {lo}>{re}"),
    "gre": ("type gre local {lo} remote {re} key 5", "gre", 4, "gre key 5 {lo}>{re}"),
    "erspan1": (None, "erspan1", 4, "erspan1 {lo}>{re}"),
    "erspan2": ("type erspan seq key 30 local {lo} remote {re} erspan_ver 1 erspan 123", "erspan2", 4,
                "erspan2 session 30 {lo}>{re}"),
    "erspan3": ("type erspan seq key 31 local {lo} remote {re} erspan_ver 2 erspan_dir ingress erspan_hwid 7",
                "erspan3", 4, "erspan3 session 31 {lo}>{re}"),
    "geneve": ("type geneve id 77 remote {re}", "geneve", 4, "geneve vni 77 {lo}>{re}"),
    "ip6gretap": ("type ip6gretap local {lo6} remote {re6} key 8", "ip6gretap", 4, "gre key 8 {lo6}>{re6}"),
    "ipip": ("type ipip local {lo} remote {re}", "ipip", 4, "ipip {lo}>{re}"),
    "sit": ("type sit local {lo} remote {re}", "sit", 6, "6in4 {lo}>{re}"),
    "ip6tnl": ("type ip6tnl mode ipip6 local {lo6} remote {re6}", "ip6tnl", 4, "4in6 {lo6}>{re6}"),
    "teredo": (None, "teredo", 6, "teredo {lo}>{re}"),
    "mpls": (None, "mpls", 4, None),
}


def setup() -> None:
    """A and B joined by the outer veth (ta0 -- tb0): the plain twin and Linux's own devices."""
    N.teardown((A, B, W))
    for ns in (A, B):
        N.sh(f"ip netns add {ns}")
        N.nsx(ns, "ip link set lo up")
    N.sh(f"ip link add ta0 netns {A} type veth peer name tb0 netns {B}")
    for ns, (v4, v6, dev) in OUTER.items():
        N.nsx(ns, f"ip addr add {v4}/24 dev {dev}")
        N.nsx(ns, f"ip -6 addr add {v6}/64 dev {dev} nodad")
        N.nsx(ns, f"ip link set {dev} up")
        # Segmentation offload would merge segments on the veth: keep wire-sized packets.
        N.nsx(ns, f"ethtool -K {dev} tso off gso off gro off", check=False)


def _link_args(link: str, ns: str, other: str) -> str:
    lo, lo6, _ = OUTER[ns]
    re, re6, _ = OUTER[other]
    return link.format(lo=lo, re=re, lo6=lo6, re6=re6)


def linux_has(link: str | None) -> bool:
    """Whether this kernel has the device (this lab's kernel has only vxlan: no modules at all)."""
    if link is None:
        return False
    ok = N.nsx(A, f"ip link add probe0 {_link_args(link, A, B)} >/dev/null 2>&1 && echo yes", check=False)
    N.nsx(A, "ip link del probe0", check=False)
    return ok.strip() == "yes"


def tunnel_up(kind: str) -> tuple[str, str]:
    """Linux's device `tun0` on both ends; returns (client's inner address, server's)."""
    link, _, family, _ = KINDS[kind]
    for ns, other in ((A, B), (B, A)):
        N.nsx(ns, "ip link add tun0 " + _link_args(link, ns, other))
        N.nsx(ns, "ip link set tun0 addrgenmode none", check=False)     # no router solicitations inside
        inner = INNER[ns][0 if family == 4 else 1]
        N.nsx(ns, f"ip addr add {inner}/24 dev tun0" if family == 4 else f"ip -6 addr add {inner}/64 dev tun0 nodad")
        N.nsx(ns, "ip link set tun0 up")
        N.nsx(ns, "ethtool -K tun0 tso off gso off gro off", check=False)
    return INNER[A][0 if family == 4 else 1], INNER[B][0 if family == 4 else 1]


def tunnel_down() -> None:
    for ns in (A, B):
        N.nsx(ns, "ip link del tun0", check=False)


class UserTunnel:
    """A -- W -- B for lab/tunnel_wire.py: the hosts' veths (ca0 -- cw0, sb0 -- sw0) and the outer
    wire (o1 -- o2), all of W's ends without addresses (its kernel must not answer anything)."""

    def __init__(self, kind: str):
        family = KINDS[kind][2]
        N.sh(f"ip netns add {W}")
        N.sh(f"ip link add ca0 netns {A} type veth peer name cw0 netns {W}")
        N.sh(f"ip link add sb0 netns {B} type veth peer name sw0 netns {W}")
        N.sh(f"ip link add o1 netns {W} type veth peer name o2 netns {W}")
        for dev in ("cw0", "sw0", "o1", "o2"):
            N.nsx(W, f"sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
            N.nsx(W, f"ip link set {dev} mtu 9000 up")
        for ns, dev, other in ((A, "ca0", B), (B, "sb0", A)):
            v4, v6, mac = INNER[ns]
            N.nsx(ns, f"ip link set {dev} address {mac} addrgenmode none")
            N.nsx(ns, f"ip addr add {v4}/24 dev {dev}")
            N.nsx(ns, f"ip -6 addr add {v6}/64 dev {dev} nodad")
            N.nsx(ns, f"ip link set {dev} up")
            # the relay reads frames before the kernel would finish their checksums: sum in software
            N.nsx(ns, f"ethtool -K {dev} tx off tso off gso off gro off", check=False)
            # a layer-3 tunnel carries no ARP or neighbour discovery
            N.nsx(ns, f"ip neigh replace {INNER[other][0]} lladdr {INNER[other][2]} dev {dev} nud permanent")
            N.nsx(ns, f"ip -6 neigh replace {INNER[other][1]} lladdr {INNER[other][2]} dev {dev} nud permanent")
        self.proc = subprocess.Popen(["ip", "netns", "exec", W, sys.executable, str(Path(__file__).with_name("tunnel_wire.py")),
                                      KINDS[kind][1], "cw0", "sw0", "o1", "o2"], stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"tunnel_wire.py {kind} did not start")
        self.inner = (INNER[A][0 if family == 4 else 1], INNER[B][0 if family == 4 else 1])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        N.teardown((W,))
        for ns, dev in ((A, "ca0"), (B, "sb0")):
            N.nsx(ns, f"ip link del {dev}", check=False)


def outer_capture(ns: str, iface: str, path: Path) -> "N.Capture":
    """tcpdump on the outer veth without netlab's `tcp` filter (see the module's traps)."""
    return N.Capture(ns, iface, path, bpf="not arp")


def tshark_resets(path: Path) -> list[dict]:
    """RST frames and their innermost 4-tuple, as tshark decodes the tunnels."""
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.reset==1", "-T", "fields", "-E", "occurrence=a",
                          "-e", "frame.number", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
                          "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "frame.protocols"],
                         capture_output=True, text=True, check=True).stdout
    resets = []
    for line in out.splitlines():
        frame, s4, d4, s6, d6, sport, dport, protos = line.split("\t")
        inner6 = protos.rfind(":ipv6:") > protos.rfind(":ip:")
        src, dst = (s6, d6) if inner6 else (s4, d4)
        resets.append({"frame": int(frame), "src": src.split(",")[-1], "sport": int(sport.split(",")[-1]),
                       "dst": dst.split(",")[-1], "dport": int(dport.split(",")[-1]), "layers": protos})
    return resets


def run(out: Path, only: list[str] | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and only else {"captures": {}}
    setup()
    tracer = N.ResetTracer("rstwatch-tunnel-lab")
    try:
        for kind in ["plain", *KINDS]:
            if only and kind not in only:
                continue
            file = f"{kind}.pcap"
            path = out / file
            path.unlink(missing_ok=True)
            tunnel, made_by, wire, point = None, "the outer link itself (no tunnel)", None, (A, "ta0")
            if kind == "plain":
                client, server = OUTER[A][0], OUTER[B][0]
            else:
                link, wire_kind, _, text = KINDS[kind]
                if linux_has(link):
                    client, server = tunnel_up(kind)
                    made_by = f"Linux's own device: ip link add tun0 {link}"
                else:
                    wire = UserTunnel(kind)
                    client, server = wire.inner
                    point = (W, "o1")
                    made_by = f"lab/tunnel_wire.py {wire_kind} (this kernel has no such device)"
                lo, lo6, _ = OUTER[A]
                re, re6, _ = OUTER[B]
                tunnel = text and text.format(lo=lo, re=re, lo6=lo6, re6=re6)
            tracer.take()
            cap = outer_capture(*point, path)
            try:
                apps = {"client": App(A, "client_connect", server, PORT).result()}
            finally:
                cap.stop()
                tunnel_down()
                if wire:
                    wire.close()
            trace = tracer.take()
            resets = tshark_resets(path)
            for r in resets:
                r["cause"] = "closed-port"
                r["tunnel"] = tunnel
                r["kernel_reason"] = next((t["reason"] for t in trace if t["src"].endswith(f":{r['sport']}")
                                           and t["dst"].endswith(f":{r['dport']}")), None)
            os.chmod(path, 0o644)
            manifest["captures"][file] = {
                "scenario": f"closed-port-{kind}", "cause": "closed-port",
                "what_happened": f"A client connects to a closed port of {server} from {client} across {made_by}; "
                                 "the server's kernel refuses. Captured on the outer link.",
                "capture_point": f"{point[0]}:{point[1]}", "format": "pcap", "plain_twin": "plain.pcap",
                "resets": resets, "applications_saw": apps,
                "kernel_reasons_seen": sorted({t["reason"] for t in trace}),
            }
            print(f"{file:16} {len(resets)} RST(s) {tunnel} apps={json.dumps(apps)}", flush=True)
    finally:
        tracer.close()
        tunnel_down()
        N.teardown((A, B, W))
    manifest["generated_on"] = {"kernel": os.uname().release, "date": time.strftime("%Y-%m-%d")}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "captures" / "tunnels")
    ap.add_argument("--only", default="", help="comma-separated kinds (plain, " + ", ".join(KINDS) + ")")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("make_tunnel_captures: needs root (network namespaces, tracefs)")
    run(args.out, [s for s in args.only.split(",") if s] or None)


if __name__ == "__main__":
    main()
