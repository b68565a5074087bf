"""Load rule files with file:line errors: built-ins from the package, then user folders that
may add rules, override a built-in by id, or disable one (`disabled: true`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import RuleError
from . import rulecache
from .ruleyaml import MAX_BYTES, YamlProblem
from .order import DEFAULT_BAND, check_order_keys, order_rules
from .model import (ID_PATTERN, KNOWN_KEYS, MAX_RULE_CONDITIONS, MAX_TOTAL_CONDITIONS, NAME_PATTERN, REQUIRED,
                    TEMPLATE_FIELDS, Rule, always_true, check_condition, check_template, count_conditions)
from ..track.storms import SUMMARY_FIELDS, check_flood, check_group


# All rule files loaded together (built-ins included: 18 files, 28 KB): checked before any is
# parsed, since parsing is what took minutes for 200 files of 250 KB.
MAX_SET_BYTES = 4 * 1024 * 1024
MAX_RULE_FILES = 1000


def builtin_rules_dir() -> Path:
    """rules/ inside the installed wheel, or the repository's rules/ in a source checkout."""
    packaged = Path(str(resources.files("rstwatch") / "rules"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "rules"


def parse_rule_file(path: Path, problems: list[str]) -> dict | None:
    """A rule file's mapping with `__lines__` (key path -> line), or None after adding its problem."""
    try:
        if not path.is_file():              # a FIFO or device named *.yaml would block or never end
            problems.append(f"{path}:1: not a regular file")
            return None
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            problems.append(f"{path}:1: larger than {MAX_BYTES // 1024} KiB; a rule file is one small mapping")
            return None
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}:1: cannot read ({exc})")
        return None
    try:
        data, lines, dupes = rulecache.parsed(text)
    except YamlProblem as exc:
        problems.append(f"{path}:{exc.line}: {exc.reason}")
        return None
    if data is None:
        problems.append(f"{path}:1: empty rule file")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}:1: a rule file holds one mapping")
        return None
    for sub, ln in dupes:
        problems.append(f"{path}:{ln}: duplicate key `{sub}`")
    data["__lines__"] = lines
    return data


def validate(data: dict, path: Path, problems: list[str], override: bool = False) -> Rule | None:
    lines = data.pop("__lines__", {})
    base = str(path)
    start = len(problems)
    ln = lambda key: lines.get(key, 1)  # noqa: E731
    for key in data:
        if key not in KNOWN_KEYS:
            problems.append(f"{base}:{ln(key)}: unknown key `{key}`")
    if data.get("disabled") is True:
        if not isinstance(data.get("id"), str):
            problems.append(f"{base}:1: a disabling file needs the `id` it disables")
        return Rule(id=str(data.get("id")), name="", title="", when=None, source=base, line=1, lines=lines) \
            if len(problems) == start else None
    is_flood = "flood" in data            # a flood rule: a detector's settings instead of `when`
    required = [k for k in REQUIRED if k != "when"] + ["flood"] if is_flood else REQUIRED
    missing = [k for k in required if k not in data]
    if missing and not override:
        problems.append(f"{base}:1: missing {', '.join(missing)}")
        return None
    rid, name = data.get("id"), data.get("name")
    if not isinstance(rid, str) or not ID_PATTERN.match(rid):
        problems.append(f"{base}:{ln('id')}: id must look like RST001, got {rid!r}")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(f"{base}:{ln('name')}: name must be lower-case-with-dashes, got {name!r}")
    elif name != path.stem:
        problems.append(f"{base}:{ln('name')}: name `{name}` must match the file name `{path.stem}`")
    conf = data.get("confidence")
    if not isinstance(conf, (int, float)) or isinstance(conf, bool) or not 0 <= conf <= 1:
        problems.append(f"{base}:{ln('confidence')}: confidence must be a number in 0..1, got {conf!r}")
    prio = data.get("priority", 100)
    if not isinstance(prio, int) or isinstance(prio, bool):
        problems.append(f"{base}:{ln('priority')}: priority must be an integer")
    check_order_keys(data, base, ln, problems)
    if is_flood:
        _check_flood_rule(data, base, lines, problems)
    elif data.get("band") == "flood":
        problems.append(f"{base}:{ln('band')}: band flood is for flood rules (a `flood:` mapping, no `when`)")
    fields = SUMMARY_FIELDS if is_flood else TEMPLATE_FIELDS       # a flood's numbers, or one reset's ends
    for key in ("title", "explain", "confidence_notes"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{base}:{ln(key)}: {key} must be text")
    for key in ("remediation", "references", "alternatives"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(x, str) for x in data[key])):
            problems.append(f"{base}:{ln(key)}: {key} must be a list of text")
    errno = data.get("errno", {})
    if not (isinstance(errno, dict) and set(errno) <= {"receiver", "sender"}
            and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in errno.values())):
        problems.append(f"{base}:{ln('errno')}: errno must be {{receiver: [..], sender: [..]}} lists of text")
    # Each condition is a pass over every reset: counted before each is checked (a thousand bad
    # ones would be a thousand lines).
    conditions = count_conditions(data.get("when")) + count_conditions(data.get("unless"))
    if conditions > MAX_RULE_CONDITIONS:
        problems.append(f"{base}:{ln('when')}: rule {rid}: more than {MAX_RULE_CONDITIONS} conditions in when "
                        f"and unless (the built-in rules have at most 27)")
    else:
        check_condition(data.get("when"), "when", problems, lines, base)
        check_condition(data.get("unless"), "unless", problems, lines, base)
    if isinstance(data.get("explain"), str):
        check_template(data["explain"], base, ln("explain"), problems, fields, rid)
    for n, text in enumerate(data.get("remediation", []) if isinstance(data.get("remediation"), list) else []):
        if isinstance(text, str):
            check_template(text, base, lines.get(f"remediation[{n}]", ln("remediation")), problems, fields, rid,
                           f"remediation[{n}]")
    tests = data.get("tests", [])
    if not isinstance(tests, list):
        problems.append(f"{base}:{ln('tests')}: tests must be a list")
        tests = []
    for n, t in enumerate(tests):
        tl = lines.get(f"tests[{n}].expect", lines.get(f"tests[{n}]", ln("tests")))
        if is_flood:
            ok = isinstance(t, dict) and t.get("expect") in ("match", "no_match") and set(t) == {"expect", "group"}
            why = check_group(t["group"] if ok else None)
            if why:
                problems.append(f"{base}:{lines.get(f'tests[{n}].group', tl)}: {why}")
            continue
        if not isinstance(t, dict) or t.get("expect") not in ("match", "no_match") or not isinstance(t.get("features"), dict):
            problems.append(f"{base}:{tl}: each test needs expect: match|no_match and a features mapping")
            continue
        check_condition(t["features"], f"tests[{n}].features", problems, lines, base)
    if len(problems) != start:
        return None
    return Rule(id=rid, name=name, title=data.get("title", ""), when=data.get("when"), unless=data.get("unless"),
                priority=prio, band=data.get("band", "flood" if is_flood else DEFAULT_BAND), before=list(data.get("before", [])),
                after=list(data.get("after", [])), confidence=float(conf), confidence_notes=data.get("confidence_notes", ""),
                alternatives=list(data.get("alternatives", [])),
                errno={"receiver": list(errno.get("receiver", [])), "sender": list(errno.get("sender", []))},
                explain=data.get("explain", ""), remediation=list(data.get("remediation", [])),
                references=list(data.get("references", [])), tests=tests, source=base, line=1, lines=lines,
                flood=dict(data["flood"]) if is_flood else None, conditions=conditions)


