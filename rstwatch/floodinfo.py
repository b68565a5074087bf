"""`rules explain` for a flood rule (port-scan, rst-storm, syn-flood): what its detector groups,
its thresholds, and how the flood is reported; the words come from the rule file."""
from __future__ import annotations

from .engine.model import Rule


def explain_flood(rule: Rule) -> list[str] | None:
    """Lines like a rule's explanation, or None if `rule` is not a flood rule."""
    flood = getattr(rule, "flood", None)
    if flood is None:
        return None
    size = "ports of one host" if flood["detector"] == "port-scan" else "such connections"
    lines = [f"{rule.name} ({rule.id}): {rule.title}", f"  file: {rule.source}",
             f"  band flood, confidence {rule.confidence:.2f}; detector {flood['detector']} "
             f"(rstwatch/track/storms.py), not tried reset by reset"]
    if rule.confidence_notes:
        lines.append(f"  why this confidence: {rule.confidence_notes}")
    lines += [f"  matches when: {flood.get('groups', 'the connections its detector groups')}; at least "
              f"{flood['min_connections']} {size} (min_connections; --storm-min N overrides it), arriving at "
              f"{flood['min_rate_per_s']} or more per second (min_rate_per_s)",
              "  reported as: one finding for the whole flood, with `resets`, `connections` and up to 10 "
              "`sources_sample` addresses; its frames are not reported row by row",
              f"  the RST's receiver sees: {flood.get('receiver_sees') or ', '.join(rule.errno.get('receiver') or ['nothing'])}",
              f"  the RST's sender sees: {', '.join(rule.errno.get('sender') or ['nothing'])}",
              "  what to change:"]
    lines += [f"    - {x}" for x in rule.remediation]
    lines += ["  lower --storm-min (or min_connections in a copy of this file under --rules DIR) to group smaller "
              f"floods; --storm-min 0 reports every RST row by row, as does `id: {rule.id}` + `disabled: true`",
              f"  references: {'; '.join(rule.references)}"]
    return lines
