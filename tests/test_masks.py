"""Rule conditions in numpy (engine/masks.py, what classify uses) give pandas' masks
(evaluate.condition_mask, the reference) exactly: every built-in rule on the feature tables of
every bundled capture folder and the public traces, and every operator on random nullable
columns of each kind with missing values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstwatch.engine.evaluate import _test, condition_array, condition_mask, rule_array, rule_mask
from rstwatch.engine.loader import load_rules
from rstwatch.engine.masks import ColumnArrays, apply_test
from conftest import CAPTURES, EXTERNAL, findings_of

FOLDERS = [CAPTURES, *sorted(p for p in CAPTURES.iterdir() if p.is_dir()), EXTERNAL]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_rule_gives_pandas_masks_on_real_feature_tables(folder):
    df = findings_of(folder)
    cols = ColumnArrays(df)
    rules = [r for r in load_rules([]) if r.flood is None]
    matched = 0
    for rule in rules:
        want = rule_mask(df, rule).to_numpy(dtype=bool)
        assert np.array_equal(rule_array(cols, rule), want), rule.id
        assert np.array_equal(condition_array(cols, rule.when), condition_mask(df, rule.when).to_numpy(dtype=bool))
        matched += int(want.sum())
    assert matched >= len(df)           # every finding matched some rule (or the tables were empty)


KINDS = {"boolean": st.booleans(), "Int64": st.integers(-5, 5), "Float64": st.sampled_from([-1.5, 0.0, 0.25, 2.0, 7.0])}
VALUES = {"boolean": st.booleans(), "Int64": st.one_of(st.integers(-6, 6), st.just(2**63 - 1), st.just(2**70)),
          "Float64": st.one_of(st.sampled_from([-1.5, 0.0, 0.25, 2.0, 3]), st.floats(-10, 10), st.just(float("nan")))}


@st.composite
def column_and_test(draw):
    dtype = draw(st.sampled_from(sorted(KINDS)))
    values = draw(st.lists(st.one_of(st.none(), KINDS[dtype]), min_size=1, max_size=30))
    op = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "is_null"]))
    if op == "is_null":
        value = draw(st.booleans())
    elif op == "in":
        value = draw(st.lists(VALUES[dtype], max_size=4))
    else:
        value = draw(VALUES[dtype])
    if dtype == "boolean" and op in ("lt", "lte", "gt", "gte"):
        op = "eq"
    return pd.Series(pd.array(values, dtype=dtype)), op, value


@settings(max_examples=500, deadline=None)
@given(column_and_test())
def test_each_operator_is_pandas_on_nullable_columns(case):
    col, op, value = case
    got = apply_test(ColumnArrays(pd.DataFrame({"x": col})), "x", op, value)
    want = _test(col, op, value).to_numpy(dtype=bool)
    if got is None:                       # left to pandas: only values a rule file cannot hold
        assert (isinstance(value, float) and value != value) or value == 2**70 or \
               (isinstance(value, list) and any(v == 2**70 or v != v for v in value)), (op, value)
    else:
        assert np.array_equal(got, want), (col.tolist(), op, value)


TEXTS = ["syn", "data", "ack", "", "Data", "fin "]


@st.composite
def text_column_and_test(draw):
    storage = draw(st.sampled_from(["python", "pyarrow"]))
    values = draw(st.lists(st.one_of(st.none(), st.sampled_from(TEXTS)), min_size=1, max_size=30))
    op = draw(st.sampled_from(["eq", "ne", "in", "is_null", "lt"]))
    text = st.one_of(st.sampled_from(TEXTS), st.text(max_size=3))
    if op == "is_null":
        value = draw(st.booleans())
    elif op == "in":
        value = draw(st.lists(st.one_of(text, st.integers(0, 2)) if draw(st.booleans()) else text, max_size=4))
    elif op == "lt":                      # pandas cannot order a text against a number either
        value = draw(text)
    else:
        value = draw(st.one_of(text, st.integers(0, 2), st.booleans()))
    return pd.Series(pd.array(values, dtype=pd.StringDtype(storage))), op, value


@settings(max_examples=400, deadline=None)
@given(text_column_and_test())
def test_each_operator_is_pandas_on_text_columns(case):
    col, op, value = case
    got = apply_test(ColumnArrays(pd.DataFrame({"x": col})), "x", op, value)
    want = _test(col, op, value).to_numpy(dtype=bool)
    if got is None:                       # left to pandas: order, and values other than texts
        assert op == "lt" or not all(type(v) is str for v in (value if isinstance(value, list) else [value])), (op, value)
    else:
        assert np.array_equal(got, want), (col.tolist(), op, value)


def test_text_columns_are_compared_in_numpy():
    df = pd.DataFrame({"t": pd.array(["syn", None, "data"], dtype="string")})
    assert apply_test(ColumnArrays(df), "t", "eq", "syn").tolist() == [True, False, False]
    assert apply_test(ColumnArrays(df), "t", "ne", "syn").tolist() == [False, False, True]
    assert apply_test(ColumnArrays(df), "t", "lt", "syn") is None          # left to pandas
    assert condition_array(ColumnArrays(df), {"t": ["syn", "data"]}).tolist() == [True, False, True]