def _check_flood_rule(data: dict, base: str, lines: dict[str, int], problems: list[str]) -> None:
    """A flood rule names its detector and thresholds; what only a per-reset rule has is refused."""
    for key in ("when", "unless", "alternatives", "before", "after", "priority"):
        if key in data:
            problems.append(f"{base}:{lines.get(key, 1)}: a flood rule has no `{key}`: its detector groups "
                            f"connections while reading, it is not tried reset by reset")
    if data.get("band", "flood") != "flood":
        problems.append(f"{base}:{lines.get('band', 1)}: a flood rule is in band flood, got {data['band']!r}")
    for key, reason in check_flood(data["flood"]):
        problems.append(f"{base}:{lines.get(key, lines.get('flood', 1))}: {reason}")


def rule_files(directory: Path) -> list[Path]:
    return sorted(list(directory.glob("*.yaml")) + list(directory.glob("*.yml"))) if directory.is_dir() else []


def check_set_size(directories: list[Path], problems: list[str]) -> None:
    """Refuse, before parsing anything, more rule files or more bytes than MAX_RULE_FILES / MAX_SET_BYTES."""
    count = total = 0
    for d in directories:
        files = rule_files(d)
        count += len(files)
        if count > MAX_RULE_FILES:
            problems.append(f"{d}:1: more than {MAX_RULE_FILES:,} rule files in all the rules folders together")
            return
        for path in files:
            try:
                total += path.stat().st_size if path.is_file() else 0
            except OSError:
                continue                    # parse_rule_file says why it cannot be read
            if total > MAX_SET_BYTES:
                problems.append(f"{path}:1: with this file the rule files hold {total // 1024:,} KiB, more than "
                                f"the {MAX_SET_BYTES // 1024:,} KiB all rule files together may hold")
                return


def load_dir(directory: Path, problems: list[str]) -> list[Rule]:
    if not directory.is_dir():
        problems.append(f"{directory}: a file, not a rules folder (--rules takes the folder that holds rule files)"
                        if directory.exists() else f"{directory}: rules folder not found")
        return []
    rules = []
    files = rule_files(directory)
    if not files:
        problems.append(f"{directory}: no .yaml rule files in this folder")
    seen: dict[str, str] = {}
    for path in files:
        data = parse_rule_file(path, problems)
        if data is None:
            continue
        rule = validate(data, path, problems)
        if rule is None:
            continue
        if rule.id in seen:
            problems.append(f"{path}:{rule.line_of('id')}: duplicate id {rule.id} (also in {seen[rule.id]})")
            continue
        seen[rule.id] = str(path)
        rules.append(rule)
    return rules


