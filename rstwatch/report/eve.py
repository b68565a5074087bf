"""Suricata EVE-shaped JSON: one event per finding, so pipelines that ingest eve.json (Filebeat,
Logstash, Vector, Splunk, jq recipes) take rstwatch's findings as they are.

The envelope uses Suricata's field names and formats (`timestamp` with microseconds and a
+0000 offset, `src_ip`, `dest_port`, `proto: "TCP"`, `community_id`, `pcap_filename`,
`pcap_cnt` = the frame number); the finding itself, every JSON Lines field, sits under
`rstwatch`, as an alert sits under `alert`. `flow_id` is what Suricata's consumers group a
flow's events by: the same integer for every finding of one connection (rstwatch/interop.py)."""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator, TextIO

import numpy as np

from .. import columns
from ..interop import community_id, flow_id_column
from .records import iter_records

if TYPE_CHECKING:       # DataFrames or, from `read`, columns.Table: writing them needs no pandas
    import pandas as pd

EVENT_TYPE = "rstwatch"


def suricata_time(iso_ns: str | None, epoch: float) -> str:
    """'2026-11-21T06:19:12.737123456Z' -> '2026-11-21T06:19:12.737123+0000' (Suricata's form)."""
    if iso_ns:
        return iso_ns[:26] + "+0000"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"


def eve_event(rec: dict, flow_id: int | None = None) -> dict:
    event = {"timestamp": suricata_time(rec.get("ts"), rec["time"])}
    if flow_id is not None:                     # a flood stands for many flows: none, as Suricata's
        event["flow_id"] = flow_id              # flowless events have none
    event["event_type"] = EVENT_TYPE
    if rec["src"] != "*":                       # a flood from many sources has no one source
        event["src_ip"] = rec["src"]
        event["src_port"] = rec["sport"]
    event.update({"dest_ip": rec["dst"], "dest_port": rec["dport"], "proto": "TCP"})
    cid = rec.get("community_id") or (community_id(rec["src"], rec["dst"], rec["sport"], rec["dport"])
                                      if rec["sport"] or rec["dport"] else None)   # findings saved without one
    if cid:
        event["community_id"] = cid
    event["pcap_filename"] = rec["file"]
    event["pcap_cnt"] = rec["frame"]
    event[EVENT_TYPE] = rec
    return event


def iter_events(df: pd.DataFrame) -> Iterator[dict]:
    for rec, flow_id in zip(iter_records(df), flow_id_column(df)):
        yield eve_event(rec, flow_id)


def reference_eve_lines(df: pd.DataFrame) -> Iterator[str]:
    """The events a record at a time through eve_event (the tests' oracle for eve_text)."""
    for event in iter_events(df):
        yield json.dumps(event, separators=(",", ":"))


def _envelope_values(df: pd.DataFrame, names: tuple = ("src", "sport", "dst", "dport", "file", "frame")) -> dict[str, list]:
    """The values eve_event gives each envelope field, a column at a time: the timestamp, the
    Community ID and the JSON Lines fields `names` (of a DataFrame or a columns.Table)."""
    n = len(df)

    def col(name: str) -> list:
        return columns.tolist(df[name]) if name in df.columns else [None] * n

    v = {name: col(name) for name in names}
    v["timestamp"] = [iso[:26] + "+0000" if iso else suricata_time(None, t) for iso, t in zip(col("ts"), col("time"))]
    cids = col("community_id")
    if not all(cids):                   # findings saved without one: computed from their ends
        ends = [v[c] if c in v else col(c) for c in ("src", "dst", "sport", "dport")]
        cids = [c or (community_id(a, b, p, q) if p or q else None) for c, a, b, p, q in zip(cids, *ends)]
    v["community_id"] = cids
    return v


