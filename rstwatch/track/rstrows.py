"""Every RST of a batch's connections as columns: what the walk hands the feature table.

The compiled walk (walkloop.pyx) writes each RST's features straight into typed blocks (no
Python object per feature); the Python walk (connection.py, the reference and the fallback)
gives a list per RST, turned into the same columns here. Either way the feature table gets one
typed column per walk feature (rstwatch/columns.py: no pandas) and a row per RST, in connection
order.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from .. import columns
from ..features.registry import FEATURES
from .connection import WALK_FEATURES, Connection


@dataclass
class RstRows:
    conn: np.ndarray                 # index of the RST's connection in the batch's list
    row: np.ndarray                  # its row in the segment columns
    frame: np.ndarray
    evidence: list[list[int]]        # frames that show why, sorted
    features: dict                   # WALK_FEATURES name -> typed column (columns.Masked, Texts)
    # the two burst features when computed over more than this batch (a reset component walked in
    # pieces): a (2, rows) array, -1 where the batch computes them (features/extract.BurstInputs)
    burst: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.conn)

    @classmethod
    def concat(cls, parts: list["RstRows"], conn_offsets: list[int], row_offsets: list[int]) -> "RstRows":
        """Several batches' rows as one: connection and segment numbers shifted by the offsets."""
        if len(parts) == 1 and conn_offsets[0] == 0 and row_offsets[0] == 0:
            return parts[0]
        burst = None
        if any(p.burst is not None for p in parts):
            burst = np.concatenate([p.burst if p.burst is not None else np.full((2, len(p)), -1, np.int64)
                                    for p in parts], axis=1)
        return cls(conn=np.concatenate([p.conn + o for p, o in zip(parts, conn_offsets)]),
                   row=np.concatenate([p.row + o for p, o in zip(parts, row_offsets)]),
                   frame=np.concatenate([p.frame for p in parts]),
                   evidence=list(chain.from_iterable(p.evidence for p in parts)),
                   features={name: columns.concat([p.features[name] for p in parts])
                             for name in WALK_FEATURES},
                   burst=burst)


def from_python_walk(conns: list[Connection]) -> RstRows:
    """The Python walk's ConnRst lists (conns already in their final order) as columns."""
    from ..features.extract import nullable
    rsts = [r for c in conns for r in c.rsts]
    flat, width = list(chain.from_iterable(r.values for r in rsts)), len(WALK_FEATURES)
    return RstRows(
        conn=np.array([k for k, c in enumerate(conns) for _ in c.rsts], np.int64),
        row=np.array([c.idx[r.pos] for c in conns for r in c.rsts], np.int64),
        frame=np.array([r.frame for r in rsts], np.int64),
        evidence=[r.evidence for r in rsts],
        features={name: nullable(flat[k::width], FEATURES[name].kind) for k, name in enumerate(WALK_FEATURES)})


def from_compiled_walk(out, new_place: np.ndarray) -> RstRows:
    """walkloop's RstOut as columns; `new_place[k]` is where the walk's k-th connection went
    when the connections were sorted (its rows move with it, their order kept)."""
    from ..features.extract import nullable
    from .walkloop import TRIGGER_KINDS
    bools, ints, int_missing, floats, float_missing, kinds, conn, row, frame, _, _, evidence = out.trimmed()
    conn = new_place[conn]
    order = np.argsort(conn, kind="stable")
    if len(order) and not (order[1:] > order[:-1]).all():
        conn, row, frame, kinds = conn[order], row[order], frame[order], kinds[order]
        bools, ints, int_missing = bools[:, order], ints[:, order], int_missing[:, order]
        floats, float_missing = floats[:, order], float_missing[:, order]
        evidence = [evidence[k] for k in order.tolist()]
    features, slot = {}, {"bool": 0, "int": 0, "float": 0}
    for name in WALK_FEATURES:
        kind = FEATURES[name].kind
        if kind == "str":                           # trigger.kind, by code
            features[name] = nullable(np.array(TRIGGER_KINDS, dtype=object)[kinds].tolist(), "str")
            continue
        k = slot[kind]
        slot[kind] += 1
        if kind == "bool":
            features[name] = columns.Masked(bools[k] == 1, bools[k] < 0, "boolean")
        elif kind == "int":
            features[name] = columns.Masked(np.ascontiguousarray(ints[k]), int_missing[k].astype(bool), "Int64")
        else:
            mask = float_missing[k].astype(bool)
            features[name] = columns.Masked(np.where(mask, np.nan, floats[k]), mask, "Float64")   # NaN under the mask, as pandas makes it
    return RstRows(conn=conn, row=row, frame=frame, evidence=evidence, features=features)
