"""Interop with the tools SREs already run: Community ID and 4-tuple+time joins with Zeek's
conn.log on real traces, Wireshark's own Community ID per frame, the EVE events through a JSON
schema, Zeek logs parsed back by their header, and tcpdump habits (`read -`, filters, -c)."""
from __future__ import annotations

import gzip
import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rstwatch
from rstwatch.interop import community_id
from conftest import CAPTURES, EXTERNAL, ROOT, run_cli

EXTERNAL_FILES = sorted(p for p in EXTERNAL.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng"))


def tshark_fields(path: Path, *fields: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    out = subprocess.run(["tshark", "-r", str(path), *extra, "-T", "fields", *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


# ---------------------------------------------------------------- Community ID and time

def test_community_id_is_wiresharks_for_every_rst_of_every_external_trace():
    """An independent implementation (Wireshark's Community ID dissector) agrees on every finding."""
    checked = 0
    for path in EXTERNAL_FILES:
        df = rstwatch.read(path)
        per_frame = {int(f): cid for f, cid in tshark_fields(path, "frame.number", "communityid",
                                                             extra=("--enable-protocol", "communityid"))}
        for frame, cid in zip(df["frame"], df["community_id"]):
            assert cid == per_frame[frame], (path, frame)
            checked += 1
    assert checked >= 1383                  # every RST tshark lists in tests/external


@settings(max_examples=500, deadline=None)
@given(v6=st.booleans(), a=st.integers(0, 2**128 - 1), b=st.integers(0, 2**128 - 1),
       sport=st.integers(0, 65535), dport=st.integers(0, 65535), same=st.sampled_from(["no", "addr", "both"]))
def test_community_id_is_the_reference_packages(v6, a, b, sport, dport, same):
    """rstwatch hashes the flow itself (hashlib, ~2 us a flow); the reference package (~60 us)
    must give the same id for every tuple, equal addresses and ports included, both ways round."""
    import communityid
    make = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    top = 2**128 if v6 else 2**32
    src, dst = str(make(a % top)), str(make(b % top))
    if same != "no":
        dst = src
    if same == "both":
        dport = sport
    want = communityid.CommunityID().calc(communityid.FlowTuple(6, src, dst, sport, dport))
    assert community_id(src, dst, sport, dport) == want
    assert community_id(dst, src, dport, sport) == want


def test_community_id_of_text_that_is_no_address_is_none():
    assert community_id("10.0.0.1", "many sources", 1, 2) is None
    assert community_id("fe80::1%eth0", "fe80::2", 1, 2) is None       # a scope is no address
    assert community_id("10.0.0.1", "10.0.0.2", 1, 2) == "1:nsF+CyuHj+gRdemh9jH9fNbMK+U="   # the package's id


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**63) + 1, 2**63 - 1), max_size=50))
def test_ts_column_is_each_time_written_with_datetime(times):
    """`ts` for a table at once (numpy's formatting) is, for every int64 nanosecond time, what
    Python's datetime writes for each alone."""
    from rstwatch.interop import iso_ns, iso_ns_column
    assert iso_ns_column(times) == [iso_ns(t) for t in times]


def test_ts_keeps_the_nanoseconds_time_rounds():
    df = rstwatch.read(CAPTURES / "closed-port-ipv6.pcapng")     # a nanosecond-resolution capture
    epoch = tshark_fields(CAPTURES / "closed-port-ipv6.pcapng", "frame.time_epoch", extra=("-Y", "frame.number==2"))[0][0]
    assert df["ts"][0] == "2026-11-21T06:19:06." + epoch.split(".")[1][:9] + "Z"
    assert df["ts"][0].endswith("394382201Z")                   # 9 digits; the float `time` cannot hold them
    assert abs(df["time"][0] - float(epoch)) < 1e-6


def zeek_conn_logs() -> list[tuple[Path, list[dict]]]:
    """Traces whose Zeek conn.log is complete (4-tuple, duration, conn_state)."""
    out = []
    for log in sorted(EXTERNAL.rglob("*.pcap.conn.log")):
        fields, rows = None, []
        for line in log.read_text().splitlines():
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif fields and not line.startswith("#"):
                rows.append(dict(zip(fields, line.split("\t"))))
        if fields and {"id.orig_h", "id.resp_p", "duration", "conn_state"} <= set(fields):
            out.append((log.with_name(log.name[:-len(".conn.log")]), rows))
    return out


