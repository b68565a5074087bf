"""The closed vocabulary of features rules may use: name -> (type, unit, meaning).

Each feature is declared once, next to the code that computes it (`declare(...)` in
track/connection.py and features/extract.py); rule conditions are checked against this table at
load time, and feature_table() refuses to build a row that lacks a declared feature.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str        # bool | int | float | str
    unit: str
    meaning: str


PANDAS_DTYPE = {"bool": "boolean", "int": "Int64", "float": "Float64", "str": "string"}
FEATURES: dict[str, Feature] = {}


def declare(*specs: tuple[str, str, str, str]) -> list[str]:
    """Register (name, kind, unit, meaning) features; a name declared twice is a bug."""
    for name, kind, unit, meaning in specs:
        if name in FEATURES:
            raise RuntimeError(f"feature {name} declared twice")
        if kind not in PANDAS_DTYPE:
            raise RuntimeError(f"feature {name}: unknown kind {kind}")
        FEATURES[name] = Feature(name, kind, unit, meaning)
    return [s[0] for s in specs]


# The modules that compute features declare them on import.
from ..track import connection as _connection  # noqa: E402,F401
from . import extract as _extract  # noqa: E402,F401
