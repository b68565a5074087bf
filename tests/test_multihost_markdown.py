"""The Markdown report of a joined run (read/report --hosts) has the HTML report's "Vantage points"
section (issue #23 item 4): where each RST was seen and missed, which host settled it, what each
capture alone said, and the one-column-per-capture ladder as a file beside the report. Host and file
names are the user's or the data's text: escaped as the rest of the report is."""
from __future__ import annotations

import re
import shutil

from conftest import CAPTURES, run_cli

LAB = CAPTURES / "multihost"


def _section(text: str) -> str:
    start = text.index("\n## Vantage points\n")
    return text[start:text.index("\n## All findings\n", start)]


def _cells(row: str) -> list[str]:
    """A GFM table row's cells (a backslash-escaped | stays inside its cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_markdown_report_shows_vantage_points(tmp_path):
    out = tmp_path / "r.md"
    res = run_cli("read", "--hosts", str(LAB / "client-lost-reset"), "-o", str(out))
    assert res.returncode == 0, res.stderr
    section = _section(out.read_text())
    assert "clock offsets relative to client: router" in section
    assert "### 10.81.1.2:52638 → 10.81.2.2:9105\n" in section
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == 1, section
    assert _cells(rows[0]) == ["`10.81.2.2:9105`", "linger-zero-abort (0.70)", "server", "router, server", "-",
                               "linger-zero-abort", "`router r0.pcap #8; router r1.pcap #8; server s0.pcap #8`"]
    ladder = re.search(r"!\[packet ladder, one column per vantage point\]\((r_files/vantage-1\.svg)\)", section)
    svg = (tmp_path / ladder.group(1)).read_text()
    assert svg.startswith('<?xml version="1.0"') and 'class="ladder vantage"' in svg and "<style>" in svg
    heads = re.findall(r'font-weight="bold">([a-z]+)</text><text[^>]*>([a-z0-9.]+)</text>', svg)
    assert heads == [("client", "c0.pcap"), ("router", "r0.pcap"), ("router", "r1.pcap"), ("server", "s0.pcap")]
    # the HTML report's section says the same
    page = tmp_path / "r.html"
    assert run_cli("read", "--hosts", str(LAB / "client-lost-reset"), "-o", str(page)).returncode == 0
    assert "router r0.pcap #8; router r1.pcap #8; server s0.pcap #8" in page.read_text()
    # `report` takes the hosts too; across NAT the heading says so
    rep = tmp_path / "nat.md"
    res = run_cli("report", "--hosts", str(LAB / "nat-firewall-reject"), "-o", str(rep))
    assert res.returncode == 0, res.stderr
    nat = _section(rep.read_text())
    assert "(joined across NAT)" in nat and "(1 joined across NAT)" in nat
    assert (tmp_path / "nat_files" / "vantage-1.svg").is_file()
    # one host alone: no section
    single = tmp_path / "one.md"
    assert run_cli("read", str(LAB / "client-lost-reset" / "server"), "-o", str(single)).returncode == 0
    assert "## Vantage points" not in single.read_text()


def test_markdown_vantage_section_escapes_host_and_file_names(tmp_path):
    """A host folder and a capture named with Markdown and HTML: shown as text, the table intact."""
    hosts = tmp_path / "hosts"
    shutil.copytree(LAB / "client-lost-reset", hosts)
    evil_host = "srv|<img src=x onerror=alert(1)>*x*"
    (hosts / "server").rename(hosts / evil_host)
    evil_file = "s0|[x](javascript:alert(1)).pcap"
    (hosts / evil_host / "s0.pcap").rename(hosts / evil_host / evil_file)
    out = tmp_path / "r.md"
    res = run_cli("read", "--hosts", str(hosts), "-o", str(out))
    assert res.returncode == 0, res.stderr
    section = _section(out.read_text())
    prose = re.sub(r"`[^`]*`", "", section)             # code spans show their text literally
    assert "<img" not in prose and "](javascript:" not in prose
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == 1
    cells = _cells(rows[0])
    assert len(cells) == 7, rows[0]                      # no name split the row
    assert cells[2] == r"srv\|&lt;img src=x onerror=alert(1)>\*x\*"
    assert cells[3] == r"router, srv\|&lt;img src=x onerror=alert(1)>\*x\*"
    assert cells[6].startswith("`") and r"s0\|[x](javascript:alert(1)).pcap #8" in cells[6]
    assert "<img" not in (tmp_path / "r_files" / "vantage-1.svg").read_text()
