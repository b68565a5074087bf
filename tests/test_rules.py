"""Rule files: built-in examples pass; every problem is reported as file:line; overrides and
disabling work; rule text is data and never reaches eval/exec."""
from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from conftest import CAPTURES, run_cli
from rstwatch.analyze import analyze_file
from rstwatch.engine.loader import load_rules
from rstwatch.errors import RuleError

RULE = """id: RST100
name: {name}
title: test rule
priority: 5
when:
  rst.answers_syn: true
confidence: 0.5
errno: {{receiver: [], sender: []}}
explain: "{{src}} refused"
remediation: ["x"]
references: ["y"]
tests:
  - {{expect: match, features: {{rst.answers_syn: true}}}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    p = folder / f"{name}.yaml"
    p.write_text(text)
    return p


def test_builtin_rule_examples_pass():
    res = run_cli("rules", "test")
    assert res.returncode == 0, res.stderr
    assert "rule tests passed" in res.stdout


def test_builtin_rules_validate_and_list():
    assert run_cli("rules", "validate").returncode == 0
    out = run_cli("rules", "list").stdout
    for cause in ("closed-port", "late-synack", "out-of-window-rst", "unknown"):
        assert cause in out


def test_explain_shows_errno_and_remediation():
    out = run_cli("rules", "explain", "linger-zero-abort").stdout
    assert "SO_LINGER" in out and "ECONNRESET" in out and "matches when" in out


@pytest.mark.parametrize("text,line,words", [
    ("id: RST100\nname: bad\n  title: x: y\n", 3, ["invalid YAML"]),
    (RULE.format(name="bad").replace("rst.answers_syn: true\nconfidence", "rst.answer_syn: true\nconfidence"), 6, ["unknown feature `rst.answer_syn`", "did you mean"]),
    (RULE.format(name="bad").replace("confidence: 0.5", "confidence: high"), 7, ["confidence must be a number"]),
    (RULE.format(name="bad").replace("rst.answers_syn: true\nconfidence", "rst.answers_syn: 3\nconfidence"), 6, ["is bool"]),
    (RULE.format(name="bad").replace("rst.answers_syn: true\nconfidence", "rst.ttl: {around: 3}\nconfidence"), 6, ["unknown operator"]),
    (RULE.format(name="bad").replace('explain: "{src} refused"', 'explain: "{src.__class__} refused"'), 9, ["placeholder"]),
    (RULE.format(name="bad").replace('remediation: ["x"]', 'remediation: ["port {server_port!s:>6}"]'), 10,
     ["remediation[0]: placeholder {server_port} not allowed"]),        # named as remediation, not explain
    (RULE.format(name="other"), 2, ["must match the file name"]),
    (RULE.format(name="bad") + "colour: red\n", 14, ["unknown key `colour`"]),
])
def test_invalid_rules_report_file_and_line(tmp_path, text, line, words):
    p = write(tmp_path / "r", "bad", text)
    res = run_cli("rules", "validate", str(tmp_path / "r"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    first = res.stderr.splitlines()[0]
    assert f"{p}:{line}:" in first, res.stderr
    for w in words:
        assert w in res.stderr


def test_all_problems_are_listed(tmp_path):
    folder = tmp_path / "r"
    write(folder, "one", RULE.format(name="one").replace("confidence: 0.5", "confidence: 2"))
    write(folder, "two", "id: [\n")
    res = run_cli("rules", "validate", str(folder))
    assert res.returncode == 2
    assert "one.yaml:7:" in res.stderr and "two.yaml:" in res.stderr


def test_duplicate_ids(tmp_path):
    folder = tmp_path / "r"
    write(folder, "one", RULE.format(name="one"))
    write(folder, "two", RULE.format(name="two"))
    res = run_cli("rules", "validate", str(folder))
    assert res.returncode == 2 and "duplicate id RST100" in res.stderr


def test_conflicting_cause_name_with_builtin(tmp_path):
    folder = tmp_path / "r"
    write(folder, "closed-port", RULE.format(name="closed-port"))
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "--rules", str(folder))
    assert res.returncode == 2 and "already defined by RST001" in res.stderr


def test_user_rule_overrides_builtin_by_id(tmp_path):
    folder = tmp_path / "r"
    text = RULE.format(name="closed-port").replace("RST100", "RST001").replace("confidence: 0.5", "confidence: 0.42")
    write(folder, "closed-port", text)
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "--rules", str(folder), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert '"confidence":0.42' in res.stdout


def test_user_can_disable_a_builtin(tmp_path):
    folder = tmp_path / "r"
    write(folder, "off", "id: RST001\ndisabled: true\n")
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "--rules", str(folder), "--format", "jsonl")
    assert res.returncode == 0
    assert '"cause":"unknown"' in res.stdout


def test_rule_text_never_reaches_eval(tmp_path, monkeypatch):
    """Hostile strings in a rule are compared as data; eval/exec/compile are never called."""
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}')"
    text = (RULE.format(name="evil").replace("rst.answers_syn: true\nconfidence", f"trigger.kind: \"{evil}\"\nconfidence")
            .replace("features: {rst.answers_syn: true}", f"features: {{trigger.kind: \"{evil}\"}}"))
    folder = tmp_path / "r"
    write(folder, "evil", text)
    seen = []                                   # every string handed to an evaluator
    def spy(real):
        def wrapper(*a, **k):
            seen.append(" ".join(map(str, a)))
            return real(*a, **k)
        return wrapper
    import pandas as pd
    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, spy(getattr(builtins, name)))
    monkeypatch.setattr(pd, "eval", spy(pd.eval))
    monkeypatch.setattr(pd.DataFrame, "query", spy(pd.DataFrame.query))
    monkeypatch.setattr(pd.DataFrame, "eval", spy(pd.DataFrame.eval))
    rules = load_rules([folder])
    res = analyze_file(CAPTURES / "closed-port.pcap", rules)
    assert not marker.exists()
    assert not any("__import__" in s or "pwned" in s for s in seen)
    assert list(res.findings["cause"]) == ["closed-port"]


def test_load_rules_raises_rule_error(tmp_path):
    folder = tmp_path / "r"
    write(folder, "x", "- just a list\n")
    with pytest.raises(RuleError):
        load_rules([folder])


def test_rules_test_runs_the_whole_rule_set_and_catches_shadowing(tmp_path):
    # `wide` comes first and also matches `narrow`'s own example: on a capture `narrow` could never
    # win, and `rules test` must say so, not only check each rule against its own example.
    d = tmp_path / "r"
    write(d, "wide", RULE.format(name="wide").replace("priority: 5", "band: handshake\nbefore: [closed-port, narrow]"))
    write(d, "narrow", RULE.format(name="narrow").replace("RST100", "RST101").replace("priority: 5",
                                                                                     "band: handshake\nbefore: [closed-port]"))
    res = run_cli("rules", "test", str(d))
    assert res.returncode == 2
    assert "narrow.yaml: test 1 matches, but with every rule loaded `wide` wins" in res.stderr
    write(d, "wide", RULE.format(name="wide").replace("priority: 5", "band: handshake\nbefore: [closed-port]"))
    write(d, "narrow", RULE.format(name="narrow").replace("RST100", "RST101").replace("priority: 5",
                                                                                     "band: handshake\nbefore: [wide]"))
    res = run_cli("rules", "test", str(d))                     # now `wide`'s example is shadowed
    assert res.returncode == 2 and "wide.yaml: test 1 matches, but with every rule loaded `narrow` wins" in res.stderr
    (d / "wide.yaml").unlink()
    write(d, "narrow", RULE.format(name="narrow").replace("RST100", "RST101").replace("priority: 5",
                                                                                     "band: handshake\nbefore: [closed-port]"))
    assert run_cli("rules", "test", str(d)).returncode == 0


def test_features_are_declared_once_and_all_computed():
    from rstwatch.features.extract import feature_table
    from rstwatch.features.registry import FEATURES, declare
    with pytest.raises(RuntimeError, match="declared twice"):
        declare(("rst.has_ack", "bool", "", "again"))
    found = analyze_file(CAPTURES / "keepalive-race.pcap", load_rules()).findings
    assert set(FEATURES) <= set(found.columns)
    # a feature declared but computed nowhere fails the table build instead of filling NA
    declare(("rst.nobody_computes_this", "bool", "", "test only"))
    try:
        from rstwatch.sources.capture import read_segments
        from rstwatch.sources.diagnostics import Diagnostics
        from rstwatch.track.tracker import rst_connections
        P, conns, rsts = rst_connections(read_segments(CAPTURES / "keepalive-race.pcap", Diagnostics("x")))
        with pytest.raises(RuntimeError, match="rst.nobody_computes_this"):
            feature_table("x", P, conns, rsts)
    finally:
        del FEATURES["rst.nobody_computes_this"]


# ---------------------------------------------------------------- order: bands, before/after

def test_builtin_order_follows_bands_and_before_after():
    from rstwatch.engine.order import BANDS
    rules = load_rules()
    bands = [BANDS.index(r.band) for r in rules]
    assert bands == sorted(bands) and rules[0].band == "flood" and rules[3].band == "spoofed" and rules[-1].name == "unknown"
    pos = {r.name: k for k, r in enumerate(rules)}
    for r in rules:
        assert all(pos[r.name] < pos[o] for o in r.before if o in pos), r.name
        assert all(pos[o] < pos[r.name] for o in r.after if o in pos), r.name
    assert all("priority:" not in (Path(r.source).read_text()) for r in rules)   # no bare integers left


def _refusing(name: str, extra: str = "") -> str:
    return RULE.format(name=name).replace("priority: 5\n", "band: handshake\n" + extra)


def test_before_decides_between_two_matching_rules_on_a_real_capture(tmp_path):
    cap = str(CAPTURES / "closed-port.pcap")
    plain, first = tmp_path / "plain", tmp_path / "first"
    write(plain, "my-refused", _refusing("my-refused"))
    write(first, "my-refused", _refusing("my-refused", "before: [closed-port]\n"))
    res = run_cli("read", cap, "--rules", str(plain), "--format", "jsonl")
    assert res.returncode == 0 and '"cause":"closed-port"' in res.stdout        # same band: RST001 < RST100
    assert '"my-refused"' in res.stdout                                          # ... and it is an alternative
    res = run_cli("read", cap, "--rules", str(first), "--format", "jsonl")
    assert res.returncode == 0 and '"cause":"my-refused"' in res.stdout, res.stdout


@pytest.mark.parametrize("extra,words", [
    ("band: sideways\n", ["my-refused.yaml:", "band must be one of spoofed, middlebox"]),
    ("before: [no-such-cause]\n", ["my-refused.yaml:", "before `no-such-cause`: no such cause"]),
    ("before: [out-of-window-rst]\n", ["my-refused.yaml:", "band handshake, which comes after", "spoofed"]),
    ("after: [closed-port]\nbefore: [closed-port]\n", ["cycle", "closed-port", "my-refused"]),
])
def test_bad_order_is_a_file_line_error(tmp_path, extra, words):
    folder = tmp_path / "r"
    write(folder, "my-refused", _refusing("my-refused", extra))
    for cmd in (["read", str(CAPTURES / "closed-port.pcap"), "--rules", str(folder)], ["rules", "validate", str(folder)]):
        res = run_cli(*cmd)
        assert res.returncode == 2, res.stderr
        assert all(w in res.stderr for w in words), res.stderr
        assert "Traceback" not in res.stderr


def test_a_rst_with_no_context_is_not_overclaimed():
    """tcpdump's mptcp-tcprst.pcap: two RSTs, no handshake, no data, nothing before them. Nothing
    there tells an abort from unread data or lost state: no SO_LINGER 0 claim, a low confidence."""
    import rstwatch
    from conftest import EXTERNAL
    df = rstwatch.read(EXTERNAL / "tcpdump" / "mptcp-tcprst.pcap")
    assert len(df) == 2
    assert set(df["cause"]) == {"unknown"} and df["confidence"].max() <= 0.1
    assert not any("SO_LINGER" in s for s in df["summary"])
