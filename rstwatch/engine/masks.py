"""Rule conditions as numpy boolean arrays, for `classify`.

Each feature column a rule names is turned once per classification into its values and where
they are known, and each test is then one numpy comparison. Through pandas' nullable types
(evaluate.condition_mask, kept as the reference) every test cost ~0.2 ms whatever the number of
rows: the built-in rules' ~110 conditions were ~24 ms a call, which `live` pays every tick that
has a reset and a folder of small captures every batch. Here a test is ~10 us.

The results are evaluate._test's, value for value (tests/test_masks.py): a missing value never
satisfies a test, `is_null` asks for exactly that. Text columns are compared here for equality and
membership with texts (what rule files ask of them; ~0.3 ms a test through pandas); a column or a
test this module does not know how to do is left to evaluate._test."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import columns

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Kinds of column this module compares itself; the rest go to pandas.
_NUMERIC = ("b", "i", "u", "f")
_MASKED_KIND = {"boolean": (bool, False), "Int64": (np.int64, 0), "Float64": (np.float64, np.nan)}


class ColumnArrays:
    """The columns of one feature table (a columns.Table, or a DataFrame) as (values, known)
    numpy arrays, made on first use."""

    def __init__(self, df) -> None:
        self.df = df
        self._views: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self._codes: dict[str, tuple[dict, np.ndarray]] = {}

    def view(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        if name not in self._views:
            self._views[name] = _light_arrays(self.df[name])
        return self._views[name]

    def codes(self, name: str) -> tuple[dict, np.ndarray]:
        """A text column's distinct values numbered, and each row's number: every test on the
        column is then one comparison of integers (the column read once, not once a test)."""
        if name not in self._codes:
            index: dict = {}
            values = self.view(name)[0].tolist()
            self._codes[name] = index, np.fromiter(map(index.setdefault, values, range(len(values))), np.int64, len(values))
        return self._codes[name]

    def series(self, name: str):
        """The column as a pandas Series (for the tests left to pandas)."""
        col = self.df[name]
        if hasattr(col, "array") and not isinstance(col, np.ndarray):      # a DataFrame's Series
            return col
        import pandas as pd
        return pd.Series(columns.to_pandas_input(col), copy=False)


def _light_arrays(col) -> tuple[np.ndarray, np.ndarray] | None:
    """_as_arrays of a columns.Table column: what pandas would compare of it."""
    if isinstance(col, columns.Masked):
        dtype, filler = _MASKED_KIND[col.dtype]
        return col.filled(filler, dtype), ~col.mask
    if isinstance(col, np.ndarray) and col.dtype.kind in _NUMERIC:
        if col.dtype.kind == "f":
            return col, ~np.isnan(col)
        return (col.astype(np.int64) if col.dtype.kind == "u" else col), np.ones(len(col), bool)
    if isinstance(col, columns.Texts) or (isinstance(col, (columns.Meta, list, np.ndarray)) and _texts(col)):
        values = np.empty(len(col), dtype=object)
        values[:] = columns.tolist(col)
        return values, ~columns.isna(col)
    if isinstance(col, (columns.Meta, list, np.ndarray, columns.Objects)):
        return None                     # pandas keeps it as objects: left to pandas
    if not hasattr(col, "array"):       # a pandas array (Table.from_pandas), not a Series
        import pandas as pd
        col = pd.Series(col, copy=False)
    return _as_arrays(col)


def _texts(col) -> bool:
    """Whether pandas types the column as texts: texts and None, not None alone."""
    kinds = set(map(type, columns.tolist(col)))
    return str in kinds and kinds <= {str, type(None)}


def _as_arrays(col) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, known) of a boolean, numeric or text column (nullable or not), None for other
    kinds. Where a value is not known, `values` holds a filler that no test reads. Read from the
    column's array, not the Series (each Series method made a Series: ~20 us a column)."""
    import pandas as pd
    dt, arr = col.dtype, col.array
    if isinstance(dt, pd.StringDtype):
        known = ~np.asarray(arr.isna(), dtype=bool)
        return arr.to_numpy(dtype=object, na_value=None), known
    kind = dt.kind if isinstance(dt, np.dtype) else getattr(dt, "kind", None)
    if kind not in _NUMERIC:
        return None
    known = ~np.asarray(arr.isna(), dtype=bool)
    if kind == "b":
        values = arr.to_numpy(dtype=bool, na_value=False)
    elif kind == "f":
        values = arr.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = arr.to_numpy(dtype=np.int64, na_value=0)
    return values, known


_COMPARE: dict[str, Callable] = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "lte": np.less_equal,
                                 "gt": np.greater, "gte": np.greater_equal}


def _comparable(value: Any, values: np.ndarray) -> bool:
    """A value numpy compares with `values` exactly as pandas does: bools with a boolean column,
    numbers in int64's range with a numeric one, floats (not NaN) with a float one, texts with a
    text column (its values are texts or None)."""
    if values.dtype.kind == "O":
        return type(value) is str
    if values.dtype.kind == "b":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    return isinstance(value, float) and value == value and values.dtype.kind == "f"


def apply_test(cols: ColumnArrays, name: str, op: str, value: Any) -> np.ndarray | None:
    """One test as a boolean array, or None when it is left to pandas."""
    view = cols.view(name)
    if view is None:
        return None
    values, known = view
    if op == "is_null":
        return ~known if value else known.copy()
    if op == "in":
        if not isinstance(value, list) or not all(_comparable(v, values) for v in value):
            return None
        if values.dtype.kind == "O":            # texts and None: by their numbers (ColumnArrays.codes)
            index, codes = cols.codes(name)
            return np.isin(codes, [index[v] for v in value if v in index]) & known
        return np.isin(values, np.array(value, dtype=values.dtype)) & known
    compare = _COMPARE.get(op)
    if compare is None or not _comparable(value, values):
        return None
    if values.dtype.kind == "O":
        if op not in ("eq", "ne"):
            return None                     # order between texts: left to pandas
        index, codes = cols.codes(name)
        equal = codes == index.get(value, -1)
        return (equal if op == "eq" else ~equal) & known
    return compare(values, value) & known
