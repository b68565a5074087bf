"""One row per RST segment: identity columns plus every registered feature, typed."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..sources.segments import address_text
from typing import TYPE_CHECKING

if TYPE_CHECKING:                 # the tracker imports this module's registry: no runtime import back
    from ..track.connection import Connection
from .registry import FEATURES, PANDAS_DTYPE, declare

META_COLUMNS = ["file", "frame", "time", "src", "sport", "dst", "dport", "sender", "conn_state",
                "history", "evidence", "wireshark_filter", "conn_first_frame", "conn_last_frame",
                "sender_inferred", "conn_id", "conn_lineage"]


def _display_filter(v6: bool, a: str, b: str, pa: int, pb: int, first: int, last: int) -> str:
    fam = "ipv6" if v6 else "ip"
    return (f"{fam}.addr=={a} && {fam}.addr=={b} && tcp.port=={pa} && tcp.port=={pb}"
            f" && frame.number>={first} && frame.number<={last}")


def feature_table(file: str, P: dict[str, list], conns: list[Connection]) -> pd.DataFrame:
    """One typed row per RST of `conns`, built a column at a time (a dict per row and pandas'
    row-wise construction cost ~30 us a reset)."""
    meta: dict[str, list] = {c: [] for c in META_COLUMNS + ["_server"]}
    (files, frames, times, srcs, sports, dsts, dports, senders, states, histories, evidence, filters,
     firsts, lasts, inferred, conn_ids, lineages, servers) = meta.values()
    rsts = []
    ids = {id(c): k for k, c in enumerate(conns)}
    for conn_id, c in enumerate(conns):
        root = c
        while root.continues is not None and id(root.continues) in ids:
            root = root.continues
        first, last = P["frame"][c.idx[0]], P["frame"][c.idx[-1]]
        lineage = ids[id(root)]
        role_inferred = bool(c.role_inferred and c.client_dir is not None)
        for r in c.rsts:
            i = c.idx[r.pos]
            v6 = P["v6"][i]
            src = address_text(v6, P["src_hi"][i], P["src_lo"][i])
            dst = address_text(v6, P["dst_hi"][i], P["dst_lo"][i])
            sport, dport = P["sport"][i], P["dport"][i]
            from_client = r.features["rst.from_client"]
            files.append(file)
            frames.append(r.frame)
            times.append(P["ts_ns"][i] / 1e9)
            srcs.append(src)
            sports.append(sport)
            dsts.append(dst)
            dports.append(dport)
            senders.append("unknown" if from_client is None else ("client" if from_client else "server"))
            states.append(c.conn_state)
            histories.append(c.history)
            evidence.append(r.evidence)
            filters.append(_display_filter(v6, src, dst, sport, dport, first, last))
            firsts.append(first)
            lasts.append(last)
            inferred.append(role_inferred)
            conn_ids.append(conn_id)
            lineages.append(lineage)
            servers.append(None if r.features["rst.from_server"] is None else
                           ((dst, dport) if from_client else (src, sport)))
            rsts.append(r.features)
    if rsts:
        _check_computed(rsts[0])
    columns = {name: _meta_column(name, values) for name, values in meta.items()}
    for name, feat in FEATURES.items():
        values = [f.get(name) for f in rsts] if name in BURST_FEATURES else [f[name] for f in rsts]
        columns[name] = pd.array(values, dtype=PANDAS_DTYPE[feat.kind])
    df = pd.DataFrame(columns, copy=False)
    df["conn.server_rst_burst"] = _server_burst(df).astype(PANDAS_DTYPE["int"])
    return df.drop(columns="_server")


# The types pandas gives these columns from their values (a table without rows keeps them as
# objects, but for frame and time, as before)
_META_DTYPES = {"frame": "int64", "time": "float64", "sport": "int64", "dport": "int64", "conn_first_frame": "int64",
                "conn_last_frame": "int64", "sender_inferred": "bool", "conn_id": "int64", "conn_lineage": "int64"}


def _meta_column(name: str, values: list) -> np.ndarray:
    if name in _META_DTYPES and (values or name in ("frame", "time")):
        return np.array(values, dtype=_META_DTYPES[name])
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _check_computed(row: dict) -> None:
    """A declared feature that no code computes would silently be NA in every row: refuse."""
    missing = [n for n in FEATURES if n not in row and n not in BURST_FEATURES]
    if missing:
        raise RuntimeError(f"features declared but never computed: {', '.join(missing)}")


BURST_FEATURES = declare(
    ("conn.server_rst_burst", "int", "", "connections to the same server endpoint reset by it within 1 s, this one included, none of which got server data"),
)


def _server_burst(df: pd.DataFrame, window_s: float = 1.0) -> pd.Series:
    """For server-sent RSTs on connections that never got server data: how many such
    connections to the same server endpoint were reset within `window_s` (listener death).
    Grouped with numpy (a pandas group per server endpoint cost ~100 us each: 50,000 spoofed
    resets, each to its own endpoint, spent 70% of a read here)."""
    out = np.zeros(len(df), np.int64)
    if df.empty:
        return pd.Series(out, index=df.index)
    eligible = (df["rst.from_server"] == True) & (df["conn.server_bytes"].fillna(1) == 0)  # noqa: E712
    eligible &= df["rst.index_in_conn"] == 0
    rows = np.flatnonzero(eligible.fillna(False).to_numpy(bool))
    if len(rows):
        keys = [str(k) for k in df["_server"].to_numpy(object)[rows]]
        codes, _ = pd.factorize(pd.Index(keys, dtype=object), sort=False)
        times = df["time"].to_numpy(np.float64)[rows]
        order = np.argsort(codes, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
        sizes = np.diff(np.r_[starts, len(order)])
        out[rows[order[np.repeat(sizes == 1, sizes)]]] = 1      # an endpoint reset once: the reset itself
        for a, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            group = order[a:a + size]
            t = np.sort(times[group])
            mine = times[group]
            out[rows[group]] = np.searchsorted(t, mine + window_s, "right") - np.searchsorted(t, mine - window_s, "left")
    return pd.Series(out, index=df.index)
