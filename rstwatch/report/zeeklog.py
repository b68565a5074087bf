"""Zeek logs: `rstwatch.log` in Zeek's TSV form (#separator ... #fields/#types header, `-` for
unset, `(empty)` for empty, \\xNN escapes) and in Zeek's JSON form (one object per line, dotted
`id.*` names, unset fields left out). zeek-cut, Zeek's log readers and the Zeek ingest of
Splunk/Elastic/Vector read them like any Zeek log; `community_id` and the `id.*` 4-tuple (the
originator is the side that opened the connection) join them to conn.log. `uid`, second as in
every Zeek log, is the same for every finding of one connection (rstwatch/interop.py)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

from ..interop import uid_column
from .records import iter_records

if TYPE_CHECKING:       # tables are given: writing none (a capture without RST) needs no pandas
    import pandas as pd

PATH = "rstwatch"
UNSET, EMPTY, SEP, SET_SEP = "-", "(empty)", "\t", ","


def _ends(rec: dict) -> tuple[tuple[str | None, int], tuple[str | None, int], bool | None]:
    """(originator, responder, the RST came from the originator) as Zeek would orient them."""
    src = None if rec["src"] == "*" else rec["src"]
    a, b = (src, rec["sport"]), (rec["dst"], rec["dport"])
    if rec["sender"] == "server":
        return b, a, False
    return a, b, (True if rec["sender"] == "client" else None)


def _ts(rec: dict) -> float:
    iso = rec.get("ts")
    if iso:           # nanoseconds -> Zeek's microsecond time, from the exact digits
        sec = datetime.fromisoformat(iso[:19] + "+00:00").timestamp()
        return round(sec + int(iso[20:29]) / 1e9, 6)
    return round(float(rec["time"]), 6)


# name, Zeek type, value from a JSON Lines record
FIELDS: list[tuple[str, str, Callable[[dict], Any]]] = [
    ("ts", "time", _ts),
    ("uid", "string", lambda r: r.get("uid")),
    ("community_id", "string", lambda r: r.get("community_id")),
    ("id.orig_h", "addr", lambda r: _ends(r)[0][0]),
    ("id.orig_p", "port", lambda r: _ends(r)[0][1]),
    ("id.resp_h", "addr", lambda r: _ends(r)[1][0]),
    ("id.resp_p", "port", lambda r: _ends(r)[1][1]),
    ("proto", "enum", lambda r: "tcp"),
    ("rst_orig", "bool", lambda r: _ends(r)[2]),
    ("file", "string", lambda r: r["file"]),
    ("frame", "count", lambda r: r["frame"]),
    ("sender", "string", lambda r: r["sender"]),
    ("cause", "string", lambda r: r["cause"]),
    ("rule", "string", lambda r: r["rule"]),
    ("confidence", "double", lambda r: r["confidence"]),
    ("alternatives", "vector[string]", lambda r: r["alternatives"]),
    ("summary", "string", lambda r: r["summary"]),
    ("errno_receiver", "vector[string]", lambda r: (r.get("errno") or {}).get("receiver", [])),
    ("errno_sender", "vector[string]", lambda r: (r.get("errno") or {}).get("sender", [])),
    ("evidence", "vector[count]", lambda r: r["evidence"]),
    ("conn_state", "string", lambda r: r["conn_state"] or None),
    ("history", "string", lambda r: r["history"] or None),
    ("wireshark_filter", "string", lambda r: r["wireshark_filter"]),
    ("title", "string", lambda r: r["title"]),
    ("remediation", "vector[string]", lambda r: r["remediation"]),
    ("sender_inferred", "bool", lambda r: r["sender_inferred"]),
    ("resets", "count", lambda r: r.get("resets", 1)),
    ("connections", "count", lambda r: r.get("connections", 1)),
    ("sources_sample", "vector[addr]", lambda r: r.get("sources_sample")),
]


def records(df: pd.DataFrame) -> Iterator[dict]:
    """JSON Lines records with the connection's `uid` (unset for a flood: many connections)."""
    for rec, uid in zip(iter_records(df), uid_column(df)):
        rec["uid"] = uid
        yield rec


@lru_cache(maxsize=4096)          # titles, remediation, causes and file names repeat on every row
def _escape(text: str, in_container: bool) -> str:
    if text.isprintable() and "\\" not in text and "\t" not in text and not (in_container and SET_SEP in text) \
            and text not in (UNSET, EMPTY):
        return text                 # the common case, without a loop over characters in Python
    out = []
    for ch in text:
        if ch == "\\" or not ch.isprintable() or ch == "\t" or (in_container and ch == SET_SEP):
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    s = "".join(out)
    if s in (UNSET, EMPTY):      # a value that reads as a marker is escaped like Zeek does
        s = "".join(f"\\x{b:02x}" for b in s.encode())
    return s


def _scalar(value: Any, kind: str, in_container: bool = False) -> str:
    if kind == "bool":
        return "T" if value else "F"
    if kind == "time":
        return f"{value:.6f}"
    if kind == "double":
        return f"{float(value):.6f}".rstrip("0").rstrip(".") if value != int(value) else f"{float(value):.1f}"
    if kind in ("count", "port", "int"):
        return str(int(value))
    return _escape(str(value), in_container) if value != "" else EMPTY


def tsv_value(value: Any, kind: str) -> str:
    if value is None:
        return UNSET
    if kind.startswith(("vector[", "set[")):
        inner = kind[kind.index("[") + 1:-1]
        return SET_SEP.join(_scalar(v, inner, True) for v in value) if value else EMPTY
    return _scalar(value, kind)


def header(opened: datetime) -> list[str]:
    return ["#separator \\x09", f"#set_separator{SEP}{SET_SEP}", f"#empty_field{SEP}{EMPTY}",
            f"#unset_field{SEP}{UNSET}", f"#path{SEP}{PATH}", f"#open{SEP}{opened:%Y-%m-%d-%H-%M-%S}",
            "#fields" + SEP + SEP.join(f[0] for f in FIELDS), "#types" + SEP + SEP.join(f[1] for f in FIELDS)]


def tsv_lines(df: pd.DataFrame) -> Iterator[str]:
    for rec in records(df):
        yield SEP.join(tsv_value(get(rec), kind) for _, kind, get in FIELDS)


def write_zeek(df: pd.DataFrame, out: TextIO, info=None) -> None:
    now = datetime.now(timezone.utc)
    out.write("\n".join(header(now)) + "\n")
    for line in tsv_lines(df):
        out.write(line + "\n")
    out.write(f"#close{SEP}{datetime.now(timezone.utc):%Y-%m-%d-%H-%M-%S}\n")


def json_record(rec: dict) -> dict:
    out = {}
    for name, kind, get in FIELDS:
        value = get(rec)
        if value is not None:
            out[name] = value
    return out


def write_zeek_json(df: pd.DataFrame, out: TextIO, info=None) -> None:
    for rec in records(df):
        out.write(json.dumps(json_record(rec), separators=(",", ":")) + "\n")


class ZeekSink:
    """`live`: the header at the start, one line per reset as it is decided, #close at the end."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        self.out.write("\n".join(header(datetime.now(timezone.utc))) + "\n")
        self.out.flush()

    def write(self, df: pd.DataFrame) -> None:
        for line in tsv_lines(df):
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self, tally=None) -> None:
        self.out.write(f"#close{SEP}{datetime.now(timezone.utc):%Y-%m-%d-%H-%M-%S}\n")
        self.out.flush()


class ZeekJsonSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        write_zeek_json(df, self.out)
        self.out.flush()

    def finish(self, tally=None) -> None:
        pass
