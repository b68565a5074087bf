"""Hostile rule sets (issue 20, item 15): valid rule files too large to be rules are refused in a
second with one line naming the file and the rule (exit 2), a rule that matches every reset is a
warning of `rules validate`, and every rule folder of the repository stays within the limits."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from conftest import CAPTURES, ROOT, run_cli
from rstwatch.engine import loader, model
from rstwatch.errors import RuleError

sys.path.insert(0, str(ROOT / "benchmarks"))
import hostile  # noqa: E402

PCAP = str(CAPTURES / "closed-port.pcap")


def problems(*folders: Path) -> list[str]:
    try:
        loader.load_rule_set(list(folders))
    except RuleError as exc:
        return exc.problems
    return []


def small_rule(folder: Path, k: int, when: str = "{rst.has_ack: true}", band: str = "connection",
               extra: str = "", rid: str | None = None, name: str | None = None) -> Path:
    name = name or f"mine-{k}"
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name}.yaml"
    p.write_text(f"id: {rid or f'USR{k + 1:04d}'}\nname: {name}\ntitle: mine\nband: {band}\nwhen: {when}\n"
                 "confidence: 0.5\nerrno: {receiver: [], sender: []}\nexplain: \"{src} reset\"\n"
                 "remediation: []\nreferences: []\ntests: []\n" + extra)
    return p


def test_an_or_bomb_rule_is_refused_fast_through_every_command(tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    (path,) = hostile.rule_folder(folder, 1, branches=4000)            # ~245 KB: under the file size limit
    assert 200_000 < path.stat().st_size < 256 * 1024
    for args in (["rules", "validate", str(folder)], ["read", PCAP, "--rules", str(folder), "--format", "jsonl"]):
        t0 = time.perf_counter()
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        assert res.stderr.splitlines() == [f"rstwatch: error: {path}:10: rule USR0001: more than "
                                           f"{model.MAX_RULE_CONDITIONS} conditions in when and unless (the "
                                           "built-in rules have at most 27)"]
        assert "Traceback" not in res.stderr and res.stdout == ""
        assert time.perf_counter() - t0 < 20


def test_conditions_of_all_rules_together_are_bounded(tmp_path: Path) -> None:
    under = tmp_path / "under"
    hostile.rule_folder(under, 9, branches=100)       # 1,800 + the built-ins' 114: allowed
    assert problems(under) == []
    over = tmp_path / "over"
    paths = hostile.rule_folder(over, 11, branches=90)     # 180 each: every rule alone is fine
    got = problems(over)
    last = sorted(paths)[10]                               # files load in name order: the 11th crosses it
    rid = f"USR{int(last.stem.rsplit('-', 1)[1]) + 1:04d}"
    assert len(got) == 1 and got[0].startswith(f"{last}:10: rule {rid}: with this rule the rules loaded"), got
    assert f"more than {model.MAX_TOTAL_CONDITIONS:,} conditions" in got[0]
    # an OR list of empty branches costs a pass per branch: each counts
    empty = tmp_path / "empty"
    p = small_rule(empty, 0, when="[" + ", ".join(["{}"] * 300) + "]")
    assert problems(empty) == [f"{p}:5: rule USR0001: more than {model.MAX_RULE_CONDITIONS} conditions in when "
                               "and unless (the built-in rules have at most 27)"]


def test_explain_templates_are_bounded_in_length_and_placeholders(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb"
    (path,) = hostile.rule_folder(bomb, 1, branches=1, explain_repeats=50_000)
    res = run_cli("rules", "validate", str(bomb))
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"rstwatch: error: {path}:9: rule USR0001: explain is 250,000 characters, "
                                       f"more than the {model.MAX_TEMPLATE_CHARS:,} allowed"]
    many = tmp_path / "many"
    p = small_rule(many, 0)
    p.write_text(p.read_text().replace("remediation: []", "remediation:\n  - \"" + "{dst} " * 60 + "\""))
    line = p.read_text().splitlines().index("remediation:") + 2
    assert problems(many) == [f"{p}:{line}: rule USR0001: remediation[0] has 60 placeholders, more than the "
                              f"{model.MAX_TEMPLATE_FIELDS} allowed"]


def test_rule_files_together_are_bounded_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big"
    padding = "# " + "x" * 998 + "\n"
    for k in range(18):                      # 18 x 240 KB of comments around valid small rules
        p = small_rule(big, k)
        p.write_text(p.read_text() + padding * 240)
    got = problems(big)
    assert len(got) == 1 and got[0].startswith(str(big / "mine-")), got
    assert re.search(r"\.yaml:1: with this file the rule files hold 4,\d{3} KiB, more than the 4,096 KiB all", got[0])
    many = tmp_path / "many"
    many.mkdir()
    one = small_rule(tmp_path, 0).read_text()
    for k in range(loader.MAX_RULE_FILES - 17):          # the built-ins' 18 files count too
        (many / f"mine-{k}.yaml").write_text(one.replace("mine-0", f"mine-{k}").replace("USR0001", f"USR{k + 1:04d}"))
    assert problems(many) == [f"{many}:1: more than {loader.MAX_RULE_FILES:,} rule files in all the rules "
                              "folders together"]


@pytest.mark.parametrize("when", ["{}", "[{rst.has_ack: true}, {}]", "null"])
def test_validate_warns_about_a_rule_that_matches_every_reset(tmp_path: Path, when: str) -> None:
    folder = tmp_path / "mine"
    p = small_rule(folder, 0, when=when, name="catch-all")
    small_rule(folder, 1)                                # an ordinary rule beside it: no warning
    res = run_cli("rules", "validate", str(folder))
    assert res.returncode == 0, res.stderr
    (line,) = res.stderr.splitlines()
    assert re.fullmatch(rf"rstwatch: warning: {re.escape(str(p))}:5: rule USR0001 \(catch-all\) matches every reset "
                        r"\(its `when` is empty or always true, no `unless`\): the \d+ rule\(s\) tried after it, "
                        r"unknown among them, never win", line), line
    assert res.stdout.startswith("2 rule(s) valid in")


def test_no_warning_for_the_fallback_or_a_rule_with_unless(tmp_path: Path) -> None:
    assert loader.load_rule_set().warnings == []
    folder = tmp_path / "mine"
    small_rule(folder, 0, when="{}", band="fallback", rid="RST999", name="unknown")     # a new fallback
    small_rule(folder, 1, when="{}", extra="unless: {rst.has_ack: true}\n")
    assert loader.load_rule_set([folder]).warnings == []


def test_every_rule_folder_of_the_repository_loads_within_the_limits() -> None:
    folders = {p.parent for p in ROOT.rglob("*.y*ml") if p.suffix in (".yaml", ".yml")
               and not {".venv", ".git", "node_modules"} & set(p.relative_to(ROOT).parts)
               and p.read_text(errors="replace").lstrip().startswith("id: ")}
    assert ROOT / "rules" in folders
    for folder in sorted(folders):
        rs = loader.load_rule_set([folder])          # the built-ins, then the folder again on top
        assert rs.warnings == [], folder
        assert all(r.conditions <= model.MAX_RULE_CONDITIONS for r in rs.rules)
        assert sum(r.conditions for r in rs.rules) == 114 or folder != ROOT / "rules"      # as docs/rule-files.md says
