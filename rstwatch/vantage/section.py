"""The reports' "Vantage points" section (issue #23 item 4): the hosts and their clock
offsets, then per joined connection with a RST: where each RST was seen, where it was missed, which
host's capture settled its cause, and a ladder with one column per capture (ladder.py).

The incident report (report/incident.py) is rendered as for one host; in HTML this section goes in
before its findings table (after the causes), or before </body> if the page has no such section; the
Markdown template renders the same facts (vantage_facts) itself, before "All findings".
"""
from __future__ import annotations

import io
from html import escape

import pandas as pd

from .join import Joined
from .ladder import vantage_ladder

MAX_CONNECTIONS = 20            # ladders drawn; the rest are counted


def _conn_rows(j: Joined, findings: pd.DataFrame) -> list[dict]:
    """One entry per RST of the connection, from the findings of its captures."""
    frames = {(m.file.path, frame): (m, ident) for m in j.members for ident, (_, frame) in m.conn.rsts.items()}
    out: dict[tuple, dict] = {}
    for row in findings.itertuples(index=False):
        hit = frames.get((str(row.file), int(row.frame)))
        if hit is None:
            continue
        m, ident = hit
        e = out.setdefault(ident, {"cause": row.cause, "confidence": row.confidence, "settled_by": row.settled_by,
                                   "seen_at": list(row.seen_at), "missed_by": list(row.missed_by), "frames": [],
                                   "single": set(), "sender": f"{row.src}:{row.sport}"})
        e["frames"].append(f"{m.file.host} {m.file.path.rsplit('/', 1)[-1]} #{int(row.frame)}")
        e["single"].add(row.single_view_cause)
    return list(out.values())


def vantage_facts(joined: list[Joined], findings: pd.DataFrame, offsets: dict, notes: list[str]) -> dict:
    """What the section says, for either report: the notes (hosts, clock offsets), then per joined
    connection with a RST (at most MAX_CONNECTIONS) its ends, its RSTs and its ladder (an SVG element)."""
    connections = []
    with_rst = [j for j in joined if any(m.conn.rsts for m in j.members)]
    for n, j in enumerate(with_rst[:MAX_CONNECTIONS]):
        rsts = _conn_rows(j, findings)
        if not rsts:
            continue
        first = j.members[0].conn
        connections.append({"client": f"{first.client[0]}:{first.client[1]}",
                            "server": f"{first.server[0]}:{first.server[1]}", "across_nat": j.across_nat,
                            "rsts": [dict(e, single=sorted(map(str, e["single"])),
                                          confidence=f"{float(e['confidence']):.2f}") for e in rsts],
                            "ladder": vantage_ladder(j, offsets, uid=f"v{n}"), "id": f"vantage-{n + 1}"})
    return {"notes": list(notes), "connections": connections,
            "more": max(0, len(with_rst) - MAX_CONNECTIONS)}


LADDER_CAPTION = ("One column per capture, client side first; times on the first host's clock. A dot: the capture "
                  "holds the segment; a ring: it went past and the capture lacks it; a star: a RST first seen mid-path.")


def vantage_section(joined: list[Joined], findings: pd.DataFrame, offsets: dict, notes: list[str]) -> str:
    return section_html(vantage_facts(joined, findings, offsets, notes))


def section_html(facts: dict) -> str:
    h = ['<section id="vantage">', "<h2>Vantage points</h2>"]
    h += [f'<p class="muted">{escape(n)}</p>' for n in facts["notes"]]
    for c in facts["connections"]:
        nat = " (joined across NAT)" if c["across_nat"] else ""
        h.append(f"<h3>{escape(c['client'])} &rarr; {escape(c['server'])}{nat}</h3>")
        h.append("<table><thead><tr><th>RST in the name of</th><th>cause (joined)</th><th>settled by</th>"
                 "<th>seen at</th><th>missed by</th><th>each capture alone</th><th>frames</th></tr></thead><tbody>")
        for e in c["rsts"]:
            h.append(f'<tr><td class="mono">{escape(e["sender"])}</td><td>{escape(str(e["cause"]))} '
                     f'({e["confidence"]})</td><td>{escape(str(e["settled_by"]))}</td>'
                     f'<td>{escape(", ".join(e["seen_at"]))}</td><td>{escape(", ".join(e["missed_by"]) or "-")}</td>'
                     f'<td>{escape(", ".join(e["single"]))}</td>'
                     f'<td class="mono">{escape("; ".join(e["frames"]))}</td></tr>')
        h.append("</tbody></table>")
        h.append(f'<figure class="ladder-wrap">{c["ladder"]}<figcaption>{LADDER_CAPTION}</figcaption></figure>')
    if facts["more"]:
        h.append(f'<p class="muted">{facts["more"]} more joined connection(s) with resets not drawn.</p>')
    if not facts["connections"]:
        h.append('<p class="muted">No connection with a reset was seen by more than one capture.</p>')
    h.append("</section>")
    return "\n".join(h)


class WithVantage:
    """The HTML format, its page given the vantage section: finish() writes it as any format."""

    def __init__(self, chosen, section: str):
        self._chosen, self._section = chosen, section

    def __getattr__(self, name):
        return getattr(self._chosen, name)

    def writer(self):
        inner = self._chosen.writer()

        def write(findings, out, info=None):
            buf = io.StringIO()
            inner(findings, buf, info=info)
            page = buf.getvalue()
            for anchor in ('<section id="findings">', "</body>"):
                if anchor in page:
                    page = page.replace(anchor, self._section + "\n" + anchor, 1)
                    break
            out.write(page)
        return write
