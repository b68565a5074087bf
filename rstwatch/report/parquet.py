"""Parquet: every column of the findings (identity, verdict, text and every feature), typed, so
a report or a notebook can be made later without re-reading the captures. The file's metadata
carries how it was made (version, rules, input files with sizes and SHA-256, packets read).

Typed for the readers that sum and join (duckdb, pandas, Spark): `resets` and `connections` on
every row (1 for a per-RST finding, a flood's own counts), `ts` a UTC timestamp with its
nanoseconds (the ISO text JSON Lines writes kept as `ts_iso`), and the ids EVE and Zeek logs
carry (`flow_id`, `uid`). Reading the file back gives the table the reader made."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from ..errors import CaptureError
from .records import CONTRACT_FIELDS

META_KEY = b"rstwatch"
LIST_COLUMNS = ("alternatives", "evidence", "remediation", "sources_sample")
COUNT_COLUMNS = ("resets", "connections")
TS_TEXT = "ts_iso"                      # `ts` as JSON Lines writes it: nine digits, which duckdb's
                                        # TIMESTAMPTZ (microseconds) does not keep
DERIVED = (TS_TEXT, "flow_id", "uid")   # made on writing, dropped on reading


def provenance(info) -> dict[str, Any]:
    from .. import __version__
    from .runinfo import rules_digest, with_digests
    if info is None:
        return {"rstwatch": __version__}
    if info.carried:                         # re-saved findings keep where they first came from
        return info.carried
    return {"rstwatch": __version__, "source": info.source, "packets": info.packets, "files": info.files,
            "inputs": [f.to_dict() for f in with_digests(info.inputs)],
            "rules": [{"id": r.id, "name": r.name, "source": str(r.source)} for r in info.rules],
            "rules_sha256": rules_digest(info.rules) if info.rules else None,
            "rule_dirs": info.rule_dirs, "dropped": info.dropped, "received": info.received,
            "warnings": info.warnings}


def write_parquet(df: pd.DataFrame, out: BinaryIO, info=None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    frame = _for_readers(df.copy())
    for col in frame.columns:
        if frame[col].dtype == object:         # mixed ints and NaN (flood rows): one arrow type
            frame[col] = _uniform(frame[col])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "sources_sample" in table.column_names and pa.types.is_null(table.schema.field("sources_sample").type):
        at = table.column_names.index("sources_sample")        # no flood in this file: typed all the same
        table = table.set_column(at, "sources_sample", pa.nulls(len(table), pa.list_(pa.string())))
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(provenance(info)).encode()
    pq.write_table(table.replace_schema_metadata(meta), out, compression="zstd")


def _for_readers(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts on every row, a real timestamp, the per-connection ids."""
    from ..interop import flow_id_column, uid_column
    for col in COUNT_COLUMNS:             # sum(resets) is every reset: a per-RST finding is one
        values = pd.to_numeric(frame[col], errors="coerce") if col in frame else pd.Series(1, index=frame.index)
        frame[col] = values.fillna(1).astype("int64")
    if "sources_sample" not in frame:
        frame["sources_sample"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if "ts" in frame and not isinstance(frame["ts"].dtype, pd.DatetimeTZDtype):
        text = frame["ts"].astype(object)
        frame["ts"] = pd.to_datetime(text, format="%Y-%m-%dT%H:%M:%S.%fZ", utc=True).dt.as_unit("ns")
        frame[TS_TEXT] = text
    frame["flow_id"] = pd.array(flow_id_column(frame), dtype="Int64")
    frame["uid"] = pd.Series(uid_column(frame), index=frame.index, dtype=object)
    return frame


def _as_read(df: pd.DataFrame) -> pd.DataFrame:
    """Undo _for_readers: the table as the reader made it, whose JSON Lines are byte for byte
    those of the first run (counts only on flood rows, `ts` as ISO text)."""
    if "sources_sample" in df:                # only a flood row has a sample of its sources
        flood = df["sources_sample"].map(lambda v: not _missing(v)).astype(bool)
        for col in COUNT_COLUMNS:
            if col in df:
                df[col] = df[col].astype("Int64").where(flood, pd.NA)
    if "ts" in df and isinstance(df["ts"].dtype, pd.DatetimeTZDtype):
        from ..interop import iso_ns_column
        df["ts"] = df[TS_TEXT].astype(object) if TS_TEXT in df else \
            pd.Series(iso_ns_column(df["ts"].dt.as_unit("ns").astype("int64")), index=df.index, dtype=object)
    return df.drop(columns=[c for c in DERIVED if c in df])


def _uniform(col: pd.Series) -> pd.Series:
    values = [v for v in col if not _missing(v)]
    if values and all(isinstance(v, bool) for v in values):
        return col.astype("boolean")
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return col.astype("Int64")
    return col


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Findings saved by `rstwatch read -o x.parquet`, as the reader made them (lists as lists)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise CaptureError(str(path), "no such file") from None
    except (pa.ArrowException, OSError) as exc:
        raise CaptureError(str(path), f"not a readable Parquet file ({exc})") from None
    meta = (table.schema.metadata or {}).get(META_KEY)
    missing = [c for c in CONTRACT_FIELDS if c not in table.column_names]
    if meta is None or missing:
        raise CaptureError(str(path), "Parquet file without rstwatch findings"
                           + (f" (missing columns: {', '.join(missing[:4])})" if missing else ""))
    df = _as_read(table.to_pandas())
    for col in LIST_COLUMNS:
        if col in df:
            df[col] = [v.tolist() if hasattr(v, "tolist") else v for v in df[col]]
    if "errno" in df:
        df["errno"] = [{k: list(x) if x is not None else [] for k, x in (e or {}).items()} for e in df["errno"]]
    return df, json.loads(meta)


def is_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False
