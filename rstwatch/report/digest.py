"""What the incident report needs from every finding, gathered a table at a time, so a report of
300,000 resets holds counters and a few hundred rows, not 300,000 rows of 80 columns.

Kept whole: the first TABLE_ROWS findings in time order (the findings table), and per cause its
first finding and the candidates for its sample ladders (the first finding of each of the first
SAMPLES distinct (file, server) pairs, and its first 2 x SAMPLES findings). Everything else is
counted: resets per cause, confidence range, alternatives and senders (in order of first
appearance, as value_counts orders ties), connections (as hashes), resets per server and client
endpoint (narrow Arrow-backed columns, re-aggregated as they grow), and each reset's time and
cause for the timeline. Reporting from the digest gives what reporting from the whole table
gave, byte for byte (tests/test_hostile.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .summary import counted as summary_counted, reset_weights

TABLE_ROWS = 500              # rows shown in the findings table
SAMPLES = 3                   # example connections drawn per cause
SORT = ["time", "file", "frame", "_seq"]     # the report's order; `_seq` keeps equal keys as they came
_REAGGREGATE = 200_000        # endpoint rows held before they are summed again
_MERGE_ROWS = 8 * TABLE_ROWS  # candidate rows held before they are merged with the kept ones


@dataclass
class CauseStats:
    resets: int = 0
    findings: int = 0
    conf_min: float = float("inf")
    conf_max: float = float("-inf")
    alternatives: dict = field(default_factory=dict)    # name -> [count, first key]
    senders: dict = field(default_factory=dict)         # name -> [resets, first key]
    remediation: list | None = None                     # the first finding's, and whether others differ
    remediation_varies: bool = False


class Digest:
    def __init__(self) -> None:
        self.findings = 0
        self._rows: pd.DataFrame | None = None        # kept whole, in report order...
        self._pending: list[pd.DataFrame] = []        # ...once these are merged into them (_keep)
        self._pending_rows = 0
        self.causes: dict[str, CauseStats] = {}
        self.connection_keys: list[np.ndarray] = []
        self.flood_connections = 0
        self.endpoints: list[pd.DataFrame] = []       # (role, key, cause, n), summed as they grow
        self.endpoint_rows = 0                        # rows held, summed ones included
        self.endpoint_sums = 0                        # rows of the last sum (distinct endpoints)
        self.times: list[np.ndarray] = []             # every single reset's time...
        self.codes: list[np.ndarray] = []             # ...and its cause, as an index into cause_names
        self.cause_names: dict[str, int] = {}
        self.floods: list[pd.DataFrame] = []          # flood rows: time, cause, resets, summary
        self.t0, self.t1 = float("inf"), float("-inf")
        self.file_names: set[str] = set()

    @classmethod
    def of(cls, df: pd.DataFrame) -> "Digest":
        digest = cls()
        digest.add(df)
        return digest

    def add(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        from .incident import endpoints
        df = df.reset_index(drop=True)
        weights = reset_weights(df)
        server, client = endpoints(df)
        df = df.assign(_server=server, _client=client, _w=weights,
                       _seq=np.arange(self.findings, self.findings + len(df)))
        self.findings += len(df)
        self.file_names.update(Path(str(f)).name for f in df["file"].unique())
        # The counters read a few columns: those are sorted and grouped alone, not the ~90 of a
        # finding; whole rows are taken only for those _kept keeps of this table (sorting,
        # grouping and concatenating every column cost ~40 ms a table, whatever its rows: 8 us a
        # finding in the writers' tables of 5,000)
        order = df[SORT].sort_values(SORT, kind="stable").index.to_numpy()
        narrow = df[[c for c in df.columns if c in _COUNTED]].take(order).reset_index(drop=True)
        # several hosts' captures of one RST (read --hosts): each is a row of the table, the RST counts once
        counted = summary_counted(narrow).reset_index(drop=True)
        if len(counted):
            self._count(counted)
        # a categorical sort key orders by its categories, which another table may not share (the
        # order of all rows is then not each table's): such a table is kept whole, merged at once
        by_categories = any(isinstance(df[c].dtype, pd.CategoricalDtype) for c in SORT)
        self._keep(df.take(order if by_categories else order[_kept(narrow)]), at_once=by_categories)

    # ------------------------------------------------------------------ counters

    def _count(self, df: pd.DataFrame) -> None:
        times = df["time"].to_numpy(float)
        self.t0, self.t1 = min(self.t0, float(times.min())), max(self.t1, float(times.max()))
        flood = df["_w"].to_numpy() != 1
        # columns as lists before a loop reads them (iterating an Arrow column is ~0.7 us a value)
        cause_codes, causes = pd.factorize(df["cause"].astype(str), use_na_sentinel=False)   # first appearance order
        known = np.array([self.cause_names.setdefault(c, len(self.cause_names)) for c in causes.tolist()], np.int32)
        codes = known[cause_codes]
        self.times.append(times[~flood])
        self.codes.append(codes[~flood])
        if flood.any():
            self.floods.append(pd.DataFrame({"time": times[flood], "cause": df["cause"].astype(str)[flood].to_numpy(),
                                             "resets": df["_w"].to_numpy()[flood],
                                             "summary": df["summary"].astype(str)[flood].to_numpy()}))
        for cause, grp in df.groupby("cause", sort=False):
            st = self.causes.setdefault(str(cause), CauseStats())
            st.resets += int(grp["_w"].sum())
            st.findings += len(grp)
            conf = grp["confidence"].astype(float)
            st.conf_min, st.conf_max = min(st.conf_min, conf.min()), max(st.conf_max, conf.max())
            _tally_group(st, grp)
            if not st.remediation_varies:
                _note_remediation(st, grp["remediation"].tolist())
        self._count_connections(df)
        role = np.repeat(np.array(["server", "client"]), len(df))
        self.endpoints.append(pd.DataFrame({
            "role": role, "key": np.concatenate([df["_server"].astype(str), df["_client"].astype(str)]),
            "cause": np.tile(df["cause"].astype(str).to_numpy(), 2), "n": np.tile(df["_w"].to_numpy(), 2)},
        ).astype({"key": "str", "cause": "category", "role": "category"}))
        self.endpoint_rows += 2 * len(df)
        if self.endpoint_rows - self.endpoint_sums > max(_REAGGREGATE, self.endpoint_sums):   # amortised
            self.endpoints = [self._endpoint_totals()]
            self.endpoint_sums = self.endpoint_rows = len(self.endpoints[0])
            from ..analyze import _give_back
            _give_back()                        # the pages the chunk tables held, to the system

    def _count_connections(self, df: pd.DataFrame) -> None:
        """A connection's two directions and its several RSTs count once; a flood its own count."""
        flood = df["connections"].notna() if "connections" in df else pd.Series(False, index=df.index)
        if flood.any():
            self.flood_connections += int(pd.to_numeric(df.loc[flood, "connections"]).sum())
        single = df[~flood]
        first = single["conn_first_frame"] if "conn_first_frame" in single else single["frame"]
        self.connection_keys.append(np.unique(connection_keys(single["file"], single["src"], single["sport"],
                                                              single["dst"], single["dport"], first)))

    def _endpoint_totals(self) -> pd.DataFrame:
        """(role, key, cause, n) summed per distinct (role, key, cause), in key order. Sorted, not
        hashed: a groupby's hash table of 300,000 distinct client addresses was the Markdown and
        HTML reports' peak (+60 MiB over what the digest holds; sorting them: +27 MiB). The order
        of the rows is nobody's concern: report/incident._top sorts them itself."""
        both = pd.concat(_same_categories(self.endpoints, ["role", "cause"]), ignore_index=True)
        both = both[both["key"].notna()]                # as groupby: a missing key is no endpoint
        key = pa.array(both["key"])
        key = key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key
        order = pc.sort_indices(key).to_numpy()
        key = key.take(pa.array(order))
        key_run = np.zeros(len(order), np.int64)        # the rank of each row's key, in sorted order
        if len(order) > 1:
            key_run[1:] = np.cumsum(pc.not_equal(key.slice(1), key.slice(0, len(key) - 1)).to_numpy(zero_copy_only=False))
        role = both["role"].cat.codes.to_numpy()[order]
        cause = both["cause"].cat.codes.to_numpy()[order]
        n = both["n"].to_numpy()[order]
        within = np.lexsort((cause, role, key_run))      # each key's rows by (role, cause)
        key_run, role, cause, n = key_run[within], role[within], cause[within], n[within]
        first = np.ones(len(n), bool)
        first[1:] = (key_run[1:] != key_run[:-1]) | (role[1:] != role[:-1]) | (cause[1:] != cause[:-1])
        starts = np.flatnonzero(first)
        return pd.DataFrame({
            "role": pd.Categorical.from_codes(role[starts], dtype=both["role"].dtype),
            "key": key.take(pa.array(within[starts])).to_pandas(types_mapper=_as_str),
            "cause": pd.Categorical.from_codes(cause[starts], dtype=both["cause"].dtype),
            "n": np.add.reduceat(n, starts) if len(n) else n}).astype({"key": "str"})

    # ------------------------------------------------------------------ rows kept whole

    def _keep(self, df: pd.DataFrame, at_once: bool = False) -> None:
        """Add `df`'s rows (in report order, cut to what _kept keeps of them) to those kept. What
        _kept keeps of all rows so far is among what it keeps of the kept ones and of each new
        table: a row among the first N (of all, of its cause, of its cause's (file, server)
        pairs) is among the first N of any part that holds it, provided each table sorted alone
        is in the order all of them sorted together give (one schema, as every reader of
        findings gives; see `add` for categorical keys). So tables are cut to their own first,
        and merged a few at a time (a merge concatenates and sorts every column: ~15 ms)."""
        self._pending.append(df)
        self._pending_rows += len(df)
        if at_once or self._pending_rows > _MERGE_ROWS:
            self._merge()

    def _merge(self) -> None:
        parts = ([self._rows] if self._rows is not None else []) + self._pending
        self._pending, self._pending_rows = [], 0
        rows = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        rows = rows.sort_values(SORT, kind="stable", ignore_index=True)
        self._rows = rows[_kept(rows)].reset_index(drop=True)

    @property
    def rows(self) -> pd.DataFrame | None:
        """The findings kept whole, in report order (None before any); reading them first merges
        the candidates still pending (a concatenation and a sort)."""
        if self._pending:
            self._merge()
        return self._rows

    # ------------------------------------------------------------------ what the report reads

    def per_cause(self) -> pd.Series:
        """Resets per cause, most first; equal counts in name order (as groupby then a stable sort)."""
        s = pd.Series({c: st.resets for c, st in sorted(self.causes.items())}, dtype="int64")
        return s.sort_values(ascending=False, kind="stable")

    def connections(self) -> int:
        keys = np.concatenate(self.connection_keys) if self.connection_keys else np.zeros(0, np.int64)
        return len(np.unique(keys)) + self.flood_connections

    def reset_table(self) -> pd.DataFrame:
        """time, cause, resets and (floods) summary of every finding, for the timeline."""
        names = np.array(list(self.cause_names), dtype=object)
        codes = np.concatenate(self.codes) if self.codes else np.zeros(0, np.int32)
        single = pd.DataFrame({"time": np.concatenate(self.times) if self.times else np.zeros(0),
                               "cause": names[codes] if len(names) else np.zeros(0, object),
                               "resets": np.ones(len(codes), np.int64), "summary": ""})
        return pd.concat([single, *self.floods], ignore_index=True)

    def endpoint_counts(self, role: str, top: int | None = None) -> pd.DataFrame:
        """(role, key, cause, n) of the role's endpoints; with `top`, only the rows of the `top`
        endpoints with most resets (equal counts in key order, as a sorted groupby then a stable sort)."""
        if not self.endpoints:
            return pd.DataFrame(columns=["role", "key", "cause", "n"])
        if len(self.endpoints) > 1 or self.endpoint_rows != self.endpoint_sums:     # summed once for both roles
            self.endpoints = [self._endpoint_totals()]
            self.endpoint_sums = self.endpoint_rows = len(self.endpoints[0])
        totals = self.endpoints[0]
        rows = totals[totals["role"] == role].reset_index(drop=True)      # still in key order
        if top is None or not len(rows):
            return rows
        key = pa.array(rows["key"])
        key = key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key
        starts = np.ones(len(rows), bool)
        starts[1:] = pc.not_equal(key.slice(1), key.slice(0, len(key) - 1)).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(starts)
        sums = np.add.reduceat(rows["n"].to_numpy(), starts)
        best = np.sort(np.argsort(-sums, kind="stable")[:top])
        ends = np.append(starts[1:], len(rows))
        picked = np.concatenate([np.arange(starts[b], ends[b]) for b in best])
        return rows.iloc[picked].reset_index(drop=True)

    def value_counts(self, cause: str, what: str) -> pd.Series:
        """As grp[what].value_counts() over the cause's findings in report order (senders count
        resets: a flood finding all of its own)."""
        tally = getattr(self.causes[cause], what)
        ordered = sorted(tally.items(), key=lambda kv: kv[1][1])       # by first appearance
        return pd.Series([n for _, (n, _) in ordered], index=pd.Index([k for k, _ in ordered], dtype=object),
                         dtype="int64").sort_values(ascending=False, kind="stable")


