from __future__ import annotations

import json
from typing import TextIO

import pandas as pd

from .records import iter_records


def write_jsonl(df: pd.DataFrame, out: TextIO) -> None:
    for rec in iter_records(df):
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")
