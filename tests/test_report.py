"""The incident report as a reader sees it: the HTML report of the bundled captures rendered by
headless Chromium (bin/setup --lab installs Debian's chromium), checked in the page itself
(timeline, one section per cause, ladders, evidence links that load), plus the Markdown
variant, Parquet round trips, the empty capture and the evidence files in tshark."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CAPTURES, ROOT, run_cli, run_with_terminal_stderr

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Run inside the page (a test copy of the report): what a reader would see, and whether every
# evidence link loads. Chromium reads file:// links with --allow-file-access-from-files.
PROBE = """
<script>
(function () {
  const box = (el) => { const r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const timeline = document.querySelector('#timeline svg');
  const links = [...document.querySelectorAll('a.evidence')];
  const loaded = links.map((a) => {
    const x = new XMLHttpRequest();
    try { x.open('GET', a.href, false); x.overrideMimeType('text/plain; charset=x-user-defined'); x.send(); }
    catch (e) { return [a.getAttribute('href'), -1]; }
    return [a.getAttribute('href'), x.responseText.length];
  });
  const out = {
    timeline: timeline ? box(timeline) : null,
    timeline_bars: timeline ? timeline.querySelectorAll('path, rect').length : 0,
    sections: [...document.querySelectorAll('section.cause')].map((s) => [s.dataset.cause, box(s)[1]]),
    ladders: [...document.querySelectorAll('svg.ladder')].map((s) => [box(s), s.querySelectorAll('g.seg').length,
                                                                     s.querySelectorAll('g.rst').length]),
    links: loaded,
    table_rows: document.querySelectorAll('#findings-table tbody tr').length,
    csv: (document.querySelector('#full-csv') || {}).href ? document.querySelector('#full-csv').href.slice(0, 30) : null,
    external: [...document.querySelectorAll('[src],link[href],script[src]')].map((e) => e.src || e.href),
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is not installed (bin/setup --lab installs it)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp / 'chromium-profile'}", "--allow-file-access-from-files", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp)})


@pytest.fixture(scope="module")
def truth_jsonl() -> str:
    """`read` of the bundled captures as JSON Lines."""
    res = run_cli("read", str(CAPTURES), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def truth(truth_jsonl):
    """The findings of the bundled captures, as `read` gives them."""
    return [json.loads(x) for x in truth_jsonl.splitlines()]


@pytest.fixture(scope="module")
def html_report(tmp_path_factory, truth):
    out = tmp_path_factory.mktemp("report")
    res = run_cli("report", str(CAPTURES), "-o", str(out / "incident.html"), "--extract", str(out / "evidence"),
                  "--title", "INC-2291 checkout 502s")
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def md_report(tmp_path_factory) -> Path:
    """The Markdown report of the bundled captures (inc.md, its pictures and CSV in inc_files/)."""
    out = tmp_path_factory.mktemp("md")
    res = run_cli("report", str(CAPTURES), "-o", str(out / "inc.md"))
    assert res.returncode == 0, res.stderr
    return out / "inc.md"


def test_html_report_in_chromium(html_report, truth, tmp_path):
    page = (html_report / "incident.html").read_text()
    probe = html_report / "probe.html"                  # beside the report, so relative links resolve alike
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), tmp=tmp_path)
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    seen = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))

    # the timeline is drawn at a readable size, with bars
    w, h = seen["timeline"]
    assert w >= 500 and h >= 150 and seen["timeline_bars"] > 10
    # one visible section per cause found, in the order of most resets
    causes = {r["cause"] for r in truth}
    assert {c for c, _ in seen["sections"]} == causes and len(seen["sections"]) == len(causes)
    assert all(height > 100 for _, height in seen["sections"])
    # every section has at least one ladder, each with packets and exactly one RST arrow drawn in red
    assert len(seen["ladders"]) >= len(causes)
    for (lw, lh), segments, rsts in seen["ladders"]:
        assert lw > 300 and lh > 60 and segments >= 1 and rsts == 1
    # every evidence link loads a pcapng from disk (a pcapng starts with its section header block)
    assert len(seen["links"]) >= len(truth)
    for href, size in seen["links"]:
        assert size > 100, href
        assert (html_report / href).read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert seen["table_rows"] == len(truth)
    assert seen["csv"].startswith("data:text/csv;base64,")
    assert seen["external"] == []                       # nothing loaded from anywhere: works offline

    shot = tmp_path / "report.png"
    res = chromium("--window-size=1280,2200", f"--screenshot={shot}", (html_report / "incident.html").as_uri(), tmp=tmp_path)
    assert shot.is_file() and shot.stat().st_size > 50_000, res.stderr[-2000:]
    if os.environ.get("RSTWATCH_REPORT_SCREENSHOT"):    # the README's picture: RSTWATCH_REPORT_SCREENSHOT=docs/img/report.png
        shutil.copy(shot, ROOT / os.environ["RSTWATCH_REPORT_SCREENSHOT"])


