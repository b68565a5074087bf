"""Names of the tunnels the fast reader decodes TCP out of, and of those it does not decode.

decode_tcp gives each tunnelled segment a 64-bit key (every tunnel level around it: kind,
VNI / GRE key / ERSPAN session, outer endpoints in either direction) and a row naming its
innermost tunnel. The key is part of the connection key (track/flows.py); the text is the
`tunnel` field of a finding (docs/output-fields.md). Keys are hashes of what the text says,
so one process-wide table serves every file and chunk.
"""
from __future__ import annotations

import numpy as np

from .segments import address_text

# decode_tcp's tunnel kinds (hotloops TK_*), by number
KIND_NAMES = ("", "gre", "erspan1", "erspan2", "erspan3", "vxlan", "geneve", "ip4", "ip6", "teredo", "aruba-gre")
ID_LABEL = {"gre": "key", "erspan2": "session", "erspan3": "session", "vxlan": "vni", "geneve": "vni"}

# decode_tcp's undecoded codes (hotloops UD_*): (what << 32) | value
_UNDECODED = {
    1: lambda v: f"GRE protocol 0x{v:04x}",
    2: lambda v: f"GRE version {v}" + (" (PPTP)" if v == 1 else ""),
    3: lambda v: "GRE with source routing",
    4: lambda v: "GRE or ERSPAN headers cut short",
    5: lambda v: f"ERSPAN version {v}",
    6: lambda v: f"ERSPAN III frame type {v}",
    7: lambda v: f"Geneve version {v}",
    8: lambda v: f"Geneve protocol 0x{v:04x}",
    9: lambda v: "Aruba GRE 802.11 " + ("protected frames" if v == 1 else "A-MSDU frames"),
    10: lambda v: "tunnels nested deeper than 4",
    11: lambda v: {2152: "GTP-U", 5072: "AYIYA", 4790: "VXLAN-GPE", 6080: "GUE"}.get(v, "UDP") + f" (UDP {v})",
}

TUNNEL_TEXT: dict[int, str] = {}        # key -> text, filled as segments are decoded
_MAX_KEYS = 1 << 20                     # a hostile capture cannot grow it without bound


def undecoded_reason(code: int) -> str:
    """The skip reason of a packet in a tunnel not decoded (run.py prints it as a warning)."""
    what, value = code >> 32, code & 0xFFFFFFFF
    name = _UNDECODED.get(what, lambda v: f"tunnel {what}")(value)
    return f"packets in {name} not decoded"


def _kind_text(kind: int, outer_v6: bool) -> str:
    name = KIND_NAMES[kind] if kind < len(KIND_NAMES) else f"tunnel{kind}"
    if name in ("ip4", "ip6"):          # ipip, 6in4 (sit), 4in6, ip6ip6
        inner, outer = name[2], "6" if outer_v6 else "4"
        return "ipip" if inner == outer == "4" else f"{inner}in{outer}"
    return name


def describe(kind: int, tid: int, v6: bool, sh: int, sl: int, dh: int, dl: int, depth: int) -> str:
    """e.g. 'vxlan vni 42 10.0.0.1>10.0.0.2'; a tunnel inside others says how many."""
    name = _kind_text(kind, v6)
    label = ID_LABEL.get(name)
    ident = f" {label} {tid}" if label and tid >= 0 else ""
    text = f"{name}{ident} {address_text(v6, sh, sl)}>{address_text(v6, dh, dl)}"
    if depth > 1:
        text += f" (inside {depth - 1} more tunnel{'s' if depth > 2 else ''})"
    return text


def register(keys: np.ndarray, tun: dict[str, np.ndarray]) -> None:
    """Name the tunnel keys of a decoded chunk not named yet (the first packet's direction)."""
    rows = tun["row"]
    if not len(rows):
        return
    chunk_keys = keys[rows]
    uniq, first = np.unique(chunk_keys, return_index=True)
    for key, j in zip(uniq.tolist(), first.tolist()):
        if key in TUNNEL_TEXT or len(TUNNEL_TEXT) >= _MAX_KEYS:
            continue
        TUNNEL_TEXT[key] = describe(int(tun["kind"][j]), int(tun["id"][j]), bool(tun["v6"][j]),
                                    int(tun["src_hi"][j]), int(tun["src_lo"][j]), int(tun["dst_hi"][j]),
                                    int(tun["dst_lo"][j]), int(tun["depth"][j]))


def tunnel_texts(keys: list[int]) -> list[str | None]:
    """The `tunnel` field for segments' keys: None outside tunnels."""
    if not any(keys):
        return [None] * len(keys)
    return [TUNNEL_TEXT.get(k, f"tunnel {k:016x}") if k else None for k in keys]
