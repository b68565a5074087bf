"""Flood verdicts are ordinary rule files (issue 10): rules/port-scan.yaml, rst-storm.yaml and
syn-flood.yaml give the detectors their thresholds and words; a user folder overrides them by id
or disables them, and then the flood's resets are reported row by row like any other."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import rstwatch
from conftest import CAPTURES, ROOT, run_cli

RULES = ROOT / "rules"


def rows(res) -> list[dict]:
    assert res.returncode == 0, res.stderr
    return [json.loads(x) for x in res.stdout.splitlines()]


def override(folder: Path, name: str, old: str, new: str) -> Path:
    """A copy of the built-in flood rule `name` in `folder` (or the copy already there) with `old`
    replaced by `new`."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    text = (path if path.exists() else RULES / f"{name}.yaml").read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def test_builtin_flood_rules_are_listed_explained_and_tested():
    listed = run_cli("rules", "list").stdout.splitlines()
    for rid, cause in (("RST001S", "rst-storm"), ("RST002S", "port-scan"), ("RST003S", "syn-flood")):
        assert any(line.split()[:3] == [rid, cause, "flood"] for line in listed), listed
    out = run_cli("rules", "explain", "port-scan").stdout
    assert "ECONNREFUSED for every closed port" in out and "at least 500 ports" in out and "100 or more per second" in out
    assert "matches when: always" not in out
    res = run_cli("rules", "test")
    examples = sum(len(yaml.safe_load(f.read_text()).get("tests", [])) for f in RULES.glob("*.yaml"))
    assert res.returncode == 0 and f"{examples}/{examples} rule tests passed" in res.stdout, res.stdout + res.stderr


def test_user_remediation_and_confidence_override_show_in_the_port_scan_finding(tmp_path):
    folder = tmp_path / "mine"
    override(folder, "port-scan", "Identify the scanner;", "Page the network team; identify the scanner;")
    override(folder, "port-scan", "confidence: 0.9\n", "confidence: 0.6\n")
    found = rows(run_cli("read", str(CAPTURES / "port-scan.pcap"), "--rules", str(folder), "-T", "jsonl"))
    assert len(found) == 1
    scan = found[0]
    assert scan["cause"] == "port-scan" and scan["rule"] == "RST002S" and scan["resets"] == 600
    assert scan["remediation"][0].startswith("Page the network team; identify the scanner;")
    assert scan["confidence"] == 0.6
    out = run_cli("rules", "explain", "port-scan", "--rules", str(folder)).stdout
    assert "Page the network team" in out and "confidence 0.60" in out


def test_min_connections_above_the_scan_size_reports_its_resets_row_by_row(tmp_path):
    folder = tmp_path / "mine"
    override(folder, "port-scan", "min_connections: 500 ", "min_connections: 700 ")
    flood = rstwatch.read(CAPTURES / "port-scan.pcap")
    assert list(flood["cause"]) == ["port-scan"] and int(flood["resets"].iloc[0]) == 600
    single = rstwatch.read(CAPTURES / "port-scan.pcap", rules=folder)
    assert len(single) == 600 and set(single["cause"]) == {"closed-port"}
    # --storm-min, when given, replaces every flood rule's min_connections (both ways)
    assert list(rstwatch.read(CAPTURES / "port-scan.pcap", rules=folder, storm_min=500)["cause"]) == ["port-scan"]
    assert len(rstwatch.read(CAPTURES / "port-scan.pcap", storm_min=700)) == 600
    by_cli = rows(run_cli("read", str(CAPTURES / "port-scan.pcap"), "--storm-min", "700", "-T", "jsonl"))
    assert [r["cause"] for r in by_cli] == ["closed-port"] * 600


def test_a_slower_rate_threshold_is_read_from_the_rule(tmp_path):
    folder = tmp_path / "mine"
    # the bundled scan arrives at ~30,000 connections/s: a threshold above that is no scan
    override(folder, "port-scan", "min_rate_per_s: 100 ", "min_rate_per_s: 1000000 ")
    assert set(rstwatch.read(CAPTURES / "port-scan.pcap", rules=folder)["cause"]) == {"closed-port"}


