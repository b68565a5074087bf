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
from typing import Any, BinaryIO, Iterator

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


# Columns a table may hold only as nulls (no flood, no tunnel, no kernel reasons in this batch):
# their type when the batch that opens the file does not show it. Anything else unseen is text.
NULL_TYPES = {"sources_sample": "list<string>", "alternatives": "list<string>", "evidence": "list<int64>",
              "remediation": "list<string>", "tunnel": "string", "community_id": "string", "title": "string", "sender_inferred": "bool", "ts_iso": "string", "uid": "string",
              "follows_frame": "int64", "conn_first_frame": "int64", "conn_last_frame": "int64",
              "conn_id": "int64", "conn_lineage": "int64", "kernel_match": "string", "kernel_reason": "string",
              "kernel_state": "string", "kernel_context": "string", "kernel_pid": "int64",
              "kernel_comm": "string", "decided_by": "string", "wire_cause": "string", "kernel_agrees": "bool"}
# Columns that hold a value per reset or per connection (times, ids, frame numbers, the filter
# and summary naming them): a dictionary of them is as large as the column and Parquet falls back
# to plain pages anyway, after the work. Written plain: ~20% less CPU writing, a smaller file.
PER_ROW = frozenset(("ts", TS_TEXT, "time", "uid", "community_id", "flow_id", "frame", "follows_frame",
                     "conn_id", "conn_lineage", "conn_first_frame", "conn_last_frame", "evidence",
                     "wireshark_filter", "summary"))
ROW_GROUP = 16_384                      # rows a row group holds: buffered as Arrow (~columns), not pandas


def write_parquet(df: pd.DataFrame, out: BinaryIO, info=None) -> None:
    sink = ParquetSink(out, info)
    sink.start("read")
    sink.write(df)
    sink.finish()


class ParquetSink:
    """Findings tables written as they come (`read` streams its spilled batches through this):
    one schema for the whole file, fixed by the first table (a column that is all null there
    takes its type from NULL_TYPES), every later table cast to it; rows buffered as Arrow and
    written a row group at a time."""

    def __init__(self, out: BinaryIO, info=None) -> None:
        self.out, self.info = out, info
        self.writer = self.schema = None
        self.pending: list = []
        self.rows = 0

    def start(self, what: str = "read") -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        table = self._arrow(df)
        if self.schema is None:
            self.schema = _typed(table)
        self.pending.append(_conform(table, self.schema))
        self.rows += len(table)
        if self.rows >= ROW_GROUP:
            self._flush()

    def finish(self, tally=None) -> None:
        if self.schema is None:                 # no findings at all: an empty file with the contract columns
            self.write(pd.DataFrame({c: pd.Series(dtype=object) for c in CONTRACT_FIELDS}))
        self._flush()
        self.writer.close()

    def _arrow(self, df: pd.DataFrame):
        import pyarrow as pa
        frame = _for_readers(df.copy())
        declared = _declared_dtypes()
        made: list[str] = []
        for col, values in list(frame.items()):    # each column taken once (pandas makes a Series a time)
            want = declared.get(col)
            if want is not None:                   # the same pandas type in every table of the file
                if str(values.dtype) != want:
                    frame[col] = values.astype(want)
            elif col in NULL_TYPES and values.isna().all():
                frame[col] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
            elif values.dtype == object:           # mixed ints and NaN (flood rows): one arrow type
                values = frame[col] = _uniform(values)
                if isinstance(values.dtype, pd.ArrowDtype):     # lists and dicts, made Arrow
                    made.append(col)
        table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)   # threads: more CPU, not less
        return _as_object_columns(table, made)

    def _with_meta(self):
        meta = dict(self.schema.metadata or {})
        meta[META_KEY] = json.dumps(provenance(self.info)).encode()
        return self.schema.with_metadata(meta)

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        if not self.pending:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.out, self._with_meta(), compression="zstd",
                                           use_dictionary=[path for f in self.schema if f.name not in PER_ROW
                                                           for path in _leaf_paths(f.name, f.type)])
        table = pa.concat_tables(self.pending)
        self.pending, self.rows = [], 0
        self.writer.write_table(table.replace_schema_metadata(self.writer.schema.metadata), row_group_size=ROW_GROUP)