# Zeek keeps a connection this long after its first RST (tcp_reset_delay); later resets of the
# same connection (a second RST) land in the same conn.log line but not in its `duration`.
RESET_DELAY_S = 5.0


def test_every_finding_joins_zeeks_conn_log_by_community_id_and_by_4tuple_and_time():
    """Zeek's conn.log (its expected output for the trace) is joined the two ways a log pipeline
    would: by the Community ID Zeek logs with policy/protocols/conn/community-id-logging (the same
    hash over the conn's id.*), and without uid by 4-tuple + time: the reset falls inside the
    connection's lifetime [ts, ts + duration]. The baselines mask `ts`, so a connection's ts is
    what Zeek defines it to be, the time of its first packet: the packet rstwatch names as the
    connection's first (`conn_first_frame`; its connection splits agree with Zeek's conn_state,
    see test_external), timed by tshark, and Zeek's own `duration` must reach the reset."""
    from rstwatch.interop import community_id
    traces = zeek_conn_logs()
    assert len(traces) >= 10
    joined = 0
    for trace, rows in traces:
        findings = rstwatch.read(trace)
        assert len(findings)
        by_cid: dict[str, list[dict]] = {}
        for row in rows:
            cid = community_id(row["id.orig_h"], row["id.resp_h"], int(row["id.orig_p"]), int(row["id.resp_p"]))
            by_cid.setdefault(cid, []).append(row)
        frame_time = {int(f): float(t) for f, t in tshark_fields(trace, "frame.number", "frame.time_epoch")}
        for f in findings.itertuples():
            # 1. community_id
            assert f.community_id in by_cid, (trace.name, f.frame)
            # 2. 4-tuple (either orientation: Zeek orients by originator) + time within the lifetime
            ends = {(f.src, f.sport), (f.dst, f.dport)}
            t0 = frame_time[f.conn_first_frame]
            match = [r for r in rows
                     if {(r["id.orig_h"], int(r["id.orig_p"])), (r["id.resp_h"], int(r["id.resp_p"]))} == ends
                     and t0 - 1e-6 <= f.time <= t0 + float(r["duration"] if r["duration"] != "-" else 0) + RESET_DELAY_S]
            assert match, (trace.name, f.frame, f.src, f.sport, f.dst, f.dport)
            assert any(m in by_cid[f.community_id] for m in match)          # both joins find the same row
            joined += 1
    assert joined >= 1350


# ---------------------------------------------------------------- output formats

