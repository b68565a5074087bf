"""The rule model: what a rule file may say, checked field by field."""
from __future__ import annotations

import difflib
import re
import string
from dataclasses import dataclass, field
from typing import Any

from ..features.registry import FEATURES

OPERATORS = {"eq", "ne", "lt", "lte", "gt", "gte", "in", "is_null"}
ORDERED = {"lt", "lte", "gt", "gte"}
TEMPLATE_FIELDS = {"src", "sport", "dst", "dport", "sender", "receiver", "frame", "conn_state", "history",
                   "client", "client_port", "server", "server_port"}
ID_PATTERN = re.compile(r"^[A-Z]{2,8}\d{3,5}S?$")     # S: the flood rules' ids (RST001S)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
REQUIRED = ("id", "name", "title", "when", "confidence", "explain", "errno", "remediation", "references", "tests")
# Limits far above any real rule (the built-in ones: at most 27 conditions, 111 in all, an explain of
# 181 characters with 7 placeholders), low enough that a hostile folder is refused in a second instead
# of costing minutes per read (every condition is a pass over every reset) or gigabytes per explain.
MAX_RULE_CONDITIONS = 200       # tests in one rule's when + unless
MAX_TOTAL_CONDITIONS = 2000     # in all the rules loaded together
MAX_TEMPLATE_CHARS = 2000       # an explain or one remediation line
MAX_TEMPLATE_FIELDS = 50        # placeholders in one of them
KNOWN_KEYS = set(REQUIRED) | {"unless", "priority", "band", "before", "after", "confidence_notes", "alternatives",
                              "disabled", "maturity", "flood"}


@dataclass
class Rule:
    id: str
    name: str                       # the cause users see
    title: str
    when: Any
    unless: Any = None
    priority: int = 100             # tie-break inside a band (engine/order.py)
    band: str = "connection"        # named band: the coarse order between rules
    before: list[str] = field(default_factory=list)   # causes (or ids) this rule is tried before
    after: list[str] = field(default_factory=list)
    confidence: float = 0.5
    confidence_notes: str = ""
    alternatives: list[str] = field(default_factory=list)
    errno: dict[str, list[str]] = field(default_factory=dict)
    explain: str = ""
    remediation: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    tests: list[dict] = field(default_factory=list)
    flood: dict | None = None       # a flood rule: its detector and thresholds (track/storms.py), no `when`
    conditions: int = 0             # tests in when + unless (count_conditions)
    source: str = ""                # file path
    line: int = 1
    lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)   # key path -> line

    def line_of(self, *keys: str) -> int:
        """The line of the first of `keys` the file has (`alternatives[1]`, then `alternatives`), else 1."""
        return next((self.lines[k] for k in keys if k in self.lines), 1)


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def count_conditions(cond: Any) -> int:
    """Tests in a condition: one per feature operator; an OR branch with none still counts one (it
    costs a pass too). Stops counting past MAX_RULE_CONDITIONS + 1: enough to refuse."""
    if isinstance(cond, list):
        n = 0
        for item in cond:
            n += max(1, count_conditions(item))
            if n > MAX_RULE_CONDITIONS:
                break
        return n
    if isinstance(cond, dict):
        return sum(len(t) if isinstance(t, dict) and t else 1 for t in cond.values())
    return 0


def always_true(cond: Any) -> bool:
    """A `when` that every reset meets: missing, `{}`, or an OR list with an empty branch."""
    if cond is None or cond == {}:
        return True
    return isinstance(cond, list) and any(always_true(item) for item in cond)


def check_condition(cond: Any, where: str, problems: list[str], lines: dict[str, int], base: str) -> None:
    """A condition is a mapping (all must hold) or a list of mappings (any must hold)."""
    if cond is None or cond == {}:
        return
    if isinstance(cond, list):
        for item in cond:
            check_condition(item, where, problems, lines, base)
        return
    if not isinstance(cond, dict):
        problems.append(f"{base}:{lines.get(where, 1)}: `{where}` must be a mapping (AND) or a list (OR), got {type(cond).__name__}")
        return
    for name, test in cond.items():
        ln = lines.get(f"{where}.{name}", lines.get(where, 1))
        feat = FEATURES.get(name)
        if feat is None:
            near = difflib.get_close_matches(str(name), list(FEATURES), n=1)
            hint = f" (did you mean {near[0]}?)" if near else " (see `rstwatch rules features`)"
            problems.append(f"{base}:{ln}: unknown feature `{name}`{hint}")
            continue
        ops = test if isinstance(test, dict) else ({"in": test} if isinstance(test, list) else {"eq": test})
        for op, value in ops.items():
            if op not in OPERATORS:
                problems.append(f"{base}:{ln}: unknown operator `{op}` for {name} (use one of {sorted(OPERATORS)})")
            elif op == "is_null":
                if not isinstance(value, bool):
                    problems.append(f"{base}:{ln}: is_null takes true or false")
            elif op == "in":
                if not isinstance(value, list) or not all(_type_ok(feat.kind, v) for v in value):
                    problems.append(f"{base}:{ln}: `in` for {name} needs a list of {feat.kind}")
            elif op in ORDERED and feat.kind not in ("int", "float"):
                problems.append(f"{base}:{ln}: `{op}` needs a numeric feature; {name} is {feat.kind}")
            elif not _type_ok(feat.kind, value):
                problems.append(f"{base}:{ln}: {name} is {feat.kind}, got {value!r}")


def outline(template: str) -> str:
    """A template as a reader sees it unfilled, placeholders left as {name} (rule files' own
    spelling, which no output format escapes), for a line that stands for several findings whose
    filled texts differ (`ss -ltnp 'sport = :{server_port}'`, not one finding's port)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return template
    return "".join(literal + ("{" + name + "}" if name is not None else "") for literal, name, _, _ in parts)


def check_template(text: str, base: str, ln: int, problems: list[str], fields: set[str] = TEMPLATE_FIELDS,
                   rule: str = "", key: str = "explain") -> None:
    # Filled once per finding: a template that is megabytes once is gigabytes across findings.
    if len(text) > MAX_TEMPLATE_CHARS:
        problems.append(f"{base}:{ln}: rule {rule}: {key} is {len(text):,} characters, more than the "
                        f"{MAX_TEMPLATE_CHARS:,} allowed")
        return
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        problems.append(f"{base}:{ln}: {key}: {exc}")
        return
    placeholders = sum(fname is not None for _, fname, _, _ in parts)
    if placeholders > MAX_TEMPLATE_FIELDS:
        problems.append(f"{base}:{ln}: rule {rule}: {key} has {placeholders:,} placeholders, more than the "
                        f"{MAX_TEMPLATE_FIELDS} allowed")
        return
    for _, fname, spec, conv in parts:
        if fname is None:
            continue
        if fname not in fields or spec or conv:
            problems.append(f"{base}:{ln}: {key}: placeholder {{{fname}}} not allowed "
                            f"(use plain {sorted(fields)})")