def _kept(rows: pd.DataFrame) -> np.ndarray:
    """Which of `rows` (in report order) the report keeps whole: the first TABLE_ROWS, and per
    cause its first 2 x SAMPLES and the first finding of each of its first SAMPLES distinct
    (file, server) pairs (as a groupby per cause and drop_duplicates would pick them, which
    cost ~3 ms a table whatever its rows; here codes and numpy)."""
    keep = np.zeros(len(rows), bool)
    keep[:TABLE_ROWS] = True
    cause = pd.factorize(rows["cause"])[0]            # a missing cause is in no group (-1)
    grouped = np.flatnonzero(cause >= 0)
    if not len(grouped):
        return keep
    cause = cause[grouped]
    keep[grouped[_first_of_each(cause, 2 * SAMPLES)]] = True
    # the first row of each (cause, file, server), missing values equal as drop_duplicates has them
    files = pd.factorize(rows["file"].to_numpy()[grouped], use_na_sentinel=False)[0]
    servers = pd.factorize(rows["_server"].to_numpy()[grouped], use_na_sentinel=False)[0]
    pair = pd.factorize(files * (int(servers.max()) + 1) + servers)[0]
    _, firsts = np.unique(cause * len(grouped) + pair, return_index=True)
    firsts.sort()
    keep[grouped[firsts[_first_of_each(cause[firsts], SAMPLES)]]] = True
    return keep