def test_html_report_content(html_report, truth):
    page = (html_report / "incident.html").read_text()
    assert "<title>INC-2291 checkout 502s</title>" in page
    resets = sum(r.get("resets", 1) for r in truth)
    assert f"{resets:,} TCP resets" in page
    for rule_id in {r["rule"] for r in truth}:
        assert rule_id in page
    # provenance: every input file with its size and SHA-256
    import hashlib
    for f in sorted(CAPTURES.glob("*.pcap*")):
        assert hashlib.sha256(f.read_bytes()).hexdigest() in page, f.name
        assert f"{f.stat().st_size:,}" in page
    # nothing from the network: no http(s) resource, no @import
    assert not re.search(r'(src|href)="https?:', page) and "@import" not in page and "url(http" not in page


def _payloads() -> list[bytes]:
    """Application bytes the captures carry (via tshark), which a report must never show."""
    found = []
    for f in ("keepalive-race.pcap", "unread-data-close.pcap", "data-after-close.pcap"):
        res = subprocess.run(["tshark", "-r", str(CAPTURES / f), "-Y", "tcp.len > 8", "-T", "fields", "-e", "tcp.payload"],
                             capture_output=True, text=True)
        found += [bytes.fromhex(x.replace(":", "")) for x in res.stdout.split() if x]
    return found


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by bin/setup")
def test_no_payload_bytes_in_reports(html_report, md_report):
    payloads = _payloads()
    assert payloads, "the lab captures carry request/response bytes"
    texts = [(html_report / "incident.html").read_bytes(), md_report.read_bytes()]
    texts += [p.read_bytes() for p in (md_report.parent / "inc_files").iterdir()]
    for data in payloads:
        probe = data[:24]
        for text in texts:
            assert probe not in text
            assert probe.hex() not in text.decode("utf-8", "replace")


def evidence_kind(r: dict) -> tuple:
    """What can make one evidence file unlike another: the lab folder the capture comes from (each
    lab's own link types and addresses; in captures/tunnels each capture is its own encapsulation),
    the capture's format, IPv4 or IPv6, the cause (the RST's comment names it) and whether the
    finding is one connection or a flood's sample."""
    rel = Path(r["file"]).resolve().relative_to(CAPTURES.resolve())
    lab = rel.parts[0] if len(rel.parts) > 1 else "."
    fmt = re.search(r"\.(pcapng|pcap)(\.gz)?$", rel.name).group(0)
    return lab, rel.name if lab == "tunnels" else "", fmt, ":" in r["src"], r["cause"], bool(r["sport"])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by bin/setup")
