"""The summary by cause, in `read`'s table and the incident report: its "sent by" counts resets (as
the count beside it does), and its remediation is the findings' own text only when they share it.
A cause seen on several ports shows the rule's text with its placeholders, not the first port."""
from __future__ import annotations

import re

from conftest import CAPTURES, run_cli

CLOSED_PORT = [CAPTURES / "closed-port.pcap", CAPTURES / "closed-port-ipv6.pcapng"]     # ports 9001 and 9002


def _summary(*inputs) -> str:
    """The "By cause" section of `read --format table`, its whitespace squeezed (a long cell folds)."""
    res = run_cli("read", *map(str, inputs), "--format", "table")
    assert res.returncode == 0, res.stderr
    return re.sub(r"\s+", " ", res.stdout.split("By cause", 1)[1])


def test_one_port_keeps_the_findings_own_text():
    assert " closed-port 1 server 1 Check the listener on the server: ss -ltnp 'sport = :9001';" in _summary(CLOSED_PORT[0])


def test_several_ports_show_the_rules_placeholder_not_the_first_port():
    text = _summary(*CLOSED_PORT)
    assert " closed-port 2 server 2 Check the listener on the server: ss -ltnp 'sport = :{server_port}';" in text
    assert ":9001" not in text and ":9002" not in text


def test_a_flood_counts_its_resets_as_senders():
    # one finding stands for 600 resets: the sender column says 600, not 1 finding
    assert " rst-storm 600 unknown 600 Find the source" in _summary(CAPTURES / "rst-storm.pcap")


def test_the_report_says_the_same(tmp_path):
    out = tmp_path / "r.md"
    res = run_cli("report", *map(str, CLOSED_PORT), str(CAPTURES / "rst-storm.pcap"), "-o", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "ss -ltnp 'sport = :{server_port}';" in text and "'sport = :9001'" not in text
    assert "- sent by: unknown 600" in text and "- sent by: server 2" in text
    one = tmp_path / "one.md"
    assert run_cli("report", str(CLOSED_PORT[0]), "-o", str(one)).returncode == 0
    assert "ss -ltnp 'sport = :9001';" in one.read_text()


def test_saved_findings_of_a_rule_not_given_again_are_marked_as_the_firsts(tmp_path):
    """A report from Parquet written with a user's rule folder, made without it: the rule's
    placeholders are unknown, so the first finding's text is shown and said to be only that."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "my-refused.yaml").write_text(
        "id: MY001\nname: my-refused\ntitle: Refused (my rule)\nband: handshake\nbefore: [closed-port]\n"
        "when: {rst.answers_syn: true}\nconfidence: 0.9\nerrno: {receiver: [ECONNREFUSED], sender: []}\n"
        'explain: "{src} refused {dst}"\nremediation: ["Tell {client} to stop calling port {server_port}."]\n'
        "references: []\ntests:\n  - {expect: match, features: {rst.answers_syn: true}}\n")
    saved = tmp_path / "f.parquet"
    res = run_cli("read", *map(str, CLOSED_PORT), "--rules", str(rules), "-o", str(saved))
    assert res.returncode == 0, res.stderr
    with_rule, without = tmp_path / "with.md", tmp_path / "without.md"
    assert run_cli("report", str(saved), "--rules", str(rules), "-o", str(with_rule)).returncode == 0
    assert run_cli("report", str(saved), "-o", str(without)).returncode == 0
    assert "1. Tell {client} to stop calling port {server_port}." in with_rule.read_text()
    assert ("1. Tell 10.77.1.2 to stop calling port 9001. (the first finding's; others differ)"
            in without.read_text())


def test_one_reset_seen_by_several_hosts_counts_once():
    # read --hosts: a row per capture that saw it (copies marked copy_of), one reset, as the report says
    res = run_cli("read", "--format", "table", "--hosts", str(CAPTURES / "multihost" / "closed-port"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("4 finding(s) for 1 TCP reset(s) in 4 file(s)")
    assert " closed-port 1 server 1 Check the listener" in re.sub(r"\s+", " ", res.stdout.split("By cause", 1)[1])
