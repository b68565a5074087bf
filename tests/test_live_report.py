"""`live --report r.html|r.md` digests the findings as the session emits them (issue 20 item 16):
no table of every finding is held (72,000 findings peaked at ~600 MiB, over the systemd unit's
MemoryMax; benchmarks/hostile.py --only live-report gives the numbers), and the report is the
one the whole table gives, byte for byte but for the time it was made."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import CAPTURES, run_cli


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    """Floods and single resets of several causes, and 150 resets of a storm told one by one."""
    import pandas as pd
    from rstwatch.report.parquet import read_parquet
    home = tmp_path_factory.mktemp("live-report")
    names = ("rst-storm.pcap", "port-scan.pcap", "syn-flood.pcap", "keepalive-race.pcap", "middlebox-reset.pcap",
             "data-after-close.pcap", "closed-port-ipv6.pcapng")
    parts = []
    for saved, args in ((home / "a.parquet", [str(CAPTURES / n) for n in names]),
                        (home / "b.parquet", [str(CAPTURES / "rst-storm.pcap"), "--storm-min", "0"])):
        res = run_cli("read", *args, "-o", str(saved))
        assert res.returncode == 0, res.stderr
        parts.append(read_parquet(saved)[0])
    return pd.concat([parts[0], parts[1].head(150)], ignore_index=True)


def _page(path: Path) -> str:
    text = path.read_text()
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "T", text)         # when it was made
    return text.replace(f"{path.stem}_files", "NAME_files").replace(f"{path.stem}.findings", "NAME.findings")


@pytest.mark.parametrize("suffix", ["md"])       # the HTML report renders the same digest
def test_live_report_is_digested_as_it_goes_and_equals_the_whole_table(findings, tmp_path: Path, suffix: str):
    from rstwatch.live.report import LiveReport
    streamed, whole = LiveReport(tmp_path / f"stream.{suffix}", False), LiveReport(tmp_path / f"whole.{suffix}", False)
    streamed.check()
    whole.check()
    whole.sink = None                               # the table kept whole, written at once (as before)
    for start in range(0, len(findings), 7):        # a session emits a few verdicts per tick
        batch = findings.iloc[start:start + 7]
        streamed.add(batch.copy())
        whole.add(batch.copy())
    assert streamed.parts == [] and streamed.kept == len(findings) > 150     # no table held
    for rep in (streamed, whole):
        rep.write("live:c0", 1234, [], [], 0, 1234, [])
    assert _page(tmp_path / f"stream.{suffix}") == _page(tmp_path / f"whole.{suffix}")
    if suffix == "md":
        for svg in (tmp_path / "whole_files").iterdir():
            assert (tmp_path / "stream_files" / svg.name).read_bytes() == svg.read_bytes()


def test_a_report_name_with_an_unknown_suffix_is_warned_about_before_the_session(tmp_path: Path, capsys):
    """`live --report x.pdf` writes HTML (no --format there): said when the session starts, as
    `report -o x.pdf` says it; a known suffix says nothing."""
    from rstwatch.live.report import LiveReport
    LiveReport(tmp_path / "x.pdf", False).check()
    assert capsys.readouterr().err == f"rstwatch: warning: {tmp_path / 'x.pdf'}: .pdf is not a suffix rstwatch knows; writing html\n"
    LiveReport(tmp_path / "y.md", False).check()
    assert capsys.readouterr().err == ""