def test_disabling_rst_storm_reports_its_resets_row_by_row(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "no-storms.yaml").write_text("id: RST001S\ndisabled: true\n")
    flood = rows(run_cli("read", str(CAPTURES / "rst-storm.pcap"), "-T", "jsonl"))
    assert [r["cause"] for r in flood] == ["rst-storm"]
    single = rows(run_cli("read", str(CAPTURES / "rst-storm.pcap"), "--rules", str(folder), "-T", "jsonl"))
    assert len(single) == flood[0]["resets"] == 600
    assert "rst-storm" not in {r["cause"] for r in single} and all("resets" not in r for r in single)
    listed = run_cli("rules", "list", "--rules", str(folder)).stdout
    assert "rst-storm" not in listed and "port-scan" in listed
    # the other detectors still run
    assert [r["cause"] for r in rows(run_cli("read", str(CAPTURES / "syn-flood.pcap"), "--rules", str(folder),
                                             "-T", "jsonl"))] == ["syn-flood"]


@pytest.mark.parametrize("old,new,key,words", [
    ("min_connections: 500 ", "min_connections: lots ", "min_connections:", ["min_connections must be a whole number"]),
    ("detector: port-scan", "detector: port-sweep", "detector:", ["detector must be one of rst-storm, port-scan, syn-flood"]),
    ("  groups:", "  colour: red\n  groups:", "colour:", ["unknown key `colour` in flood"]),
    ("  min_rate_per_s: 100 ", "", "flood:", ["flood is missing min_rate_per_s"]),
    ("flood:\n", "when: {rst.answers_syn: true}\nflood:\n", "when:", ["a flood rule has no `when`"]),
    ("{connections: 600, per_second: 1000}", "{connections: 600}", "{expect: match, group: {connections: 600}",
     ["group: {connections: N, per_second: R}"]),
])
def test_malformed_flood_rule_is_a_file_line_error(tmp_path, old, new, key, words):
    folder = tmp_path / "mine"
    path = override(folder, "port-scan", old, new)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if key in text)
    for cmd in (["read", str(CAPTURES / "port-scan.pcap"), "--rules", str(folder)], ["rules", "validate", str(folder)]):
        res = run_cli(*cmd)
        assert res.returncode == 2 and res.stdout == "", res.stderr
        assert f"port-scan.yaml:{line}: " in res.stderr and all(w in res.stderr for w in words), res.stderr
        assert "Traceback" not in res.stderr


def test_a_second_rule_for_one_detector_is_refused(tmp_path):
    folder = tmp_path / "mine"
    path = override(folder, "port-scan", "id: RST002S\nname: port-scan", "id: RST900S\nname: my-scan")
    path.rename(folder / "my-scan.yaml")
    res = run_cli("rules", "validate", str(folder))
    assert res.returncode == 2 and "my-scan.yaml:" in res.stderr and "detector port-scan already has flood rule RST002S" in res.stderr
    # disabled first, the user's own rule takes the detector, and its name is the cause
    (folder / "off.yaml").write_text("id: RST002S\ndisabled: true\n")
    found = rows(run_cli("read", str(CAPTURES / "port-scan.pcap"), "--rules", str(folder), "-T", "jsonl"))
    assert [(r["cause"], r["rule"], r["resets"]) for r in found] == [("my-scan", "RST900S", 600)]


def test_flood_rule_examples_are_judged_by_the_detector(tmp_path):
    folder = tmp_path / "mine"
    # 499 ports < min_connections 500: the detector does not call it a scan, so `match` must fail
    override(folder, "port-scan", "{expect: no_match, group: {connections: 499, per_second: 1000}}",
             "{expect: match, group: {connections: 499, per_second: 1000}}")
    res = run_cli("rules", "test", str(folder))
    assert res.returncode == 2 and "port-scan.yaml: test 2 expected match but the group came out as no flood" in res.stderr
    # lowering the threshold makes the same example a scan
    override(folder, "port-scan", "min_connections: 500 ", "min_connections: 400 ")
    res = run_cli("rules", "test", str(folder))
    assert res.returncode == 0 and "3/3 rule tests passed" in res.stdout, res.stdout + res.stderr
