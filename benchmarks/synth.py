"""Write a synthetic Ethernet/IPv4 capture of N packets quickly (numpy, no per-packet Python).

Connections interleave in time: most are normal (handshake, request, response, FIN/FIN), a share
end in resets of several shapes (refused, abort after request, reset answering data after a FIN,
keepalive-race shape). Every record is 16 + 120 bytes; the IP total length tells the real size.
Usage: python benchmarks/synth.py OUT.pcap N [--rst-share 0.02] [--pcapng] [--gzip]
"""
from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np

FRAME = 120
PAYLOAD = FRAME - 54
FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
C2S, S2C = 0, 1

# Templates: (direction, flags, payload bytes, time offset in ms)
NORMAL = [(C2S, SYN, 0, 0), (S2C, SYN | ACK, 0, 1), (C2S, ACK, 0, 2), (C2S, PSH | ACK, PAYLOAD, 2),
          (S2C, ACK, 0, 3), (S2C, PSH | ACK, PAYLOAD, 9), (C2S, ACK, 0, 10), (C2S, FIN | ACK, 0, 20),
          (S2C, FIN | ACK, 0, 21), (C2S, ACK, 0, 22)]
REFUSED = [(C2S, SYN, 0, 0), (S2C, RST | ACK, 0, 1)]
ABORT = [(C2S, SYN, 0, 0), (S2C, SYN | ACK, 0, 1), (C2S, ACK, 0, 2), (C2S, PSH | ACK, PAYLOAD, 2),
         (S2C, ACK, 0, 3), (S2C, RST | ACK, 0, 40)]
AFTER_CLOSE = [(C2S, SYN, 0, 0), (S2C, SYN | ACK, 0, 1), (C2S, ACK, 0, 2), (C2S, PSH | ACK, PAYLOAD, 2),
               (S2C, PSH | ACK, PAYLOAD, 8), (S2C, FIN | ACK, 0, 8), (C2S, ACK, 0, 9),
               (C2S, PSH | ACK, PAYLOAD, 30), (S2C, RST, 0, 31)]
TEMPLATES = [NORMAL, REFUSED, ABORT, AFTER_CLOSE]