def test_extracted_evidence_opens_in_tshark_and_holds_the_rst(html_report, truth):
    files = sorted((html_report / "evidence").iterdir())
    assert len(files) == len(truth)
    stems = [re.sub(r"\.(pcapng|pcap)(\.gz)?$", "", Path(r["file"]).name) for r in truth]
    # captures of one name in several folders (the multi-host lab's s0.pcap...) share a stem: their
    # evidence names take a -N suffix in no documented order, so only unique stems are looked up by name
    shared = {st for st in stems if len({r["file"] for r, s in zip(truth, stems) if s == st}) > 1}
    # tshark (once a file) on one finding of each kind, not on all 233 (each evidence file is
    # checked to be a pcapng that loads in test_html_report_in_chromium): the same proof in a
    # quarter of the runs
    sample = {}
    for r, stem in zip(truth, stems):
        if stem not in shared:
            sample.setdefault(evidence_kind(r), r)
    assert len(sample) >= 60 and {r["cause"] for r in sample.values()} == {r["cause"] for r in truth}, len(sample)
    for r in sample.values():
        stem = re.sub(r"\.(pcapng|pcap)(\.gz)?$", "", Path(r["file"]).name)
        path = html_report / "evidence" / f"{stem}-f{r['frame']}-{r['cause']}.pcapng"
        res = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=/t", "-e", "tcp.flags.reset",
                              "-e", "frame.comment", "-e", "tcp.srcport", "-e", "tcp.dstport"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        frames = [line.split("\t") for line in res.stdout.splitlines()]
        rst_comments = "\n".join(f[1] for f in frames if {"1", "True"} & set(f[0].split(",")))
        assert f"frame {r['frame']} of {Path(r['file']).name}; the RST: {r['cause']}" in rst_comments, path.name
        if r["sport"]:                              # one connection: nothing else in the file
            assert {frozenset(map(int, f[2:4])) for f in frames} == {frozenset((r["sport"], r["dport"]))}, path.name


def test_markdown_report_and_its_images(md_report, truth):
    folder = md_report.parent
    text = md_report.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images[0] == "inc_files/timeline.svg"
    assert len(images) >= 1 + len({r["cause"] for r in truth})
    for rel in images:
        svg = (folder / rel).read_text()
        assert svg.lstrip().startswith("<?xml") and "prefers-color-scheme: dark" in svg
    for cause in {r["cause"] for r in truth}:
        assert f"### {cause}" in text
    # the full findings beside it, one row per finding
    import csv
    rows = list(csv.DictReader(open(folder / "inc_files" / "findings.csv")))
    assert len(rows) == len(truth)
    # refused to stdout: its images need a folder
    res = run_cli("report", str(CAPTURES / "closed-port.pcap"), "--format", "md")
    assert res.returncode == 2 and "needs -o FILE" in res.stderr


def test_markdown_report_replaced_keeps_only_what_it_shows(tmp_path):
    """--force over a report of more causes: the old ladders go, the user's own files stay."""
    out = tmp_path / "r.md"
    assert run_cli("report", str(CAPTURES), "-o", str(out)).returncode == 0
    folder = tmp_path / "r_files"
    assert len(list(folder.glob("ladder-*.svg"))) > 10
    mine = {"notes.txt", "diagram.svg", "ladder-link.svg"}        # the user's: a text, a picture, a link
    (folder / "notes.txt").write_text("mine")
    (folder / "diagram.svg").write_text("<svg/>")
    (folder / "ladder-link.svg").symlink_to(folder / "diagram.svg")
    res = run_cli("report", str(CAPTURES / "closed-port.pcap"), "-o", str(out), "--force")
    assert res.returncode == 0, res.stderr
    named = set(re.findall(r"r_files/([\w.-]+)", out.read_text()))
    assert {p.name for p in folder.iterdir()} == named | mine
    assert named == {"timeline.svg", "ladder-closed-port-1.svg", "findings.csv"}


def test_a_report_to_a_device_writes_nothing_beside_it():
    """-o /dev/null: a Markdown report (its pictures need NAME_files/ beside it) is refused, an
    HTML one is written, and nothing is made in /dev."""
    res = run_cli("report", str(CAPTURES / "closed-port.pcap"), "-T", "md", "-o", "/dev/null")
    assert res.returncode == 2 and "a Markdown report needs a file name" in res.stderr, res.stderr
    res = run_cli("report", str(CAPTURES / "closed-port.pcap"), "-o", "/dev/null")
    assert res.returncode == 0, res.stderr
    assert not os.path.lexists("/dev/null_files") and not os.path.lexists("/dev/null.findings.csv")


