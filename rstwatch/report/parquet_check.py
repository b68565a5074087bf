"""A findings Parquet is untrusted input (issue #20 item 13): anyone can write one. Before a
report uses it, its columns must have the types `read -f parquet` writes, its values the ranges
a capture can give (times a report can draw, ports, cause names as rules name them), and its
provenance metadata only the keys and types rstwatch writes. Anything else: one line, exit 2.
The paths inside (the `file` column, the provenance inputs) are only ever text here: which of
them may be opened is decided by run_report.packet_sources, never by the data."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CaptureError

MAX_TIME = 9_000_000_000.0      # seconds since 1970: below pandas' nanosecond limit (year 2262)
MAX_TEXT = 65_536               # characters in one text value
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CAUSE = re.compile(r"[a-z][a-z0-9-]*")         # engine.model.NAME_PATTERN: a cause as a rule names it
_TEXT = ("file", "src", "dst", "sender", "cause", "rule", "summary", "conn_state", "history", "wireshark_filter")
_INTS = ("frame", "sport", "dport")
_TEXT_LISTS = ("alternatives", "remediation")


def _kind(t) -> str:
    import pyarrow as pa
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_kind(t.value_type)}>"
    return str(t)


_WANT = {**{c: {"text", "null"} for c in _TEXT}, **{c: {"int"} for c in _INTS}, "time": {"float", "int"},
         "confidence": {"float", "int"}, "evidence": {"list<int>", "list<null>", "null"},
         **{c: {"list<text>", "list<null>", "null"} for c in _TEXT_LISTS}}


def check_schema(schema, where: str) -> None:
    """The Arrow types of the contract columns, as `read -f parquet` writes them."""
    for name, kinds in _WANT.items():
        if name in schema.names:
            kind = _kind(schema.field(name).type)
            if kind not in kinds:
                raise CaptureError(where, f"not rstwatch findings: column {name} holds {kind}")
    if "errno" in schema.names:
        import pyarrow as pa
        t = schema.field("errno").type
        if not (pa.types.is_struct(t) or pa.types.is_null(t)):
            raise CaptureError(where, f"not rstwatch findings: column errno holds {t}")


def _bad(where: str, column: str, row: int, what: str) -> CaptureError:
    return CaptureError(where, f"not rstwatch findings: {column} of row {row + 1} {what}")


def check_values(df: pd.DataFrame, where: str, first: int = 0) -> None:
    """Values a capture can give: finite times a report can draw, ports and frames in range,
    cause names as rules write them, text of a bounded length. `first`: the file's row number
    of df's first row (read a batch at a time)."""
    time = pd.to_numeric(df["time"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(time) | (time < 0) | (time > MAX_TIME)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise _bad(where, "time", first + k, f"is {float(time[k])!r}, not a time a capture can hold")
    for col, lo, hi in (("frame", 0, 2**62), ("sport", 0, 65535), ("dport", 0, 65535)):
        values = df[col]
        if values.isna().any():
            raise _bad(where, col, first + int(np.flatnonzero(values.isna().to_numpy())[0]), "is missing")
        arr = values.to_numpy(dtype=np.int64)
        out = (arr < lo) | (arr > hi)
        if out.any():
            k = int(np.flatnonzero(out)[0])
            raise _bad(where, col, first + k, f"is {int(arr[k])}, out of range")
    conf = pd.to_numeric(df["confidence"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    off = ~np.isfinite(conf) | (conf < 0) | (conf > 1)
    if off.any():
        k = int(np.flatnonzero(off)[0])
        raise _bad(where, "confidence", first + k, f"is {float(conf[k])!r}, not between 0 and 1")
    for k, cause in enumerate(df["cause"]):
        if not isinstance(cause, str) or not _CAUSE.fullmatch(cause) or len(cause) > 200:
            raise _bad(where, "cause", first + k, f"is {_shown(cause)}, not a cause name (lowercase letters, digits and -)")
    for col in _TEXT:
        if col in df:
            long = df[col].map(lambda v: isinstance(v, str) and len(v) > MAX_TEXT).to_numpy(dtype=bool)
            if long.any():
                raise _bad(where, col, first + int(np.flatnonzero(long)[0]), f"is longer than {MAX_TEXT:,} characters")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def clean_meta(meta: Any, where: str) -> dict[str, Any]:
    """The provenance keys rstwatch writes, each of its type; anything else is dropped. Input
    paths stay text (shown, never opened or hashed)."""
    if not isinstance(meta, dict):
        raise CaptureError(where, "not rstwatch findings: its rstwatch metadata is not an object")
    out: dict[str, Any] = {}
    for key in ("rstwatch", "source"):
        if isinstance(meta.get(key), str):
            out[key] = meta[key][:200]
    for key in ("packets", "files", "dropped", "received"):
        v = meta.get(key)
        if _count(v):
            out[key] = v
    inputs = meta.get("inputs")
    if isinstance(inputs, list):
        out["inputs"] = [_input(f) for f in inputs[:100_000] if isinstance(f, dict) and isinstance(f.get("path"), str)]
    for key in ("warnings", "rule_dirs"):
        if isinstance(meta.get(key), list):
            out[key] = [v[:MAX_TEXT] for v in meta[key][:1000] if isinstance(v, str)]
    if isinstance(meta.get("rules"), list):
        out["rules"] = [{k: r[k][:MAX_TEXT] for k in ("id", "name", "source") if isinstance(r.get(k), str)}
                        for r in meta["rules"][:10_000] if isinstance(r, dict)]
    if isinstance(meta.get("rules_sha256"), str) and _HEX64.fullmatch(meta["rules_sha256"]):
        out["rules_sha256"] = meta["rules_sha256"]
    return out


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62


def _input(f: dict) -> dict[str, Any]:
    sha = f.get("sha256")
    return {"path": f["path"][:MAX_TEXT], "size": f["size"] if _count(f.get("size")) else None,
            "sha256": sha if isinstance(sha, str) and _HEX64.fullmatch(sha) else None,
            "packets": f["packets"] if _count(f.get("packets")) else None}
