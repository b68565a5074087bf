"""Findings as plain records with the JSON Lines contract: field names never change."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import pandas as pd

# The contract (issue #2): add fields at the end, never rename.
CONTRACT_FIELDS = ["file", "frame", "time", "src", "sport", "dst", "dport", "sender", "cause", "rule",
                   "confidence", "alternatives", "summary", "errno", "evidence", "conn_state", "history",
                   "wireshark_filter"]
EXTRA_FIELDS = ["title", "remediation", "sender_inferred", "resets", "connections", "sources_sample",
                "ts", "community_id",     # join keys with Zeek/Suricata (rstwatch/interop.py)
                # live with kernel reasons (rstwatch/kernel/join.py KERNEL_FIELDS)
                "kernel_match", "kernel_reason", "kernel_state", "kernel_context", "kernel_pid", "kernel_comm",
                "decided_by", "wire_cause", "kernel_agrees",
                "follows_frame",         # a follow-up RST: the frame of the reset it is a consequence of
                "tunnel",                # findings inside a tunnel only (sources/tunnels.py)
                "interfaces",            # captures on several interfaces (`any`): where the reset was seen (sources/copies.py)
                # read --host: where it was seen and which host's capture decided (rstwatch/vantage/)
                "host", "seen_at", "settled_by", "missed_by", "joined_across_nat", "single_view_cause", "copy_of"]


_PLAIN_TYPES = frozenset((str, int, bool))


def _plain(value: Any) -> Any:
    t = type(value)
    if t in _PLAIN_TYPES:
        return value
    if t is list and all(type(v) in _PLAIN_TYPES for v in value):
        return list(value)          # frames, texts: nothing to convert (a copy, as below)
    if value is None or (isinstance(value, float) and value != value) or _is_pandas_na(value):
        return None                 # NaN is not JSON: a missing value is null
    if getattr(value, "ndim", 0):       # an array: a list column read back from Parquet (seen_at...)
        return [_plain(v) for v in value.tolist()]
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_pandas_na(value: Any) -> bool:
    # pd.NA exists only once pandas is loaded: the field names above are read without importing it
    pd = sys.modules.get("pandas")
    return pd is not None and value is pd.NA


# Only flood findings carry these: a record of any other finding leaves them out.
FLOOD_ONLY_FIELDS = ("resets", "connections", "sources_sample")
# Fields a record leaves out where they are not set: the flood counts, the tunnel of a finding
# inside one, the interfaces of a capture on several (so the records of other captures are unchanged).
OPTIONAL_FIELDS = FLOOD_ONLY_FIELDS + ("tunnel", "interfaces")


def column_values(col: pd.Series) -> list:
    """A column as plain Python values (None for every kind of missing value)."""
    values = col.tolist()           # Python scalars for numpy and string dtypes, pd.NA for missing values
    if col.dtype != object and not col.isna().any():
        return values
    kinds = set(map(type, values))
    if kinds <= _KEPT_TYPES:            # texts and None (capture times, Community IDs): nothing to convert
        return values
    if kinds <= _KEPT_TYPES | {type(_pandas_na())}:      # a nullable integer column
        na = _pandas_na()
        return [None if v is na else v for v in values]
    return [_plain(v) for v in values]


_KEPT_TYPES = frozenset((str, int, bool, type(None)))


def _pandas_na():
    import pandas as pd
    return pd.NA


def iter_records(df: pd.DataFrame) -> Iterator[dict]:
    cols = [c for c in CONTRACT_FIELDS + EXTRA_FIELDS if c in df.columns]
    for row in zip(*(column_values(df[c]) for c in cols)):
        rec = dict(zip(cols, row))
        for extra in OPTIONAL_FIELDS:
            value = rec.get(extra)
            if value is None or (isinstance(value, float) and value != value):
                rec.pop(extra, None)
            elif isinstance(value, float):
                rec[extra] = int(value)
        yield rec
