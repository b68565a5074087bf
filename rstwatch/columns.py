"""A batch's findings as plain columns: the verdicts are computed on a `Table` and JSON Lines
are written from it, so a read that writes JSON Lines never imports pandas (with pyarrow,
~0.25 s of CPU: most of a read of a small capture, and of a large one with a few resets).

A DataFrame is made only where one is asked for (the other formats, the reports, the API), and
it is the one the pipeline made when it was built on pandas: each column keeps what pandas was
given for it then (its `to_pandas`), so pandas types it as before (tests/test_columns.py
compares them on every bundled and public capture).

A column is one of:
- a numpy array (int64, float64, bool: numbers with nothing missing);
- a list (pandas infers its type: lists, dicts, texts);
- `Masked`: values and a mask of the missing ones (pandas' boolean, Int64 and Float64 arrays);
- `Texts`: texts held as Python strings, as UTF-8 buffers or as a code per row into a few
  texts, with how pandas was given them (`how`);
- `Meta`: a meta column's values, given to pandas as features/extract._meta_column does;
- `Objects`: values pandas is told to keep as objects (ISO times, Community IDs);
- `Missing`: a column the table lacks among others' (pandas' reindex: every value float NaN);
- a pandas array or Series, for a table made from a DataFrame (`Table.from_pandas`).
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Iterable

import numpy as np

from .gcpause import import_paused



class Masked:
    """Values and where they are missing: a nullable boolean, integer or float column."""

    __slots__ = ("values", "mask", "dtype")

    def __init__(self, values: np.ndarray, mask: np.ndarray, dtype: str) -> None:
        self.values, self.mask, self.dtype = values, mask, dtype

    def __len__(self) -> int:
        return len(self.values)

    def isna(self) -> np.ndarray:
        return self.mask

    def filled(self, na_value: Any, dtype) -> np.ndarray:
        """The values as `dtype`, `na_value` where missing (pandas' to_numpy(dtype, na_value))."""
        out = self.values.astype(dtype, copy=True)
        out[self.mask] = na_value
        return out

    def tolist(self) -> list:
        if not self.mask.any():
            return self.values.tolist()
        out = self.values.astype(object)
        out[self.mask] = None
        return out.tolist()

    def take(self, rows) -> "Masked":
        return Masked(self.values[rows], self.mask[rows], self.dtype)

    def equals(self, other: "Masked") -> bool:
        known = ~self.mask
        return (self.dtype == other.dtype and np.array_equal(self.mask, other.mask)
                and np.array_equal(self.values[known], other.values[known]))

    def to_pandas(self):
        from pandas.arrays import BooleanArray, FloatingArray, IntegerArray
        return {"boolean": BooleanArray, "Int64": IntegerArray, "Float64": FloatingArray}[self.dtype](self.values, self.mask)

    @staticmethod
    def concat(parts: list["Masked"]) -> "Masked":
        return Masked(np.concatenate([p.values for p in parts]), np.concatenate([p.mask for p in parts]), parts[0].dtype)

    @staticmethod
    def unknown(n: int, dtype: str) -> "Masked":
        values = np.zeros(n, {"boolean": bool, "Int64": np.int64, "Float64": np.float64}[dtype])
        if dtype == "Float64":
            values[:] = np.nan
        return Masked(values, np.ones(n, bool), dtype)


class Texts:
    """A column of texts (None where missing), held the way it was made: Python strings, UTF-8
    buffers (offsets, data) written in C, or a code per row into a few texts. `how` says what
    pandas was given for it:
    - "arrow": textcolumns' Arrow texts (from the buffers, the codes or the strings), pandas'
      "str" type; the strings themselves where that module makes none;
    - "meta": Arrow texts from the buffers, else as `Meta` (the display filters);
    - "string": a text feature (features/extract.nullable: pandas' "string" type, with NA);
    - "list": the strings, typed by pandas as any list assigned to a column."""

    __slots__ = ("_values", "_buffers", "_coded", "how")

    def __init__(self, values: list | None = None, buffers: tuple | None = None,
                 coded: tuple[list[str], np.ndarray] | None = None, how: str = "arrow") -> None:
        self._values, self._buffers, self._coded, self.how = values, buffers, coded, how

    def __len__(self) -> int:
        if self._values is not None:
            return len(self._values)
        if self._coded is not None:
            return len(self._coded[1])
        return len(self._buffers[0]) - 1

    @property
    def buffers(self) -> tuple | None:
        return self._buffers

    @property
    def coded(self) -> tuple[list[str], np.ndarray] | None:
        return self._coded

    def tolist(self) -> list:
        if self._values is None:
            if self._coded is not None:
                texts, codes = self._coded
                self._values = [texts[k] for k in codes.tolist()]
            else:
                self._values = decode_buffers(*self._buffers)
        return self._values

    def isna(self) -> np.ndarray:
        if self._values is None:
            return np.zeros(len(self), bool)       # made from buffers or codes: every row a text
        return np.fromiter((v is None for v in self._values), bool, len(self._values))

    def take(self, rows) -> "Texts":
        if self._coded is not None:
            return Texts(coded=(self._coded[0], self._coded[1][rows]), how=self.how)
        values = self.tolist()
        return Texts(_taken(values, rows), how=self.how)

    def slice(self, start: int, end: int) -> "Texts":
        if self._coded is not None:
            return Texts(coded=(self._coded[0], self._coded[1][start:end]), how=self.how)
        if self._values is not None:
            return Texts(self._values[start:end], how=self.how)
        offsets, data = self._buffers
        return Texts(buffers=(offsets[start:end + 1] - offsets[start], data[offsets[start]:offsets[end]]), how=self.how)

    def equals(self, other: "Texts") -> bool:
        return self.tolist() == other.tolist()

    @property
    def dtype(self) -> str:
        return "string" if self.how == "string" else "str"

    def to_pandas(self):
        from . import textcolumns
        if self.how == "string":
            from .features.extract import nullable_pandas
            return nullable_pandas(self.tolist(), "str")
        if self.how == "meta":
            column = textcolumns.from_buffers(*self._buffers) if self._buffers is not None else None
            return column if column is not None else Meta(self.tolist()).to_pandas()
        if self.how == "arrow":
            column = None
            if self._buffers is not None:
                column = textcolumns.from_buffers(*self._buffers)
            elif self._coded is not None and len(self):
                column = textcolumns.by_code(*self._coded)
            elif self._values is not None:
                column = textcolumns.from_texts(self._values)
            if column is not None:
                return column
        return list(self.tolist())

    @staticmethod
    def concat(parts: list["Texts"]) -> "Texts":
        how = parts[0].how if all(p.how == parts[0].how for p in parts) else "list"
        return Texts(list(chain.from_iterable(p.tolist() for p in parts)), how=how)


class Meta:
    """A meta column's values (texts, flags, evidence lists) as features/extract._meta_column
    gives them to pandas: Arrow texts when every one is a text, else an object array."""

    __slots__ = ("values",)

    def __init__(self, values: list | np.ndarray) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def tolist(self) -> list:
        return self.values if isinstance(self.values, list) else self.values.tolist()

    def isna(self) -> np.ndarray:
        return np.fromiter((v is None for v in self.tolist()), bool, len(self))

    def take(self, rows) -> "Meta":
        values = self.tolist()
        return Meta(_taken(values, rows))

    def to_pandas(self):
        from .features.extract import _meta_column
        return _meta_column("", self.values)


class Objects:
    """Values pandas keeps as objects, never inferred (pd.Series(values, dtype=object))."""

    __slots__ = ("values",)

    def __init__(self, values: list) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def tolist(self) -> list:
        return self.values

    def take(self, rows) -> "Objects":
        return Objects(_taken(self.values, rows))

    def to_pandas(self):
        import pandas as pd
        return pd.Series(self.values, dtype=object)


class Missing:
    """A column a table lacks, where it is written among tables that have it (a flood's `resets`
    beside another file's findings): every value missing, given to pandas as reindex makes it."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def tolist(self) -> list:
        return [None] * self.n

    def isna(self) -> np.ndarray:
        return np.ones(self.n, bool)

    def take(self, rows) -> "Missing":
        return Missing(len(rows))

    def to_pandas(self) -> np.ndarray:
        return np.full(self.n, np.nan)


def _taken(values: list, rows) -> list:
    """values[k] for each k of `rows`."""
    return [values[k] for k in np.asarray(rows).tolist()]


def decode_buffers(offsets: np.ndarray, data: np.ndarray) -> list[str]:
    """The texts data[offsets[k]:offsets[k + 1]] (UTF-8) as Python strings."""
    raw = data.tobytes()
    bounds = np.asarray(offsets).tolist()
    if raw.isascii():                               # one decode, then slices by character
        text = raw.decode("ascii")
        return [text[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return [raw[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:])]


def ascii_buffers(values: list) -> tuple[np.ndarray, np.ndarray] | None:
    """decode_buffers' inverse for texts that are all ASCII: (offsets, data); None when a value
    is not a text or a text is not ASCII."""
    try:
        joined = "".join(values)
    except TypeError:                   # a value that is not a text (None, a list)
        return None
    if not joined.isascii():
        return None
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, values), np.int64, len(values)), out=offsets[1:])
    return offsets, np.frombuffer(joined.encode("ascii"), np.uint8)


# ---- any column: the few things the pipeline asks of one ----

def tolist(col) -> list:
    """Plain Python values, None where missing."""
    if isinstance(col, list):
        return col
    if isinstance(col, np.ndarray):
        return col.tolist()
    if isinstance(col, (Masked, Texts, Meta, Objects, Missing)):
        return col.tolist()
    from .report.records import column_values           # a pandas array or Series
    import pandas as pd
    return column_values(col if isinstance(col, pd.Series) else pd.Series(col, copy=False))


def isna(col) -> np.ndarray:
    if isinstance(col, (Masked, Texts, Meta, Missing)):
        return col.isna()
    if isinstance(col, np.ndarray) and col.dtype != object:
        return np.isnan(col) if col.dtype.kind == "f" else np.zeros(len(col), bool)
    if isinstance(col, (list, np.ndarray, Objects)):
        return np.fromiter((v is None or (type(v) is float and v != v) for v in tolist(col)), bool, len(col))
    return np.asarray(col.isna(), dtype=bool)


def to_numpy(col, dtype, na_value: Any) -> np.ndarray:
    """The values as `dtype`, `na_value` where missing."""
    if isinstance(col, Masked):
        return col.filled(na_value, dtype)
    if isinstance(col, Missing):
        return np.full(len(col), na_value, dtype)
    if isinstance(col, np.ndarray) and col.dtype.kind in "biuf":
        return col.astype(dtype, copy=False)
    if isinstance(col, (list, Objects, Texts, Meta, np.ndarray)):
        return np.array([na_value if v is None else v for v in tolist(col)], dtype=dtype)
    return np.asarray(col.to_numpy(dtype=dtype, na_value=na_value))


def take(col, rows: np.ndarray):
    if isinstance(col, np.ndarray):
        return col[rows]
    if isinstance(col, list):
        return _taken(col, rows)
    if isinstance(col, (Masked, Texts, Meta, Objects, Missing)):
        return col.take(rows)
    return col.take(rows)                     # a pandas array


def slice_rows(col, start: int, end: int):
    """Rows start..end-1 of a column: views of its arrays, slices of its lists."""
    if isinstance(col, (np.ndarray, list)):
        return col[start:end]
    if isinstance(col, Masked):
        return Masked(col.values[start:end], col.mask[start:end], col.dtype)
    if isinstance(col, Texts):
        return col.slice(start, end)
    if isinstance(col, Meta):
        return Meta(col.values[start:end])
    if isinstance(col, Objects):
        return Objects(col.values[start:end])
    if isinstance(col, Missing):
        return Missing(len(range(start, min(end, col.n))))
    return col[start:end]                   # a pandas array


def concat(parts: list):
    first = parts[0]
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    if all(isinstance(p, Masked) for p in parts) and len({p.dtype for p in parts}) == 1:
        return Masked.concat(parts)
    if all(isinstance(p, Texts) for p in parts):
        return Texts.concat(parts)
    if all(isinstance(p, Objects) for p in parts):
        return Objects(list(chain.from_iterable(p.values for p in parts)))
    if all(isinstance(p, Meta) for p in parts):
        return Meta(list(chain.from_iterable(p.tolist() for p in parts)))
    if all(isinstance(p, Missing) for p in parts):
        return Missing(sum(p.n for p in parts))
    if all(type(p) is type(first) for p in parts) and hasattr(first, "_concat_same_type"):
        return type(first)._concat_same_type(parts)     # pandas arrays of one type
    return list(chain.from_iterable(tolist(p) for p in parts))


def to_pandas_input(col):
    """What pandas is given for the column when a DataFrame is made."""
    if isinstance(col, (Masked, Texts, Meta, Objects, Missing)):
        return col.to_pandas()
    return col


class Table:
    """Named columns of one length, in order: a batch's features and verdicts."""

    __slots__ = ("_cols", "n", "_frame", "shared")

    def __init__(self, cols: dict[str, Any], n: int) -> None:
        self._cols, self.n, self._frame = cols, n, None
        self.shared = False         # several files' findings: each file's slice of its DataFrame is kept

    @property
    def cols(self) -> dict[str, Any]:
        if self._cols is None:              # given up for its DataFrame (frame()): read back from it
            self._cols = Table.from_pandas(self._frame)._cols
        return self._cols

    def frame(self):
        """The table as a DataFrame, made once: a batch's table is sliced for each file it holds,
        so its DataFrame is kept (and its own columns let go) rather than made for each slice.
        A DataFrame sliced gives each slice the whole column's types, as before."""
        if self._frame is None:
            frame = self.to_pandas()
            # one block per dtype instead of one per column: a file's slice of a batch of many then
            # costs ~10 KB instead of ~40 KB (3,000 small files are 3,000 slices); a table of one
            # file is not copied (37 ms for 100,000 resets)
            self._frame = frame.copy() if self.shared else frame
            self._cols = None
        return self._frame

    def __len__(self) -> int:
        return self.n

    @property
    def columns(self) -> list[str]:
        return list(self._frame.columns) if self._cols is None else list(self._cols)

    def __contains__(self, name: str) -> bool:
        return name in self.cols

    def __getitem__(self, name: str):
        return self.cols[name]

    def __setitem__(self, name: str, col) -> None:
        self.cols[name] = col            # a new name goes last, an old one keeps its place

    def take(self, rows: Iterable[int]) -> "Table":
        rows = np.asarray(rows, np.int64)
        return Table({name: take(col, rows) for name, col in self.cols.items()}, len(rows))

    def rows(self, start: int, end: int) -> "Table":
        """Rows start..end-1 (numpy slices are views, not copies)."""
        end = min(end, self.n)
        if start == 0 and end == self.n:
            return self
        return Table({name: slice_rows(col, start, end) for name, col in self.cols.items()}, max(end - start, 0))

    def select(self, names: Iterable[str]) -> "Table":
        table = Table({name: self.cols[name] for name in names}, self.n)
        table.shared = self.shared
        return table

    def reindex(self, names: list[str]) -> "Table":
        """The columns `names` in that order, as pandas' reindex gives them: one the table lacks
        is Missing (what a flood's `resets` is on another file's findings, and the reverse)."""
        cols = self.cols
        return Table({name: cols[name] if name in cols else Missing(self.n) for name in names}, self.n)

    def copy(self) -> "Table":
        return Table(dict(self.cols), self.n)

    def to_pandas(self, index=None):
        """A new DataFrame of the table (numbered from 0, or with `index`)."""
        pd = import_paused("pandas")
        if self._cols is None:
            df = self._frame.copy()
            if index is not None:
                df.index = index
            return df
        index = pd.RangeIndex(self.n) if index is None else index
        data = {}
        for name, col in self.cols.items():
            col = to_pandas_input(col)
            if isinstance(col, pd.Series):          # Objects: aligned with the table's rows
                col.index = index
            data[name] = col
        return pd.DataFrame(data, index=index, copy=False)

    @staticmethod
    def concat(tables: list["Table"]) -> "Table":
        """Tables with the same columns, one after another."""
        if len(tables) == 1:
            return tables[0]
        names = tables[0].columns
        return Table({name: concat([t.cols[name] for t in tables]) for name in names}, sum(t.n for t in tables))

    @staticmethod
    def from_pandas(df) -> "Table":
        """A DataFrame's columns as they are (pandas arrays and numpy arrays)."""
        def column(series):
            plain = isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf"
            return series.to_numpy() if plain else series.array
        return Table({name: column(df[name]) for name in df.columns}, len(df))


def as_frame(table):
    """A DataFrame of a Table (as the pipeline built on pandas made it: Table.frame); a
    DataFrame as it is."""
    return table.frame() if isinstance(table, Table) else table
