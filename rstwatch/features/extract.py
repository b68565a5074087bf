"""One row per RST segment: identity columns plus every registered feature, typed."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import columns as columns_, textcolumns
from ..columns import Masked, Meta, Table, Texts
from ..loops import factorize_keys
from ..sources.segments import address_text
from ..sources.tunnels import tunnel_texts
from typing import TYPE_CHECKING, NamedTuple

# pandas and pyarrow are imported when a table is built: the rule loader imports this module
# (its features are declared here), and loading the rules needs neither (tests/test_startup.py)
if TYPE_CHECKING:                 # the tracker imports this module's registry: no runtime import back
    import pandas as pd
    from ..track.connection import Connection
    from ..track.rstrows import RstRows
from .registry import FEATURES, PANDAS_DTYPE, declare

META_COLUMNS = ["file", "frame", "time", "src", "sport", "dst", "dport", "sender", "conn_state",
                "history", "evidence", "wireshark_filter", "conn_first_frame", "conn_last_frame",
                "sender_inferred", "conn_id", "conn_lineage", "tunnel"]


def feature_table(file: str, P: dict[str, np.ndarray], conns: list[Connection] | ConnColumns,
                  rsts: RstRows | None = None) -> pd.DataFrame:
    """feature_columns as a DataFrame."""
    return feature_columns(file, P, conns, rsts).to_pandas()


def feature_columns(file: str, P: dict[str, np.ndarray], conns: list[Connection] | ConnColumns,
                    rsts: RstRows | None = None) -> Table:
    """One typed row per RST of `conns`, built a column at a time: the walk's features come as
    typed columns already (track/rstrows.py), what a connection gives all its resets is computed
    once per connection, and the segment columns are gathered at the RSTs' rows."""
    from ..track.connection import WALK_FEATURES
    if rsts is None:
        from ..track.rstrows import from_python_walk
        rsts = from_python_walk([])
    n = len(rsts)
    if n:
        _check_computed(WALK_FEATURES)
    conn_of, rows = rsts.conn, rsts.row

    def at(column: str) -> list:                  # a segment column at the RSTs' rows
        return P[column][rows].tolist() if n else []

    def per_conn(values, dtype=object) -> np.ndarray:   # a value per connection, repeated for each of its RSTs
        return np.asarray(values, dtype=dtype)[conn_of] if n else np.zeros(0, dtype)

    columns = conns if isinstance(conns, ConnColumns) else connection_columns(conns)
    first_rows, last_rows, states, histories, inferred, lineage = columns
    frame = P["frame"] if len(first_rows) else np.zeros(0, np.int64)
    # numbers stay int64 arrays, the type their columns get (a list each way cost ~10 ms a
    # column per 100,000 resets); a table without rows keeps its lists, as its columns' types
    # come from them
    firsts = frame[per_conn(first_rows, np.int64)] if n else []
    lasts = frame[per_conn(last_rows, np.int64)] if n else []
    sports = P["sport"][rows].astype(np.int64) if n else []
    dports = P["dport"][rows].astype(np.int64) if n else []
    srcs, dsts = _addresses(P, rows, "src"), _addresses(P, rows, "dst")
    from_client = rsts.features["rst.from_client"]
    client_known = ~columns_.isna(from_client)
    is_client = columns_.to_numpy(from_client, bool, False)
    sender = np.where(client_known, np.where(is_client, "client", "server"), "unknown").astype(object)
    meta = {
        "file": [file] * n,
        "frame": rsts.frame,
        "time": P["ts_ns"][rows] / 1e9 if n else [],
        "src": srcs, "sport": sports, "dst": dsts, "dport": dports,
        "sender": sender,
        "conn_state": per_conn(states),
        "history": per_conn(histories),
        "evidence": list(rsts.evidence),          # the table's own list: _older_connection adds to it
        "wireshark_filter": _display_filters(P, rows, srcs, dsts, firsts, lasts),
        "conn_first_frame": firsts,
        "conn_last_frame": lasts,
        "sender_inferred": per_conn(inferred, bool),
        "conn_id": conn_of,
        "conn_lineage": per_conn(lineage, np.int64),
        "tunnel": tunnel_texts(at("tunnel")) if "tunnel" in P else [None] * n,
    }
    columns = {name: _meta_column_light(name, values) for name, values in meta.items()}
    for name, feat in FEATURES.items():        # the table's own features are filled in below
        columns[name] = _unknown(n, feat.kind) if name in TABLE_FEATURES else rsts.features[name]
    table = Table(columns, n)
    burst = rsts.burst                  # computed over a whole reset component walked in pieces
    if burst is None or (burst < 0).any():
        own = np.stack(burst_values(burst_inputs(P, rsts)))
        burst = own if burst is None else np.where(burst >= 0, burst, own)
    table["conn.server_rst_burst"] = Masked(burst[0].astype(np.int64), np.zeros(n, bool), "Int64")
    table["conn.server_alive_in_burst"] = Masked(burst[1].astype(np.int64), np.zeros(n, bool), "Int64")
    _older_connection(table, P, rows, per_conn(first_rows, np.int64))
    return table


