"""Parquet: every column of the findings (identity, verdict, text and every feature), typed, so
a report or a notebook can be made later without re-reading the captures. The file's metadata
carries how it was made (version, rules, input files with sizes and SHA-256, packets read)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from ..errors import CaptureError
from .records import CONTRACT_FIELDS

META_KEY = b"rstwatch"
LIST_COLUMNS = ("alternatives", "evidence", "remediation", "sources_sample")


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
    frame = df.copy()
    for col in frame.columns:
        if frame[col].dtype == object:         # mixed ints and NaN (flood rows): one arrow type
            frame[col] = _uniform(frame[col])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(provenance(info)).encode()
    pq.write_table(table.replace_schema_metadata(meta), out, compression="zstd")


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
    df = table.to_pandas()
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
