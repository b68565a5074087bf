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
    rows = []
    ids = {id(c): k for k, c in enumerate(conns)}
    for conn_id, c in enumerate(conns):
        root = c
        while root.continues is not None and id(root.continues) in ids:
            root = root.continues
        first, last = P["frame"][c.idx[0]], P["frame"][c.idx[-1]]
        for r in c.rsts:
            i = c.idx[r.pos]
            v6 = P["v6"][i]
            src = address_text(v6, P["src_hi"][i], P["src_lo"][i])
            dst = address_text(v6, P["dst_hi"][i], P["dst_lo"][i])
            sport, dport = P["sport"][i], P["dport"][i]
            row = {
                "file": file, "frame": r.frame, "time": P["ts_ns"][i] / 1e9,
                "src": src, "sport": sport, "dst": dst, "dport": dport,
                "sender": "unknown" if r.features["rst.from_client"] is None
                          else ("client" if r.features["rst.from_client"] else "server"),
                "sender_inferred": bool(c.role_inferred and c.client_dir is not None),
                "conn_state": c.conn_state, "history": c.history, "evidence": r.evidence,
                "wireshark_filter": _display_filter(v6, src, dst, sport, dport, first, last),
                "conn_first_frame": first, "conn_last_frame": last, "conn_id": conn_id,
                "conn_lineage": ids[id(root)],
                "_server": None if r.features["rst.from_server"] is None else
                           ((dst, dport) if r.features["rst.from_client"] else (src, sport)),
            }
            row.update(r.features)
            rows.append(row)
    if rows:
        _check_computed(rows[0])
    df = pd.DataFrame(rows, columns=META_COLUMNS + ["_server"] + list(FEATURES))
    df["conn.server_rst_burst"] = _server_burst(df)
    df = df.drop(columns="_server")
    for name, feat in FEATURES.items():
        df[name] = df[name].astype(PANDAS_DTYPE[feat.kind])
    df["frame"] = df["frame"].astype("int64")
    df["time"] = df["time"].astype("float64")
    return df


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
    connections to the same server endpoint were reset within `window_s` (listener death)."""
    out = pd.Series(0, index=df.index, dtype="int64")
    if df.empty:
        return out
    eligible = (df["rst.from_server"] == True) & (df["conn.server_bytes"].fillna(1) == 0)  # noqa: E712
    eligible &= df["rst.index_in_conn"] == 0
    sub = df[eligible]
    for _, grp in sub.groupby(sub["_server"].astype(str)):
        t = np.sort(grp["time"].to_numpy())
        times = grp["time"].to_numpy()
        counts = np.searchsorted(t, times + window_s, "right") - np.searchsorted(t, times - window_s, "left")
        out.loc[grp.index] = counts
    return out
