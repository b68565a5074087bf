"""Start-up stays small: each command imports only what it uses. `--version` is answered before
the CLI is built, `--help` needs no data library, reading a capture to JSON Lines loads
neither the report (matplotlib, jinja2), nor live (prometheus_client, psutil), nor the tshark
engine (pyshark, asyncio), and reading captures that hold no RST loads no pandas (nor pyarrow):
the findings table is made with the first reset. The times themselves are measured by
bin/benchmark (benchmarks/side_by_side.py)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

from conftest import CAPTURES
from pcapgen import merge_pcaps

NO_RST = CAPTURES / "normal-close.pcap"     # a connection opened, used and closed: not one RST
CONTROLS = sorted((CAPTURES / "real").glob("control-*.pcap"))     # real programs, not one RST either
# the formats a read of no finding writes without a table (Parquet and the reports need one)
TABLELESS = ["jsonl", "table", "csv", "eve", "zeek", "zeek-json"]

HEAVY = {"pandas", "numpy", "pyarrow", "matplotlib", "jinja2", "prometheus_client", "psutil", "pyshark",
         "asyncio", "yaml", "rich"}


def probe(*argv: str, cache: str = "") -> tuple[set[str], int, str]:
    """`rstwatch ARGV...` (through the installed entry point): the top-level packages it loaded,
    its exit status and what it wrote on stdout. Rule files are parsed (PyYAML loaded), unless
    `cache` names a folder of parsed rule files (rstwatch/engine/rulecache.py)."""
    code = ("import json, sys\n"
            f"sys.argv = ['rstwatch', *{list(argv)!r}]\n"
            "from rstwatch.entry import main\n"
            "status = 0\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    status = exc.code or 0\n"
            "sys.stdout.flush()\n"
            "print(json.dumps([sorted({m.split('.')[0] for m in sys.modules}), status]), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, RSTWATCH_CACHE_DIR=cache))
    loaded, status = json.loads(res.stderr.strip().splitlines()[-1])
    return set(loaded), status, res.stdout


def imported_by(*argv: str) -> set[str]:
    return probe(*argv)[0]


def test_version_imports_neither_the_cli_nor_any_library():
    loaded = imported_by("--version")
    assert not loaded & (HEAVY | {"typer", "click"}), loaded & (HEAVY | {"typer"})


@pytest.mark.parametrize("argv", [("--help",), ("read", "--help"), ("live", "--help"), ("report", "--help")])
def test_help_loads_no_data_library(argv):
    loaded = imported_by(*argv)
    assert not loaded & HEAVY, loaded & HEAVY


def test_reading_a_capture_loads_only_what_reading_needs():
    """A reset classified and written as JSON Lines needs no DataFrame (rstwatch/columns.py):
    neither pandas nor pyarrow is loaded, which was most of such a read's time."""
    loaded, status, printed = probe("read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl")
    assert status == 0 and json.loads(printed.splitlines()[0])["cause"] == "closed-port"
    assert {"numpy", "yaml"} <= loaded
    unneeded = {"pandas", "pyarrow", "matplotlib", "jinja2", "prometheus_client", "psutil", "pyshark", "asyncio", "rich",
                "isal"}         # gzip captures only
    assert not loaded & unneeded, loaded & unneeded


@pytest.mark.parametrize("fmt", ["table", "csv", "eve", "zeek", "zeek-json"])
def test_the_formats_written_from_the_verdicts_tables_need_no_pandas(fmt):
    """`rstwatch read FILE` on a terminal prints the table, and CSV, EVE and the Zeek logs are
    written from the verdicts' columns.Table too (run.LIGHT): a reset written in any of them
    loads neither pandas nor pyarrow (with them, such a read cost twice the CPU)."""
    loaded, status, printed = probe("read", str(CAPTURES / "closed-port.pcap"), "--format", fmt)
    assert status == 0 and "closed-port" in printed and "10.77.2.2" in printed
    assert not loaded & {"pandas", "pyarrow"}, loaded & {"pandas", "pyarrow"}
    if fmt == "table":
        assert "rich" in loaded and "1 finding(s) for 1 TCP reset(s)" in printed


@pytest.mark.parametrize("fmt", TABLELESS)
def test_a_flood_beside_other_findings_needs_no_pandas(fmt):
    """A flood is one finding of its own (report/storms.py), a columns.Table too: written with
    another file's findings in any of these formats, neither loads pandas (they loaded it, ~0.25
    s, which was most of such a read). What they print is tests/test_columns.py's business."""
    loaded, status, printed = probe("read", str(CAPTURES / "syn-flood.pcap"), str(CAPTURES / "closed-port.pcap"),
                                    "--format", fmt)
    assert status == 0 and "syn-flood" in printed and "closed-port" in printed
    assert not loaded & {"pandas", "pyarrow"}, loaded & {"pandas", "pyarrow"}


@pytest.mark.parametrize("fmt", TABLELESS)
def test_a_flood_among_other_resets_of_one_capture_needs_no_pandas(tmp_path, fmt):
    """A flood and other resets in one capture (an incident's): the flood's row is joined with
    the others' as Tables (analyze._joined), so no format here loads pandas (they did, ~0.2 s)."""
    merged = merge_pcaps(tmp_path / "flood-among.pcap", [(CAPTURES / "syn-flood.pcap", 0),
                                                        (CAPTURES / "accept-queue-overflow.pcap", 42.0)])
    loaded, status, printed = probe("read", str(merged), "--format", fmt)
    assert status == 0 and "syn-flood" in printed and "accept-queue-overflow" in printed
    assert not loaded & {"pandas", "pyarrow"}, loaded & {"pandas", "pyarrow"}


