"""A packet ladder with one column per vantage point (issue #23 item 4).

Columns are the captures of a joined connection, ordered from the client's end of the path to the
server's (join.py). Each row is one segment: a dot where a capture holds it, an arrow from the first
capture on its way to the last, a hollow ring where a capture it went past lacks it (lost there),
and a star where a RST first appears without coming from its sender's side (injected on the path).
Times are on the first host's clock (offsets applied), relative to the connection's first segment.
"""
from __future__ import annotations

from html import escape

from ..report.ladder import RST_COLOUR, arrow, arrow_markers, flag_text, with_gaps
from .join import Joined

W, TOP, ROW, LEFT_TEXT = 760, 64, 26, 150
MAX_ROWS = 24


def _rows(j: Joined, members, offsets: dict) -> list[tuple[float, tuple, dict]]:
    """(time on the reference clock, segment identity, {member index: time}) in time order."""
    seen: dict[tuple, dict] = {}
    for k, m in enumerate(members):
        off = offsets.get(m.file.host, {}).get("offset_s", 0.0)
        for ident, t in m.conn.segs.items():
            seen.setdefault(ident, {})[k] = t - off
    return sorted(((min(v.values()), ident, v) for ident, v in seen.items()), key=lambda r: r[0])


def _pick(rows: list) -> list:
    if len(rows) <= MAX_ROWS:
        return rows
    rst = [i for i, r in enumerate(rows) if r[1][3] & 4]
    keep = set(range(4)) | {len(rows) - 1} | {i for a in rst for i in range(a - 5, a + 3)}
    return with_gaps(rows, keep, most=2 * MAX_ROWS)


def vantage_ladder(j: Joined, offsets: dict, uid: str = "v") -> str:
    members = sorted([m for m in j.members if m.position is not None], key=lambda m: m.position) + \
        [m for m in j.members if m.position is None]
    n = len(members)
    xs = [LEFT_TEXT + 40 + round(k * (W - LEFT_TEXT - 80) / max(1, n - 1)) for k in range(n)]
    rows = _pick(_rows(j, members, offsets))
    t0 = next((r[0] for r in rows if not isinstance(r, int)), 0.0)
    base = {"c": None, "s": None}
    for r in rows:
        if not isinstance(r, int):
            role, seq, _, flags, _ = r[1]
            if base[role] is None or flags & 2:
                base[role] = seq if base[role] is None or flags & 2 else base[role]
    height = TOP + ROW * len(rows) + 12
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder vantage" viewBox="0 0 {W} {height}" width="{W}" '
           f'height="{height}" role="img" aria-label="packet ladder, one column per vantage point" '
           f'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="11">',
           arrow_markers(uid),
           '<g fill="currentColor"><text x="8" y="16" font-weight="bold">time (s)</text>']
    for m, x in zip(members, xs):
        out.append(f'<text x="{x}" y="16" text-anchor="middle" font-weight="bold">{escape(m.file.host)}</text>'
                   f'<text x="{x}" y="30" text-anchor="middle">{escape(m.file.path.rsplit("/", 1)[-1])}</text>')
    out.append("</g>")
    out.append('<g stroke="currentColor" stroke-width="2" opacity="0.45">'
               + "".join(f'<line x1="{x}" y1="38" x2="{x}" y2="{height - 6}"/>' for x in xs) + "</g>")
    for i, r in enumerate(rows):
        y = TOP + ROW * i
        if isinstance(r, int):
            out.append(f'<text x="{W // 2}" y="{y}" text-anchor="middle" fill="currentColor" opacity="0.7">'
                       f'\u22ef {r} segment{"s" if r != 1 else ""} not drawn \u22ef</text>')
            continue
        out.append(_row(r, y, xs, t0, base, uid))
    out.append("</svg>")
    return "".join(out)


def _row(r, y: int, xs: list[int], t0: float, base: dict, uid: str) -> str:
    t, (role, seq, ack, flags, plen), at = r
    is_rst = bool(flags & 4)
    colour = RST_COLOUR if is_rst else "currentColor"
    bold = ' font-weight="bold"' if is_rst else ""
    order = list(range(len(xs))) if role == "c" else list(range(len(xs)))[::-1]     # from the sender's side
    have = [k for k in order if k in at]
    first, last = have[0], have[-1]
    rel = (seq - base[role]) % 2**32 if base[role] is not None else seq
    text = f"{flag_text(flags)} seq={rel}" + (f" len={plen}" if plen else "")
    parts = [f'<g class="seg{" rst" if is_rst else ""}">',
             f'<text x="8" y="{y + 4}" fill="currentColor">{t - t0:.6f}</text>',
             f'<text x="{(xs[first] + xs[last]) // 2}" y="{y - 4}" text-anchor="middle" fill="{colour}"'
             f'{bold}>{escape(text)}</text>']
    if first != last:
        parts.append(arrow(xs[first], y, xs[last], y, is_rst, 1.2, uid))
    for k in have:
        parts.append(f'<circle cx="{xs[k]}" cy="{y}" r="3.5" fill="{colour}"/>')
    pos = {k: n for n, k in enumerate(order)}
    for k in order[pos[first] + 1:]:
        if k not in at:                                  # went past it, not in that capture
            parts.append(f'<circle cx="{xs[k]}" cy="{y}" r="5" fill="none" stroke="{colour}" stroke-width="1.5">'
                         f'<title>not in this capture</title></circle>')
    if is_rst and pos[first] > 0:                         # appears mid-path: injected before this capture
        x = (xs[first] + xs[order[pos[first] - 1]]) // 2
        parts.append(f'<text x="{x}" y="{y + 4}" text-anchor="middle" fill="{RST_COLOUR}" font-size="15">\u2605'
                     f'<title>first seen here: sent between these captures</title></text>')
    parts.append("</g>")
    return "".join(parts)
