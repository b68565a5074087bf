from __future__ import annotations

import csv
import json
from typing import TextIO

import pandas as pd

from .records import CONTRACT_FIELDS, EXTRA_FIELDS, iter_records


def write_csv(df: pd.DataFrame, out: TextIO) -> None:
    """Lists become `;`-joined text, the errno object becomes JSON: one flat row per RST."""
    fields = CONTRACT_FIELDS + EXTRA_FIELDS
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for rec in iter_records(df):
        for key in ("alternatives", "evidence", "remediation"):
            rec[key] = ";".join(str(x) for x in rec.get(key) or [])
        rec["errno"] = json.dumps(rec["errno"], separators=(",", ":"))
        writer.writerow(rec)