def test_empty_capture_gives_a_short_report(tmp_path):
    res = run_cli("report", str(CAPTURES / "normal-close.pcap"), "-o", str(tmp_path / "none.html"))
    assert res.returncode == 0, res.stderr
    page = (tmp_path / "none.html").read_text()
    assert "No TCP resets were found" in page and "section class=\"cause\"" not in page
    assert len(page) < 20_000


def test_parquet_round_trip_and_report_from_saved_findings(tmp_path, truth, truth_jsonl):
    saved = tmp_path / "findings.parquet"
    res = run_cli("read", str(CAPTURES), "-o", str(saved))          # the suffix picks Parquet
    assert res.returncode == 0, res.stderr
    assert saved.read_bytes()[:4] == b"PAR1"
    import pyarrow.parquet as pq
    columns = pq.read_schema(saved).names
    assert {"conn_first_frame", "rst.answers_syn", "errno", "remediation"} <= set(columns)   # every column kept
    from rstwatch.report.jsonl import write_jsonl
    from rstwatch.report.parquet import read_parquet
    import io
    df, meta = read_parquet(saved)
    buf = io.StringIO()
    write_jsonl(df, buf)
    assert buf.getvalue() == truth_jsonl                             # byte for byte, as `read` gives them
    assert len(meta["inputs"]) == len(list(CAPTURES.rglob("*.pcap*"))) and all(len(f["sha256"]) == 64 for f in meta["inputs"])
    # the captures named inside the saved findings are re-read only where the user says (#20 item 13)
    res = run_cli("report", str(saved), "-o", str(tmp_path / "later.html"), "--packets", str(CAPTURES))
    assert res.returncode == 0, res.stderr
    page = (tmp_path / "later.html").read_text()
    assert page.count('class="ladder"') >= len({r["cause"] for r in truth})   # the captures were re-read
    assert meta["inputs"][0]["sha256"] in page


def test_report_refuses_to_overwrite(tmp_path):
    out = tmp_path / "r.html"
    out.write_text("mine")
    res = run_cli("report", str(CAPTURES / "closed-port.pcap"), "-o", str(out))
    assert res.returncode == 2 and "already exists" in res.stderr and out.read_text() == "mine"
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "closed-port-f2-closed-port.pcapng").write_text("mine")
    res = run_cli("read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl", "--extract", str(ev))
    assert res.returncode == 2 and "already exists" in res.stderr
    assert (ev / "closed-port-f2-closed-port.pcapng").read_text() == "mine"


def test_report_never_writes_over_one_of_its_inputs(tmp_path):
    cap = tmp_path / "x.pcap"
    cap.write_bytes((CAPTURES / "closed-port.pcap").read_bytes())
    before = cap.read_bytes()
    res = run_cli("report", str(cap), "-o", str(cap), "--force")
    assert res.returncode == 2 and "one of the inputs" in res.stderr and len(res.stderr.splitlines()) == 1
    assert cap.read_bytes() == before