def _compiled_events(df: pd.DataFrame) -> tuple[list[bytes], list, list[bool]] | None:
    """The events as the compiled filler (jsonfill.pyx) takes them: (prefixes, typed columns,
    omit flags), the envelope's fields first, then the JSON Lines record's own columns under
    `rstwatch` and its closing brace. The envelope's copies of record fields (dest_ip: dst...)
    are the record's own typed columns, written twice. None where the Python events are written
    instead: no filler built, no row or no field, or a finding without a source or a source port
    (their nulls are written, and a flood's `*` source left out)."""
    from .jsoncols import json_texts, typed
    from .jsonl import _plan, _string, compiled_fields, fill_rows
    n = len(df)
    plan = _plan(df) if fill_rows is not None and n else None
    record = compiled_fields(df, plan, {}) if plan is not None else None
    if record is None:
        return None
    as_typed = {c: t for c, t, omit in zip(plan[0], record[0], record[1]) if not omit}
    v = _envelope_values(df, ("src", "sport") + tuple(c for c in ("dst", "dport", "file", "frame") if c not in as_typed))
    if None in v["src"] or None in v["sport"]:
        return None
    one_source = [a != "*" for a in v["src"]]
    same = np.zeros(n, np.int64)

    def only_one_source(values: list) -> list:
        return [t if keep else None for t, keep in zip(json_texts(values), one_source)]

    def field(name: str) -> tuple:
        return as_typed[name] if name in as_typed else typed(v[name])
    envelope = [      # name, typed column, left out where unset
        ("timestamp", ("s", v["timestamp"], _string), False),
        ("flow_id", typed(flow_id_column(df)), True),
        ("event_type", ("c", same, [_string(EVENT_TYPE)]), False),
        ("src_ip", ("t", only_one_source(v["src"])), True),
        ("src_port", ("t", only_one_source(v["sport"])), True),
        ("dest_ip", field("dst"), False),
        ("dest_port", field("dport"), False),
        ("proto", ("c", same, ['"TCP"']), False),
        ("community_id", typed([c if c else None for c in v["community_id"]]), True),
        ("pcap_filename", field("file"), False),
        ("pcap_cnt", field("frame"), False),
    ]
    names = plan[0]
    prefixes = [(("{" if k == 0 else ",") + _string(name) + ":").encode("ascii") for k, (name, _, _) in enumerate(envelope)]
    prefixes += [(("," + _string(EVENT_TYPE) + ":{" if k == 0 else ",") + _string(c) + ":").encode("ascii")
                 for k, c in enumerate(names)]
    columns = [c for _, c, _ in envelope] + record[0] + [("c", same, ["}"])]
    return prefixes + [b""], columns, [o for _, _, o in envelope] + record[1] + [False]


def eve_text(df: pd.DataFrame) -> str:
    """The events of `df` a column at a time, byte for byte reference_eve_lines: the envelope's
    fields made per column (report/jsoncols.py) and the finding itself, under `rstwatch`, is its
    JSON Lines record as the JSON Lines writer makes it (the same text json.dumps gives,
    tests/test_jsonl.py). Joined in C when the filler was built (~3 us a finding); an event a
    record at a time was ~30 us."""
    compiled = _compiled_events(df)
    if compiled is not None:
        from .jsonl import fill_rows
        return fill_rows(compiled[0], compiled[1], len(df), None, compiled[2]).decode("ascii")
    return _python_eve_text(df)


def _python_eve_text(df: pd.DataFrame) -> str:
    """eve_text with the rows joined in Python."""
    from . import jsoncols
    from .jsonl import jsonl_text
    n = len(df)
    if not n:
        return ""
    v = _envelope_values(df)
    stamps, cids, src, sport, dst, dport = (v[k] for k in ("timestamp", "community_id", "src", "sport", "dst", "dport"))
    one_source = [a != "*" for a in src]
    rec_key = encode_basestring_ascii(EVENT_TYPE) + ":"
    records = [rec_key + line for line in jsonl_text(df).split("\n")[:n]]
    src_ip = [t if keep else "" for t, keep in zip(jsoncols.fields("src_ip", src, null=True), one_source)]
    src_port = [t if keep else "" for t, keep in zip(jsoncols.fields("src_port", sport, null=True), one_source)]
    return jsoncols.objects([
        jsoncols.fields("timestamp", stamps),
        jsoncols.fields("flow_id", flow_id_column(df)),
        [encode_basestring_ascii("event_type") + ":" + encode_basestring_ascii(EVENT_TYPE)] * n,
        src_ip, src_port,
        jsoncols.fields("dest_ip", dst, null=True), jsoncols.fields("dest_port", dport, null=True),
        ['"proto":"TCP"'] * n,
        jsoncols.fields("community_id", [c if c else None for c in cids]),
        jsoncols.fields("pcap_filename", v["file"], null=True), jsoncols.fields("pcap_cnt", v["frame"], null=True),
        records])


def write_eve(df: pd.DataFrame, out: TextIO, info=None) -> None:
    compiled = _compiled_events(df)
    if compiled is None:
        out.write(_python_eve_text(df))
        return
    from .jsonl import fill_rows
    # a GuardedStream (report/output.py) takes the rows as bytes, in pieces
    rows = fill_rows(compiled[0], compiled[1], len(df), getattr(out, "write_ascii", None), compiled[2])
    if rows is not None:
        out.write(rows.decode("ascii"))


class EveSink:
    """`live`: one event per reset, flushed as it is decided (tail -F eve.json habits)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        write_eve(df, self.out)
        self.out.flush()

    def finish(self, tally=None) -> None:
        pass
