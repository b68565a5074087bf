"""The Python API used the way a notebook uses it: read the bundled captures into a DataFrame,
check it against the lab's ground truth, slice and count it, bring rules and filters."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

import rstwatch
from conftest import CAPTURES, EXTERNAL, ROOT


def test_import_is_cheap_and_lazy():
    code = "import sys, rstwatch; print('pandas' in sys.modules, 'rstwatch.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]                     # nothing heavy until the first call
    assert set(rstwatch.__all__) >= {"read", "iter_findings", "load_rules", "watch", "__version__"}
    assert "read" in dir(rstwatch)
    with pytest.raises(AttributeError):
        rstwatch.no_such_thing


def test_read_matches_the_lab_ground_truth(manifest):
    df = rstwatch.read([CAPTURES / name for name in sorted(manifest["captures"])])   # the scripted lab
    assert isinstance(df, pd.DataFrame) and df.attrs["packets"] == 3767
    per_rst = df[df["sport"] != 0]
    truth = {(Path(name).name, r["frame"]): r["cause"]
             for name, cap in manifest["captures"].items() for r in cap["resets"]}
    got = {(Path(f).name, fr): c for f, fr, c in zip(per_rst["file"], per_rst["frame"], per_rst["cause"])}
    assert got == {k: v for k, v in truth.items() if k in got} and len(got) >= 18
    # resets always filled: 1 per ordinary row, the flood's count on a flood row; every reset counted
    assert df["resets"].dtype == "int64" and df["resets"].notna().all()
    assert (per_rst["resets"] == 1).all() and df["resets"].sum() == 1819
    floods = df.set_index("cause").loc[["port-scan", "rst-storm", "syn-flood"]]
    assert (floods["resets"] == 600).all() and floods["community_id"].isna().all()
    # stable columns: the JSON Lines fields and every rule feature
    from rstwatch.features.registry import FEATURES
    from rstwatch.report.records import CONTRACT_FIELDS
    wanted = CONTRACT_FIELDS + ["title", "remediation", "sender_inferred", "resets", "connections", "ts", "community_id"]
    assert set(wanted) <= set(df.columns) and set(FEATURES) <= set(df.columns)
    assert per_rst["community_id"].str.match(r"^1:[A-Za-z0-9+/]{27}=$").all()
    assert per_rst["ts"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$").all()


def test_a_notebook_session():
    df = rstwatch.read(CAPTURES)          # the scripted lab, captures/real/ and captures/holdout/
    by_cause = df.groupby("cause")["resets"].sum().sort_values(ascending=False)
    # every RST the labs labelled is counted once (a flood row stands for its 600)
    labelled = [r for m in CAPTURES.rglob("manifest.json") for c in json.loads(m.read_text())["captures"].values()
                for r in c["resets"]]
    assert by_cause.sum() == len(labelled)
    assert set(by_cause.index[:3]) == {"port-scan", "rst-storm", "syn-flood"}
    assert by_cause.iloc[3] == sum(r["cause"] == by_cause.index[3] for r in labelled)
    by_sender = df[df["sport"] != 0].pivot_table(index="cause", columns="sender", values="frame", aggfunc="count", fill_value=0)
    assert by_sender.loc["listener-closed", "server"] >= 6 and by_sender.loc["listener-closed", "client"] == 0
    assert by_sender.loc["late-synack", "client"] >= 2 and by_sender.loc["late-synack", "server"] == 0
    unsure = df[df["confidence"] < 0.8]
    assert (unsure["alternatives"].map(len) > 0).all()
    # the same rows as the command line's JSON Lines, field for field
    res = subprocess.run([str(Path(sys.executable).parent / "rstwatch"), "read", "-T", "jsonl", str(CAPTURES)],
                         capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [(x["file"], x["frame"], x["cause"], x["ts"]) for x in lines] == \
           list(zip(df["file"], df["frame"], df["cause"], df["ts"]))


def test_rules_filters_and_files_one_by_one(tmp_path):
    (tmp_path / "closed-port.yaml").write_text(
        (ROOT / "rules" / "closed-port.yaml").read_text().replace("confidence: 0.95", "confidence: 0.5"))
    rules = rstwatch.load_rules(tmp_path)
    df = rstwatch.read(CAPTURES, rules=rules, bpf="tcp port 9001 or tcp port 9002")
    assert set(df["cause"]) == {"closed-port"} and (df["confidence"] == 0.5).all() and len(df) == 2
    assert len(rstwatch.read(CAPTURES / "closed-port.pcap", rules=str(tmp_path))) == 1       # a folder works too
    late = rstwatch.read(CAPTURES / "listener-closed.pcap", count=17)
    assert list(late["frame"]) == [16, 17]
    parts = list(rstwatch.iter_findings([EXTERNAL / "zeek" / "pop3", CAPTURES / "closed-port.pcap"]))
    assert [Path(p.attrs["file"]).name for p in parts] == ["bad-list-retr-crafted.pcap", "pop3.pcap", "closed-port.pcap"]
    assert sum(int(p["resets"].sum()) for p in parts) == 8


def test_errors(tmp_path):
    with pytest.raises(rstwatch.RstwatchError, match="no-such.pcap: no such file"):
        rstwatch.read(tmp_path / "no-such.pcap")
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = rstwatch.read([junk, CAPTURES / "closed-port.pcap"], on_error="warn")
    assert len(df) == 1 and any("junk.pcap: not a pcap or pcapng file" in str(w.message) for w in caught)
    with pytest.raises(rstwatch.RstwatchError, match="--bpf"):
        rstwatch.read(CAPTURES / "closed-port.pcap", bpf="port nonsense")
    empty = rstwatch.read(CAPTURES / "normal-close.pcap")
    assert len(empty) == 0 and {"cause", "resets", "community_id"} <= set(empty.columns)


def test_the_tshark_engine_leaves_no_signal_handler_behind():
    """A capture with a link type the fast reader does not decode goes through pyshark. pyshark
    used to leave a SIGCHLD watcher on an event loop that never ran again: once its wake-up pipe
    was full, every later child process's exit printed a traceback (2,722 of them for 3,000
    `true` runs in a notebook session, 96 warnings in our own test run)."""
    code = ("import subprocess, warnings, rstwatch\n"
            "warnings.simplefilter('ignore')\n"
            f"found = rstwatch.read({str(EXTERNAL / 'zeek' / 'llc.pcap')!r})\n"
            "for _ in range(1000):\n"
            "    subprocess.run(['true'])\n"
            "print(len(found))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) > 0
    assert "signal wakeup fd" not in res.stderr and "Traceback" not in res.stderr, res.stderr[:500]
