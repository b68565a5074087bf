"""The Parquet writer's own conversions (report/parquet.py): object columns of lists and dicts
made Arrow once per distinct object, recorded in the file as the object columns pyarrow would
have written; dictionaries only where values repeat."""
from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings, strategies as st

from conftest import CAPTURES, findings_of
from rstwatch.report import parquet

SHARED = [["close the socket"], [], ["a", "b,c", "é"], {"receiver": ["ECONNRESET"], "sender": []}]
ints = st.integers(-(2**63), 2**63 - 1)
int_lists = st.lists(ints, max_size=4)
containers = st.one_of(st.none(), int_lists, st.sampled_from(SHARED), st.lists(st.text(max_size=5), max_size=3),
                       st.dictionaries(st.sampled_from(["receiver", "sender"]), st.lists(st.text(max_size=4), max_size=2)),
                       st.lists(st.booleans(), max_size=2), st.lists(st.integers(2**63, 2**70), min_size=1, max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(containers, min_size=1, max_size=30))
def test_containers_are_the_array_pyarrow_makes(values):
    """Whatever mixture of lists, dicts and None (shared objects, ints past 64 bits, flags in a
    list), the column is either left to pyarrow or made into exactly pyarrow's array."""
    column = pd.Series(values, dtype=object)
    try:
        expected = pa.array(values, from_pandas=True)
    except (pa.ArrowException, OverflowError):
        expected = None                     # pyarrow cannot either: the column must be left as it is
    made = parquet._containers(column)
    if expected is None:
        assert made is None
        return
    if made is None:                        # only lists of ints past 64 bits are left to pyarrow
        assert any(isinstance(v, list) and any(type(x) is int and x >= 2**63 for x in v) for v in values)
        return
    array = pa.array(made)
    assert array.type == expected.type and array.equals(expected)


def test_a_column_of_texts_or_numbers_is_not_a_container():
    assert parquet._containers(pd.Series(["a", None], dtype=object)) is None
    assert parquet._containers(pd.Series([[1], 2.0], dtype=object)) is None


def _frame(n: int) -> pd.DataFrame:
    remediation, errno = ["raise the timeout"], {"receiver": ["ECONNRESET"], "sender": []}
    return pd.DataFrame({"cause": pd.Series(["closed_port"] * n, dtype=object),
                         "uid": pd.Series([f"C{k:017d}" for k in range(n)], dtype=object),
                         "evidence": pd.Series([[k, k + 1] for k in range(n)], dtype=object),
                         "remediation": pd.Series([remediation] * n, dtype=object),
                         "alternatives": pd.Series([[] if k % 2 else ["keepalive_race"] for k in range(n)], dtype=object),
                         "errno": pd.Series([errno if k % 3 else None for k in range(n)], dtype=object)})


def test_the_file_records_lists_and_dicts_as_object_columns():
    """The pandas metadata of a table made by the writer is the one pyarrow writes for the same
    object columns, so reading the file gives lists and dicts, not Arrow-backed columns."""
    frame = _frame(50)
    made = frame.copy()
    for col in ("evidence", "remediation", "alternatives", "errno"):
        made[col] = parquet._containers(frame[col])
    table = parquet._as_object_columns(pa.Table.from_pandas(made, preserve_index=False),
                                       ["evidence", "remediation", "alternatives", "errno"])
    plain = pa.Table.from_pandas(frame, preserve_index=False)
    assert table.equals(plain) and table.schema.equals(plain.schema, check_metadata=True)
    back = table.to_pandas()
    assert all(back[c].dtype == object for c in ("evidence", "remediation", "alternatives", "errno"))
    assert json.loads(table.schema.metadata[b"pandas"]) == json.loads(plain.schema.metadata[b"pandas"])


def test_dictionaries_only_where_values_repeat():
    """Per-row columns (ids, frames, the evidence list) are written plain, the rest (causes, a
    rule's remediation list, errno's lists) with a dictionary: use_dictionary names a list's
    values by their Parquet path, which a column name alone does not match."""
    df = findings_of(CAPTURES)
    out = io.BytesIO()
    sink = parquet.ParquetSink(out)
    sink.write(df)
    sink.finish()
    group = pq.ParquetFile(io.BytesIO(out.getvalue())).metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: any("DICT" in e for e in group.column(i).encodings)
                 for i in range(group.num_columns)}
    assert not encodings["uid"] and not encodings["evidence.list.element"] and not encodings["flow_id"]
    assert encodings["cause"] and encodings["remediation.list.element"] and encodings["alternatives.list.element"]
    assert encodings["errno.receiver.list.element"]
    assert pq.read_table(io.BytesIO(out.getvalue())).num_rows == len(df)