def _first_of_each(codes: np.ndarray, k: int) -> np.ndarray:
    """Positions of the first `k` rows of each code (rows in order)."""
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    rank = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    return order[rank < k]


# The columns the counters (_count) read; the others are needed only in the rows kept whole
_COUNTED = frozenset(SORT + ["_w", "_server", "_client", "cause", "sender", "confidence", "alternatives",
                             "remediation", "summary", "connections", "conn_first_frame", "src", "sport",
                             "dst", "dport", "copy_of"])


def _same_categories(frames: list[pd.DataFrame], columns: list[str]) -> list[pd.DataFrame]:
    """The frames with each categorical column over one set of categories, so they concatenate as
    categories (codes), not as text."""
    for col in columns:
        cats = sorted({str(c) for f in frames for c in f[col].cat.categories})
        frames = [f.assign(**{col: f[col].cat.set_categories(cats)}) for f in frames]
    return frames


def _as_str(arrow_type):
    """Arrow text read back as the digest's text dtype (no Python string per value)."""
    return pd.StringDtype(na_value=np.nan) if arrow_type in (pa.string(), pa.large_string()) else None


def _note_remediation(st: CauseStats, lists: list) -> None:
    """Whether the cause's findings differ in their remediation (ports and hosts filled in):
    then the report shows the rule's text with its placeholders. A rule's shared list is the
    same object in all its rows, so the usual case costs an identity test a row."""
    last = None
    for fixes in lists:
        if fixes is last:
            continue
        last = fixes
        fixes = list(fixes) if fixes is not None else []
        if st.remediation is None:
            st.remediation = fixes
        elif fixes != st.remediation:
            st.remediation_varies = True
            return


