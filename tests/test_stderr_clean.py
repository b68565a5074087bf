"""stderr carries rstwatch's own lines only: no library warning (matplotlib's date locator warned
for a capture spanning ~3.5 minutes), no traceback. Every command runs on the bundled captures
and on captures spanning minutes, hours and days; every stderr line must be one rstwatch wrote."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CAPTURES, ROOT, run_cli

sys.path.insert(0, str(ROOT / "benchmarks"))
import synth  # noqa: E402


def foreign_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("rstwatch: ")]


@pytest.fixture(scope="module")
def spans(tmp_path_factory) -> list[Path]:
    """Captures whose resets spread over 3.5 minutes, 3.6 hours and 2 days (each just past one of
    the date locator's default steps)."""
    folder = tmp_path_factory.mktemp("spans")
    out = []
    for seconds in (215, 13_000, 180_000):
        rec = synth.build(600, 0.5)
        start = rec["sec"].min()
        rec["sec"] = (start + np.linspace(0, seconds, len(rec)).astype(np.int64)).astype(rec["sec"].dtype)
        path = folder / f"span-{seconds}.pcap"
        synth.write(path, rec)
        out.append(path)
    return out


@pytest.mark.parametrize("fmt", ["table", "csv", "zeek-json"])      # the writers' three families
def test_read_writes_only_its_own_lines_on_stderr(fmt, spans):
    res = run_cli("read", str(CAPTURES), *map(str, spans), "--format", fmt)
    assert res.returncode == 0, res.stderr
    assert not foreign_lines(res.stderr), foreign_lines(res.stderr)[:5]


@pytest.mark.parametrize("suffix", ["html", "md"])
def test_report_writes_only_its_own_lines_on_stderr(suffix, spans, tmp_path):
    for i, capture in enumerate([CAPTURES, *spans] if suffix == "html" else spans):
        res = run_cli("report", str(capture), "-o", str(tmp_path / f"r{i}.{suffix}"))
        assert res.returncode == 0, res.stderr
        assert not foreign_lines(res.stderr), (capture, foreign_lines(res.stderr)[:5])


@pytest.mark.parametrize("args", [("rules", "list"), ("rules", "test"), ("rules", "explain", "closed-port"),
                                  ("rules", "validate"), ("interfaces",), ("version",)])
def test_other_commands_write_only_their_own_lines_on_stderr(args):
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    assert not foreign_lines(res.stderr), foreign_lines(res.stderr)[:5]
