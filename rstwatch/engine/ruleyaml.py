"""A rule file's YAML as plain data plus the line of every key and list item.

Built from YAML's event stream rather than a composed node graph, so nothing in a file can make
the reader expand, recurse or build objects: anchors and aliases are refused (a rule file is one
small mapping and never needs them; expanding them is what made a 1 KB "billion laughs" file take
minutes and gigabytes), so are tags other than YAML's plain types, nesting deeper than a rule
needs, and files larger than any rule. Every refusal is a `YamlProblem` carrying a line."""
from __future__ import annotations

from typing import Any

MAX_BYTES = 256 * 1024      # the largest built-in rule is ~3 KB
MAX_DEPTH = 16              # a rule nests ~5 deep (tests[0].features.name.op)
_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
# PyYAML is imported at the first parse (~10 ms): a run whose rule files all come from the
# cache of earlier parses (rulecache.py) never needs it
yaml = _LOADER = _RESOLVER = None


def _import_yaml() -> None:
    global yaml, _LOADER, _RESOLVER
    if yaml is None:
        import yaml as module
        _LOADER = getattr(module, "CSafeLoader", module.SafeLoader)     # libyaml when present: same events, faster
        _RESOLVER = module.resolver.Resolver()
        yaml = module


class YamlProblem(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Open:
    """A mapping or list being built: where it goes and, for a mapping, the key awaiting its value."""

    __slots__ = ("value", "path", "key", "key_line")

    def __init__(self, value: dict | list, path: str) -> None:
        self.value, self.path = value, path
        self.key: str | None = None
        self.key_line = 0


def load_yaml(text: str) -> tuple[Any, dict[str, int], list[tuple[str, int]]]:
    """(data, lines, duplicates): lines maps `a.b`, `a[0]` paths to 1-based lines; duplicates
    lists (path, line) of keys given twice. Raises YamlProblem for anything refused."""
    _import_yaml()
    lines: dict[str, int] = {}
    dupes: list[tuple[str, int]] = []
    stack: list[_Open] = []
    root: list[Any] = []
    documents = 0
    constructor = yaml.constructor.SafeConstructor()
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            line = event.start_mark.line + 1 if event.start_mark else 1
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlProblem(line, "a rule file holds one YAML document (found a second `---`)")
                continue
            if isinstance(event, yaml.AliasEvent):
                raise YamlProblem(line, f"alias `*{event.anchor}`: rule files may not use anchors or aliases")
            if not isinstance(event, yaml.NodeEvent) and not isinstance(event, (yaml.MappingEndEvent,
                                                                                 yaml.SequenceEndEvent)):
                continue                        # stream start/end, document end
            if isinstance(event, yaml.NodeEvent):
                _check_node(event, line)
            if isinstance(event, yaml.ScalarEvent):
                _place(stack, root, _scalar(constructor, event, line), line, lines, dupes)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    raise YamlProblem(line, f"nested more than {MAX_DEPTH} levels deep")
                path = _child_path(stack, line, lines)
                stack.append(_Open({} if isinstance(event, yaml.MappingStartEvent) else [], path))
            else:                               # the end of a mapping or list: it is a value now
                done = stack.pop()
                _place(stack, root, done.value, line, lines, dupes, path=done.path)
    except yaml.YAMLError as exc:
        reason = _error_text(exc)
        if "nesting depth" in reason:
            # libyaml >= 0.2.5 refuses deep nesting (1,000 levels) while its scanner looks ahead,
            # before our own depth check sees an event: the same problem, said our way.
            reason = f"nested more than {MAX_DEPTH} levels deep"
            raise YamlProblem(_error_line(exc, text), reason) from None
        raise YamlProblem(_error_line(exc, text), f"invalid YAML ({reason})") from None
    return (root[0] if root else None), lines, dupes


def _check_node(event: yaml.NodeEvent, line: int) -> None:
    if event.anchor is not None:
        raise YamlProblem(line, f"anchor `&{event.anchor}`: rule files may not use anchors or aliases")
    tag = getattr(event, "tag", None)
    if tag is not None and tag != "!" and tag not in _PLAIN_TAGS:
        shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
        raise YamlProblem(line, f"tag `{shown}` is not allowed in rule files (plain text, numbers, "
                                "true/false, null, lists and mappings only)")


def _scalar(constructor: yaml.constructor.SafeConstructor, event: yaml.ScalarEvent, line: int) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag not in _PLAIN_TAGS:      # implicit timestamps, `<<` merge keys, `=` value keys
        return event.value          # kept as the text written; validation says what it should be
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        return constructor.construct_object(node)
    except (yaml.YAMLError, ValueError) as exc:
        raise YamlProblem(line, f"invalid YAML ({exc})") from None


def _child_path(stack: list[_Open], line: int, lines: dict[str, int]) -> str:
    """The path of a mapping or list about to open, checking that it is not used as a key."""
    if not stack:
        return ""
    top = stack[-1]
    if isinstance(top.value, list):
        item = f"{top.path}[{len(top.value)}]"
        lines[item] = line                      # a list item's line is where it starts
        return item
    if top.key is None:
        raise YamlProblem(line, "a key must be plain text, not a list or mapping")
    return f"{top.path}.{top.key}" if top.path else top.key


def _place(stack: list[_Open], root: list, value: Any, line: int, lines: dict[str, int],
           dupes: list[tuple[str, int]], path: str | None = None) -> None:
    """Put a finished value where it belongs: the document, a list item, a key, or a key's value."""
    if not stack:
        root.append(value)
        return
    top = stack[-1]
    if isinstance(top.value, list):
        if path is None:
            lines[f"{top.path}[{len(top.value)}]"] = line
        top.value.append(value)
        return
    if top.key is None:                         # this scalar is a key
        if path is not None:
            raise YamlProblem(line, "a key must be plain text, not a list or mapping")
        top.key, top.key_line = str(value), line
        return
    sub = f"{top.path}.{top.key}" if top.path else top.key
    if top.key in top.value:
        dupes.append((sub, top.key_line))
    lines[sub] = top.key_line
    top.value[top.key] = value
    top.key = None


def _error_line(exc: yaml.YAMLError, text: str) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(exc, "position", None)       # reader errors: a character offset
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def _error_text(exc: yaml.YAMLError) -> str:
    return str(getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc).strip()
