"""Text columns of the findings table made as Arrow arrays directly, in the type pandas gives a
column of texts (its "str" dtype, held by pyarrow): no Python text per row and no conversion of
a list into the table (pandas' conversion of 100,000 texts: 5-60 ms a column). Each returns
None where pandas holds texts some other way; the caller then passes plain values."""
from __future__ import annotations

import os

import numpy as np


def _dtype():
    import pandas as pd
    dtype = pd.StringDtype(na_value=np.nan)
    return dtype if dtype.storage == "pyarrow" else None


def from_buffers(offsets: np.ndarray, data: np.ndarray):
    """The texts data[offsets[k]:offsets[k + 1]] (UTF-8), k = 0..len(offsets) - 2."""
    dtype = _dtype()
    if dtype is None:
        return None
    import pyarrow as pa
    from pandas.arrays import ArrowStringArray
    array = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    return ArrowStringArray(array, dtype=dtype)


def from_texts(values):
    """`values` (a list or an object array, every one a str, at least one) as the Arrow text
    column pandas would make of them; None for anything else (a None, a number, no rows)."""
    if _compiled is None or not len(values) or _dtype() is None:
        return None
    buffers = _compiled.str_buffers(values.tolist() if isinstance(values, np.ndarray) else list(values))
    return from_buffers(*buffers) if buffers is not None else None


def by_code(texts: list[str], codes: np.ndarray):
    """texts[codes[k]] for each row k: a column that repeats a few texts (a rule's name, id, title)."""
    dtype = _dtype()
    if dtype is None:
        return None
    codes = np.ascontiguousarray(codes, np.int64)
    if _compiled is not None and all(type(t) is str for t in texts):
        return from_buffers(*_compiled.code_buffers(list(texts), codes))
    import pyarrow as pa
    from pandas.arrays import ArrowStringArray
    array = pa.array(texts, type=pa.large_string()).take(pa.array(codes))
    return ArrowStringArray(array, dtype=dtype)


# The C filler (rstwatch/rowtexts.pyx) when it was built; RSTWATCH_PURE_PYTHON=1 keeps the
# Python twin below, the reference (tests/test_rowtexts.py).
_compiled = None
if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
    try:
        from . import rowtexts as _compiled
    except ImportError:
        pass


def filled(template_of: np.ndarray, templates: list[tuple[list[str], list[int]]], fields: list[list],
           given: list):
    """Row k: templates[template_of[k]] filled from row k of `fields`, or given[k] where
    template_of[k] < 0. A template is (literals, field numbers): literals[0], then each field's
    value as format(value, "") writes it (what a plain {} field of str.format or an f-string
    writes) followed by the next literal. An Arrow text column when the C filler was built,
    else a list of texts."""
    return filled_texts(template_of, templates, fields, given).to_pandas()


def filled_texts(template_of: np.ndarray, templates: list[tuple[list[str], list[int]]], fields: list[list],
                 given: list):
    """filled as a columns.Texts: UTF-8 buffers written in C when the filler was built (made
    Arrow texts only when a DataFrame is asked for), else the list of texts."""
    from .columns import Texts
    if _compiled is not None and len(template_of):
        return Texts(buffers=_compiled.template_buffers(np.ascontiguousarray(template_of, np.int64),
                                                        templates, fields, given), how="arrow")
    return Texts(filled_python(template_of, templates, fields, given), how="list")


def filled_python(template_of: np.ndarray, templates: list[tuple[list[str], list[int]]], fields: list[list],
                  given: list) -> list[str]:
    """filled, in Python: the reference."""
    out = []
    for r, t in enumerate(np.asarray(template_of).tolist()):
        if t < 0:
            out.append(given[r])
            continue
        literals, numbers = templates[t]
        out.append(literals[0] + "".join(format(fields[f][r], "") + literals[k + 1] for k, f in enumerate(numbers)))
    return out
