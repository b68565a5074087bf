"""Rule files written to hurt (issue 11, item 4) and one loader for every command (item 15).

Hostile YAML (a "billion laughs" of nested aliases, a recursive alias, tags that name Python
objects, deep nesting, several documents, huge files, a FIFO) is refused by every command that
loads rules, as one line `rstwatch: error: FILE:LINE: reason` and exit 2, at once. A valid user
rule gets the same verdict, and the same line numbers, from read, live, rules list/validate/test."""
from __future__ import annotations

import os
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from conftest import CAPTURES, run_cli
from rstwatch.engine.loader import load_rules
from rstwatch.errors import RuleError

USER_RULE = """id: USR001
name: my-cause
title: "A user cause"
priority: 500
when:
  rst.from_client: true
  conn.client_bytes: {{gt: 1000000000}}
confidence: 0.5
alternatives:
  - closed-port
  - {alt}
errno: {{receiver: [], sender: []}}
explain: "{{src}} did it"
remediation: ["x"]
references: ["y"]
tests:
  - {{expect: match, features: {{rst.from_client: true, conn.client_bytes: 2000000000}}}}
  - {{expect: no_match, features: {{rst.from_client: false}}}}
"""


def billion_laughs() -> str:
    """~1 KB that expands to 9**10 strings if aliases are followed."""
    rows = ['lol: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(rows) + "\n"


HOSTILE = {   # name: (text, line, words in the reason)
    "laughs": (billion_laughs(), 1, "anchor `&a0`"),
    "recursive": ("id: RST100\nname: recursive\nwhen: &w [*w]\n", 3, "anchor `&w`"),
    "alias": ("id: RST100\nname: alias\ntitle: x\nexplain: *nowhere\n", 4, "alias `*nowhere`"),
    "pytag": ("id: RST100\nname: pytag\ntitle: !!python/object/apply:os.system [id]\n", 3,
              "tag `!!python/object/apply:os.system` is not allowed"),
    "localtag": ("id: RST100\nname: localtag\n\nwhen: !cond {rst.from_client: true}\n", 4, "tag `!cond` is not allowed"),
    "deep": ("id: RST100\nname: deep\nwhen: " + "[" * 5000 + "]" * 5000 + "\n", 3, "nested more than"),
    "twodocs": ("id: RST100\nname: twodocs\n---\nid: RST101\n", 3, "one YAML document"),
    "listkey": ("id: RST100\nname: listkey\n? [a, b]\n: c\n", 3, "a key must be plain text"),
    "huge": ("id: RST100\nname: huge\ntitle: \"" + "x" * 400_000 + "\"\n", 1, "larger than"),
}


def hostile_folder(root: Path, name: str) -> tuple[Path, Path]:
    folder = root / name
    folder.mkdir()
    path = folder / f"{name}.yaml"
    path.write_text(HOSTILE[name][0])
    return folder, path


def commands(folder: Path) -> dict[str, list[str]]:
    return {
        "read": ["read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl", "--rules", str(folder)],
        "live": ["live", "lo", "--duration", "1", "--format", "jsonl", "--rules", str(folder)],
        "validate": ["rules", "validate", str(folder)],
        "test": ["rules", "test", str(folder)],
        "list": ["rules", "list", "--rules", str(folder)],
    }


def assert_one_line(res, path: Path, line: int, words: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stdout == ""
    assert res.stderr.splitlines() == [res.stderr.strip()], res.stderr       # one line, no traceback
    assert re.fullmatch(rf"rstwatch: error: {re.escape(str(path))}:{line}: .*{re.escape(words)}.*\n", res.stderr), \
        res.stderr


@pytest.mark.parametrize("command", ["read", "live", "validate", "test", "list"])
def test_billion_laughs_is_refused_by_every_command(tmp_path, command):
    folder, path = hostile_folder(tmp_path, "laughs")
    res = run_cli(*commands(folder)[command])
    assert_one_line(res, path, 1, "rule files may not use anchors or aliases")


@pytest.mark.parametrize("name", sorted(set(HOSTILE) - {"laughs"}))
def test_hostile_yaml_is_one_line_with_its_line_number(tmp_path, name):
    folder, path = hostile_folder(tmp_path, name)
    _, line, words = HOSTILE[name]
    for command in ("validate", "read"):
        assert_one_line(run_cli(*commands(folder)[command]), path, line, words)


def test_hostile_yaml_costs_rstwatch_no_time_or_memory(tmp_path):
    """rstwatch's own CPU time and allocations for each hostile file: refused before any expansion
    (the billion laughs took minutes and gigabytes when aliases were expanded)."""
    for name in HOSTILE:
        folder, path = hostile_folder(tmp_path, name)
        tracemalloc.start()
        cpu = time.process_time()
        with pytest.raises(RuleError) as err:
            load_rules([folder], builtin=False)
        cpu = time.process_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert str(err.value).startswith(f"{path}:{HOSTILE[name][1]}:"), str(err.value)
        assert cpu < 0.25, (name, cpu)
        assert peak < 8 * 2**20, (name, peak)


def test_a_fifo_named_like_a_rule_is_refused_not_read(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    os.mkfifo(folder / "pipe.yaml")          # opening it to read would wait for a writer forever
    res = run_cli("rules", "validate", str(folder))
    assert_one_line(res, folder / "pipe.yaml", 1, "not a regular file")


def test_plain_yaml_still_loads_as_before(tmp_path):
    """Quoted and plain scalars, flow and block lists, explicit plain tags: the built-in rules and a
    rule using `!!str` and `!!float` load; a date-looking title stays the text written."""
    folder = tmp_path / "r"
    folder.mkdir()
    text = (USER_RULE.format(alt="late-synack").replace('title: "A user cause"', "title: 2026-11-21")
            .replace("confidence: 0.5", "confidence: !!float 0.5").replace("id: USR001", "id: !!str USR001"))
    (folder / "my-cause.yaml").write_text(text)
    mine = [r for r in load_rules([folder]) if r.id == "USR001"]
    assert len(mine) == 1 and mine[0].title == "2026-11-21" and mine[0].confidence == 0.5
    assert mine[0].alternatives == ["closed-port", "late-synack"]


# --- item 15: one loader, one verdict -------------------------------------------------------------

def user_folder(root: Path, alt: str) -> tuple[Path, Path]:
    folder = root / "my-rules"
    folder.mkdir()
    path = folder / "my-cause.yaml"
    path.write_text(USER_RULE.format(alt=alt))
    return folder, path


def test_alternative_naming_a_builtin_cause_is_valid_for_every_command(tmp_path):
    folder, _ = user_folder(tmp_path, "late-synack")
    cmds = commands(folder)
    for name in ("read", "validate", "test", "list"):
        res = run_cli(*cmds[name])
        assert res.returncode == 0, (name, res.stderr)
        assert "error" not in res.stderr, (name, res.stderr)
    assert "1 rule(s) valid in" in run_cli(*cmds["validate"]).stdout
    assert "2/2 rule tests passed" in run_cli(*cmds["test"]).stdout
    assert "USR001  my-cause" in run_cli(*cmds["list"]).stdout
    assert '"cause":"closed-port"' in run_cli(*cmds["read"]).stdout


@pytest.mark.parametrize("command", ["read", "live", "validate", "test", "list"])
def test_an_unknown_alternative_gets_one_verdict_and_its_own_line(tmp_path, command):
    folder, path = user_folder(tmp_path, "no-such-cause")
    res = run_cli(*commands(folder)[command])
    # line 11 is the list item naming the unknown cause, not line 1 of the file
    assert_one_line(res, path, 11, "alternative `no-such-cause` is not a known cause")


def test_alternative_naming_a_disabled_builtin_is_still_a_cause(tmp_path):
    folder, _ = user_folder(tmp_path, "late-synack")
    (folder / "off.yaml").write_text("id: RST001\ndisabled: true\n")     # closed-port's rule is off
    for name in ("validate", "list"):
        assert run_cli(*commands(folder)[name]).returncode == 0


def test_load_time_problems_point_at_the_offending_key(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    # a second rule for the built-in cause late-synack: the `name` key (line 2), not line 1
    (folder / "late-synack.yaml").write_text("# mine\n" + USER_RULE.format(alt="closed-port")
                                             .replace("my-cause", "late-synack"))
    (folder / "off.yaml").write_text("# off\n\ndisabled: true\nid: RST777\n")
    res = run_cli("rules", "validate", str(folder))
    assert res.returncode == 2
    assert f"{folder / 'late-synack.yaml'}:3: cause `late-synack` already defined by" in res.stderr
    assert f"{folder / 'off.yaml'}:4: disables RST777, which no loaded rule has" in res.stderr
    dup = tmp_path / "d"
    dup.mkdir()
    (dup / "a-one.yaml").write_text(USER_RULE.format(alt="closed-port").replace("my-cause", "a-one"))
    (dup / "b-two.yaml").write_text("\n\n" + USER_RULE.format(alt="closed-port").replace("my-cause", "b-two"))
    res = run_cli("rules", "validate", str(dup))
    assert f"{dup / 'b-two.yaml'}:3: duplicate id USR001" in res.stderr, res.stderr


def test_rules_test_judges_a_folder_against_the_builtins_it_joins(tmp_path):
    """`rules test DIR` runs DIR's examples with the built-in rules loaded, as `read --rules DIR`
    classifies; a built-in example that a folder's rule now wins is named on stderr."""
    folder = tmp_path / "r"
    folder.mkdir()
    greedy = USER_RULE.format(alt="closed-port").replace("priority: 500", "band: handshake\nbefore: [abort-before-accept]").replace(
        "  conn.client_bytes: {gt: 1000000000}\n", "")
    (folder / "my-cause.yaml").write_text(greedy)
    res = run_cli("rules", "test", str(folder))
    assert res.returncode == 0, res.stderr
    assert "2/2 rule tests passed" in res.stdout
    assert re.search(r"rstwatch: warning: with .*: .*abort-before-accept\.yaml: test 1 matches, but with every "
                     r"rule loaded `my-cause` wins", res.stderr), res.stderr
    # a folder rule shadowed by a built-in fails: closed-port (band handshake) wins its example
    shadowed = USER_RULE.format(alt="closed-port").replace("rst.from_client: true\n  conn.client_bytes: {gt: 1000000000}",
                                                           "rst.answers_syn: true").replace(
        "{rst.from_client: true, conn.client_bytes: 2000000000}", "{rst.answers_syn: true}").replace(
        "{rst.from_client: false}", "{rst.answers_syn: false}")
    (folder / "my-cause.yaml").write_text(shadowed)
    res = run_cli("rules", "test", str(folder))
    assert res.returncode == 2
    assert "my-cause.yaml: test 1 matches, but with every rule loaded `closed-port` wins" in res.stderr
