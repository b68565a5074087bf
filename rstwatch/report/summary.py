"""Resets per cause: counted from a findings table (`read`) or tallied batch by batch (`live`),
for the same "By cause" summary. A flood finding stands for all of its resets."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:       # counting no finding (a capture without RST) needs no pandas
    import pandas as pd


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


def reset_count(df: pd.DataFrame) -> int:
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

    def add(self, df: pd.DataFrame) -> None:
        df = counted(df)
        if not len(df):
            return
        # columns as lists first: iterating an Arrow column is ~0.7 us a value
        for cause, sender, fixes, n in zip(df["cause"].tolist(), df["sender"].tolist(), df["remediation"].tolist(),
                                           reset_weights(df).tolist()):
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