class ConnColumns(NamedTuple):
    """A value per walked connection (connection_columns): what the findings need of the
    connection objects, which can then go (a few objects per connection, ~150 bytes)."""
    first_rows: np.ndarray          # row of its first and last segment
    last_rows: np.ndarray
    states: list                    # conn_state
    histories: list                 # Zeek-style history
    inferred: np.ndarray            # roles inferred with a client known
    lineage: np.ndarray             # place of the first piece of its 4-tuple it continues

    @classmethod
    def concat(cls, parts: list["ConnColumns"], conn_offsets: list[int], row_offsets: list[int]) -> "ConnColumns":
        """Several batches' connections as one: segment rows and places shifted by the offsets."""
        return cls(first_rows=np.concatenate([p.first_rows + o for p, o in zip(parts, row_offsets)]),
                   last_rows=np.concatenate([p.last_rows + o for p, o in zip(parts, row_offsets)]),
                   states=[s for p in parts for s in p.states],
                   histories=[h for p in parts for h in p.histories],
                   inferred=np.concatenate([p.inferred for p in parts]),
                   lineage=np.concatenate([p.lineage + o for p, o in zip(parts, conn_offsets)]))


def connection_columns(conns: list[Connection]) -> ConnColumns:
    """A value per connection: first and last segment row, conn_state, history, whether its
    roles were inferred with a client known, and its lineage (the place in `conns` of the first
    piece of its 4-tuple it continues, through pieces in `conns`; its own place if none). In C
    for the compiled walk's connections (walkloop.connection_columns)."""
    compiled = _walk_columns()
    if compiled is not None:
        columns = compiled(conns)
        if columns is not None:
            return ConnColumns(*columns)
    return ConnColumns(*connection_columns_python(conns))


def connection_columns_python(conns: list[Connection]) -> tuple:
    """connection_columns in Python: the reference."""
    ids = {id(c): k for k, c in enumerate(conns)}
    lineage = []
    for c in conns:
        root = c
        while root.continues is not None and id(root.continues) in ids:
            root = root.continues
        lineage.append(ids[id(root)])
    return (np.array([c.idx[0] for c in conns], np.int64), np.array([c.idx[-1] for c in conns], np.int64),
            [c.conn_state for c in conns], [c.history for c in conns],
            np.array([bool(c.role_inferred and c.client_dir is not None) for c in conns], bool),
            np.array(lineage, np.int64))


def _unknown(n: int, kind: str):
    """A feature column of `n` rows, none known (as nullable([None] * n, kind) makes it)."""
    if kind == "str":
        return Texts([None] * n, how="string")
    return Masked.unknown(n, PANDAS_DTYPE[kind])


def nullable(values: list, kind: str):
    """A feature column (None where not known) as a plain typed column (rstwatch/columns.py),
    which becomes nullable_pandas' array when a DataFrame is asked for. Booleans and numbers are
    read with numpy's comparisons."""
    if kind == "str":
        return Texts(list(values), how="string")
    dtype = PANDAS_DTYPE[kind]
    if not len(values):
        return Masked.unknown(0, dtype)
    objects = np.array(values, dtype=object)
    missing = np.asarray(objects == None, dtype=bool)          # noqa: E711 (elementwise)
    if kind == "bool":
        return Masked(np.asarray(objects == True, dtype=bool), missing, dtype)    # noqa: E712
    try:
        if kind == "int":
            return Masked(np.where(missing, 0, objects).astype(np.int64), missing, dtype)
        floats = np.where(missing, np.nan, objects).astype(np.float64)
        return Masked(floats, missing | np.isnan(floats), dtype)
    except (TypeError, ValueError, OverflowError):     # not plain numbers: pandas says what is wrong
        return nullable_pandas(values, kind)


