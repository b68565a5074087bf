"""Suricata EVE-shaped JSON: one event per finding, so pipelines that ingest eve.json (Filebeat,
Logstash, Vector, Splunk, jq recipes) take rstwatch's findings as they are.

The envelope uses Suricata's field names and formats (`timestamp` with microseconds and a
+0000 offset, `src_ip`, `dest_port`, `proto: "TCP"`, `community_id`, `pcap_filename`,
`pcap_cnt` = the frame number); the finding itself, every JSON Lines field, sits under
`rstwatch`, as an alert sits under `alert`. `flow_id` is what Suricata's consumers group a
flow's events by: the same integer for every finding of one connection (rstwatch/interop.py)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator, TextIO

from ..interop import community_id, flow_id_column
from .records import iter_records

if TYPE_CHECKING:       # tables are given: writing none (a capture without RST) needs no pandas
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


def write_eve(df: pd.DataFrame, out: TextIO, info=None) -> None:
    for event in iter_events(df):
        out.write(json.dumps(event, separators=(",", ":")) + "\n")


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
