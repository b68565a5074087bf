"""Issue 20 items 10-12: text from the capture reaching people. A capture's file name is chosen by
whoever wrote the file and lands in every output (the `file` column); here it carries terminal
escapes (OSC 52 writes the clipboard), Rich markup, a newline, HTML, a javascript: link and
spreadsheet formulas. Each output is checked on real runs of the CLI over such files."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from conftest import CAPTURES, run_cli

ESC = "a\x1b[31mRED\x1b]52;c;aGk=\x07.pcap"                # colour, then OSC 52: a clipboard write
MARKUP = "[link=https:evil.example]click[white on white]hid.pcap"
NEWLINE = "new\nline|pipe.pcap"
SVG = "<svg onload=alert(1)>.pcap"
JSLINK = "[x](javascript:alert(1)).pcap"
FORMULAS = ['=HYPERLINK("http:x").pcap', "+cmd|calc!A0.pcap", "@SUM(1+1).pcap", "-2+3.pcap", "\tx.pcap"]
NAMES = [ESC, MARKUP, NEWLINE, SVG, JSLINK, *FORMULAS]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """One real RST capture (closed-port: one finding each) under every hostile name."""
    folder = tmp_path_factory.mktemp("hostile")
    for name in NAMES:
        shutil.copy(CAPTURES / "closed-port.pcap", folder / name)
    return folder


def test_table_shows_names_as_plain_text(hostile):
    res = run_cli("read", str(hostile), "--format", "table")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "\x1b" not in out and "\x07" not in out            # no escape reaches the terminal
    assert "a\\x1b[31mRED\\x1b]52;c;aGk=\\x07.pcap" in out    # shown, visibly
    assert MARKUP in out                                      # markup printed, not obeyed
    assert "[x](javascript:alert(1)).pcap" in out
    rows = [line for line in out.splitlines() if "closed-port" in line and "refused" in line]
    assert len(rows) == len(NAMES)                            # one row per file: the newline split none
    assert any(line.startswith("new\\nline|pipe.pcap ") for line in rows)


def test_narrow_table_file_headings_are_plain(hostile):
    """Too narrow for a file column, the file names become headings: plain text there too."""
    from rstwatch.api import read
    from rstwatch.report.table import write_table
    buf = io.StringIO()
    write_table(read(sorted(hostile.iterdir())), buf, width=60)
    out = buf.getvalue()
    assert "\x1b" not in out and "\x07" not in out
    assert MARKUP in out and "new\\nline|pipe.pcap" in out.splitlines()


def test_live_table_sink_cells_are_plain():
    """live's TableSink: the same cells, so markup or controls in any text are shown, not obeyed."""
    from rstwatch.api import read
    from rstwatch.report.table import TableSink
    df = read(CAPTURES / "closed-port.pcap").assign(title="[reverse]x\x1b]52;c;aGk=\x07[/reverse]")
    buf = io.StringIO()
    sink = TableSink(buf, width=200)
    sink.start("live")
    sink.write(df)
    out = buf.getvalue()
    assert "\x1b" not in out and "[reverse]x\\x1b]52;c;aGk=\\x07[/reverse]" in out


def test_error_line_escapes_a_file_name(tmp_path):
    """`rstwatch: error: NAME: ...` with NAME holding OSC 52 and a newline: one line, escaped."""
    name = "o\x1b]52;c;aGk=\x07\nrstwatch: fake.jsonl"
    (tmp_path / name).write_text("")
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "-o", name, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == "rstwatch: error: o\\x1b]52;c;aGk=\\x07\\nrstwatch: fake.jsonl: already exists (use --force to overwrite)\n"


def test_visible_escapes_controls_and_bidi_only():
    from rstwatch.report.plaintext import visible
    assert visible("caf\u00e9 \u65e5\u672c [b]") == "caf\u00e9 \u65e5\u672c [b]"
    assert visible("a\x00\x7f\x9b\u202eb\u2028") == "a\\x00\\x7f\\x9b\\u202eb\\u2028"