def test_a_csv_too_large_to_embed_is_never_lost_silently(tmp_path):
    """The full CSV of the bundled and public captures (1.1 MiB) is more than a report embeds:
    with the report on stdout it is not written and the report says so (this crashed the
    template before); beside `-o r.html` an existing r.findings.csv is kept without --force: the
    run is refused before any work (#20 item 8), one line, exit 2."""
    from conftest import EXTERNAL
    res = run_cli("read", str(CAPTURES), str(EXTERNAL), "--format", "html")
    assert res.returncode == 0, res.stderr[-500:]
    assert "too large to embed and were not written beside the report (the report went to stdout)" in res.stdout
    kept = tmp_path / "r.findings.csv"
    kept.write_text("mine\n")
    res = run_cli("read", str(CAPTURES), str(EXTERNAL), "-o", str(tmp_path / "r.html"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-500:]
    assert "r.findings.csv: already exists beside the report (use --force to overwrite)" in res.stderr
    assert kept.read_text() == "mine\n" and not (tmp_path / "r.html").exists()
    res = run_cli("read", str(CAPTURES), str(EXTERNAL), "-o", str(tmp_path / "r.html"), "--force")
    assert res.returncode == 0, res.stderr[-500:]
    assert kept.read_text() != "mine\n"            # replaced with --force, and linked from the report
    assert 'href="r.findings.csv"' in (tmp_path / "r.html").read_text()


def _shifted_pcap(src: Path, dst: Path, seconds: int) -> None:
    """A copy of a classic little-endian pcap with every timestamp moved by `seconds`."""
    import struct
    data = bytearray(src.read_bytes())
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    pos = 24
    while pos + 16 <= len(data):
        sec, _, incl, _ = struct.unpack_from("<IIII", data, pos)
        struct.pack_into("<I", data, pos, sec + seconds)
        pos += 16 + incl
    dst.write_bytes(bytes(data))


def test_report_over_years_cuts_the_quiet_gaps(tmp_path):
    """Captures years apart (as a folder of public traces is): the timeline gets one panel per
    period with resets, the gaps cut out and said so, a bounded number of bars, and the span,
    subtitle and caption read as people write them (not "264007.5 h" and one day's date)."""
    year = 365 * 86400
    folder = tmp_path / "incidents"
    folder.mkdir()
    for k, (name, shift) in enumerate([("closed-port.pcap", 0), ("data-after-close.pcap", 3 * year),
                                       ("keepalive-race.pcap", 9 * year)]):
        _shifted_pcap(CAPTURES / name, folder / f"{k}-{name}", shift)
    res = run_cli("report", str(folder), "-o", str(tmp_path / "r.html"))
    assert res.returncode == 0, res.stderr
    page = (tmp_path / "r.html").read_text()
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count(">//<") == 2                                   # two cuts, three panels
    assert len(re.findall(r"<g id=\"patch_", svg)) < 3 * 80         # bars (and legend swatches) stay bounded
    caption = re.search(r"<figcaption>(.*?)</figcaption>", page, re.S).group(1)
    assert "cut into 3 periods with resets" in caption and "years in all" in caption, caption
    assert re.search(r"\(9\.\d years\)", page), "the span in years"
    subtitle = re.search(r"times are UTC ([^<&]*)", page).group(1).strip()
    first, last = re.findall(r"\d{4}-\d\d-\d\d", subtitle)
    assert subtitle.startswith("from") and int(last[:4]) - int(first[:4]) == 9, subtitle
    # a single capture keeps one axis
    res = run_cli("report", str(CAPTURES / "closed-port.pcap"), "-o", str(tmp_path / "one.html"))
    one = (tmp_path / "one.html").read_text()
    assert ">//<" not in one and "cut into" not in one and "times are UTC on " in one


def test_report_says_what_it_is_doing_on_a_terminal(tmp_path):
    """On a terminal the report's own work (after the read's progress bar) has a progress line:
    stderr is a pty here, as an SRE's shell gives."""
    status, text = run_with_terminal_stderr("report", str(CAPTURES / "data-after-close.pcap"), "-o",
                                            str(tmp_path / "r.html"))
    assert status == 0, text
    assert "report: " in text and "report written to" in text, text


def test_report_says_what_a_folder_held_and_was_not_read(tmp_path):
    """As `read` does: a warning naming the files that are not captures, an error line (and exit
    1) for one that could not be opened, and the report of the rest."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(CAPTURES / "closed-port.pcap", folder)
    (folder / "notes.txt").write_text("not a capture\n")
    (folder / "gone.pcap").symlink_to(tmp_path / "nowhere.pcap")
    res = run_cli("report", str(folder), "-o", str(tmp_path / "r.html"))
    assert res.returncode == 1, res.stderr
    assert f"rstwatch: warning: {folder}: skipped 1 file(s) that are not captures: notes.txt" in res.stderr
    assert f"rstwatch: error: {folder / 'gone.pcap'}: broken symbolic link" in res.stderr
    assert "closed-port" in (tmp_path / "r.html").read_text()


def test_shares_never_round_some_to_none_or_most_to_all():
    # the headline and the cause table alike: 2 of 602 resets are not "0%", 600 of 602 not "100%"
    from rstwatch.report.incident import _share
    assert [_share(2, 602), _share(600, 602), _share(602, 602), _share(301, 602), _share(0, 5)] == \
        ["<1%", ">99%", "100%", "50%", "0%"]
    res = run_cli("report", str(CAPTURES / "closed-port.pcap"), str(CAPTURES / "closed-port-ipv6.pcapng"),
                  str(CAPTURES / "rst-storm.pcap"), "-T", "html")
    assert res.returncode == 0, res.stderr
    assert "most were rst-storm (600, &gt;99%), closed-port (2, &lt;1%)." in res.stdout


def test_a_floods_star_in_the_top_tables_is_said_under_them(tmp_path):
    # a flood finding has no one client (`*`) and no one port (`host:*`): the report says so
    # under the table that shows it, in both formats, and says nothing where no flood shows
    storm = run_cli("report", str(CAPTURES / "rst-storm.pcap"), str(CAPTURES / "closed-port.pcap"),
                    "-o", str(tmp_path / "storm.md"))
    assert storm.returncode == 0, storm.stderr
    storm = (tmp_path / "storm.md").read_text()
    top_clients = storm.split("## Top affected clients")[1].split("## Causes")[0]
    assert "| `*` | 600 | rst-storm 600 |" in top_clients
    assert "`*` is a flood finding from many addresses" in top_clients
    top_services = storm.split("## Top affected services")[1].split("## Top affected clients")[0]
    assert "| `10.77.1.2:*` | 600 |" in top_services and "`:*` is a flood finding" in top_services
    html = run_cli("report", str(CAPTURES / "rst-storm.pcap"), "-T", "html")
    assert "<code>*</code> is a flood finding from many addresses" in html.stdout
    plain = run_cli("report", str(CAPTURES / "closed-port.pcap"), "-o", str(tmp_path / "plain.md"))
    assert plain.returncode == 0, plain.stderr
    plain = (tmp_path / "plain.md").read_text()
    assert "## Top affected clients" in plain and "is a flood finding" not in plain


def _whole_table(_result):
    raise AssertionError("a file's findings were joined into one DataFrame")


def test_report_of_captures_streams_their_findings_as_read_does(tmp_path, monkeypatch):
    """`report CAPTURES` takes `read -o`'s path: the findings go a table at a time through the
    report's digest, never as one DataFrame of a file's findings (300,000 resets peaked at 839 MiB
    that way, 491 MiB streamed), and the report is the one `read -o` writes, with its title."""
    from rstwatch import analyze
    from rstwatch.run import run_read
    from rstwatch.run_report import run_report
    monkeypatch.setattr(analyze.FileResult, "findings", property(_whole_table))
    when = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
    inputs = [CAPTURES / "closed-port.pcap", CAPTURES / "rst-storm.pcap", CAPTURES / "data-after-close.pcap"]
    for name in ("r.html", "r.md"):
        made = {}
        for command in ("read", "report"):
            out = tmp_path / command / name
            out.parent.mkdir(exist_ok=True)
            if command == "read":
                assert run_read(inputs, None, out, False, [], 1) == 0
            else:
                assert run_report(inputs, out, None, False, [], None, None) == 0
            pictures = out.with_name(out.stem + "_files")
            made[command] = (when.sub("", out.read_text()), out.with_name("r.findings.csv").read_bytes()
                             if out.with_name("r.findings.csv").exists() else None,
                             sorted((p.name, p.read_bytes()) for p in pictures.iterdir()) if pictures.is_dir() else [])
        assert made["report"] == made["read"]
        assert "rst-storm" in made["report"][0] and "closed-port" in made["report"][0]
    titled = tmp_path / "titled.html"
    assert run_report(inputs, titled, None, False, [], "INC-9 checkout resets", None) == 0
    assert "INC-9 checkout resets" in titled.read_text()