def test_files_read_by_workers_come_back_without_pandas():
    """`--jobs 2`: the workers send their batches' Tables (run.py, analyze.FileResult), so the
    reader writing JSON Lines loads no pandas, and prints what --jobs 1 prints."""
    files = [str(CAPTURES / name) for name in ("closed-port.pcap", "rst-storm.pcap", "data-after-close.pcap")]
    loaded, status, printed = probe("read", *files, "--jobs", "2", "--format", "jsonl")
    assert status == 0 and not loaded & {"pandas", "pyarrow"}, loaded & {"pandas", "pyarrow"}
    assert printed == probe("read", *files, "--format", "jsonl")[2] and printed.count("\n") == 3


def test_rule_files_parsed_once_are_not_parsed_again(tmp_path):
    """The first run parses the rule files and keeps what it read; the next one takes them from
    there without PyYAML, and both say the same."""
    argv = ("read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl")
    first, status1, out1 = probe(*argv, cache=str(tmp_path))
    kept = tmp_path / "parsed-rules.json"
    assert status1 == 0 and "yaml" in first and kept.is_file()
    again, status2, out2 = probe(*argv, cache=str(tmp_path))
    assert status2 == 0 and "yaml" not in again, again
    assert out1 == out2 and json.loads(out1.splitlines()[0])["cause"] == "closed-port"


@pytest.mark.parametrize("fmt", TABLELESS)
def test_reading_captures_without_a_reset_loads_no_pandas(fmt):
    loaded, status, _ = probe("read", str(NO_RST), *map(str, CONTROLS), "--format", fmt)
    assert status == 0 and len(CONTROLS) >= 3
    assert {"numpy", "yaml"} <= loaded                      # the capture was read, the rules loaded
    assert not loaded & {"pandas", "pyarrow"}, loaded & {"pandas", "pyarrow"}


def test_a_large_capture_without_a_reset_loads_no_pandas(tmp_path, monkeypatch):
    """With as many SYNs as a flood needs (500), the flood detectors judge the table's flows by
    target, in numpy: pandas came in there, for a capture with nothing to report."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import synth
    capture = tmp_path / "quiet.pcap"
    synth.write(capture, synth.build(60_000, 0.0))
    from rstwatch.sources.capture import iter_segments
    from rstwatch.sources.diagnostics import Diagnostics
    flags = np.concatenate([seg["flags"] for seg in iter_segments(capture, Diagnostics("quiet"))])
    assert not (flags & 0x04).any() and np.count_nonzero((flags & 0x12) == 0x02) >= 500
    loaded, status, printed = probe("read", str(capture), "--format", "jsonl")
    assert status == 0 and printed == ""
    assert "numpy" in loaded and not loaded & {"pandas", "pyarrow"}, loaded & {"pandas", "pyarrow"}


@pytest.mark.parametrize("fmt", TABLELESS)
def test_no_reset_read_writes_what_an_empty_findings_table_gives(fmt):
    """Without pandas, a read of no finding still prints what the format's writer prints for the
    (pandas-built) findings table of that capture: every column and no row."""
    from rstwatch.analyze import analyze_file
    from rstwatch.engine.loader import load_rules
    from rstwatch.report.formats import FORMATS
    from rstwatch.run_report import run_info

    _, status, printed = probe("read", str(NO_RST), "--format", fmt)
    assert status == 0
    rules = load_rules([])
    result = analyze_file(NO_RST, rules)
    findings = result.findings
    assert len(findings) == 0 and {"cause", "summary", "community_id"} <= set(findings.columns)
    expected = io.StringIO()
    FORMATS[fmt].writer()(findings, expected, run_info([result], rules, []))
    opened = lambda text: [ln for ln in text.splitlines() if not ln.startswith(("#open", "#close"))]   # noqa: E731 (zeek's clock, at both ends)
    assert opened(printed) == opened(expected.getvalue())
    assert printed.endswith("\n") == expected.getvalue().endswith("\n")


@pytest.mark.parametrize("argv", [("read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl"),
                                  ("read", str(NO_RST), "--format", "jsonl"),
                                  ("read", str(CAPTURES / "closed-port.pcap"), "--host", "a=10.0.0.1")])
def test_the_collector_is_held_off_for_the_imports_and_back_for_the_work(argv):
    # entry.py disables it while the libraries load; a command that reads turns it back on
    # (gcpause.settle_startup) with what was loaded frozen out of its sight
    code = ("import gc, json, sys\n"
            f"sys.argv = ['rstwatch', *{list(argv)!r}]\n"
            "from rstwatch import gcpause\n"
            "seen = []\n"
            "real = gcpause.settle_startup\n"
            "def settle():\n    seen.append(gc.isenabled())\n    real()\n"
            "gcpause.settle_startup = settle\n"
            "from rstwatch.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stdout.flush()\n"
            "print(json.dumps([seen, gc.isenabled(), gc.get_freeze_count()]), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    seen, enabled, frozen = json.loads(res.stderr.strip().splitlines()[-1])
    assert seen == [False] and enabled and frozen > 10_000, (seen, enabled, frozen, res.stderr[-500:])
