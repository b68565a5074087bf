"""Zeek logs: `rstwatch.log` in Zeek's TSV form (#separator ... #fields/#types header, `-` for
unset, `(empty)` for empty, \\xNN escapes) and in Zeek's JSON form (one object per line, dotted
`id.*` names, unset fields left out). zeek-cut, Zeek's log readers and the Zeek ingest of
Splunk/Elastic/Vector read them like any Zeek log; `community_id` and the `id.*` 4-tuple (the
originator is the side that opened the connection) join them to conn.log. `uid`, second as in
every Zeek log, is the same for every finding of one connection (rstwatch/interop.py)."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from functools import lru_cache
from itertools import repeat
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

import numpy as np

from .. import columns
from ..interop import uid_column
from .records import iter_records

if TYPE_CHECKING:       # DataFrames or, from `read`, columns.Table: writing them needs no pandas
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


def reference_tsv_lines(df: pd.DataFrame) -> Iterator[str]:
    """The lines a record at a time, through FIELDS (the tests' oracle for tsv_text)."""
    for rec in records(df):
        yield SEP.join(tsv_value(get(rec), kind) for _, kind, get in FIELDS)


def json_record(rec: dict) -> dict:
    out = {}
    for name, kind, get in FIELDS:
        value = get(rec)
        if value is not None:
            out[name] = value
    return out


def reference_json_lines(df: pd.DataFrame) -> Iterator[str]:
    """The JSON lines a record at a time (the tests' oracle for json_text)."""
    for rec in records(df):
        yield json.dumps(json_record(rec), separators=(",", ":"))


# ---- a column at a time: what FIELDS gives from each record, for the whole table at once ----
# (a record dict per row and a call per field cost ~45 us a finding: 100,000 resets, 4.5 s)

def _field_values(df: pd.DataFrame | columns.Table) -> list[list]:
    """Each of FIELDS' values for every row, as its getter gives them from the row's record."""
    from .records import OPTIONAL_FIELDS, column_values
    n = len(df)
    light = isinstance(df, columns.Table)

    def col(name: str, default=None) -> list:
        if name not in df.columns:
            return [default] * n
        column = df[name]
        # lists and dicts made plain once per object, so rows sharing one (a rule's remediation,
        # a pattern's alternatives) share the result and its text is made once (_each_once);
        # lists of plain ints (evidence frames, each row its own) are plain already
        objects = isinstance(column, (list, columns.Meta, columns.Objects)) if light else column.dtype == object
        values = columns.tolist(column) if light else column.tolist() if objects else column_values(column)
        if objects and not _plain_already(values):
            values = _plain_by_object(values)
        if name in OPTIONAL_FIELDS:         # as iter_records: left out when missing, floats as ints
            if None in values and all(v is None for v in values):     # a column no row sets (no flood)
                return [default] * n
            values = [default if v is None or (isinstance(v, float) and v != v) else
                      int(v) if isinstance(v, float) else v for v in values]
        return values

    src, sport, dst, dport, sender = (col(c) for c in ("src", "sport", "dst", "dport", "sender"))
    by_server = [s == "server" for s in sender]
    src = [None if a == "*" else a for a in src]
    errno = col("errno")
    blank = {}
    empty = []

    def errno_side(side: str) -> list:
        return [(e or blank).get(side, empty) for e in errno]

    getters: dict[str, Callable[[], list]] = {
        "ts": lambda: _ts_column(col("ts"), col("time")),
        "uid": lambda: uid_column(df),
        "community_id": lambda: col("community_id"),
        "id.orig_h": lambda: [d if s else a for s, a, d in zip(by_server, src, dst)],
        "id.orig_p": lambda: [q if s else p for s, p, q in zip(by_server, sport, dport)],
        "id.resp_h": lambda: [a if s else d for s, a, d in zip(by_server, src, dst)],
        "id.resp_p": lambda: [p if s else q for s, p, q in zip(by_server, sport, dport)],
        "proto": lambda: ["tcp"] * n,
        "rst_orig": lambda: [False if s == "server" else True if s == "client" else None for s in sender],
        "errno_receiver": lambda: errno_side("receiver"),
        "errno_sender": lambda: errno_side("sender"),
        "conn_state": lambda: [v or None for v in col("conn_state")],
        "history": lambda: [v or None for v in col("history")],
        "resets": lambda: col("resets", 1),
        "connections": lambda: col("connections", 1),
    }
    return [getters[name]() if name in getters else col(name) for name, _, _ in FIELDS]


_PLAIN_SCALARS = frozenset((str, int, bool, type(None)))


def _plain_already(values: list) -> bool:
    """Whether records._plain leaves every value as it is: texts, integers, flags, None (an
    object column of texts: uids, ISO times, Community IDs) and lists of plain ints (evidence
    frames, each row its own)."""
    from .jsonl import plain_int_lists, value_types
    if value_types is None:
        return False
    return value_types(values) <= _PLAIN_SCALARS or plain_int_lists(values)


def _plain_by_object(values: list) -> list:
    """records.column_values of an object column, each distinct object converted once."""
    from .jsonl import by_identity
    from .records import _plain
    codes, distinct = by_identity(values)
    plain = [_plain(v) for v in distinct]
    return [plain[k] for k in codes.tolist()]


def _ts_column(isos: list, times: list) -> list:
    """_ts for every row, the seconds of each distinct ISO second parsed once."""
    whole = _ts_of_iso_ns_texts(isos)
    if whole is not None:
        return whole
    seconds: dict[str, float] = {}
    out = []
    for iso, t in zip(isos, times):
        if iso:
            head = iso[:19]
            sec = seconds.get(head)
            if sec is None:
                sec = seconds[head] = datetime.fromisoformat(head + "+00:00").timestamp()
            out.append(round(sec + int(iso[20:29]) / 1e9, 6))
        else:
            out.append(round(float(t), 6))
    return out


def _ts_of_iso_ns_texts(isos: list) -> list[float] | None:
    """_ts_column when every value is a time as interop.iso_ns_column writes it
    ('2026-11-21T06:19:12.737123456Z'), else None: seconds and nanoseconds from
    interop.iso_parts, the sum made by numpy's float arithmetic (Python's, value for value) and
    rounded exactly as round() does (microseconds), so every value is the one _ts gives."""
    from ..interop import iso_parts
    parts = iso_parts(isos)
    if parts is None:
        return None
    seconds, nanos = parts
    times = seconds + nanos / 1e9
    parts = microseconds(times)
    if parts is not None:                 # round(t, 6) exactly: the decimal's nearest float
        whole, micros = parts
        return ((whole * 10**6 + micros) / 1e6).tolist()
    return list(map(round, times.tolist(), repeat(6, len(isos))))


# A float at least 2**22 (a time after 1970-02-18) has at most 30 bits after its binary point
_FRACTION_BITS = 30
_MIN_EXACT, _MAX_EXACT = 2.0 ** 22, 9e9      # below 2**53 microseconds: (s * 10**6 + u) exact


def microseconds(times: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(s, u), int64 arrays, such that for every t of `times` f"{t:.6f}" is f"{s}.{u:06d}" and
    round(t, 6) is (s * 10**6 + u) / 1e6: each float's exact binary value rounded half to even at
    its sixth decimal, as Python's formatting and round() do, in integer arithmetic (t's fraction
    is k / 2**30 exactly, so its microseconds are k * 15625 / 2**24). None unless every t is in
    [2**22, 9e9) (a time from 1970-02-18 to 2255), where that holds."""
    if not len(times) or not ((times >= _MIN_EXACT) & (times < _MAX_EXACT)).all():
        return None
    whole = np.floor(times)
    k = (times - whole) * float(2 ** _FRACTION_BITS)      # both exact: a difference within one binade, a power of two
    if not (k == np.floor(k)).all():
        return None
    scaled = k.astype(np.int64) * 15625                   # the fraction times 10**6, times 2**24
    quotient, rest = scaled >> 24, scaled & (2 ** 24 - 1)
    half = 2 ** 23
    micros = quotient + ((rest > half) | ((rest == half) & (quotient & 1 == 1)))
    whole = whole.astype(np.int64) + (micros == 10**6)
    return whole, np.where(micros == 10**6, 0, micros)


def time_texts(values: list) -> list[str] | None:
    """f"{v:.6f}" of every value, a column of floats at once (microseconds); None when the
    column holds anything else or a float outside microseconds' range."""
    from .jsonl import value_types
    if not values or value_types is None or value_types(values) != {float}:
        return None
    parts = microseconds(np.array(values, np.float64))
    if parts is None:
        return None
    return micro_texts(*parts, arrow="pyarrow" in sys.modules)


def micro_texts(whole: np.ndarray, micros: np.ndarray, arrow: bool) -> list[str]:
    """f"{w}.{u:06d}" of each pair: by Arrow's casts when pyarrow is loaded already, else in
    Python (importing it, ~40 ms with pandas, costs more than these ~0.4 us a text)."""
    if not arrow:
        return [f"{w}.{u:06d}" for w, u in zip(whole.tolist(), micros.tolist())]
    import pyarrow as pa
    import pyarrow.compute as pc
    whole, micros = (pc.cast(pa.array(p), pa.string()) for p in (whole, micros))
    return pc.binary_join_element_wise(whole, pc.utf8_lpad(micros, 6, "0"), ".").to_pylist()


def _each_once(values: list, make: Callable[[Any], str]) -> list[str]:
    """make(v) for every value, once per distinct object (a rule's lists and errno are shared by
    its rows) or, for texts and numbers, per distinct value of one type (1 and True are equal
    keys, and written apart)."""
    from .jsonl import by_identity, value_types
    kinds = value_types(values) if value_types is not None else None
    if kinds is not None and kinds <= {list, dict, type(None)}:
        codes, distinct = by_identity(values)         # objects numbered in C
        texts = [make(v) for v in distinct]
        return [texts[k] for k in codes.tolist()]
    if kinds is not None and len(kinds) == 1:         # one type: keyed by the value itself
        once = {v: make(v) for v in dict.fromkeys(values)}
        return list(map(once.__getitem__, values))
    done: dict = {}
    out = []
    for v in values:
        t = type(v)
        k = id(v) if t is list or t is dict else v if t is str else (t, v)
        text = done.get(k)
        if text is None:
            text = done[k] = make(v)
        out.append(text)
    return out


_MARKERS = (UNSET, EMPTY)
# ASCII's printable characters: what str.isprintable accepts of ASCII (not the controls, DEL)
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def _printable(text: str) -> bool:
    """text.isprintable(), for ASCII text by deleting its printable bytes in C (~0.8 ns a
    character against ~2 for isprintable's per-character lookup; a column's texts joined are
    megabytes)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return text.isprintable()


def _plain_texts(values: list) -> list[str] | None:
    """A column of texts (or None) as _scalar writes them, when no text holds anything _escape
    would change (one test over the joined column); else None."""
    present = [v for v in values if v is not None] if None in values else values
    try:
        joined = " ".join(present)
    except TypeError:                   # not all texts
        return None
    if not _printable(joined) or "\\" in joined:
        return None
    if present is values and "" not in values and UNSET not in values and EMPTY not in values:
        return values                   # every one written as it is
    return [UNSET if v is None else EMPTY if v == "" else _escape(v, False) if v in _MARKERS else v for v in values]


def _column_texts(values: list, kind: str) -> list[str]:
    """tsv_value(v, kind) for every value of one column."""
    from .jsonl import plain_int_lists, value_types
    if kind == "time":
        texts = time_texts(values)
        return texts if texts is not None else [UNSET if v is None else f"{v:.6f}" for v in values]
    if kind in ("count", "port"):
        if value_types is not None and value_types(values) == {int}:
            return list(map(int.__repr__, values))
        return [UNSET if v is None else str(int(v)) for v in values]
    if kind == "bool":
        return [UNSET if v is None else "T" if v else "F" for v in values]
    if kind in ("string", "addr", "enum"):
        texts = _plain_texts(values)
        if texts is not None:
            return texts
    if kind == "vector[count]":
        if plain_int_lists is not None and plain_int_lists(values):        # evidence frames
            from .joinrows import int_lists_joined
            return int_lists_joined(values, SET_SEP, EMPTY)
        return [UNSET if v is None else EMPTY if not v else SET_SEP.join([str(int(x)) for x in v]) for v in values]
    return _each_once(values, lambda v: tsv_value(v, kind))


def tsv_text(df: pd.DataFrame) -> str:
    """The log's lines for `df` (no header), a column at a time: byte for byte
    reference_tsv_lines (tests/test_interop.py)."""
    if not len(df):
        return ""
    from .joinrows import delimited
    return delimited([_column_texts(values, kind) for (_, kind, _), values in zip(FIELDS, _field_values(df))], SEP)


def json_text(df: pd.DataFrame) -> str:
    """Zeek's JSON lines for `df`, a column at a time (report/jsoncols.py), unset fields left
    out: byte for byte reference_json_lines. Joined in C when the filler was built."""
    rows = _json_rows(df)
    return rows.decode("ascii") if type(rows) is bytes else rows


def _json_rows(df: pd.DataFrame, sink=None) -> str | bytes | None:
    """json_text, as ASCII bytes when the compiled filler made them; with `sink` (a callable
    taking ASCII bytes), the compiled filler hands it the rows in pieces and None is returned."""
    from . import jsoncols
    from .jsonl import _string, fill_rows
    if not len(df):
        return ""
    values = _field_values(df)
    if fill_rows is not None and None not in values[0]:      # the first field opens each object: never left out
        prefixes = [(("{" if k == 0 else ",") + _string(name) + ":").encode("ascii") for k, (name, _, _) in enumerate(FIELDS)]
        return fill_rows(prefixes, [jsoncols.typed(v) for v in values], len(df), sink,
                         [k > 0 for k in range(len(FIELDS))])
    return jsoncols.objects([jsoncols.fields(name, v) for (name, _, _), v in zip(FIELDS, values)])


def write_zeek(df: pd.DataFrame, out: TextIO, info=None) -> None:
    now = datetime.now(timezone.utc)
    out.write("\n".join(header(now)) + "\n")
    out.write(tsv_text(df))
    out.write(f"#close{SEP}{datetime.now(timezone.utc):%Y-%m-%d-%H-%M-%S}\n")


def write_zeek_json(df: pd.DataFrame, out: TextIO, info=None) -> None:
    rows = _json_rows(df, getattr(out, "write_ascii", None))     # a GuardedStream (report/output.py) takes bytes
    if rows:
        out.write(rows.decode("ascii") if type(rows) is bytes else rows)


class ZeekSink:
    """`live`: the header at the start, one line per reset as it is decided, #close at the end."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def start(self, what: str) -> None:
        self.out.write("\n".join(header(datetime.now(timezone.utc))) + "\n")
        self.out.flush()

    def write(self, df: pd.DataFrame) -> None:
        self.out.write(tsv_text(df))
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
