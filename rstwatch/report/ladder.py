"""A packet ladder as SVG: client and server lanes, one arrow per segment with its flags,
relative seq/ack and length, the frame number and the time since the connection's first packet.
The RST is drawn in red; a long connection shows its start, the packets around the RST and its
end, with the gaps counted. Colours follow the page (currentColor), so dark and light both work."""
from __future__ import annotations

from html import escape

from .packets import Packet

FLAG_NAMES = [(2, "SYN"), (1, "FIN"), (4, "RST"), (8, "PSH"), (16, "ACK"), (32, "URG")]
RST = 4
W, TOP, ROW = 720, 58, 30
LEFT, RIGHT = 200, 640           # lane x positions
RST_COLOUR = "#e5484d"
MAX_ROWS = 18


def flag_text(flags: int) -> str:
    return ", ".join(name for bit, name in FLAG_NAMES if flags & bit) or "-"


def _pick(packets: list[Packet], rst_frame: int, evidence: set[int]) -> list[Packet | int]:
    """The packets to draw, with an int standing for a run of skipped ones."""
    if len(packets) <= MAX_ROWS:
        return list(packets)
    at = next((i for i, p in enumerate(packets) if p.frame == rst_frame), len(packets) - 1)
    keep = set(range(4)) | set(range(at - 4, at + 3)) | {len(packets) - 2, len(packets) - 1}
    keep |= {i for i, p in enumerate(packets) if p.frame in evidence and len(keep) < MAX_ROWS}
    return with_gaps(packets, keep)


def with_gaps(rows: list, keep: set[int], most: int | None = None) -> list:
    """The rows whose index is in `keep` (at most `most` of them), in order, with an int standing
    for each run of rows left out (drawn as "... N segments not drawn ...")."""
    out: list = []
    gap = 0
    for i, row in enumerate(rows):
        if i in keep and (most is None or len(out) < most):
            if gap:
                out.append(gap)
                gap = 0
            out.append(row)
        else:
            gap += 1
    return out + ([gap] if gap else [])


def arrow_markers(uid: str) -> str:
    """The arrowheads of a ladder's arrows: `{uid}a` in the page's colour, `{uid}r` in the RST's red."""
    marker = ('<marker id="{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
              'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{fill}"/></marker>')
    return ("<defs>" + marker.format(id=f"{uid}a", fill="currentColor")
            + marker.format(id=f"{uid}r", fill=RST_COLOUR) + "</defs>")


def arrow(x1: int, y1: int, x2: int, y2: int, is_rst: bool, width: float, uid: str) -> str:
    """One segment's arrow: red, thicker and with the red head for the RST."""
    colour = RST_COLOUR if is_rst else "currentColor"
    return (f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" '
            f'stroke-width="{2.5 if is_rst else width}" marker-end="url(#{uid}{"r" if is_rst else "a"})"/>')


def ladder_svg(packets: list[Packet], rst_frame: int, client: tuple[str, int], server: tuple[str, int],
               evidence: set[int] | None = None, standalone: bool = False, label: str = "", uid: str = "l",
               lanes: tuple[str, str] = ("client", "server")) -> str:
    """An SVG document (standalone) or element (inline in HTML)."""
    evidence = evidence or set()
    base: dict[tuple[str, int], int] = {}          # per sender: its SYN's sequence number, else its first
    for p in packets:
        if p.flags & 2:
            base.setdefault((p.src, p.sport), p.seq)
    for p in packets:
        base.setdefault((p.src, p.sport), p.seq)
    t0 = packets[0].ts_ns if packets else 0
    rows = _pick(packets, rst_frame, evidence)
    height = TOP + ROW * len(rows) + 16
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" viewBox="0 0 {W} {height}" '
             f'width="{W}" height="{height}" role="img" aria-label="{escape(label or "packet ladder")}" '
             f'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="12">']
    if standalone:
        parts.append("<style>svg{color:#1f2328} @media (prefers-color-scheme: dark){svg{color:#e6edf3}}</style>")
    parts.append(arrow_markers(uid))
    parts.append(f'<g fill="currentColor"><text x="8" y="16" font-weight="bold">frame</text>'
                 f'<text x="64" y="16" font-weight="bold">time (s)</text>'
                 f'<text x="{LEFT}" y="16" text-anchor="middle" font-weight="bold">{escape(lanes[0])}</text>'
                 f'<text x="{LEFT}" y="32" text-anchor="middle">{escape(_ep(client))}</text>'
                 f'<text x="{RIGHT}" y="16" text-anchor="middle" font-weight="bold">{escape(lanes[1])}</text>'
                 f'<text x="{RIGHT}" y="32" text-anchor="middle">{escape(_ep(server))}</text></g>')
    bottom = height - 8
    parts.append(f'<g stroke="currentColor" stroke-width="2" opacity="0.55"><line x1="{LEFT}" y1="40" x2="{LEFT}" y2="{bottom}"/>'
                 f'<line x1="{RIGHT}" y1="40" x2="{RIGHT}" y2="{bottom}"/></g>')
    for n, item in enumerate(rows):
        y = TOP + ROW * n + 14
        if isinstance(item, int):
            parts.append(f'<text x="{(LEFT + RIGHT) // 2}" y="{y}" text-anchor="middle" fill="currentColor" '
                         f'opacity="0.7">\u22ef {item} segment{"s" if item != 1 else ""} not drawn \u22ef</text>')
            continue
        parts.append(_arrow(item, y, client, base, t0, item.frame == rst_frame, item.frame in evidence, uid))
    parts.append("</svg>")
    return "".join(parts)


def _ep(ep: tuple[str, int]) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _arrow(p: Packet, y: int, client: tuple[str, int], base: dict, t0: int, is_rst: bool, is_evidence: bool,
           uid: str) -> str:
    from_client = (p.src, p.sport) == client
    x1, x2 = (LEFT, RIGHT) if from_client else (RIGHT, LEFT)
    seq = (p.seq - base.get((p.src, p.sport), p.seq)) % 2**32
    text = f"{flag_text(p.flags)}  seq={seq}"
    if p.flags & 16:
        text += f" ack={(p.ack - base.get((p.dst, p.dport), p.ack)) % 2**32}"
    if p.plen:
        text += f" len={p.plen}"
    colour = RST_COLOUR if is_rst else "currentColor"
    weight = ' font-weight="bold"' if (is_rst or is_evidence) else ""
    mid = (LEFT + RIGHT) // 2
    return (f'<g class="seg{" rst" if is_rst else ""}" data-frame="{p.frame}">'
            f'<text x="8" y="{y + 4}" fill="currentColor"{weight}>{p.frame}</text>'
            f'<text x="64" y="{y + 4}" fill="currentColor">{(p.ts_ns - t0) / 1e9:.6f}</text>'
            f'<text x="{mid}" y="{y - 3}" text-anchor="middle" fill="{colour}"{weight}>{escape(text)}</text>'
            f'{arrow(x1, y, x2, y + 8, is_rst, 1.5, uid)}</g>')