def build(n_packets: int, rst_share: float, seed: int = 7, templates: list | None = None) -> np.ndarray:
    """Structured records (ts, caplen, len, frame bytes) in time order. `templates[0]` is the
    normal flow, the others are the reset shapes (default: TEMPLATES)."""
    TEMPLATES = templates or globals()["TEMPLATES"]
    rng = np.random.default_rng(seed)
    mean_len = len(TEMPLATES[0]) * (1 - rst_share) + rst_share * np.mean([len(t) for t in TEMPLATES[1:] or TEMPLATES])
    n_flows = int(n_packets / mean_len) + 1
    kind = np.where(rng.random(n_flows) < rst_share, rng.integers(1, max(len(TEMPLATES), 2), n_flows), 0)
    cols = {k: [] for k in ("flow", "dir", "flags", "plen", "dt", "step")}
    for t, tpl in enumerate(TEMPLATES):
        flows = np.flatnonzero(kind == t)
        arr = np.array(tpl)
        for step, (d, f, p, ms) in enumerate(arr):
            cols["flow"].append(flows); cols["dir"].append(np.full(len(flows), d))
            cols["flags"].append(np.full(len(flows), f)); cols["plen"].append(np.full(len(flows), p))
            cols["dt"].append(np.full(len(flows), ms)); cols["step"].append(np.full(len(flows), step))
    c = {k: np.concatenate(v) for k, v in cols.items()}
    start_us = np.sort(rng.integers(0, max(n_flows, 1) * 200, n_flows))          # ~5,000 new flows/s
    ts_us = 1_700_000_000_000_000 + start_us[c["flow"]] + c["dt"] * 1000 + c["step"]
    order = np.lexsort((c["step"], ts_us))[:n_packets]
    c = {k: v[order] for k, v in c.items()}
    ts_us = ts_us[order]
    n = len(ts_us)
    flow = c["flow"]
    cli_ip = (10 << 24) | (1 + (flow // 60000) % 250) << 16 | (flow % 250) + 1
    srv_ip = np.full(n, (10 << 24) | (200 << 16) | 1)
    cli_port = 1024 + (flow % 60000)
    srv_port = np.full(n, 443)
    cisn = (flow * 2654435761) % (1 << 32)
    sisn = (flow * 40503 + 12345) % (1 << 32)
    # sequence numbers per direction: bytes already sent by that side in this template
    c_off = np.zeros(n, np.int64); s_off = np.zeros(n, np.int64)
    for t, tpl in enumerate(TEMPLATES):
        co = so = 0
        table_c, table_s = [], []
        for d, f, p, ms in tpl:
            table_c.append(co); table_s.append(so)
            if d == C2S:
                co += p + (1 if f & (SYN | FIN) else 0)
            else:
                so += p + (1 if f & (SYN | FIN) else 0)
        sel = kind[flow] == t
        c_off[sel] = np.array(table_c)[c["step"][sel]]
        s_off[sel] = np.array(table_s)[c["step"][sel]]
    is_c = c["dir"] == C2S
    seq = np.where(is_c, cisn + c_off, sisn + s_off) % (1 << 32)
    ack = np.where(is_c, sisn + s_off, cisn + c_off) % (1 << 32)
    ack = np.where(c["flags"] & ACK, ack, 0)
    rec = np.zeros(n, dtype=[("sec", "<u4"), ("usec", "<u4"), ("caplen", "<u4"), ("len", "<u4"), ("frame", "u1", FRAME)])
    rec["sec"] = ts_us // 1_000_000
    rec["usec"] = ts_us % 1_000_000
    rec["caplen"] = FRAME
    rec["len"] = FRAME
    f = rec["frame"]
    f[:, 0:6] = 2; f[:, 6:12] = 4
    f[:, 12], f[:, 13] = 0x08, 0x00
    f[:, 14] = 0x45
    total = 40 + c["plen"]
    f[:, 16], f[:, 17] = total >> 8, total & 255
    f[:, 22] = np.where(is_c, 64, 63)      # TTL
    f[:, 23] = 6
    src = np.where(is_c, cli_ip, srv_ip); dst = np.where(is_c, srv_ip, cli_ip)
    sp = np.where(is_c, cli_port, srv_port); dp = np.where(is_c, srv_port, cli_port)
    for k in range(4):
        f[:, 26 + k] = (src >> (24 - 8 * k)) & 255
        f[:, 30 + k] = (dst >> (24 - 8 * k)) & 255
        f[:, 38 + k] = (seq >> (24 - 8 * k)) & 255
        f[:, 42 + k] = (ack >> (24 - 8 * k)) & 255
    f[:, 34], f[:, 35] = sp >> 8, sp & 255
    f[:, 36], f[:, 37] = dp >> 8, dp & 255
    f[:, 46] = 5 << 4
    f[:, 47] = c["flags"]
    win = np.where(c["flags"] & RST, 0, 502)
    f[:, 48], f[:, 49] = win >> 8, win & 255
    return rec


def write(path: Path, rec: np.ndarray, pcapng: bool = False, gz: bool = False) -> None:
    if pcapng:
        n = len(rec)
        blk = np.zeros(n, dtype=[("type", "<u4"), ("blen", "<u4"), ("iface", "<u4"), ("hi", "<u4"), ("lo", "<u4"),
                                 ("cap", "<u4"), ("len", "<u4"), ("frame", "u1", FRAME), ("blen2", "<u4")])
        ticks = rec["sec"].astype(np.uint64) * 1_000_000 + rec["usec"]
        blk["type"] = 6; blk["blen"] = blk["blen2"] = 32 + FRAME
        blk["hi"] = ticks >> 32; blk["lo"] = ticks & 0xFFFFFFFF
        blk["cap"] = FRAME; blk["len"] = FRAME; blk["frame"] = rec["frame"]
        shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
        idb = struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
        blob = shb + idb + blk.tobytes()
    else:
        blob = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + rec.tobytes()
    if gz:
        blob = gzip.compress(blob, compresslevel=1)
    path.write_bytes(blob)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("packets", type=int)
    ap.add_argument("--rst-share", type=float, default=0.02)
    ap.add_argument("--pcapng", action="store_true")
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--big-gb", type=float, default=0, help="write blocks of 2M packets until this size")
    a = ap.parse_args()
    if a.big_gb:
        write_big(a.out, a.big_gb, a.rst_share)
    else:
        write(a.out, build(a.packets, a.rst_share), a.pcapng, a.gzip)


def write_big(path: Path, gigabytes: float, rst_share: float) -> None:
    """A multi-GB pcap written block by block, each block an hour after the previous one."""
    block = build(2_000_000, rst_share)
    target = int(gigabytes * 1e9 / block.itemsize)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        written = 0
        while written < target:
            take = block[:min(len(block), target - written)]
            fh.write(take.tobytes())
            written += len(take)
            block["sec"] += 3600


if __name__ == "__main__":
    main()