def nullable_pandas(values: list, kind: str):
    """A feature column in its nullable pandas type. Booleans and integers (None where not
    known) are built from their values and a mask with numpy's comparisons: pd.array() inspects
    every value in Python (30 ms for 100,000 integers against 13)."""
    import pandas as pd
    import pyarrow
    from pandas.arrays import ArrowStringArray, BooleanArray, IntegerArray
    if kind in ("bool", "int") and values:
        objects = np.array(values, dtype=object)
        missing = np.asarray(objects == None, dtype=bool)          # noqa: E711 (elementwise)
        if kind == "bool":
            return BooleanArray(np.asarray(objects == True, dtype=bool), missing)    # noqa: E712
        try:
            return IntegerArray(np.where(missing, 0, objects).astype(np.int64), missing)
        except (TypeError, ValueError, OverflowError):     # not plain integers: pandas says what is wrong
            pass
    elif kind == "str" and values and pd.StringDtype().storage == "pyarrow":
        try:        # pyarrow reads the texts at once (5 ms for 100,000 against pandas' 21)
            return ArrowStringArray(pyarrow.array(values, type=pyarrow.large_string()))
        except (pyarrow.ArrowException, TypeError, ValueError):
            pass
    return pd.array(values, dtype=PANDAS_DTYPE[kind])


# The per-row texts in C (rstwatch/rowtexts.pyx) when it was built; RSTWATCH_PURE_PYTHON=1 keeps
# the Python ones, the reference (tests/test_rowtexts.py).
_compiled = None
if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
    try:
        from .. import rowtexts as _compiled
    except ImportError:
        pass


