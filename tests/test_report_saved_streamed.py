"""`rstwatch report saved.parquet` reads the saved findings a batch at a time through the report's
digest (run_report._report_saved, report/parquet.parquet_batches), as `read` streams a capture's
findings: the report and the CSV beside it are byte for byte those made from the whole table, on
findings saved from every bundled capture (many causes, floods, lists, nulls), in batches of 7 rows;
a bad value in a later batch is still one line naming the file and the row, exit 2, no report."""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES, run_cli

WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")       # when the report was made


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "all.parquet"
    res = run_cli("read", str(CAPTURES), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert pq.ParquetFile(out).metadata.num_rows > 100
    return out


def _report(saved: Path, out: Path, streamed: bool, monkeypatch) -> tuple[str, bytes, dict]:
    from rstwatch import run
    from rstwatch.report import incident, parquet
    from rstwatch.run_report import run_report
    monkeypatch.setattr(incident, "EMBED_CSV_BYTES", 20_000)             # the CSV goes beside the report
    monkeypatch.setattr(incident, "CSV_SLICE_ROWS", 50)                  # the whole table's CSV made in slices
    monkeypatch.setattr(parquet, "BATCH_ROWS", 7)
    monkeypatch.setattr(run, "REPORTS", ("html", "md") if streamed else ())    # (): the whole table
    calls = []
    real = parquet.read_parquet
    monkeypatch.setattr(parquet, "read_parquet", lambda p: calls.append(p) or real(p))
    out.parent.mkdir()
    assert run_report([saved], out, None, False, [], "INC-7", None) == 0
    assert bool(calls) is not streamed                                      # the path taken is the one meant
    folder = out.with_name(out.stem + "_files")
    pictures = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}
    return WHEN.sub("", out.read_text()), out.with_name(f"{out.stem}.findings.csv").read_bytes(), pictures


@pytest.mark.parametrize("name", ["r.html", "r.md"])
def test_report_of_saved_findings_streamed_is_the_whole_tables_report(saved, tmp_path, monkeypatch, name):
    whole = _report(saved, tmp_path / "whole" / name, False, monkeypatch)
    streamed = _report(saved, tmp_path / "streamed" / name, True, monkeypatch)
    assert streamed[0] == whole[0]
    assert streamed[1] == whole[1] and len(whole[1]) > 20_000
    assert streamed[2] == whole[2]
    assert "rst-storm" in whole[0] and "closed-port" in whole[0] and "INC-7" in whole[0]


def test_a_bad_value_in_a_later_batch_is_one_line_and_exit_2(saved, tmp_path):
    table = pq.read_table(saved)
    rows = table.num_rows
    sport = table.column("sport").to_pylist()
    sport[rows - 3] = 70_000                                   # in the last row group
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("sport"), "sport", pa.array(sport, pa.int64())),
                   bad, row_group_size=40)
    out = tmp_path / "r.html"
    res = run_cli("report", str(bad), "-o", str(out))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"rstwatch: error: {bad}: not rstwatch findings: sport of row {rows - 2} is 70000, out of range"], res.stderr
    assert not out.exists() and not (tmp_path / "r.findings.csv").exists()


def test_a_bad_value_in_a_later_batch_beside_another_file_is_an_error_line_and_exit_1(saved, tmp_path):
    """Among other inputs a file damaged past its first batch is as a damaged capture: what came
    before the damage is reported, with one error line, exit 1; the other file is whole."""
    table = pq.read_table(saved)
    rows = table.num_rows
    sport = table.column("sport").to_pylist()
    sport[rows - 3] = 70_000
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("sport"), "sport", pa.array(sport, pa.int64())),
                   bad, row_group_size=40)
    one = tmp_path / "one.parquet"
    assert run_cli("read", str(CAPTURES / "closed-port.pcap"), "-o", str(one)).returncode == 0
    for order in ([bad, one], [one, bad]):
        out = tmp_path / f"r-{order[0].stem}.md"
        res = run_cli("report", *map(str, order), "-o", str(out))
        assert res.returncode == 1, res.stderr
        errors = [x for x in res.stderr.splitlines() if x.startswith("rstwatch: error:")]
        assert errors == [f"rstwatch: error: {bad}: not rstwatch findings: sport of row {rows - 2} is 70000, out of range"]
        page = out.read_text()
        assert "closed-port" in page and "listener-closed" in page       # both files' findings
        assert "findings saved by rstwatch" not in page                  # two saved files: no one provenance


def test_one_saved_file_keeps_its_provenance_whatever_the_order_of_a_bad_one(saved, tmp_path):
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), other)
    metas = []
    for k, order in enumerate(([other, saved], [saved, other])):
        out = tmp_path / f"x{k}.parquet"
        res = run_cli("report", *map(str, order), "-T", "parquet", "-o", str(out))
        assert res.returncode == 1, res.stderr
        metas.append(pq.read_schema(out).metadata[b"rstwatch"])
    alone = tmp_path / "alone.parquet"
    assert run_cli("report", str(saved), "-T", "parquet", "-o", str(alone)).returncode == 0
    assert metas[0] == metas[1] == pq.read_schema(alone).metadata[b"rstwatch"]


def test_parquet_where_report_cannot_read_it_says_so(saved, tmp_path):
    import gzip
    import subprocess
    from conftest import ROOT
    packed = tmp_path / "all.parquet.gz"
    packed.write_bytes(gzip.compress(saved.read_bytes()))
    exe = ROOT / ".venv" / "bin" / "rstwatch"
    for args, stdin in ((["report", str(packed), "-T", "jsonl"], None), (["report", "-", "-T", "jsonl"], saved)):
        with open(stdin or "/dev/null", "rb") as fh:
            res = subprocess.run([str(exe) if exe.exists() else "rstwatch", *args], stdin=fh, capture_output=True,
                                 text=True, timeout=120)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert "Parquet, not a capture (`rstwatch report` reads saved findings from a file, uncompressed)" in res.stderr
