"""Rule conditions as vectorised boolean masks over the feature table, then one verdict per row."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .masks import ColumnArrays, apply_test
from .model import Rule
from .. import columns
from ..columns import Masked, Table, Texts
from ..kernel.stored import settle_stored
from ..track.storms import example_verdict

if TYPE_CHECKING:       # a read classifies a columns.Table: pandas is the reference's, and the API's
    import pandas as pd

UNKNOWN = "unknown"


def _test(col: pd.Series, op: str, value: Any) -> pd.Series:
    if op == "is_null":
        return col.isna() if value else col.notna()
    if op == "in":
        res = col.isin(value)
    elif op == "eq":
        res = col == value
    elif op == "ne":
        res = col != value
    elif op == "lt":
        res = col < value
    elif op == "lte":
        res = col <= value
    elif op == "gt":
        res = col > value
    else:
        res = col >= value
    # A missing feature (unknown on this capture) never satisfies a test.
    return res.fillna(False).astype(bool) & col.notna()


def condition_mask(df: pd.DataFrame, cond: Any) -> pd.Series:
    import pandas as pd
    if cond is None or cond == {}:
        return pd.Series(True, index=df.index)
    if isinstance(cond, list):
        mask = pd.Series(False, index=df.index)
        for item in cond:
            mask |= condition_mask(df, item)
        return mask
    mask = pd.Series(True, index=df.index)
    for name, test in cond.items():
        ops = test if isinstance(test, dict) else ({"in": test} if isinstance(test, list) else {"eq": test})
        for op, value in ops.items():
            mask &= _test(df[name], op, value)
    return mask


def rule_mask(df: pd.DataFrame, rule: Rule) -> pd.Series:
    mask = condition_mask(df, rule.when)
    if rule.unless:
        mask &= ~condition_mask(df, rule.unless)
    return mask


def condition_array(cols: ColumnArrays, cond: Any) -> np.ndarray:
    """condition_mask as a numpy array, each test in numpy where it can be (engine/masks.py)."""
    n = len(cols.df)
    if cond is None or cond == {}:
        return np.ones(n, bool)
    if isinstance(cond, list):
        mask = np.zeros(n, bool)
        for item in cond:
            mask |= condition_array(cols, item)
        return mask
    mask = np.ones(n, bool)
    for name, test in cond.items():
        ops = test if isinstance(test, dict) else ({"in": test} if isinstance(test, list) else {"eq": test})
        for op, value in ops.items():
            done = apply_test(cols, name, op, value)
            mask &= done if done is not None else _test(cols.series(name), op, value).to_numpy(dtype=bool)
    return mask


def rule_array(cols: ColumnArrays, rule: Rule) -> np.ndarray:
    mask = condition_array(cols, rule.when)
    if rule.unless:
        mask &= ~condition_array(cols, rule.unless)
    return mask


def classify(df: pd.DataFrame | Table, rules: list[Rule], in_place: bool = False) -> pd.DataFrame | Table:
    """Add rule, cause, confidence, alternatives to each row: the first matching rule by
    priority wins; other matching causes and the rule's declared ones become alternatives.
    A copy of `df` unless `in_place` (a table made for this call: a copy of ~90 columns is
    ~0.5 us a row). A DataFrame gives a DataFrame, with its index."""
    if isinstance(df, Table):
        return classify_table(df if in_place else df.copy(), rules)
    return classify_table(Table.from_pandas(df), rules).to_pandas(index=df.index)


def classify_table(out: Table, rules: list[Rule]) -> Table:
    """classify, in place, on a columns.Table (a read's batch: no pandas)."""
    every = rules
    rules = [r for r in rules if r.flood is None]       # flood rules group connections while reading
    n = len(out)
    masks = np.zeros((len(rules), n), bool)
    cols = ColumnArrays(out)
    for k, rule in enumerate(rules):
        masks[k] = rule_array(cols, rule)
    has = masks.any(axis=0)
    winner = np.where(has, masks.argmax(axis=0), -1)
    # a code per row into the rules' texts (the last: no rule matched), made Arrow texts at once
    # when a DataFrame is asked for
    pick = np.where(winner >= 0, winner, len(rules))
    for column, texts in (("rule", [r.id for r in rules] + ["RST000"]), ("cause", [r.name for r in rules] + [UNKNOWN])):
        out[column] = Texts(coded=(texts, pick), how="arrow")
    confidences = [r.confidence for r in rules] + [0.0]
    if n and all(type(c) is float for c in confidences):       # as the list below makes it, per rule not per row
        out["confidence"] = np.array(confidences, np.float64)[pick]
    else:
        out["confidence"] = [rules[w].confidence if w >= 0 else 0.0 for w in winner]
    # Rows that matched the same rules have the same alternatives: worked out once per pattern
    # (a few dozen patterns for 100,000 resets)
    which = _patterns(masks) if n else []
    first_row: dict[int, int] = {}
    for j, p in enumerate(which):
        first_row.setdefault(p, j)
    per_pattern = {p: _alternatives(rules, int(winner[j]), masks[:, j]) for p, j in first_row.items()}
    # one list per pattern, shared by its rows (as a follow-up shares its root's): never changed
    # in place (the kernel's verdict replaces a row's list), and written once per list
    out["alternatives"] = [per_pattern[p] for p in which]
    mark_follow_ups(out)
    return settle_stored(out, every)     # kernel reasons a `live --write` file kept (kernel/stored.py)


def _patterns(masks: np.ndarray) -> list[int]:
    """A number per row (column of `masks`) that rows matching the same rules share. Up to 64
    rules the row's bits are one integer and numpy's 1-D unique does it (unique over rows of a
    2-D array sorts structured rows: ~25x slower, a tenth of a 5,000-reset batch's classify)."""
    packed = np.packbits(masks, axis=0)             # (ceil(rules / 8), rows)
    if len(packed) > 8:
        return np.unique(packed.T, axis=0, return_inverse=True)[1].reshape(-1).tolist()
    keys = np.zeros((masks.shape[1], 8), np.uint8)
    keys[:, :len(packed)] = packed.T
    return np.unique(keys.view(np.uint64).reshape(-1), return_inverse=True)[1].tolist()


def _alternatives(rules: list[Rule], w: int, matched: np.ndarray) -> list[str]:
    """The winning rule's declared alternatives, then the other causes that matched, once each."""
    if w < 0:
        return []
    names = list(rules[w].alternatives) + [rules[k].name for k in np.flatnonzero(matched) if k != w]
    seen: list[str] = []
    for a in names:
        if a != rules[w].name and a not in seen and a != UNKNOWN:
            seen.append(a)
    return seen


# A RST that the receiver ignores (out of window) does not end the connection, so what follows
# it is not its consequence.
NOT_A_ROOT = {"out-of-window-rst"}


# How long after a reset its receiver's segments can still be "in flight" (sent before the reset
# reached it): two round trips at the capture point, plus slack for scheduling; without a seen
# handshake, a second.
IN_FLIGHT_SLACK_S = 0.05
IN_FLIGHT_UNKNOWN_RTT_S = 1.0


def mark_follow_ups(out: Table) -> None:
    """Later RSTs of a connection already reset are consequences, not new causes: they take the
    first reset's verdict and `follows_frame` points at it. That holds when the reset's receiver
    answers a peer that never learned of it, and when the reset's sender answers segments that were
    in flight. A RST from the same sender long after that answers a peer that never got the first
    reset (it was lost or dropped) and kept talking: judged on its own (the kernel agrees, e.g.
    NO_SOCKET after an abort whose RST was lost)."""
    n = len(out)
    follows = [None] * n
    # A connection's pieces split off 5 s after a reset with no new SYN share its lineage: what
    # its receiver sends then still answers a peer that never learned of the reset.
    key = "conn_lineage" if "conn_lineage" in out else "conn_id"
    lineage = columns.tolist(out[key]) if key in out and n > 1 else []
    if len(set(lineage)) < len(lineage):
        cols = {c: columns.tolist(out[c]) for c in ("frame", "cause", "rule", "confidence", "alternatives")}
        sender = list(zip(columns.tolist(out["src"]), columns.tolist(out["sport"]))) if "src" in out else [None] * n
        times = columns.tolist(out["time"]) if "time" in out else [None] * n
        rtts = columns.tolist(out["conn.rtt_s"]) if "conn.rtt_s" in out else [None] * n
        root_of: dict = {}
        order = sorted(range(n), key=lambda j: (lineage[j], cols["frame"][j]))
        for j in order:
            root = root_of.get(lineage[j])
            if root is not None and not _answers_in_flight(root, j, sender, times, rtts):
                root = None
            if root is not None:
                follows[j] = cols["frame"][root]
                for c in ("cause", "rule", "confidence", "alternatives"):
                    cols[c][j] = cols[c][root]
            elif cols["cause"][j] not in NOT_A_ROOT:
                root_of[lineage[j]] = j
        # lists, typed by pandas as they were when this table was a DataFrame
        out["cause"] = Texts(cols["cause"], how="list")
        out["rule"] = Texts(cols["rule"], how="list")
        out["confidence"] = cols["confidence"]
        out["alternatives"] = cols["alternatives"]
    out["follows_frame"] = Masked(np.array([0 if f is None else f for f in follows], np.int64),
                                  np.array([f is None for f in follows], bool), "Int64")


def _answers_in_flight(root: int, j: int, sender: list, times: list, rtts: list) -> bool:
    """Whether RST j is a consequence of reset `root` (see mark_follow_ups)."""
    if sender[j] is None or times[j] is None or sender[j] != sender[root]:
        return True                       # the reset side answers a peer that never learned
    rtt = rtts[root]
    bound = IN_FLIGHT_UNKNOWN_RTT_S if rtt is None or rtt != rtt else 2 * rtt + IN_FLIGHT_SLACK_S
    return times[j] - times[root] <= bound


def run_rule_tests(rules: list[Rule], feature_defaults: pd.DataFrame) -> list[str]:
    """Each rule's own match / no_match examples, evaluated with the same masks. Returns failures."""
    import pandas as pd
    failures = []
    for rule in rules:
        if rule.flood is not None:      # examples of connection groups, judged by the detector itself
            failures += flood_example_failures(rule, rules)
            continue
        for n, t in enumerate(rule.tests):
            row = feature_defaults.copy()
            for name, value in t["features"].items():
                row[name] = pd.Series([value], dtype=row[name].dtype)
            got = bool(rule_mask(row, rule).iloc[0])
            if got != (t["expect"] == "match"):
                failures.append(f"{rule.source}: test {n + 1} expected {t['expect']} but got "
                                f"{'match' if got else 'no_match'}")
            elif got:
                # The whole rule set decides, as it does on a capture: a rule earlier in the order
                # that also matches this example shadows the rule it was written for.
                winner = classify(row, rules)["cause"].iloc[0]
                if winner != rule.name:
                    failures.append(f"{rule.source}: test {n + 1} matches, but with every rule loaded "
                                    f"`{winner}` wins (shadowed: order the rules or narrow `{winner}`)")
    return failures


def flood_example_failures(rule: Rule, rules: list[Rule]) -> list[str]:
    """A flood rule's examples ({connections, per_second}) built as the traffic its detector
    groups and run through the detectors with every flood rule loaded (track/storms.py)."""
    failures = []
    for n, t in enumerate(rule.tests):
        got = example_verdict(rules, rule.flood["detector"], t["group"])
        if (got == rule.name) != (t["expect"] == "match"):
            failures.append(f"{rule.source}: test {n + 1} expected {t['expect']} but the group came out as "
                            f"{got or 'no flood'}")
    return failures
