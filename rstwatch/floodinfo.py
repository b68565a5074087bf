"""`rules explain` for the causes that come from flood detection rather than a rule file
(port-scan, rst-storm, syn-flood), so every cause that can appear in output can be explained."""
from __future__ import annotations

from .report.storms import STORM_TEXT
from .track.storms import MIN_RATE_PER_S, STORM_MIN_FLOWS

HOW = {
    "rst-storm": "connections that are nothing but a RST (no handshake, no data seen), grouped by the host they target",
    "port-scan": "a SYN answered by RST|ACK from one source to many ports of one host (closed ports refusing)",
    "syn-flood": "a SYN answered by SYN-ACK and then a bare RST or nothing (backscatter of SYNs sent in someone else's name)",
}
ERRNO = {
    "rst-storm": ("ECONNRESET on a connection whose numbers the RST happens to fit; most are ignored", "nothing"),
    "port-scan": ("the scanner's connect: ECONNREFUSED for every closed port", "nothing"),
    "syn-flood": ("clients whose SYNs are dropped when the backlog is full: connect timeouts", "nothing"),
}


def flood_causes() -> list[str]:
    return sorted(STORM_TEXT)


def explain_flood(name: str) -> list[str] | None:
    """Lines like the rule explanation, or None if `name` is not a flood cause or id."""
    for cause, (rule_id, title, fixes) in STORM_TEXT.items():
        if name in (cause, rule_id):
            receiver, sender = ERRNO[cause]
            return [f"{cause} ({rule_id}): {title}",
                    "  source: flood detection while reading (rstwatch/track/storms.py), not a rule file",
                    f"  matches when: {HOW[cause]}; at least --storm-min ({STORM_MIN_FLOWS}) such connections "
                    f"arriving at {MIN_RATE_PER_S} or more per second",
                    "  reported as: one finding for the whole flood, with `resets`, `connections` and up to 10 "
                    "`sources_sample` addresses; its frames are not reported row by row",
                    "  confidence 0.90",
                    f"  the RST's receiver sees: {receiver}",
                    f"  the RST's sender sees: {sender}",
                    "  what to change:"] + [f"    - {x}" for x in fixes] + \
                   ["  lower --storm-min to group smaller floods; --storm-min 0 reports every RST row by row"]
    return None
