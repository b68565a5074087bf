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


def _csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_formula_cells_are_inert(hostile):
    """read --format csv: a file name a spreadsheet would run gets a leading ', the rest is as read;
    number cells are unchanged."""
    res = run_cli("read", ".", "--format", "csv", cwd=hostile)     # `file` then is the bare name
    assert res.returncode == 0, res.stderr
    rows = _csv_rows(res.stdout)
    files = sorted(r["file"] for r in rows)
    for name in FORMULAS:
        assert "'" + name in files
    for name in (ESC, MARKUP, NEWLINE, SVG, JSLINK):
        assert name in files                                  # data, not a display: kept exactly
    assert all(not f.startswith(("=", "+", "-", "@", "\t", "\r")) for f in files)
    assert {(r["frame"], r["sport"], r["confidence"]) for r in rows} == {("2", "9001", "0.95")}


def test_csv_sink_and_numbers():
    """live's CsvSink writes the same cells; numbers, negative ones too, stay numbers."""
    from rstwatch.api import read
    from rstwatch.report.csvout import CsvSink, write_csv
    df = read(CAPTURES / "closed-port.pcap").assign(file="@SUM(1+1)", summary="-1+2", time=-1.5,
                                                    remediation=[["=cmd|' /C calc'!A0", "ok"]])
    for write in (lambda out: write_csv(df, out), lambda out: (s := CsvSink(out), s.start("live"), s.write(df))):
        buf = io.StringIO()
        write(buf)
        row = _csv_rows(buf.getvalue())[0]
        assert row["file"] == "'@SUM(1+1)" and row["summary"] == "'-1+2" and row["time"] == "-1.5"
        assert row["remediation"].startswith("'=cmd|")


def test_inert_keeps_numbers_as_text_they_are():
    from rstwatch.report.csvout import inert
    assert [inert(v) for v in (-3, -1.5, "-1", "+2.5e3", "-.5", "-1-1", "=1", "", "a=b")] == \
        [-3, -1.5, "-1", "+2.5e3", "-.5", "'-1-1", "'=1", "", "a=b"]


def _render(markdown: str) -> str:
    """HTML from a CommonMark renderer with GFM tables that lets raw HTML and every link through,
    as the most permissive viewer would (markdown-it-py comes with rich)."""
    from markdown_it import MarkdownIt
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.validateLink = lambda url: True
    return md.render(markdown)


def test_markdown_report_renders_names_as_text(hostile, tmp_path):
    """read -o r.md --extract DIR over the hostile names, DIR itself named like a scheme: rendered,
    no tag from a name, no link but to a relative path or https, one table row per finding with
    the name whole in its cell."""
    import html as htmllib
    import re
    from urllib.parse import urlsplit
    res = run_cli("read", ".", "-o", str(tmp_path / "r.md"), "--extract", str(tmp_path / "javascript:alert(1)"),
                  cwd=hostile)                                # `file` is the bare name, as in the CSV test
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "r.md").read_text()
    assert "\x1b" not in text and "\x07" not in text
    page = _render(text)
    assert "<svg" not in page                                 # the name's tag is text: &lt;svg
    targets = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert len([t for t in targets if t.endswith(".pcapng")]) > len(NAMES)    # each table row, the examples
    for t in targets:
        url = urlsplit(htmllib.unescape(t))
        assert url.scheme in ("", "https") and not t.startswith("/"), t
        assert t.startswith("#") or (tmp_path / htmllib.unescape(t).replace("%3A", ":").replace("%28", "(")
                                     .replace("%29", ")")).exists(), t
    table = page[page.index("<h2>All findings</h2>"):page.index("<h2>How this report was made</h2>")]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    rows = [r for r in rows if r]
    assert len(rows) == len(NAMES) and all(len(r) == 9 for r in rows)
    shown = {htmllib.unescape(r[1]) for r in rows}
    assert shown == {n.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\n", "\\n")
                     .replace("\t", "\\t") for n in NAMES}
    assert all(htmllib.unescape(r[2]) == "2" for r in rows)
    beside = _csv_rows((tmp_path / "r_files" / "findings.csv").read_text())      # the report's full CSV
    assert sorted(r["file"] for r in beside) == sorted("'" + n if n in FORMULAS else n for n in NAMES)


def test_markdown_filters():
    from rstwatch.report.mdtext import md_code, md_link, md_text
    assert md_text("a_b *c* [d](e) <f> & g|h #i ~j `k` \\l") == \
        "a_b \\*c\\* \\[d\\](e) &lt;f> &amp; g\\|h \\#i \\~j \\`k\\` \\\\l"
    assert md_text("- x", start=True) == "\\- x" and md_text("12. x", start=True) == "12\\. x"
    assert md_code("a``b|c", cell=True) == "``` a``b\\|c ```"
    assert [md_link(t) for t in ("javascript:alert(1)", "https://x.example/a", "/etc/passwd", "https://x/<a>",
                                 "r_files/a b.svg")] == \
        ["javascript%3Aalert%281%29", "https://x.example/a", None, None, "r_files/a%20b.svg"]


@pytest.mark.parametrize("command", ["read", "report"])
def test_input_error_lines_escape_a_file_name(tmp_path, command):
    """A file that is not a capture, named to forge a line and write the clipboard: `read` and
    `report` say so in one line, with the name's control characters escaped."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad\x1b]52;c;aGk=\x07\nrstwatch: fake.pcap").write_bytes(b"junk")
    shutil.copy(CAPTURES / "closed-port.pcap", folder / "closed-port.pcap")
    args = ["--format", "jsonl"] if command == "read" else ["-o", str(tmp_path / "r.html")]
    res = run_cli(command, str(folder), *args)
    assert res.returncode == 1, res.stderr
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("rstwatch: error:")]
    assert errors == [f"rstwatch: error: {folder}/bad\\x1b]52;c;aGk=\\x07\\nrstwatch: fake.pcap: "
                      "not a pcap or pcapng file (starts with 6a756e6b)"], res.stderr
    assert not [ln for ln in res.stderr.splitlines() if ln.startswith("rstwatch: fake")]