EVE_SCHEMA = {
    "type": "object",
    "required": ["timestamp", "event_type", "dest_ip", "dest_port", "proto", "pcap_filename", "pcap_cnt", "rstwatch"],
    "properties": {
        "timestamp": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$"},
        "event_type": {"const": "rstwatch"},
        "src_ip": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
        "src_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "dest_ip": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
        "dest_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "proto": {"const": "TCP"},
        "community_id": {"type": "string", "pattern": r"^1:[A-Za-z0-9+/]{27}=$"},
        "pcap_filename": {"type": "string"},
        "pcap_cnt": {"type": "integer", "minimum": 1},
        "rstwatch": {
            "type": "object",
            "required": ["file", "frame", "time", "ts", "src", "sport", "dst", "dport", "sender", "cause", "rule",
                         "confidence", "alternatives", "summary", "errno", "evidence", "title", "remediation"],
            "properties": {
                "cause": {"type": "string"}, "rule": {"type": "string"},
                "sender": {"enum": ["client", "server", "unknown"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "alternatives": {"type": "array", "items": {"type": "string"}},
                "remediation": {"type": "array", "items": {"type": "string"}},
                "evidence": {"type": "array", "items": {"type": "integer"}},
                "errno": {"type": "object", "required": ["receiver", "sender"]},
                "ts": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$"},
            },
        },
    },
    # an event of one connection carries the integer Suricata's consumers group a flow's events by
    "dependentRequired": {"src_ip": ["src_port"], "community_id": ["flow_id"]},
}
EVE_SCHEMA["properties"]["flow_id"] = {"type": "integer", "minimum": 1, "maximum": 2**51 - 1}   # Suricata's range

# Suricata 7.0.10's own etc/schema.json, the envelope fields rstwatch writes (names, types, required,
# no other field): every event without its `rstwatch` object must pass it.
SURICATA_EVE_SCHEMA = json.loads((Path(__file__).parent / "suricata_eve_schema.json").read_text())


def test_eve_events_pass_the_schema_and_carry_the_join_keys():
    res = run_cli("read", "--format", "eve", str(CAPTURES), str(EXTERNAL / "zeek" / "pop3"))
    assert res.returncode == 0, res.stderr
    events = [json.loads(x) for x in res.stdout.splitlines()]
    validator = jsonschema.Draft202012Validator(EVE_SCHEMA, format_checker=jsonschema.FormatChecker())
    suricata = jsonschema.Draft202012Validator(SURICATA_EVE_SCHEMA)
    for ev in events:
        validator.validate(ev)
        suricata.validate({k: v for k, v in ev.items() if k != "rstwatch"})
        inner = ev["rstwatch"]
        assert ev["timestamp"][:26] == inner["ts"][:26] and ev["pcap_cnt"] == inner["frame"]
        assert ev["dest_ip"] == inner["dst"] and ev["dest_port"] == inner["dport"]
        if inner["sport"]:                                   # per-RST findings: one flow, one id
            assert ev["community_id"] == inner["community_id"] and ev["src_ip"] == inner["src"]
            assert isinstance(ev["flow_id"], int)
        else:                                                # a flood stands for many flows: no id
            assert "flow_id" not in ev and "community_id" not in ev
    assert {e["rstwatch"]["cause"] for e in events} >= {"closed-port", "port-scan", "rst-storm", "syn-flood"}
    # one flow_id per connection: the events of a connection (its file, its flow, its frame range
    # as its Wireshark filter names it) share it, and no two connections have the same one
    def conn(e: dict) -> tuple:
        frames = re.search(r"frame\.number>=(\d+) && frame\.number<=(\d+)", e["rstwatch"]["wireshark_filter"])
        return e["pcap_filename"], e.get("community_id"), frames.groups()
    ids = {conn(e): e.get("flow_id") for e in events}
    per_conn = [i for i in ids.values() if i is not None]
    assert len(per_conn) == len(set(per_conn)) > 60
    assert all(e.get("flow_id") == ids[conn(e)] for e in events)
    # jq (the EVE habit): reads every flow_id exactly (jq 1.6 holds numbers as doubles) and groups by it
    assert shutil.which("jq"), "jq is installed by bin/setup --lab (bin/test as root)"
    jq_ids = subprocess.run(["jq", "-c", "select(.flow_id) | [.flow_id, .community_id]"], input=res.stdout,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert [json.loads(x) for x in jq_ids] == [[e["flow_id"], e["community_id"]] for e in events if "flow_id" in e]
    groups = subprocess.run(["jq", "-s", "-c", 'map(select(.event_type == "rstwatch" and .flow_id))'
                             " | group_by(.flow_id) | map([length, ([.[].community_id] | unique | length)])"],
                            input=res.stdout, capture_output=True, text=True, check=True).stdout
    groups = json.loads(groups)
    assert len(groups) == len(per_conn) and {n for _, n in groups} == {1} and max(k for k, _ in groups) > 20
    # the schema does reject what it claims to check
    bad = dict(events[0], proto="tcp")
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(dict(events[0], src_ip="10.77.2"))


def parse_zeek_tsv(text: str) -> tuple[list[str], list[str], list[dict]]:
    """Read a Zeek ASCII log by its header, the way Zeek's own readers do."""
    lines = text.splitlines()
    assert lines[0] == "#separator \\x09"
    meta = {ln.split("\t", 1)[0]: ln.split("\t")[1:] for ln in lines if ln.startswith("#") and "\t" in ln}
    fields, types = meta["#fields"], meta["#types"]
    assert meta["#set_separator"] == [","] and meta["#unset_field"] == ["-"] and meta["#empty_field"] == ["(empty)"]
    rows = []
    for ln in lines:
        if ln.startswith("#"):
            continue
        cells = ln.split("\t")
        assert len(cells) == len(fields)
        rows.append(dict(zip(fields, cells)))
    return fields, types, rows


def _zeek_value(cell: str, kind: str):
    if cell == "-":
        return None
    if kind.startswith("vector["):
        inner = kind[7:-1]
        return [] if cell == "(empty)" else [_zeek_value(c, inner) for c in cell.split(",")]
    if kind == "addr":
        return str(ipaddress.ip_address(cell))
    if kind in ("port", "count"):
        return int(cell)
    if kind in ("time", "double"):
        return float(cell)
    if kind == "bool":
        assert cell in ("T", "F")
        return cell == "T"
    return bytes(cell, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8") if "\\x" in cell else cell


def test_zeek_tsv_and_json_logs_read_back_to_the_findings():
    tsv = run_cli("read", "--format", "zeek", str(CAPTURES))
    js = run_cli("read", "--format", "zeek-json", str(CAPTURES))
    jl = run_cli("read", "--format", "jsonl", str(CAPTURES))
    assert tsv.returncode == js.returncode == jl.returncode == 0
    fields, types, rows = parse_zeek_tsv(tsv.stdout)
    # uid second, as in every Zeek log (Zeek's readers and joins key on it)
    assert fields[:8] == ["ts", "uid", "community_id", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"]
    assert len(types) == len(fields) and types[1] == "string"
    recs = [json.loads(x) for x in jl.stdout.splitlines()]
    jrows = [json.loads(x) for x in js.stdout.splitlines()]
    # as many as the API finds on the same folder (the scripted lab and captures/real/)
    assert len(rows) == len(recs) == len(jrows) == len(rstwatch.read(CAPTURES)) > 22
    for row, rec, jrow in zip(rows, recs, jrows):
        parsed = {f: _zeek_value(row[f], t) for f, t in zip(fields, types)}
        assert parsed["remediation"] == rec["remediation"]          # commas inside items survive (\x2c)
        assert parsed["summary"] == rec["summary"] and parsed["cause"] == rec["cause"]
        assert abs(parsed["ts"] - rec["time"]) < 1e-6
        if rec["community_id"]:                                     # one connection: Zeek's uid form
            assert re.fullmatch(r"C[0-9A-Za-z]{17}", parsed["uid"]), parsed["uid"]
        else:                                                       # a flood: many connections, unset
            assert row["uid"] == "-" and "uid" not in jrow
        assert {k: v for k, v in parsed.items() if v is not None} == \
               {k: (v if not isinstance(v, float) else pytest.approx(v)) for k, v in jrow.items()}
        if rec["sender"] == "client":
            assert (parsed["id.orig_h"], parsed["id.orig_p"]) == (rec["src"], rec["sport"])
        elif rec["sender"] == "server":
            assert (parsed["id.orig_h"], parsed["id.orig_p"]) == (rec["dst"], rec["dport"])
            assert parsed["rst_orig"] is False


@pytest.mark.filterwarnings("ignore:The inplace keyword")         # zat's own use of pandas
def test_zeek_uid_splits_connections_as_zeeks_own_conn_log(tmp_path):
    """Zeek's conn.log (its expected output for each trace) has one uid per connection. Read by
    zat (the Python reader of Zeek logs), rstwatch.log must have as many uids on each 4-tuple as
    Zeek has connections with a reset there: llc.pcap's 1,333 resets on one 4-tuple are 1,333
    connections to Zeek, and so 1,333 uids; a connection's several resets share one."""
    from zat.log_to_dataframe import LogToDataFrame
    traces = zeek_conn_logs()
    res = run_cli("read", "--format", "zeek", *[str(t) for t, _ in traces])
    assert res.returncode == 0, res.stderr
    log = tmp_path / "rstwatch.log"
    log.write_text(res.stdout)
    ours = LogToDataFrame().create_dataframe(str(log))
    assert len(ours) >= 1350 and ours["uid"].notna().all() and str(ours["frame"].dtype) == "UInt64"
    ours["ends"] = [frozenset({(o, int(op)), (r, int(rp))}) for o, op, r, rp in
                    zip(ours["id.orig_h"], ours["id.orig_p"], ours["id.resp_h"], ours["id.resp_p"])]
    uids_on = ours.groupby(["file", "ends"], observed=True)["uid"].nunique().to_dict()
    theirs: dict = {}
    for trace, rows in traces:
        for row in rows:
            if {"r", "R"} & set(row["history"]):
                key = (str(trace), frozenset({(row["id.orig_h"], int(row["id.orig_p"])), (row["id.resp_h"], int(row["id.resp_p"]))}))
                theirs.setdefault(key, set()).add(row["uid"])
    assert uids_on == {k: len(v) for k, v in theirs.items()}
    assert uids_on[(str(EXTERNAL / "zeek" / "llc.pcap"), next(k for f, k in uids_on if f.endswith("llc.pcap")))] == 1333
    several = ours.groupby("uid").size()
    assert (several > 1).any()                      # a connection's later resets keep its uid


@pytest.mark.skipif(shutil.which("suricata") is None, reason="Suricata is installed by bin/setup --lab (optional)")
def test_flow_id_groups_findings_as_suricata_groups_its_flows(tmp_path):
    """Suricata itself reads the same captures (no rules, Community ID on): each of its TCP flow
    events has a flow_id, a Community ID and a start and end. Every rstwatch event with a flow_id
    falls in exactly one of Suricata's flows, and one rstwatch flow_id never spans two of them;
    here (no port reuse) the two tools count the same flows."""
    from datetime import datetime
    names = ["listener-closed.pcap", "real/haproxy-check-redis.pcap", "real/nginx-444-post.pcap",
             "real/gunicorn-413-zero-window.pcap"]

    def when(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()

    for name in names:
        path, out = CAPTURES / name, tmp_path / name.replace("/", "-")
        out.mkdir()
        subprocess.run(["suricata", "-r", str(path), "-l", str(out), "-S", "/dev/null", "-k", "none",
                        "--set", "outputs.1.eve-log.community-id=true"], capture_output=True, check=True, timeout=120)
        flows = [e for e in map(json.loads, (out / "eve.json").read_text().splitlines())
                 if e["event_type"] == "flow" and e["proto"] == "TCP"]
        res = run_cli("read", "--format", "eve", str(path))
        assert res.returncode == 0, res.stderr
        ours = [json.loads(x) for x in res.stdout.splitlines()]
        theirs_of: dict[int, set[int]] = {}
        for ev in ours:
            t = when(ev["timestamp"])
            inside = [f["flow_id"] for f in flows if f["community_id"] == ev["community_id"]
                      and when(f["flow"]["start"]) - 1e-6 <= t <= when(f["flow"]["end"]) + 1e-6]
            assert len(inside) == 1, (name, ev["pcap_cnt"], inside)
            theirs_of.setdefault(ev["flow_id"], set()).update(inside)
        assert all(len(v) == 1 for v in theirs_of.values()), name
        assert len(theirs_of) == len(set().union(*theirs_of.values())) >= 1, name


def test_parquet_sums_and_joins_in_duckdb_and_pyarrow(tmp_path):
    """What a notebook or a query engine does with `-o findings.parquet`: sum(resets) is every
    reset (the captures' manifests list each one), `ts` is a timestamp, and flow_id / uid join
    the rows to the same findings' EVE and Zeek logs."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq
    every, one, eve, zeek = (tmp_path / n for n in ("all.parquet", "one.parquet", "all.eve.json", "all.zeek.json"))
    for args in ((str(CAPTURES), "-o", str(every)), (str(CAPTURES / "closed-port.pcap"), "-o", str(one)),
                 (str(CAPTURES), "--format", "eve", "-o", str(eve)), (str(CAPTURES), "--format", "zeek-json", "-o", str(zeek))):
        res = run_cli("read", *args)
        assert res.returncode == 0, res.stderr
    want: dict[str, int] = {}                        # resets per capture, from the lab's ground truth
    for manifest in CAPTURES.rglob("manifest.json"):
        for name, entry in json.loads(manifest.read_text())["captures"].items():
            if entry["resets"]:
                want[str(manifest.parent / name)] = len(entry["resets"])
    assert sum(want.values()) > 2000
    # column types, the same whether or not a file holds a flood
    for path in (every, one):
        schema = pq.read_schema(path)
        assert schema.field("resets").type == schema.field("connections").type == pa.int64()
        assert schema.field("ts").type == pa.timestamp("ns", tz="UTC")
        assert schema.field("ts_iso").type == schema.field("uid").type == pa.string()
        assert schema.field("flow_id").type == pa.int64()
        assert schema.field("sources_sample").type == pa.list_(pa.string())
    table = pq.read_table(every, columns=["resets", "connections", "ts", "ts_iso", "time", "uid", "community_id"])
    assert table["resets"].null_count == table["connections"].null_count == 0
    q = duckdb.connect()
    assert q.execute(f"select sum(resets) from '{every}'").fetchone()[0] == sum(want.values())
    assert dict(q.execute(f"select file, sum(resets) from '{every}' group by file").fetchall()) == want
    assert q.execute(f"select sum(resets) from read_parquet(['{every}', '{one}'])").fetchone()[0] == sum(want.values()) + 1
    assert q.execute(f"select typeof(ts) from '{every}' limit 1").fetchone()[0].startswith("TIMESTAMP")
    # `ts` is the instant JSON Lines' `ts` names, to the nanosecond; a time window is a plain comparison
    jsonl = [json.loads(x)["rstwatch"] for x in eve.read_text().splitlines()]      # the JSON Lines records
    assert table["ts_iso"].to_pylist() == [r["ts"] for r in jsonl]
    nanos = table["ts"].cast(pa.int64()).to_pylist()
    assert [f"{n % 10**9:09d}Z" for n in nanos] == [r["ts"][20:] for r in jsonl]
    assert all(abs(n / 1e9 - r["time"]) < 1e-6 for n, r in zip(nanos, jsonl))
    window = q.execute(f"select cause from '{every}' where ts >= TIMESTAMPTZ '2026-11-21 06:19:04+00' "
                   f"and ts < TIMESTAMPTZ '2026-11-21 06:19:05+00'").fetchall()
    assert window == [("closed-port",)]
    # joins: every per-connection row meets its EVE event by flow_id and its Zeek record by uid
    per_conn = q.execute(f"select count(*) from '{every}' where uid is not null").fetchone()[0]
    assert per_conn == len(jsonl) - 3                # all but the three floods
    assert q.execute(f"select count(*) from '{every}' p join read_json_auto('{eve}') e on p.flow_id = e.flow_id "
                 "and p.file = e.pcap_filename and p.frame = e.pcap_cnt").fetchone()[0] == per_conn
    assert q.execute(f"select count(*) from '{every}' p join read_json_auto('{zeek}') z on p.uid = z.uid "
                 "and p.frame = z.frame").fetchone()[0] == per_conn
    # connections: one uid each, plus those the floods stand for
    distinct = q.execute(f"select count(distinct uid), count(distinct (file, conn_first_frame)) filter (where uid is not null), "
                     f"sum(connections) filter (where uid is null) from '{every}'").fetchone()
    assert distinct[0] == distinct[1] > 60 and distinct[2] == 1800


# ---------------------------------------------------------------- tcpdump habits

def _findings(stdout: str, micro: bool = False) -> list[dict]:
    """JSON Lines without the file name (a pipe is `-`). `micro`: times cut to microseconds, all
    that tcpdump's pcap output keeps of a nanosecond pcapng."""
    out = [{k: v for k, v in json.loads(x).items() if k != "file"} for x in stdout.splitlines()]
    if micro:
        for f in out:
            f["ts"] = f.pop("ts")[:26]            # tcpdump cuts (does not round) to microseconds
            del f["time"]
    return out


STDIN_CASES = ["closed-port.pcap", "keepalive-timeout.pcap.gz", "out-of-window-rst.pcapng", "listener-closed.pcap"]


@pytest.mark.parametrize("name", STDIN_CASES)
def test_stdin_from_tcpdump_and_gzip_gives_the_same_findings(name):
    path = CAPTURES / name
    want = _findings(run_cli("read", "-T", "jsonl", str(path)).stdout)
    assert want
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    assert shutil.which("tcpdump"), "tcpdump is installed by bin/setup --lab (bin/test as root)"
    plain = Path(ROOT / "captures" / name)
    # tcpdump -r X -w - : rewrites the capture as pcap on a pipe
    src = subprocess.run(["tcpdump", "-r", "-", "-w", "-"], input=raw, capture_output=True, check=True).stdout
    micro = _findings(run_cli("read", "-T", "jsonl", str(path)).stdout, micro=True)
    for data, exact in ((raw, True), (gzip.compress(raw), True), (src, False), (gzip.compress(src), False)):
        res = subprocess.run([*_cli(), "read", "-T", "jsonl", "-"], input=data, capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr
        if exact:                                  # the same bytes through a pipe: the very same findings
            assert _findings(res.stdout.decode()) == want, plain
        else:                                      # tcpdump rewrote it as a microsecond pcap
            assert _findings(res.stdout.decode(), micro=True) == micro, plain
    piped = subprocess.run(f"tcpdump -r {path if not name.endswith('.gz') else '-'} -w - 2>/dev/null | "
                           f"{' '.join(_cli())} read -T jsonl -", shell=True, capture_output=True,
                           input=raw if name.endswith(".gz") else None, timeout=120)
    assert _findings(piped.stdout.decode(), micro=True) == micro


def _cli() -> list[str]:
    exe = shutil.which("rstwatch", path=str(Path(__import__("sys").executable).parent))
    return [exe]


def test_stdin_errors_name_it():
    res = subprocess.run([*_cli(), "read", "-"], input=b"", capture_output=True)
    assert res.returncode == 2 and res.stderr.decode().strip() == "rstwatch: error: -: empty file"
    res = subprocess.run([*_cli(), "read", "-"], input=b"hello, not a capture", capture_output=True)
    assert res.returncode == 2 and b"-: not a pcap or pcapng file" in res.stderr


def test_bpf_keeps_what_tcpdump_keeps():
    """libpcap decides: the packets our read filter keeps are the ones tcpdump writes."""
    from rstwatch.sources.diagnostics import Diagnostics
    from rstwatch.sources.readfilter import make_filter
    from rstwatch.sources.capture import iter_segments
    for expr in ("tcp[tcpflags] & tcp-rst != 0", "port 9001 or port 9015", "ip6", "src host 10.77.2.2 and tcp"):
        for path in [CAPTURES / "closed-port.pcap", CAPTURES / "out-of-window-rst.pcapng", CAPTURES / "closed-port-ipv6.pcapng",
                     EXTERNAL / "zeek" / "pop3" / "pop3.pcap", EXTERNAL / "tcpdump" / "mptcp-tcprst.pcap"]:
            keep = make_filter(expr, None, None, None).fresh()
            for _ in iter_segments(path, Diagnostics(str(path)), keep=keep):
                pass
            out = subprocess.run(["tcpdump", "-r", str(path), "-w", "-", expr], capture_output=True, check=True).stdout
            n = len(tshark_fields_from_bytes(out)) if out[24:] else 0
            assert keep.kept == n, (expr, path.name, keep.kept, n)


def test_count_reports_the_packets_it_read():
    """`-c N` reads the first N packets, and the heading says so (it said 0: the reader counted a
    chunk only after handing it over, and -c stops there); with --bpf, the packets up to the N-th
    kept one, as tshark numbers that frame."""
    for path in [CAPTURES / "out-of-window-rst.pcapng", EXTERNAL / "zeek" / "pop3" / "pop3.pcap"]:
        frames = tshark_fields_from_bytes(path.read_bytes())
        for n in (1, 3, len(frames) - 1):
            head = run_cli("read", "-T", "table", "-c", str(n), str(path)).stdout.splitlines()[0]
            assert f", {n} packets read" in head, (path.name, n, head)
        whole = run_cli("read", "-T", "table", str(path)).stdout.splitlines()[0]
        assert f", {len(frames)} packets read" in whole
    path = EXTERNAL / "tcpdump" / "mptcp-tcprst.pcap"
    rsts = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.reset == 1", "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, check=True).stdout.split()
    head = run_cli("read", "-T", "table", "-c", "1", "-f", "tcp[tcpflags] & tcp-rst != 0", str(path)).stdout.splitlines()[0]
    assert f", {rsts[0]} packets read" in head, head


def tshark_fields_from_bytes(data: bytes) -> list[str]:
    out = subprocess.run(["tshark", "-r", "-", "-T", "fields", "-e", "frame.number"], input=data,
                         capture_output=True, check=True).stdout
    return out.split()


def test_read_filters_on_the_cli():
    base = _findings(run_cli("read", "-T", "jsonl", str(CAPTURES)).stdout)
    only = _findings(run_cli("read", "-T", "jsonl", "-f", "port 9001", str(CAPTURES)).stdout)
    assert [f["cause"] for f in only] == ["closed-port"] and only[0] in base
    # -c: the capture's first packets only (frame numbers stay the capture's own)
    assert _findings(run_cli("read", "-T", "jsonl", "-c", "1", str(CAPTURES / "closed-port.pcap")).stdout) == []
    two = _findings(run_cli("read", "-T", "jsonl", "-c", "2", str(CAPTURES / "closed-port.pcap")).stdout)
    assert [f["frame"] for f in two] == [2]
    # --since/--until around one reset (closed-port.pcap's RST is at 06:19:04.390728)
    win = ["--since", "2026-11-21T06:19:04Z", "--until", "2026-11-21 06:19:05"]
    assert [f["cause"] for f in _findings(run_cli("read", "-T", "jsonl", *win, str(CAPTURES)).stdout)] == ["closed-port"]
    late = run_cli("read", "-T", "jsonl", "--since", "1795241944.390729", str(CAPTURES / "closed-port.pcap"))
    assert late.returncode == 0 and late.stdout == ""
    # usage errors: one line, exit 2, before any work
    for args, msg in [(["-f", "port nonsense"], "--bpf: 'port nonsense'"), (["--since", "yesterday"], "--since: 'yesterday' is not a time"),
                      (["--since", "2026-11-22", "--until", "2026-11-21"], "--until: must be later than --since")]:
        res = run_cli("read", *args, str(CAPTURES / "closed-port.pcap"))
        assert res.returncode == 2 and msg in res.stderr and res.stdout == "", res.stderr
    # -f with a format name: the tcpdump meaning wins, and the message says what to use instead
    res = run_cli("read", "-f", "jsonl", str(CAPTURES / "closed-port.pcap"))
    assert res.returncode == 2 and "--format jsonl" in res.stderr


def test_version_completion_and_every_output_cause_explained():
    assert run_cli("--version").stdout.strip() == rstwatch.__version__ == run_cli("version").stdout.strip()
    for shell in ("bash", "zsh", "fish"):
        res = run_cli("completion", shell)
        assert res.returncode == 0 and "_RSTWATCH_COMPLETE" in res.stdout
    script = run_cli("completion", "bash").stdout
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    env = {"COMP_WORDS": "rstwatch rules ex", "COMP_CWORD": "2", "_RSTWATCH_COMPLETE": "complete_bash", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(_cli(), env=env, capture_output=True, text=True)
    assert "explain" in done.stdout.split()
    env.update(COMP_WORDS="rstwatch read --for", COMP_CWORD="2")
    assert "--format" in subprocess.run(_cli(), env=env, capture_output=True, text=True).stdout.split()
    causes = set(rstwatch.read(CAPTURES)["cause"]) | {r.name for r in rstwatch.load_rules()}
    assert {"port-scan", "rst-storm", "syn-flood"} <= causes
    for cause in sorted(causes):
        res = run_cli("rules", "explain", cause)
        assert res.returncode == 0 and res.stdout.startswith(cause), (cause, res.stderr)
        assert "what to change:" in res.stdout


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-9 * 10**18, 9 * 10**18), st.integers(1_700_000_000 * 10**9, 1_800_000_000 * 10**9),
                          st.sampled_from([0, -1, 1, -(10**9) + 1, 10**9 - 1])), min_size=1, max_size=40))
def test_iso_texts_read_back_to_their_nanoseconds(nanos):
    """The Parquet file's `ts` timestamps: the ISO texts read from their bytes are the
    nanoseconds they were written from, the same column pandas' strptime makes; texts of another
    form, or a time int64 nanoseconds cannot hold, are left to pandas."""
    import pandas as pd
    from rstwatch.interop import iso_ns_column, ns_of_iso_texts
    from rstwatch.report.parquet import _timestamps
    texts = iso_ns_column(nanos)
    assert ns_of_iso_texts(texts).tolist() == nanos
    column = pd.Series(texts, dtype=object)
    assert _timestamps(column).equals(pd.to_datetime(column, format="%Y-%m-%dT%H:%M:%S.%fZ", utc=True).dt.as_unit("ns"))
    assert ns_of_iso_texts(texts + ["2026-11-21T06:19:12.73712345Z"]) is None
    assert ns_of_iso_texts(texts + ["2262-04-12T00:00:00.000000000Z"]) is None       # past int64's nanoseconds
    assert ns_of_iso_texts(texts + ["2026-13-21T06:19:12.737123456Z"]) is None       # no such month
