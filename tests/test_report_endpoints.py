"""The report's top services and clients (report/digest.py: endpoint rows summed by sorting, not
hashing, and only the top endpoints' rows handed to the report) are what grouping every finding
gives: on the bundled captures (many causes, floods, ties), summed again mid-stream."""
from __future__ import annotations

import pandas as pd

from conftest import CAPTURES


def _reference_tops(df: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Top services and clients from the whole table, grouped the plain way."""
    from rstwatch.report.incident import _top, endpoints
    from rstwatch.report.summary import reset_weights
    counted = df[df["copy_of"].isna()] if "copy_of" in df else df
    server, client = endpoints(counted)
    w = reset_weights(counted).to_numpy()
    tops = []
    for key in (server, client):
        frame = pd.DataFrame({"key": key.astype(str).to_numpy(), "cause": counted["cause"].astype(str).to_numpy(), "n": w})
        tops.append(_top(frame.groupby(["key", "cause"], sort=False)["n"].sum().reset_index()))
    return tops[0], tops[1]


def _client_totals(df: pd.DataFrame) -> list[int]:
    """Every client's resets, largest first."""
    from rstwatch.report.incident import endpoints
    from rstwatch.report.summary import reset_weights
    counted = df[df["copy_of"].isna()] if "copy_of" in df else df      # as _reference_tops counts
    _, client = endpoints(counted)
    sums = pd.Series(reset_weights(counted).to_numpy(), index=client.astype(str).to_numpy()).groupby(level=0).sum()
    return sorted(sums.tolist(), reverse=True)


def test_top_endpoints_are_those_of_the_whole_table(builtin_rules, monkeypatch):
    from rstwatch.analyze import all_findings, analyze_file
    from rstwatch.report import digest as dg
    from rstwatch.report.incident import TOP, _top
    files = sorted(p for p in CAPTURES.rglob("*") if p.suffix in (".pcap", ".pcapng", ".gz"))
    once = all_findings([analyze_file(p, builtin_rules) for p in files])
    df = pd.concat([once, once.iloc[::-1], once], ignore_index=True)    # each endpoint's rows far apart
    assert df["cause"].nunique() > 10 and len(df) > 100
    servers, clients = _reference_tops(df)
    assert len(clients) == TOP
    # ties among the top ten or at its cut (the tenth's count shared by the eleventh): the order of
    # equal counts, and which of them the top ten keeps, must be the whole table's
    totals = _client_totals(df)
    assert totals[TOP - 1] in totals[:TOP - 1] or totals[TOP - 1] == totals[TOP], totals[:TOP + 1]
    whole = dg.Digest.of(df)                             # in one table, never summed before the report
    assert _top(whole.endpoint_counts("client", TOP)) == clients
    assert _top(whole.endpoint_counts("server")) == servers      # every row, as before
    monkeypatch.setattr(dg, "_REAGGREGATE", 50)          # summed again many times while the tables come
    digest = dg.Digest()
    for start in range(0, len(df), 37):
        digest.add(df.iloc[start:start + 37])
    assert _top(digest.endpoint_counts("server", TOP)) == servers
    assert _top(digest.endpoint_counts("client", TOP)) == clients