def _tally_group(st: CauseStats, grp: pd.DataFrame) -> None:
    """Tally a cause's findings (rows in report order, SORT) into its alternatives and senders: as
    _tally of each row in turn (a row's key the first of its name's), a distinct value at a time:
    its count and its first row's key. Senders count resets, as the cause's count does (a flood:
    all of its own); an alternative counts the findings that name it. Rows share their pattern's
    list of alternatives, so those are taken by object."""
    from .jsonl import by_identity

    def key(row: int) -> tuple:
        return (grp["time"].iat[row], str(grp["file"].iat[row]), grp["frame"].iat[row], grp["_seq"].iat[row])
    codes, distinct = by_identity(grp["alternatives"].tolist())
    rows, first = np.bincount(codes, minlength=len(distinct)), _first_rows(codes, len(distinct))
    for alts, n, at in zip(distinct, rows.tolist(), first.tolist()):
        for pos, a in enumerate(alts or []):
            _tally(st.alternatives, a, key(at) + (pos,), n)
    codes, senders = pd.factorize(grp["sender"], use_na_sentinel=False)
    weights = np.bincount(codes, weights=grp["_w"].to_numpy(float), minlength=len(senders))
    for sender, w, at in zip(senders.tolist(), weights.tolist(), _first_rows(codes, len(senders)).tolist()):
        _tally(st.senders, sender, key(at), int(w))


