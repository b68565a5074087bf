"""Resets per cause: counted from a findings table (`read`) or tallied batch by batch (`live`),
for the same "By cause" summary. A flood finding stands for all of its resets.

A findings table is a DataFrame or a columns.Table (`read` on a terminal): a Table is counted
without pandas, but for one with `--hosts`' copies (`copy_of`)."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from .. import columns

if TYPE_CHECKING:       # counting no finding (a capture without RST) needs no pandas
    import pandas as pd


def column_list(df: pd.DataFrame | columns.Table, name: str) -> list:
    """A column's values as a list (a DataFrame's as pandas gives them)."""
    col = df[name]
    return columns.tolist(col) if isinstance(df, columns.Table) else col.tolist()


def light_table(df: pd.DataFrame | columns.Table) -> pd.DataFrame | columns.Table:
    """A Table as it is, unless some of its findings do not count (`copy_of`): a DataFrame."""
    if isinstance(df, columns.Table) and "copy_of" in df:
        return df.frame()
    return df


# after a remediation that stands for a cause whose findings' texts differ, its rule unknown here
# (a report from saved findings of a user's rule folder not given again)
FIRST_ONLY = " (the first finding's; others differ)"


def reset_weights(df: pd.DataFrame) -> pd.Series:
    """How many resets each finding stands for (a flood finding counts all of its own)."""
    import pandas as pd
    if "resets" not in df:
        return pd.Series(1, index=df.index, dtype="int64")
    return pd.to_numeric(df["resets"], errors="coerce").fillna(1).astype("int64")


def counted(df: pd.DataFrame) -> pd.DataFrame:
    """The findings that count as resets: one RST captured on several hosts (read --hosts) is a
    row per capture, the others marked copy_of; it counts once, as the report counts it."""
    return df[df["copy_of"].isna()] if "copy_of" in df and len(df) else df


def _weights(df: pd.DataFrame | columns.Table) -> list[int]:
    if not isinstance(df, columns.Table):
        return reset_weights(df).tolist()
    if "resets" not in df:
        return [1] * len(df)
    # reset_weights' rule on a Table's values: a flood's count, 1 where there is none
    return [1 if v is None or v != v else int(v) for v in columns.tolist(df["resets"])]


def _rows(df: pd.DataFrame | columns.Table):
    """(cause, sender, remediation, resets) of each row (columns as lists first: iterating an
    Arrow column is ~0.7 us a value)."""
    return zip(column_list(df, "cause"), column_list(df, "sender"), column_list(df, "remediation"), _weights(df))


def _numbered(values: list) -> tuple[np.ndarray, list]:
    """(codes, distinct): each value's number among the distinct values, in order of first
    appearance (pandas.factorize's numbering)."""
    index: dict = {}
    codes = np.fromiter(map(index.setdefault, values, range(len(values))), np.int64, len(values))
    firsts = list(index.values())
    renumber = np.zeros(len(values), np.int64)
    renumber[firsts] = np.arange(len(firsts))
    return renumber[codes], list(index)


def _groups(df: pd.DataFrame | columns.Table) -> list[tuple]:
    """_rows' tuples, the rows that share a cause, a sender and a remediation list (a rule's
    rows share its list) made one with their resets summed, in order of first appearance: what
    CauseTally keeps comes out the same, without a Counter update per finding (~2.5 us a
    finding, which `live` paid for every reset in every format). Rows with a missing cause or
    sender are taken one by one."""
    from .jsonl import by_identity
    if _missing(df, "cause") or _missing(df, "sender"):
        return list(_rows(df))
    cause_codes, causes = _numbered(column_list(df, "cause"))
    sender_codes, senders = _numbered(column_list(df, "sender"))
    fix_codes, fixes = by_identity(column_list(df, "remediation"))
    ns, nf = len(senders), len(fixes)
    key = (cause_codes * ns + sender_codes) * nf + fix_codes
    distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    sums = np.bincount(inverse.reshape(-1), weights=np.asarray(_weights(df), np.float64), minlength=len(distinct))
    out = []
    for j in np.argsort(first, kind="stable").tolist():
        k = int(distinct[j])
        out.append((causes[k // (ns * nf)], senders[k // nf % ns], fixes[k % nf], int(sums[j])))
    return out


def _missing(df: pd.DataFrame | columns.Table, name: str) -> bool:
    """Whether a value of the column is missing."""
    col = df[name]
    return bool(columns.isna(col).any() if isinstance(df, columns.Table) else col.isna().any())


def reset_count(df: pd.DataFrame | columns.Table) -> int:
    if isinstance(df, columns.Table):           # light_table: no copies among them
        return sum(_weights(df))
    df = counted(df)
    return int(reset_weights(df).sum()) if len(df) else 0


class CauseTally:
    """Resets per cause and sender for the closing summary: a few counters, not every finding,
    so a session that runs for days keeps constant memory. `rules` (the run's) let a cause whose
    findings name different ports or hosts in their first remediation show the rule's text with
    its placeholders (engine.model.outline) instead of one finding's port."""

    def __init__(self, rules=None) -> None:
        self.resets: Counter = Counter()
        self.senders: dict[str, Counter] = {}
        self.fix: dict[str, str] = {}
        self.fix_varies: set[str] = set()
        self.templates = {r.name: r.remediation for r in rules or []}

    def add(self, df: pd.DataFrame | columns.Table) -> None:
        self._take(_groups, light_table(df))

    def add_rows(self, df: pd.DataFrame) -> None:
        """add, a row at a time: the reference for _groups (tests/test_table_rows.py)."""
        self._take(_rows, light_table(df))

    def _take(self, tuples, df: pd.DataFrame | columns.Table) -> None:
        df = df if isinstance(df, columns.Table) else counted(df)      # a Table: light_table's
        if not len(df):
            return
        for cause, sender, fixes, n in tuples(df):
            self.resets[cause] += int(n)
            self.senders.setdefault(cause, Counter())[sender] += int(n)     # resets, as the count beside it
            if fixes is None or not len(fixes):
                continue
            kept = self.fix.get(cause)
            if kept is None:
                self.fix[cause] = fixes[0]
            elif kept != fixes[0]:
                self.fix_varies.add(cause)

    def total(self) -> int:
        return sum(self.resets.values())

    def first_fix(self, cause: str) -> str:
        """The cause's first remediation: the findings' own text when they all share it, else the
        rule's text with its placeholders, or the first finding's marked as such."""
        text = self.fix.get(cause, "")
        if cause not in self.fix_varies:
            return text
        template = self.templates.get(cause)
        if template:
            from ..engine.model import outline
            return outline(template[0])
        return text + FIRST_ONLY

    def rows(self) -> list[tuple[str, int, str, str]]:
        """(cause, resets, "client 2, server 1" in resets, first remediation), most resets first."""
        return [(cause, n, ", ".join(f"{k} {v}" for k, v in self.senders[cause].most_common()), self.first_fix(cause))
                for cause, n in sorted(self.resets.items(), key=lambda kv: (-kv[1], kv[0]))]


def cause_rows(df: pd.DataFrame) -> list[tuple[str, int, str, str]]:
    tally = CauseTally()
    tally.add(df)
    return tally.rows()