@dataclass
class RuleSet:
    rules: list[Rule]               # what classifies: built-ins and folders merged, in evaluation order
    from_folders: list[Rule]        # the rules the user folders add or override
    warnings: list[str] = field(default_factory=list)   # `file:line: reason` of valid rules that look wrong


def builtin_causes() -> set[str]:
    """Every built-in cause, loaded or not: a file's name is its cause (checked at load)."""
    return {p.stem for p in builtin_rules_dir().glob("*.yaml")} | {"unknown"}


def load_rule_set(extra_dirs: list[Path] | None = None, builtin: bool = True) -> RuleSet:
    """The one loader every command uses. Built-in rules, then each user folder in order: same id
    replaces, `disabled` removes. Raises RuleError listing every `file:line: reason`."""
    try:
        return _load_rule_set(extra_dirs, builtin)
    finally:
        rulecache.save()            # the files parsed anew, for the next run (rulecache.py)


def _load_rule_set(extra_dirs: list[Path] | None, builtin: bool) -> RuleSet:
    problems: list[str] = []
    check_set_size(([builtin_rules_dir()] if builtin else []) + [Path(d) for d in extra_dirs or []], problems)
    if problems:
        raise RuleError(problems)
    by_id: dict[str, Rule] = {}
    if builtin:
        for r in load_dir(builtin_rules_dir(), problems):
            by_id[r.id] = r
    from_folders: dict[str, Rule] = {}
    for d in extra_dirs or []:
        for r in load_dir(Path(d), problems):
            if not r.name:                       # a disabling stub
                if r.id not in by_id:
                    problems.append(f"{r.source}:{r.line_of('id')}: disables {r.id}, which no loaded rule has")
                by_id.pop(r.id, None)
                from_folders.pop(r.id, None)
                continue
            by_id[r.id] = from_folders[r.id] = r
    names: dict[str, Rule] = {}
    for r in by_id.values():
        if r.name in names:
            problems.append(f"{r.source}:{r.line_of('name')}: cause `{r.name}` already defined by "
                            f"{names[r.name].id} ({names[r.name].source}); override it by reusing id {names[r.name].id}")
        names[r.name] = r
    detectors: dict[str, Rule] = {}              # one flood rule per detector
    for r in by_id.values():
        d = r.flood["detector"] if r.flood is not None else None
        if d in detectors:
            problems.append(f"{r.source}:{r.line_of('flood.detector', 'flood')}: detector {d} already has flood rule "
                            f"{detectors[d].id} ({detectors[d].source}); override it by reusing id {detectors[d].id}")
        elif d is not None:
            detectors[d] = r
    # An alternative is a cause the wire cannot rule out: a built-in one stays a real cause even
    # when its rule is disabled or not loaded, so every command accepts the same alternatives.
    known = set(names) | builtin_causes()
    for r in by_id.values():
        for n, alt in enumerate(r.alternatives):
            if alt not in known:
                problems.append(f"{r.source}:{r.line_of(f'alternatives[{n}]', 'alternatives')}: "
                                f"alternative `{alt}` is not a known cause")
    total = 0
    for r in by_id.values():
        total += r.conditions
        if total > MAX_TOTAL_CONDITIONS:
            problems.append(f"{r.source}:{r.line_of('when')}: rule {r.id}: with this rule the rules loaded hold more "
                            f"than {MAX_TOTAL_CONDITIONS:,} conditions together (the built-in rules: 86)")
            break
    ordered = order_rules(list(by_id.values()), known, problems)
    if problems:
        raise RuleError(problems)
    rank = {r.id: k for k, r in enumerate(ordered)}
    return RuleSet(ordered, sorted(from_folders.values(), key=lambda r: rank[r.id]), catch_all_warnings(ordered))


def catch_all_warnings(ordered: list[Rule]) -> list[str]:
    """A rule that matches every reset wins every one: each rule tried after it never does. Only the
    last rule tried (`unknown`, the fallback) may do that."""
    tried = [r for r in ordered if r.flood is None]
    return [f"{r.source}:{r.line_of('when')}: rule {r.id} ({r.name}) matches every reset (its `when` is empty or "
            f"always true, no `unless`): the {len(tried) - k - 1} rule(s) tried after it, {tried[-1].name} "
            f"among them, never win"
            for k, r in enumerate(tried[:-1]) if always_true(r.when) and not r.unless]


def load_rules(extra_dirs: list[Path] | None = None, builtin: bool = True) -> list[Rule]:
    """The rules that classify (see load_rule_set)."""
    return load_rule_set(extra_dirs, builtin).rules