@lru_cache(maxsize=1)
def _walk_columns():
    """walkloop.connection_columns when it was built, looked up at first use: walkloop imports the
    feature registry, which imports this module, so an import here at load time failed whenever
    the walk was imported first (then the Python twin ran, ~3x slower, and nothing said so)."""
    if os.environ.get("RSTWATCH_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from ..track.walkloop import connection_columns
    except ImportError:
        return None
    return connection_columns


def _addresses(P: dict[str, np.ndarray], rows: np.ndarray, end: str) -> list[str]:
    """The printable `end` ("src" or "dst") address of each of `rows`: ~0.1 us a row in C, ~1.5
    in Python (ipaddress) for an address not seen before."""
    if not len(rows):
        return []
    v6, hi, lo = P["v6"][rows], P[end + "_hi"][rows], P[end + "_lo"][rows]
    if _compiled is not None:
        return _compiled.address_texts(np.ascontiguousarray(v6).view(np.uint8), np.ascontiguousarray(hi, np.uint64),
                                       np.ascontiguousarray(lo, np.uint64), address_text)
    return list(map(address_text, v6.tolist(), hi.tolist(), lo.tolist()))


def _display_filters(P: dict[str, np.ndarray], rows: np.ndarray, srcs: list[str], dsts: list[str],
                     firsts: np.ndarray, lasts: np.ndarray) -> Texts | list[str]:
    if not len(rows):
        return []
    v6, sports, dports = P["v6"][rows], P["sport"][rows], P["dport"][rows]
    if _compiled is not None:
        args = (np.ascontiguousarray(v6).view(np.uint8), srcs, dsts, sports.astype(np.int64), dports.astype(np.int64),
                np.asarray(firsts, np.int64), np.asarray(lasts, np.int64))
        return Texts(buffers=_compiled.display_filter_buffers(*args), how="meta")
    return [_display_filter(*row) for row in zip(v6.tolist(), srcs, dsts, sports.tolist(), dports.tolist(), firsts, lasts)]


def _display_filter(v6: bool, a: str, b: str, pa: int, pb: int, first: int, last: int) -> str:
    fam = "ipv6" if v6 else "ip"
    return (f"{fam}.addr=={a} && {fam}.addr=={b} && tcp.port=={pa} && tcp.port=={pb}"
            f" && frame.number>={first} && frame.number<={last}")


# The types pandas gives these columns from their values (a table without rows keeps them as
# objects, but for frame and time, as before)
_META_DTYPES = {"frame": "int64", "time": "float64", "sport": "int64", "dport": "int64", "conn_first_frame": "int64",
                "conn_last_frame": "int64", "sender_inferred": "bool", "conn_id": "int64", "conn_lineage": "int64"}


def _meta_column_light(name: str, values) -> np.ndarray | Meta | Texts:
    """A meta column as the table holds it: numbers as _meta_column types them, the rest as
    given (made pandas' column by _meta_column when a DataFrame is asked for)."""
    if isinstance(values, Texts):
        return values
    if name in _META_DTYPES and (len(values) or name in ("frame", "time")):
        return np.array(values, dtype=_META_DTYPES[name])
    return Meta(values)


def _meta_column(name: str, values) -> np.ndarray:
    if not isinstance(values, (list, np.ndarray)):      # a typed column already (Arrow texts)
        return values
    if name in _META_DTYPES and (len(values) or name in ("frame", "time")):
        return np.array(values, dtype=_META_DTYPES[name])
    texts = textcolumns.from_texts(values)        # the column pandas makes of texts, made in C
    if texts is not None:
        return texts
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _check_computed(computed: list[str]) -> None:
    """A declared feature that no code computes would silently be NA in every row: refuse."""
    missing = [n for n in FEATURES if n not in computed and n not in TABLE_FEATURES]
    if missing:
        raise RuntimeError(f"features declared but never computed: {', '.join(missing)}")


BURST_FEATURES = declare(
    ("conn.server_rst_burst", "int", "", "connections to the same server endpoint reset by it within 1 s, this one included, none of which got server data"),
    ("conn.server_alive_in_burst", "int", "", "in a run of server resets on never-served connections from one server endpoint (each within 2 s of the previous, two or more): signs the listener was still accepting during the run: resets more than 0.1 s after the run's previous one (a listener that dies resets its whole queue at once); 0 for a lone reset"),
)


def _server_endpoints(P: dict[str, np.ndarray], rows: np.ndarray, is_client: np.ndarray) -> np.ndarray:
    """The server end of each RST as (family, address high and low 64 bits, port) rows: the
    receiver's end when the client sent it, else the sender's (only rows whose sender is known
    are grouped by it)."""
    if not len(rows):
        return np.zeros((0, 4), np.uint64)
    pick = np.asarray(is_client, bool)
    return np.stack([P["v6"][rows].astype(np.uint64),
                     np.where(pick, P["dst_hi"][rows], P["src_hi"][rows]).astype(np.uint64),
                     np.where(pick, P["dst_lo"][rows], P["src_lo"][rows]).astype(np.uint64),
                     np.where(pick, P["dport"][rows], P["sport"][rows]).astype(np.uint64)], axis=1)


def _endpoint_codes(endpoints: np.ndarray) -> np.ndarray:
    """A code per row of `endpoints`, the same for equal rows, in order of first appearance: the
    rows hashed to 64 bits and numbered by a hash table, then checked against the first row of
    their code; should two endpoints share a hash, they are numbered exactly (sorting) instead."""
    with np.errstate(over="ignore"):
        keys = (endpoints[:, 1] * np.uint64(0x9E3779B97F4A7C15)) ^ (endpoints[:, 2] * np.uint64(0xC2B2AE3D27D4EB4F)) \
            ^ (endpoints[:, 3] << np.uint64(48)) ^ (endpoints[:, 0] << np.uint64(47))
    codes, distinct = factorize_keys(np.ascontiguousarray(keys))
    first = np.full(len(distinct), len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    if (endpoints == endpoints[first[codes]]).all():
        return codes
    _, at, inverse = np.unique(endpoints, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(at), np.int64)
    rank[np.argsort(at, kind="stable")] = np.arange(len(at))
    return rank[inverse.reshape(-1)]


@dataclass
class BurstInputs:
    """What the two burst features need of each RST of a batch, as arrays. A reset component too
    big to classify at once is walked in pieces; their inputs are joined and the features
    computed over all of it, as one batch would (analyze.VerdictBatch._add_piece)."""
    n: int                      # RSTs in all
    counted: np.ndarray         # the RSTs the features count (_counted_rows), as positions
    times: np.ndarray           # seconds, of the counted RSTs
    servers: np.ndarray         # their server endpoints (_server_endpoints)
    senders: np.ndarray         # a 64-bit key of each one's sender (address and port)

    @classmethod
    def join(cls, parts: list["BurstInputs"]) -> "BurstInputs":
        starts = np.cumsum([0] + [p.n for p in parts])
        return cls(n=int(starts[-1]), counted=np.concatenate([p.counted + a for p, a in zip(parts, starts)]),
                   times=np.concatenate([p.times for p in parts]),
                   servers=np.concatenate([p.servers for p in parts]),
                   senders=np.concatenate([p.senders for p in parts]))


def burst_inputs(P: dict[str, np.ndarray], rsts: RstRows) -> BurstInputs:
    """BurstInputs of the walked RSTs `rsts` (their segments in `P`)."""
    counted = _counted_rows(rsts.features) if len(rsts) else np.zeros(0, np.int64)
    is_client = columns_.to_numpy(rsts.features["rst.from_client"], bool, False)[counted] if len(rsts) else counted
    at = np.asarray(rsts.row)[counted]
    with np.errstate(over="ignore"):
        senders = P["src_hi"][at] * np.uint64(0x9E3779B97F4A7C15) ^ P["src_lo"][at] \
            ^ (P["sport"][at].astype(np.uint64) << np.uint64(48)) if len(at) else np.zeros(0, np.uint64)
    return BurstInputs(n=len(rsts), counted=counted, times=P["ts_ns"][at] / 1e9 if len(at) else np.zeros(0),
                       servers=_server_endpoints(P, at, is_client), senders=senders)


def _counted_rows(features: dict) -> np.ndarray:
    """Positions of the server resets on connections that never got server data (their first
    reset); an unknown value in any of the three features leaves the RST out. From the arrays:
    not through pandas: each of its operations on a Series cost ~50 us, whatever the rows."""
    from_server = columns_.to_numpy(features["rst.from_server"], bool, False)
    no_server_data = columns_.to_numpy(features["conn.server_bytes"], np.float64, 1.0) == 0
    first_reset = columns_.to_numpy(features["rst.index_in_conn"], np.float64, -1.0) == 0
    return np.flatnonzero(from_server & no_server_data & first_reset)


def burst_values(inputs: BurstInputs) -> tuple[np.ndarray, np.ndarray]:
    """conn.server_rst_burst and conn.server_alive_in_burst of every RST (0 where not counted)."""
    return _server_burst(inputs), _server_alive(inputs)


def _server_burst(inputs: BurstInputs, window_s: float = 1.0) -> np.ndarray:
    """For server-sent RSTs on connections that never got server data: how many such
    connections to the same server endpoint were reset within `window_s` (listener death).
    Grouped with numpy (a pandas group per server endpoint cost ~100 us each: 50,000 spoofed
    resets, each to its own endpoint, spent 70% of a read here)."""
    out = np.zeros(inputs.n, np.int64)
    rows, times = inputs.counted, inputs.times
    if len(rows):
        codes = _endpoint_codes(inputs.servers)             # a code per server endpoint
        order = np.argsort(codes, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
        sizes = np.diff(np.r_[starts, len(order)])
        out[rows[order[np.repeat(sizes == 1, sizes)]]] = 1      # an endpoint reset once: the reset itself
        for a, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            group = order[a:a + size]
            t = np.sort(times[group])
            mine = times[group]
            out[rows[group]] = np.searchsorted(t, mine + window_s, "right") - np.searchsorted(t, mine - window_s, "left")
    return out


SWEEP_S = 0.1          # a closing listener resets its queue in one sweep (measured: within 1 ms)
RUN_GAP_S = 2.0        # refusals this close belong to one run (git daemon waits 1 s before each)


def _server_alive(inputs: BurstInputs, gap_s: float = RUN_GAP_S) -> np.ndarray:
    """conn.server_alive_in_burst: a listener at its connection limit accepts and closes new
    connections one at a time while it goes on serving; a listener that closes resets its
    queue at once. Runs of never-served resets from one endpoint (gaps <= `gap_s`) are found
    with numpy and counted by their resets well apart. Only the run's own resets count: they are
    classified together however the capture is batched (flows.reset_components chains resets
    this close), while other connections' SYN-ACKs and data depend on what else a batch holds
    (a first version counted them, and its verdicts changed with the batch size)."""
    out = np.zeros(inputs.n, np.int64)
    rows = inputs.counted
    if len(rows) < 2:
        return out
    codes = factorize_keys(np.ascontiguousarray(inputs.senders, np.uint64))[0].astype(np.int64)   # one per sending endpoint
    times = inputs.times
    order = np.lexsort((times, codes))
    c, t = codes[order], times[order]
    gap = np.diff(t)
    new_run = np.r_[True, (c[1:] != c[:-1]) | (gap > gap_s)]
    run = np.cumsum(new_run) - 1
    sizes = np.bincount(run)
    spread = np.r_[False, ~new_run[1:] & (gap > SWEEP_S)]     # a reset well after the run's previous one
    alive = np.bincount(run, weights=spread, minlength=len(sizes)).astype(np.int64)
    alive[sizes < 2] = 0
    out[rows[order]] = alive[run]
    return out


OLDER_FEATURES = declare(
    ("conn.older_established", "bool", "", "for a RST answering a challenge ACK (rst.answers_challenge_ack): whether the older connection on the same 4-tuple in the capture (up to 300 s before) had completed its handshake or carried data (an established connection its host lost) or not (an attempt given up before its SYN-ACK came); unset when the capture shows none"),
    ("conn.older_first_frame", "int", "frame", "for a RST answering a challenge ACK: the first frame of the older connection on the same 4-tuple that the peer still held (also in the evidence)"),
)
TABLE_FEATURES = BURST_FEATURES + OLDER_FEATURES
OLDER_LOOKBACK_NS = 300 * 1_000_000_000


def _endpoint_keys(P: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """A direction-independent 64-bit key of each row's 4-tuple."""
    a = (P["src_hi"][rows] * np.uint64(0x9E3779B97F4A7C15)) ^ P["src_lo"][rows] ^ (P["sport"][rows].astype(np.uint64) << np.uint64(48))
    b = (P["dst_hi"][rows] * np.uint64(0x9E3779B97F4A7C15)) ^ P["dst_lo"][rows] ^ (P["dport"][rows].astype(np.uint64) << np.uint64(48))
    return (np.minimum(a, b) * np.uint64(0xC2B2AE3D27D4EB4F)) ^ np.maximum(a, b)


def _older_connection(table: Table, P: dict[str, np.ndarray], rst_rows, conn_first_rows: np.ndarray) -> None:
    """conn.older_established, conn.older_first_frame: what the capture shows of the connection a
    challenge ACK speaks for, i.e. the same 4-tuple's segments before this connection's first one
    (the walk splits them off at the new SYN). Established: data, or an ACK without SYN from the
    RST's sender (it had answered a SYN-ACK). Only the rare challenge resets look, so this is one
    vectorised pass over the batch's segments when there is any."""
    n = len(table)
    est: list = [None] * n
    first: list = [None] * n
    hits = np.flatnonzero(columns_.to_numpy(table["rst.answers_challenge_ack"], bool, False)) if n else []
    if len(hits):
        rst_rows = np.asarray(rst_rows)
        every = np.arange(len(P["frame"]))
        keys = _endpoint_keys(P, every)
        flags, plen, ts = P["flags"], P["plen"], P["ts_ns"]
        evidence = table["evidence"].values
        # a batch can hold several files one after another (their frame numbers start again):
        # the older connection must be in the same file, whose rows run with rising frame numbers
        starts = np.r_[0, np.flatnonzero(np.diff(P["frame"]) <= 0) + 1]
        for r in hits.tolist():
            i, start = int(rst_rows[r]), int(conn_first_rows[r])
            block = int(starts[np.searchsorted(starts, start, "right") - 1])
            older = (keys == keys[i]) & (every >= block) & (every < start) & (ts >= ts[start] - OLDER_LOOKBACK_NS)
            if "tunnel" in P:               # one 4-tuple in two tunnels is two flows (flows.flow_hash)
                older &= P["tunnel"] == P["tunnel"][i]
            older = np.flatnonzero(older)
            if not len(older):
                continue
            same_side = (P["sport"][older] == P["sport"][i]) & (P["src_lo"][older] == P["src_lo"][i]) \
                & (P["src_hi"][older] == P["src_hi"][i])
            f = flags[older]
            answered = same_side & ((f & 0x10) != 0) & ((f & 0x06) == 0)      # ACK, no SYN, no RST
            est[r] = bool((plen[older] > 0).any() or answered.any())
            first[r] = int(P["frame"][older[0]])
            evidence[r] = sorted(set(evidence[r]) | {first[r], int(P["frame"][older[-1]])})
    table["conn.older_established"] = nullable(est, "bool")
    table["conn.older_first_frame"] = nullable(first, "int")
