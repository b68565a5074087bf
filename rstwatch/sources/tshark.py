"""The tshark engine: Wireshark's dissectors through pyshark, for frames the fast reader does
not decode (odd link types, tunnels). Slow (~2,000 packets/s) but it understands everything."""
from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import numpy as np

from ..errors import CaptureError
from .diagnostics import Diagnostics
from .segments import SEGMENT_COLUMNS, Segments, V4_MAPPED


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


def _addr(text: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return 0, int(V4_MAPPED) | int(ip)
    v = int(ip)
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF


def _epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def read_with_tshark(path: Path, diag: Diagnostics, display_filter: str = "tcp") -> Segments:
    """Decode the TCP segments of `path` matching `display_filter` with pyshark."""
    if not tshark_available():
        raise CaptureError(str(path), "needs the tshark engine (link type not decoded by the fast reader) "
                                      "but tshark is not installed (apt-get install tshark)")
    import pyshark  # imported lazily: only this engine needs it

    rows: dict[str, list] = {k: [] for k in SEGMENT_COLUMNS}
    cap = pyshark.FileCapture(str(path), display_filter=display_filter, use_json=True, keep_packets=False)
    try:
        for pkt in cap:
            ips = [layer for layer in pkt.layers if layer.layer_name in ("ip", "ipv6")]
            if not ips or not hasattr(pkt, "tcp"):
                continue
            ip, tcp = ips[-1], pkt.tcp      # innermost IP header carries this TCP segment
            v6 = ip.layer_name == "ipv6"
            s_hi, s_lo = _addr(ip.src)
            d_hi, d_lo = _addr(ip.dst)
            rows["frame"].append(int(pkt.frame_info.number))
            rows["ts_ns"].append(_epoch_ns(pkt.frame_info.time_epoch))
            rows["v6"].append(v6)
            rows["src_hi"].append(s_hi); rows["src_lo"].append(s_lo)
            rows["dst_hi"].append(d_hi); rows["dst_lo"].append(d_lo)
            rows["sport"].append(int(tcp.srcport)); rows["dport"].append(int(tcp.dstport))
            rows["seq"].append(int(tcp.seq_raw)); rows["ack"].append(int(tcp.ack_raw))
            rows["flags"].append(int(str(tcp.flags), 16))
            rows["win"].append(int(tcp.window_size_value))
            rows["hlen"].append(int(tcp.hdr_len)); rows["plen"].append(int(tcp.len))
            rows["ttl"].append(int(ip.hlim if v6 else ip.ttl))
            rows["ipid"].append(-1 if v6 else int(str(ip.id), 16))
    except Exception as exc:  # tshark stops on damaged files; keep what it gave
        diag.warn(f"tshark engine stopped early: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    finally:
        cap.close()
    diag.tcp_segments += len(rows["frame"])
    return Segments({k: np.asarray(v, dtype=SEGMENT_COLUMNS[k]) for k, v in rows.items()})
