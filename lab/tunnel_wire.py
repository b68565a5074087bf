"""A user-space tunnel between two hosts, for kernels without the tunnel driver (#21 item 1).

This lab's kernel has the vxlan driver and no other (no gre, gretap, erspan, geneve, ipip, sit,
ip6_tunnel). To still see what each tunnel puts on a wire, this program sits in its own
namespace between the client's veth (A) and the server's (B) and carries their Ethernet frames
through a pair of outer veth ends (O1 -- O2), encapsulated as a tunnel endpoint would: A's frames
leave on O1 wrapped, arrive on O2, are unwrapped and handed to B; B's go the other way. tcpdump on
O1 sees the tunnel's packets both ways. The resets are the real kernels'; only the wrapping is
ours, and tshark decodes it for the ground truth (lab/make_tunnel_captures.py).

Usage: python3 tunnel_wire.py KIND A B O1 O2     (runs until killed; prints "ready")
KIND: see WRAP. Layer-3 kinds (gre, ipip, sit, ip6tnl, teredo, mpls) carry IP packets only, so
the hosts need static neighbour entries for each other (the runner adds them).
"""
from __future__ import annotations

import select
import socket
import struct
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from wire import PACKET_OUTGOING, open_tap  # noqa: E402

HOST_MAC = {"a": bytes.fromhex("02000000000a"), "b": bytes.fromhex("02000000000b")}
OUTER_MAC = {"a": bytes.fromhex("020000000101"), "b": bytes.fromhex("020000000102")}
OUTER4 = {"a": bytes([10, 79, 0, 1]), "b": bytes([10, 79, 0, 2])}
OUTER6 = {"a": socket.inet_pton(socket.AF_INET6, "fd79::1"), "b": socket.inet_pton(socket.AF_INET6, "fd79::2")}


def checksum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, proto: int, payload: bytes) -> bytes:
    dst = "b" if src == "a" else "a"
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, OUTER4[src], OUTER4[dst])
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + payload


def ipv6(src: str, nh: int, payload: bytes) -> bytes:
    dst = "b" if src == "a" else "a"
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + OUTER6[src] + OUTER6[dst] + payload


def eth(src: str, ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    dst = "b" if src == "a" else "a"
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return OUTER_MAC[dst] + OUTER_MAC[src] + tag + struct.pack("!H", ethertype) + payload


def gre(proto: int, payload: bytes, key: int | None = None, seq: int | None = None) -> bytes:
    flags = (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    return (struct.pack("!HH", flags, proto) + (struct.pack("!I", key) if key is not None else b"")
            + (struct.pack("!I", seq) if seq is not None else b"") + payload)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload      # checksum 0: none (IPv4)


SEQ = [0]


def seq() -> int:
    SEQ[0] += 1
    return SEQ[0]


# kind: (wrap an inner Ethernet frame (or its IP packet for layer-3 kinds) sent by side "a" or
#        "b", the one ethertype a layer-3 kind carries (None: layer 2, every frame)). Header layouts: RFC 2784/2890 (GRE), draft-foschiano-erspan (ERSPAN II
#        and III), RFC 8926 (Geneve), RFC 2003/4213 (IP in IP), RFC 4380 (Teredo), RFC 3032 (MPLS).
WRAP = {
    "gre": (lambda f, s: eth(s, 0x0800, ipv4(s, 47, gre(0x0800, f, key=5))), 0x0800),
    "gretap": (lambda f, s: eth(s, 0x0800, ipv4(s, 47, gre(0x6558, f, key=7, seq=seq()))), None),
    "erspan1": (lambda f, s: eth(s, 0x0800, ipv4(s, 47, gre(0x88BE, f))), None),
    # port mirror over a VLAN: Ethernet > 802.1Q > IPv4 > GRE > ERSPAN II > Ethernet > IPv4 > TCP
    "erspan2": (lambda f, s: eth(s, 0x0800, ipv4(s, 47, gre(0x88BE, struct.pack("!HHI", 1 << 12, 30, 123) + f,
                                                            seq=seq())), vlan=100), None),
    "erspan3": (lambda f, s: eth(s, 0x0800, ipv4(s, 47, gre(0x22EB, struct.pack("!HHIHH", 2 << 12, 31, 0, 0, 1)
                                                            + b"\0" * 8 + f, seq=seq()))), None),
    "geneve": (lambda f, s: eth(s, 0x0800, ipv4(s, 17, udp(50000, 6081, struct.pack("!BBHI", 1, 0, 0x6558, 77 << 8)
                                                           + struct.pack("!HBB", 0x0103, 0x80, 0) + f))), None),
    "ip6gretap": (lambda f, s: eth(s, 0x86DD, ipv6(s, 47, gre(0x6558, f, key=8))), None),
    "ipip": (lambda f, s: eth(s, 0x0800, ipv4(s, 4, f)), 0x0800),
    "sit": (lambda f, s: eth(s, 0x0800, ipv4(s, 41, f)), 0x86DD),
    "ip6tnl": (lambda f, s: eth(s, 0x86DD, ipv6(s, 4, f)), 0x0800),
    "teredo": (lambda f, s: eth(s, 0x0800, ipv4(s, 17, udp(3544, 3544, f))), 0x86DD),
    "mpls": (lambda f, s: eth(s, 0x8847, struct.pack("!II", 100 << 12 | 64, 200 << 12 | 1 << 8 | 64) + f), 0x0800),
}


def relay(kind: str, a: str, b: str, o1: str, o2: str) -> None:
    wrap, layer3 = WRAP[kind]              # layer3: the ethertype carried, None for every frame
    socks = {name: open_tap(name) for name in (a, b, o1, o2)}
    empty = wrap(b"", "a")
    hdr = len(empty)                        # the outer headers: one length for a kind
    tagged = empty[12:14] == b"\x81\x00"    # a packet socket reads a VLAN tag apart from the frame
    print("ready", flush=True)
    by_fd = {s.fileno(): name for name, s in socks.items()}
    while True:
        ready, _, _ = select.select(list(by_fd), [], [], 1.0)
        for fd in ready:
            name = by_fd[fd]
            while True:
                try:
                    frame, addr = socks[name].recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                if name in (a, b):                        # a host's frame: wrap it, send it down the wire
                    side = "a" if name == a else "b"
                    inner = frame
                    if layer3:
                        if struct.unpack("!H", frame[12:14])[0] != layer3:
                            continue                      # ARP, the other IP version: not carried
                        inner = frame[14:]
                    try:
                        socks[o1 if side == "a" else o2].send(wrap(inner, side))
                    except OSError:
                        pass
                else:                                     # off the wire: unwrap, hand to the other host
                    to = "b" if name == o2 else "a"
                    inner = frame[hdr - 4 if tagged and frame[12:14] != b"\x81\x00" else hdr:]
                    if layer3:
                        v6 = len(inner) > 0 and inner[0] >> 4 == 6
                        inner = HOST_MAC[to] + HOST_MAC["a" if to == "b" else "b"] \
                            + struct.pack("!H", 0x86DD if v6 else 0x0800) + inner
                    try:
                        socks[b if to == "b" else a].send(inner)
                    except OSError:
                        pass


def main() -> None:
    relay(*sys.argv[1:6])


if __name__ == "__main__":
    main()