def connection_keys(file: pd.Series, src: pd.Series, sport: pd.Series, dst: pd.Series, dport: pd.Series,
                    first: pd.Series) -> np.ndarray:
    """A 64-bit key per finding, one per connection: (file, the lower and the higher of its two
    (address, port) ends, its first frame) hashed a column at a time. Each distinct text is
    hashed once (Python's hash, as every batch of one run gets the same); the ends are ordered
    as (str, int) tuples order, through the addresses numbered in sorted order."""
    n = len(file)
    if not n:
        return np.zeros(0, np.int64)

    def hashes(texts) -> np.ndarray:
        return np.array([hash(t) for t in texts.tolist()], np.int64).view(np.uint64)

    def text_hashes(values: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
        return hashes(uniques)[codes]
    ends = pd.concat([src, dst], ignore_index=True).astype(str)
    order, names = pd.factorize(ends, sort=True, use_na_sentinel=False)    # codes in str order
    name_hash = hashes(names)
    a, b = order[:n], order[n:]
    p, q = sport.to_numpy(np.int64), dport.to_numpy(np.int64)
    a_first = (a < b) | ((a == b) & (p <= q))
    lo_name, hi_name = np.where(a_first, a, b), np.where(a_first, b, a)
    lo_port, hi_port = np.where(a_first, p, q), np.where(a_first, q, p)
    if first.dtype.kind in "iu":                # int64, or Int64 where a missing one is hashed as its text
        missing = first.isna().to_numpy()
        frames = np.empty(n, np.uint64)
        frames[~missing] = first[~missing].to_numpy(np.int64).view(np.uint64)
        if missing.any():
            frames[missing] = text_hashes(first[missing])
    else:                                       # as text: each distinct one hashed
        frames = text_hashes(first)
    key = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for part in (text_hashes(file), name_hash[lo_name], lo_port.view(np.uint64), name_hash[hi_name],
                     hi_port.view(np.uint64), frames):
            key = (key ^ part) * np.uint64(0x9E3779B97F4A7C15)
            key ^= key >> np.uint64(29)
    return key.view(np.int64)


def _first_rows(codes: np.ndarray, n: int) -> np.ndarray:
    """The first row of each code 0..n-1."""
    first = np.full(n, len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first


def _tally(tally: dict, name, key, n: int = 1) -> None:
    entry = tally.get(name)
    if entry is None:
        tally[name] = [n, key]
    else:
        entry[0] += n
        if key < entry[1]:
            entry[1] = key