def _leaf_paths(path: str, t) -> list[str]:
    """The Parquet column paths of an Arrow field (what use_dictionary names): a list's values
    are `path.list.element`, a struct's fields `path.name`."""
    import pyarrow as pa
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _leaf_paths(f"{path}.list.element", t.value_type)
    if pa.types.is_struct(t):
        return [leaf for i in range(t.num_fields) for leaf in _leaf_paths(f"{path}.{t.field(i).name}", t.field(i).type)]
    return [path]


_NULLABLE = {"int64": "Int64", "bool": "boolean"}


def _declared_dtypes() -> dict[str, str]:
    """Pandas types fixed for the whole file (a column's type in the file's pandas metadata is
    the first table's): every feature as the registry declares it, NULL_TYPES' ints and bools
    nullable (a flood row has no connection, so no frame numbers)."""
    from ..features.registry import FEATURES, PANDAS_DTYPE
    out = {name: PANDAS_DTYPE[f.kind] for name, f in FEATURES.items()}
    out.update({name: _NULLABLE[kind] for name, kind in NULL_TYPES.items() if kind in _NULLABLE})
    out.update({"sport": "Int64", "dport": "Int64"})
    return out


def _typed(table):
    """The first table's schema, where a type it could not show is filled in: a column that is
    all null there (a flood's sample in a table of single resets, a tunnel in a plain capture)
    from NULL_TYPES, and lists that were all empty (no alternatives) as lists of text."""
    import pyarrow as pa
    named = {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_(), "list<string>": pa.list_(pa.string()),
             "list<int64>": pa.list_(pa.int64())}
    fields = []
    for f, col in zip(table.schema, table.columns):
        if f.name in NULL_TYPES and col.null_count == len(col):
            f = f.with_type(named[NULL_TYPES[f.name]])
        elif f.name in NULL_TYPES and _has_null(f.type):
            f = f.with_type(named[NULL_TYPES[f.name]])
        else:
            f = f.with_type(_no_null(f.type))
        fields.append(f)
    return pa.schema(fields, metadata=table.schema.metadata)


def _has_null(t) -> bool:
    import pyarrow as pa
    return pa.types.is_null(t) or any(_has_null(t.field(i).type) for i in range(t.num_fields))


def _no_null(t):
    """A type with `null` (nothing seen) made text at any depth (errno's empty lists), and
    pandas' large strings made the plain strings readers expect."""
    import pyarrow as pa
    if pa.types.is_null(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_no_null(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_no_null(t.field(i).type)) for i in range(t.num_fields)])
    return t


