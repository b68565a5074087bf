"""The fast reader decodes every container and link type it claims, identically: each variant
is built from the same real lab packets and must give the same TCP segments and verdicts.
Where tshark is installed, the tshark engine must agree with the fast reader."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import CAPTURES
from pcapgen import frame_for, l3_of, read_pcap_raw, write_pcap, write_pcapng
from rstwatch.analyze import analyze_file
from rstwatch.sources.capture import read_segments
from rstwatch.sources.diagnostics import Diagnostics
from rstwatch.sources.tshark import read_with_tshark

SOURCE = CAPTURES / "data-after-close.pcap"     # nanosecond pcap, Ethernet
COMPARED = ["frame", "src_lo", "dst_lo", "sport", "dport", "seq", "ack", "flags", "win", "plen", "ttl", "ipid"]


def packets():
    linktype, pk = read_pcap_raw(SOURCE)
    return [(sec, usec, l3_of(linktype, frame)) for sec, usec, frame in pk]


def segs(path: Path):
    d = Diagnostics(str(path))
    return read_segments(path, d), d


@pytest.fixture(scope="module")
def reference():
    seg, diag = segs(SOURCE)
    assert len(seg) > 5 and not diag.warnings
    return seg


VARIANTS = {
    "pcap-le-usec": lambda p, pk: write_pcap(p, 1, [(s, u, frame_for(1, ip)) for s, u, ip in pk]),
    "pcap-be-usec": lambda p, pk: write_pcap(p, 1, [(s, u, frame_for(1, ip)) for s, u, ip in pk], big=True),
    "pcap-be-nsec": lambda p, pk: write_pcap(p, 1, [(s, u, frame_for(1, ip)) for s, u, ip in pk], big=True, nano=True),
    "pcap-gzip": lambda p, pk: write_pcap(p, 1, [(s, u, frame_for(1, ip)) for s, u, ip in pk], gz=True),
    "vlan-8021q": lambda p, pk: write_pcap(p, 1, [(s, u, frame_for(1, ip, tags=1)) for s, u, ip in pk]),
    "qinq": lambda p, pk: write_pcap(p, 1, [(s, u, frame_for(1, ip, tags=2)) for s, u, ip in pk]),
    "linux-sll": lambda p, pk: write_pcap(p, 113, [(s, u, frame_for(113, ip)) for s, u, ip in pk]),
    "linux-sll2": lambda p, pk: write_pcap(p, 276, [(s, u, frame_for(276, ip)) for s, u, ip in pk]),
    "raw-ip": lambda p, pk: write_pcap(p, 101, [(s, u, ip) for s, u, ip in pk]),
    "raw-ipv4-228": lambda p, pk: write_pcap(p, 228, [(s, u, ip) for s, u, ip in pk]),
    "bsd-null-le": lambda p, pk: write_pcap(p, 0, [(s, u, frame_for(0, ip)) for s, u, ip in pk]),
    "bsd-null-be": lambda p, pk: write_pcap(p, 0, [(s, u, frame_for(0, ip, null_be=True)) for s, u, ip in pk], big=True),
    "bsd-loop": lambda p, pk: write_pcap(p, 108, [(s, u, frame_for(108, ip)) for s, u, ip in pk]),
    # pcapng: two interfaces with different link types and resolutions, packets alternate
    "pcapng-2-ifaces": lambda p, pk: write_pcapng(p, [(1, None), (276, 9)],
                                                  [(k % 2, s, u, frame_for(1 if k % 2 == 0 else 276, ip)) for k, (s, u, ip) in enumerate(pk)]),
    "pcapng-be": lambda p, pk: write_pcapng(p, [(101, 6)], [(0, s, u, ip) for s, u, ip in pk], big=True),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_reads_like_the_original(variant, tmp_path, reference):
    path = tmp_path / f"{variant}.cap"
    VARIANTS[variant](path, packets())
    seg, diag = segs(path)
    assert not diag.warnings, diag.warnings
    assert diag.engine == "fast"
    for col in COMPARED:
        assert np.array_equal(seg[col], reference[col]), col
    # microsecond containers lose the nanoseconds, nothing more
    assert np.all(np.abs(seg["ts_ns"] - reference["ts_ns"]) < 1000)


def test_simple_packet_blocks(tmp_path, reference):
    path = tmp_path / "spb.pcapng"
    write_pcapng(path, [(1, None)], [(0, s, u, frame_for(1, ip)) for s, u, ip in packets()], simple=True)
    seg, diag = segs(path)
    assert np.array_equal(seg["seq"], reference["seq"]) and np.array_equal(seg["frame"], reference["frame"])
    assert (seg["ts_ns"] == 0).all()        # no timed packet before them: the epoch, as Wireshark shows


def test_verdicts_survive_the_container(tmp_path, builtin_rules):
    path = tmp_path / "x.pcapng"
    VARIANTS["pcapng-2-ifaces"](path, packets())
    a = analyze_file(SOURCE, builtin_rules).findings
    b = analyze_file(path, builtin_rules).findings
    assert list(a["frame"]) == list(b["frame"]) and list(a["cause"]) == list(b["cause"])


def test_ipv6_pcapng_from_dumpcap(builtin_rules):
    found = analyze_file(CAPTURES / "closed-port-ipv6.pcapng", builtin_rules).findings
    assert list(found["cause"]) == ["closed-port"]
    assert ":" in found["src"].iloc[0] and found["wireshark_filter"].iloc[0].startswith("ipv6.addr==")


def test_ipv6_extension_headers_are_walked(tmp_path, reference):
    """A hop-by-hop and a destination-options header in front of TCP (the lab has none)."""
    six = [(s, u, _to_ipv6_with_ext(ip)) for s, u, ip in packets()]
    path = tmp_path / "v6ext.pcap"
    write_pcap(path, 101, six)
    seg, diag = segs(path)
    assert not diag.warnings
    assert np.array_equal(seg["seq"], reference["seq"]) and np.array_equal(seg["plen"], reference["plen"])
    assert seg["v6"].all()


def _to_ipv6_with_ext(ip4: bytes) -> bytes:
    import struct
    ihl = (ip4[0] & 15) * 4
    tcp = ip4[ihl:struct.unpack("!H", ip4[2:4])[0]]
    hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"          # next: dest options, PadN
    dst = bytes([6, 1]) + b"\x01\x0c" + b"\0" * 12       # next: TCP, 16 bytes
    payload = hop + dst + tcp
    src = b"\xfd" + b"\0" * 11 + ip4[12:16]
    dstaddr = b"\xfd" + b"\0" * 11 + ip4[16:20]
    return struct.pack("!IHBB", 6 << 28, len(payload), 0, ip4[8]) + src + dstaddr + payload


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by bin/setup")
@pytest.mark.parametrize("name", ["data-after-close.pcap", "out-of-window-rst.pcapng", "linger-zero-abort.pcap"])
def test_tshark_engine_agrees_with_fast_reader(name):
    fast, _ = segs(CAPTURES / name)
    slow = read_with_tshark(CAPTURES / name, Diagnostics(name))
    for col in COMPARED + ["ts_ns"]:
        assert np.array_equal(fast[col], slow[col]), col


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by bin/setup")
def test_unsupported_link_type_goes_to_tshark(builtin_rules):
    from conftest import EXTERNAL
    res = analyze_file(EXTERNAL / "zeek" / "llc.pcap", builtin_rules)
    assert res.diag.engine == "fast+tshark"
    assert len(res.findings) == 1333
    assert any("link type 10" in w for w in res.diag.warnings)


@pytest.mark.parametrize("variant", ["pcap-le-usec", "pcap-gzip", "pcapng-2-ifaces"])
@pytest.mark.parametrize("buffer_bytes", [64, 1000])
def test_read_buffer_smaller_than_records(variant, buffer_bytes, tmp_path, reference, monkeypatch):
    """The reader's one buffer must carry a record cut at its end over to the next fill, and
    grow when one record is larger than all of it (64 bytes is smaller than every lab frame)."""
    monkeypatch.setattr("rstwatch.sources.stream.CHUNK_BYTES", buffer_bytes)
    path = tmp_path / f"{variant}.cap"
    VARIANTS[variant](path, packets())
    seg, diag = segs(path)
    assert not diag.warnings and not diag.truncated
    for col in COMPARED:
        assert np.array_equal(seg[col], reference[col]), col


def test_pcapng_from_odd_chunks_as_a_pipe_delivers_them():
    """The live path feeds the reader whatever the pipe returned: 37-byte pieces and empty
    reads must give the same packets as reading the file."""
    from rstwatch.sources.pcapng import read_pcapng
    from rstwatch.sources.stream import ChunkBuffer
    path = CAPTURES / "out-of-window-rst.pcapng"
    data = path.read_bytes()
    pieces = [p for i in range(0, len(data), 37) for p in (data[i:i + 37], b"")]
    diag = Diagnostics("pipe")
    frames = np.concatenate([rec.frame for _, rec in read_pcapng(ChunkBuffer.from_chunks(pieces, diag), diag)])
    seg, _ = segs(path)
    assert not diag.warnings and diag.packets == len(frames)
    assert list(frames) == list(range(1, diag.packets + 1)) and diag.packets >= len(seg) > 0


# ---- output formats (rstwatch/report/formats.py): one registry for read, report and live ----

@pytest.fixture(scope="module")
def all_findings(builtin_rules):
    import pandas as pd
    files = sorted(p for p in CAPTURES.glob("*.pcap*"))
    return pd.concat([analyze_file(p, builtin_rules).findings for p in files], ignore_index=True)


def test_csv_list_items_with_the_separator_survive(all_findings):
    import csv
    import io
    from rstwatch.report.csvout import split_list, write_csv
    buf = io.StringIO()
    write_csv(all_findings, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(rows) == len(all_findings)
    with_semicolon = 0
    for row, want in zip(rows, all_findings["remediation"]):
        assert split_list(row["remediation"]) == list(want)
        with_semicolon += any(";" in item for item in want)
    assert with_semicolon > 0                  # closed-port's "ss -ltnp ...; is the service running"
    for row, want in zip(rows, all_findings["evidence"]):
        assert row["evidence"] == ";".join(str(x) for x in want)      # plain lists read as before


@pytest.mark.parametrize("width", [80, 100, 180])
def test_table_fits_the_terminal_and_keeps_frame_cause_and_why(all_findings, width):
    import io
    from rstwatch.report.table import write_table
    buf = io.StringIO()
    write_table(all_findings, buf, width=width)
    lines = buf.getvalue().splitlines()
    assert max(len(x) for x in lines) <= width
    text = buf.getvalue()
    for row in all_findings.itertuples():      # frame, cause and the why's first word on one line
        first = re.escape(row.title.split()[0])
        assert re.search(rf"^\s*(\S+\s+)?{row.frame}\s.*\s{re.escape(row.cause)}\s.*{first}", text, re.M), row.cause
    if width == 180:
        assert "sender -> receiver" in text and "conf" in text


def test_live_table_sink_at_80_columns(all_findings):
    import io
    from rstwatch.report.summary import CauseTally
    from rstwatch.report.table import TableSink
    buf = io.StringIO()
    sink = TableSink(buf, width=80)
    sink.start("lo")
    sink.write(all_findings.head(5))
    tally = CauseTally()
    tally.add(all_findings)
    sink.finish(tally)
    lines = buf.getvalue().splitlines()
    assert max(len(x) for x in lines) <= 80
    assert "By cause" in buf.getvalue() and all(c in buf.getvalue() for c in all_findings["cause"].head(5))


def test_output_suffix_picks_the_format():
    from pathlib import Path
    from rstwatch.errors import OutputError
    from rstwatch.report.formats import FORMATS, by_suffix, choose
    assert by_suffix(Path("x.parquet")) == "parquet" and by_suffix(Path("r.HTML")) == "html"
    assert by_suffix(Path("a.eve.json")) == "eve" and by_suffix(Path("a.json")) == "jsonl"
    assert by_suffix(Path("notes.txt")) is None
    assert choose(None, Path("x.csv"), False).name == "csv"
    assert choose("jsonl", Path("x.csv"), False).name == "jsonl"             # --format wins
    with pytest.raises(OutputError):
        choose("md", None, False)                                           # its images need a folder
    for fmt in FORMATS.values():                                            # every registration resolves
        assert callable(fmt.writer())


def test_a_name_that_disagrees_with_the_format_is_warned_about(tmp_path):
    from pathlib import Path
    from conftest import run_cli
    from rstwatch.report.formats import FORMATS, name_disagrees
    assert "name says jsonl" in name_disagrees("csv", Path("x.jsonl"), FORMATS["csv"])
    assert ".pdf is not a suffix" in name_disagrees(None, Path("x.pdf"), FORMATS["html"])
    assert "name says eve" in name_disagrees("jsonl", Path("x.eve.json"), FORMATS["jsonl"])
    assert "does not compress" in name_disagrees("csv", Path("x.csv.gz"), FORMATS["csv"])
    assert "does not compress" in name_disagrees(None, Path("x.jsonl.GZ"), FORMATS["jsonl"])
    for fmt, name in [("eve", "eve.json"), ("zeek-json", "conn.log"), ("csv", "x.csv"), ("table", "t.txt"),
                      ("jsonl", "findings"), (None, "x.parquet"), ("csv", "x.pdf"), (None, "no-suffix")]:
        assert name_disagrees(fmt, Path(name), FORMATS[fmt or "jsonl"]) is None, (fmt, name)
    # as the user meets it: one warning line, and the file is still written in the format asked for
    out = tmp_path / "x.jsonl"
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "-T", "csv", "-o", str(out))
    assert res.returncode == 0
    assert res.stderr.splitlines() == [f"rstwatch: warning: {out}: writing csv as --format asks, though the name says jsonl"]
    assert out.read_text().startswith("file,frame,")
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "-o", str(tmp_path / "y.jsonl"))
    assert res.returncode == 0 and res.stderr == ""
    # a write refused (the file exists) is the one line about that, not a warning first
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "-T", "csv", "-o", str(out))
    assert res.returncode == 2 and res.stderr.splitlines() == [f"rstwatch: error: {out}: already exists (use --force to overwrite)"]