def _conform(table, schema):
    """`table` with the file's schema: all-null columns made of the right type, others cast."""
    import pyarrow as pa
    if table.schema.equals(schema, check_metadata=False):
        return table
    columns = []
    for f, col in zip(schema, table.columns):
        if col.type != f.type:
            try:
                col = pa.nulls(len(col), f.type) if col.null_count == len(col) else col.cast(f.type)
            except pa.ArrowException as exc:       # a bug, but one that names the column
                raise TypeError(f"findings column {f.name}: {col.type} cannot be written as {f.type}") from exc
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def _for_readers(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts on every row, a real timestamp, the per-connection ids."""
    from ..interop import flow_id_and_uid_columns
    for col in COUNT_COLUMNS:             # sum(resets) is every reset: a per-RST finding is one
        values = pd.to_numeric(frame[col], errors="coerce") if col in frame else pd.Series(1, index=frame.index)
        frame[col] = values.fillna(1).astype("int64")
    if "sources_sample" not in frame:
        frame["sources_sample"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if "ts" in frame and not isinstance(frame["ts"].dtype, pd.DatetimeTZDtype):
        text = frame["ts"].astype(object)
        frame["ts"] = _timestamps(text)
        frame[TS_TEXT] = text
    flow_ids, uids = flow_id_and_uid_columns(frame)
    frame["flow_id"] = pd.array(flow_ids, dtype="Int64")
    frame["uid"] = pd.Series(uids, index=frame.index, dtype=object)
    return frame


def _timestamps(text: pd.Series) -> pd.Series:
    """The ISO texts of `ts` as UTC nanosecond timestamps: read from their bytes where every text
    is written as interop.iso_ns_column writes them (pandas' strptime took ~0.7 us a row), else
    by pandas, which says what is wrong with a text."""
    from ..interop import ns_of_iso_texts
    ns = ns_of_iso_texts(text.tolist())
    if ns is not None:
        return pd.Series(ns.view("M8[ns]"), index=text.index).dt.tz_localize("UTC")
    return pd.to_datetime(text, format="%Y-%m-%dT%H:%M:%S.%fZ", utc=True).dt.as_unit("ns")


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


_NUMBER_OR_MISSING = frozenset((bool, int, float, type(None)))


def _uniform(col: pd.Series) -> pd.Series:
    """An object column of flags or of ints (with missing values) as one nullable type."""
    from .jsonl import value_types
    values = col.tolist()
    kinds = value_types(values) if value_types is not None else set(map(type, values))
    if kinds <= _CONTAINERS:                                    # lists, dicts: Arrow, once per object
        made = _containers(col)
        return col if made is None else made
    if not kinds <= _NUMBER_OR_MISSING | {type(pd.NA)}:        # texts: as they are
        return col
    values = [v for v in values if not _missing(v)]
    if values and all(isinstance(v, bool) for v in values):
        return col.astype("boolean")
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return col.astype("Int64")
    return col


_CONTAINERS = frozenset((list, dict, type(None)))


def _containers(col: pd.Series) -> pd.Series | None:
    """An object column of lists and dicts (or None) as the Arrow array pyarrow would make of
    it, each distinct object converted once (a rule's remediation, alternatives and errno are
    shared by its rows; pyarrow converted them row by row, ~0.3-0.5 us a row each); evidence
    frames, each row its own list of ints, flattened at once. None for any other column."""
    import pyarrow as pa
    from .jsonl import by_identity, plain_int_lists, value_types
    values = col.tolist()
    kinds = value_types(values) if value_types is not None and values else None
    if kinds is None or not kinds <= _CONTAINERS:
        return None
    array = _int_lists(values) if kinds == {list} and plain_int_lists(values) else None
    if array is None:
        codes, distinct = by_identity(values)
        try:
            array = pa.array(distinct, from_pandas=True)
        except (pa.ArrowException, OverflowError):   # pyarrow's from_pandas says what, naming the column
            return None
        array = array.take(pa.array(codes)) if len(distinct) < len(values) else array
    return pd.Series(pd.arrays.ArrowExtensionArray(array), index=col.index)


def _int_lists(values: list):
    """A list<int64> array of lists of plain ints, from their lengths and their values flattened;
    None when a value needs more than 64 bits or no list holds a value (pyarrow's inference
    decides then: lists all empty are list<null> to it)."""
    import numpy as np
    import pyarrow as pa
    from itertools import chain
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    total = int(lengths.sum())
    if not total or total >= 2**31:         # none, or more than a list array's 32-bit offsets hold
        return None
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    try:
        flat = np.fromiter(chain.from_iterable(values), np.int64, total)
    except OverflowError:
        return None
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def _as_object_columns(table, names: list[str]):
    """The table's pandas metadata with the columns _containers made (Arrow-backed in pandas)
    recorded as the object columns they were, so reading the file gives lists and dicts as
    before (only `numpy_type` differs between the two)."""
    if not names:
        return table
    meta = json.loads(table.schema.metadata[b"pandas"])
    made = {str(name) for name in names}        # the metadata names a column by its text
    for column in meta["columns"]:
        if column["field_name"] in made:
            column["numpy_type"] = "object"
    return table.replace_schema_metadata({**table.schema.metadata, b"pandas": json.dumps(meta).encode()})


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
        raise _unreadable(path, exc) from None
    meta = _checked_meta(table.schema, table.column_names, path)
    return _findings(table, path), meta


def _unreadable(path: Path, exc: Exception) -> CaptureError:
    """pyarrow's reason, worded the same whichever call met it (read_table names the file again)."""
    reason = str(exc)
    if reason.startswith("Could not open Parquet input source"):
        reason = reason.split("': ", 1)[-1]
    return CaptureError(str(path), f"not a readable Parquet file ({reason})")


def _checked_meta(schema, names: list[str], path: Path) -> dict[str, Any]:
    """The file's rstwatch provenance, once its schema is one rstwatch writes (untrusted input)."""
    meta = (schema.metadata or {}).get(META_KEY)
    missing = [c for c in CONTRACT_FIELDS if c not in names]
    if meta is None or missing:
        raise CaptureError(str(path), "Parquet file without rstwatch findings"
                           + (f" (missing columns: {', '.join(missing[:4])})" if missing else ""))
    from .parquet_check import check_schema, clean_meta    # untrusted input: types, values
    try:
        meta = clean_meta(json.loads(meta), str(path))
    except ValueError:
        raise CaptureError(str(path), "not rstwatch findings: its rstwatch metadata is not JSON") from None
    check_schema(schema, str(path))
    return meta


def _findings(table, path: Path, first: int = 0, widen: dict[str, str] | None = None) -> pd.DataFrame:
    """An Arrow table (the whole file, or rows `first`... of it) as the reader's findings, checked."""
    import pyarrow as pa
    from .parquet_check import check_values
    try:
        df = table.to_pandas()
        if widen:                           # as the whole file gives them (see parquet_batches)
            df = df.astype({c: t for c, t in widen.items() if c in df and str(df[c].dtype) != t})
        df = _as_read(df)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
        raise CaptureError(str(path), f"not rstwatch findings: {exc}") from None
    check_values(df, str(path), first)
    for col in LIST_COLUMNS:
        if col in df:
            df[col] = [v.tolist() if hasattr(v, "tolist") else v for v in df[col]]
    if "errno" in df:
        df["errno"] = [{k: list(x) if x is not None else [] for k, x in (e or {}).items()} for e in df["errno"]]
    return df


BATCH_ROWS = 1_000                      # rows converted to pandas at a time (a row group holds 16,384):
                                        # a report of 300,000 findings peaks at 263 MiB (2,000: 295, 5,000: 311)


def parquet_batches(path: Path, rows: int | None = None) -> tuple[dict[str, Any], Iterator[pd.DataFrame]]:
    """As read_parquet, `rows` findings at a time, so a report of saved findings holds its digest,
    not every row (read_parquet's table and its pandas copy of 300,000 findings: ~1 GiB). The
    schema and provenance are checked before the first batch, each batch's values as it comes
    (row numbers counted over the file). A batch is typed as the whole file is: an integer or
    boolean column with a null anywhere in the file (float64 or object, unless the file's pandas
    metadata says Int64) has that type in every batch, nulls or not."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise CaptureError(str(path), "no such file") from None
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None
    schema = pf.schema_arrow
    meta = _checked_meta(schema, schema.names, path)
    try:
        widen = {}
        for field in schema:
            if pa.types.is_integer(field.type) or pa.types.is_boolean(field.type):
                column = pf.read(columns=[field.name])         # the file's metadata may say Int64
                if column.column(0).null_count:
                    widen[field.name] = str(column.to_pandas()[field.name].dtype)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise CaptureError(str(path), f"not rstwatch findings: {exc}") from None

    def batches() -> Iterator[pd.DataFrame]:
        from ..analyze import _give_back
        first = 0
        try:
            for batch in pf.iter_batches(batch_size=rows or BATCH_ROWS):
                table = pa.Table.from_batches([batch], schema=schema)
                yield _findings(table, path, first, widen)
                first += batch.num_rows
                _give_back()            # the batch's pages (Arrow's and pandas'), between what the digest keeps
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, exc) from None
    return meta, batches()


def parquet_labels(path: Path) -> list[str]:
    """The distinct `file` labels of saved findings (the captures their packets may be re-read from)."""
    import pyarrow.parquet as pq
    import pyarrow.compute as pc
    return [str(v) for v in pc.unique(pq.read_table(path, columns=["file"]).column(0).cast("string")).to_pylist()]


def is_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False
