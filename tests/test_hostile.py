"""Hostile captures (issue 11, items 6, 8, 11): the generators of benchmarks/hostile.py at sizes that
run in seconds. Memory and time must be bounded by the flow table, not by what the capture holds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import hostile  # noqa: E402

# Runs `rstwatch read` in a child and prints its peak RSS (KiB) on the first line, so the memory
# of this test process does not count.
PEAK = ("import resource,subprocess,sys;p=subprocess.run(sys.argv[1:],capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.stdout.write(p.stdout.decode());sys.stderr.write(p.stderr.decode());sys.exit(p.returncode)")


def read_with_peak(*args: str) -> tuple[int, list[dict], str]:
    """(peak RSS in MiB, JSON Lines records, stderr) of one `rstwatch read`."""
    res = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "rstwatch", "read", *args, "--format", "jsonl"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    first, *lines = res.stdout.splitlines()
    return int(first) // 1024, [json.loads(x) for x in lines], res.stderr


def test_zero_length_record_bomb_does_not_grow_memory(tmp_path: Path):
    """A gzip of a pcap header plus zeros is a stream of zero-length records (none TCP). Memory must
    not grow with their number: 8x the records may cost only a few MiB more (it used to cost ~75
    bytes per record: 8 M records, +600 MiB)."""
    small, big = tmp_path / "z32.pcap.gz", tmp_path / "z256.pcap.gz"
    hostile.zero_records(small, 32 << 20)
    hostile.zero_records(big, 256 << 20)
    rss_small, rows, _ = read_with_peak(str(small))
    rss_big, rows_big, err = read_with_peak(str(big))
    assert rows == rows_big == []
    assert rss_big - rss_small < 40, f"{rss_small} MiB for 2 M records, {rss_big} MiB for 16 M"


def _stretched(n_packets: int, factor: int, seed: int) -> bytes:
    """A synthetic capture (benchmarks/synth.py, 5% resets of several shapes, refused
    connections from one server endpoint) with its clock stretched so it spans minutes."""
    import synth
    return _stretch(synth.build(n_packets, 0.05, seed=seed), factor)


BURST_STRETCH = 400      # synth's 1,200 aborted connections: 0.28 s -> 111 s, resets ~90 ms apart


def _stretch(rec, factor: int) -> bytes:
    """synth.build's records as a pcap, their clock `factor` times slower."""
    us = (rec["sec"].astype("int64") - int(rec["sec"][0])) * 1_000_000 + rec["usec"]
    us = us * factor + int(rec["sec"][0]) * 1_000_000
    rec["sec"], rec["usec"] = us // 1_000_000, us % 1_000_000
    return hostile.PCAP_HEADER + rec.tobytes()


def test_settling_early_and_batching_files_change_no_verdict(tmp_path: Path, builtin_rules, monkeypatch):
    """Flows whose verdicts are settled are classified while the file is read, in small batches,
    and small files are classified together: the findings must be exactly those of one pass
    over each whole file."""
    from rstwatch import analyze
    from rstwatch.analyze import VerdictBatch, analyze_file
    paths = []
    for k, factor in enumerate((40, 1, 200)):
        p = tmp_path / f"s{k}.pcap"
        p.write_bytes(_stretched(30_000, factor, seed=k))
        paths.append(p)
    cols = ["file", "frame", "cause", "sender", "conn_state", "history", "evidence", "summary",
            "conn.server_rst_burst", "community_id", "ts"]
    whole = [analyze_file(p, builtin_rules, batch=VerdictBatch(builtin_rules, max_resets=10**9)).findings
             for p in paths]
    assert sum(len(w) for w in whole) > 300 and whole[0]["conn.server_rst_burst"].max() > 1
    flushed, settled = [], []
    real, real_settled = VerdictBatch.flush, analyze.settled

    def spy(self):
        flushed.append(self.resets)
        real(self)

    def spy_settled(seg, delay):
        mask = real_settled(seg, delay)
        settled.append(int(mask.sum()))
        return mask
    monkeypatch.setattr(VerdictBatch, "flush", spy)
    monkeypatch.setattr(analyze, "settled", spy_settled)
    monkeypatch.setattr(analyze, "RESET_BATCH", 30)
    monkeypatch.setattr(analyze, "SETTLE_MIN_RESETS", 10)
    monkeypatch.setattr("rstwatch.sources.stream.CHUNK_BYTES", 256 * 1024)
    batch = VerdictBatch(builtin_rules, max_resets=60)
    results = [analyze_file(p, builtin_rules, batch=batch) for p in paths]
    batched = [r.findings for r in results]
    assert sum(settled) > 300, settled                                # settled before the end of a file
    assert len(flushed) >= 4 and max(flushed) < 200, flushed          # in batches (a burst is one)
    for w, b in zip(whole, batched):
        pd.testing.assert_frame_equal(w[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def _spy(monkeypatch, owner, name: str, seen: list, measure) -> None:
    """owner.name, each call's first argument measured into `seen` first."""
    real = getattr(owner, name)

    def spy(*args):
        seen.append(measure(args[0]))
        return real(*args)
    monkeypatch.setattr(owner, name, spy)


def test_a_burst_too_big_for_one_batch_is_classified_in_slices_with_the_same_verdicts(tmp_path: Path, builtin_rules,
                                                                                      monkeypatch):
    """A server resetting connection after connection without a pause is one reset component (the
    burst features chain every reset to the next), which cannot be cut into batches. Past
    SLICE_ABOVE resets it is walked and classified in slices of whole flows, the burst features
    computed over all of them first: every finding must be the one classifying it whole gives."""
    from rstwatch import analyze
    from rstwatch.analyze import VerdictBatch, analyze_file
    import synth
    # one server aborting every connection (bin/benchmark's reset files), refusals from a listener
    # that died and one at its limit (the synthetic mix, its clock stretched: refusals 0.1-2 s apart)
    burst = tmp_path / "burst.pcap"
    synth.write(burst, synth.build(900 * len(synth.ABORT), 1.0, templates=[synth.NORMAL, synth.ABORT]))
    mixed = tmp_path / "mixed.pcap"
    mixed.write_bytes(_stretched(40_000, 10, seed=5))
    ignore = ["conn_id", "conn_lineage"]                  # places in a batch's own table
    for path in (burst, mixed):
        whole = analyze_file(path, builtin_rules, batch=VerdictBatch(builtin_rules, max_resets=10**9)).findings
        walked, cut = [], []
        _spy(monkeypatch, analyze, "_walk", walked, analyze._resets)
        _spy(monkeypatch, analyze, "split_flows", cut, analyze._resets)
        monkeypatch.setattr(analyze, "SLICE_RESETS", 40)
        monkeypatch.setattr(analyze, "SLICE_ABOVE", 100)
        result = analyze_file(path, builtin_rules, batch=VerdictBatch(builtin_rules, max_resets=30))
        sliced = result.findings
        monkeypatch.undo()
        # written a table at a time: runs of one slice's rows, and tables across slices
        streamed = pd.concat(list(analyze.findings_in_order([result], rows=7)), ignore_index=True)
        pd.testing.assert_frame_equal(streamed, sliced)
        assert cut and min(cut) > 100, cut                             # a component too big for a batch ...
        assert max(walked) < 100 and len(walked) >= sum(cut) // 100, (cut, walked)     # ... walked in slices
        assert len(whole) == len(sliced) > 200
        assert whole["conn.server_rst_burst"].max() > 1
        pd.testing.assert_frame_equal(whole.drop(columns=ignore), sliced.drop(columns=ignore))
    assert whole["conn.server_alive_in_burst"].max() > 0


def test_a_burst_held_past_the_bar_is_walked_early_with_the_same_verdicts(tmp_path: Path, builtin_rules, monkeypatch):
    """A server resetting without a pause cannot be settled while it goes on. Past HOLD_RESETS
    resets held, the flows final by themselves are walked at once, kept on disk (spill.stash)
    and classified at the end with the rest, the burst features computed over all of it: every
    finding must be the one classifying the file whole gives, the segments held must stay far
    under the file's, and the files kept on disk must be gone."""
    from rstwatch import analyze, spill
    from rstwatch.analyze import VerdictBatch, analyze_file
    import synth
    path = tmp_path / "burst.pcap"
    # bin/benchmark's reset files: every connection to one server aborted; for two minutes
    path.write_bytes(_stretch(synth.build(1200 * len(synth.ABORT), 1.0, templates=[synth.NORMAL, synth.ABORT]),
                              BURST_STRETCH))
    whole = analyze_file(path, builtin_rules, batch=VerdictBatch(builtin_rules, max_resets=10**9)).findings
    stashed, held = [], []
    _spy(monkeypatch, spill, "stash", stashed, lambda walked: len(walked[2]))        # its resets
    _spy(monkeypatch, analyze, "final_by_themselves", held, analyze._resets)
    for name, value in (("RESET_BATCH", 30), ("SETTLE_MIN_RESETS", 10), ("HOLD_RESETS", 100),
                        ("SLICE_RESETS", 40), ("SLICE_ABOVE", 100)):
        monkeypatch.setattr(analyze, name, value)
    monkeypatch.setattr("rstwatch.sources.stream.CHUNK_BYTES", 64 * 1024)
    in_memory = analyze_file(path, builtin_rules, batch=VerdictBatch(builtin_rules, max_resets=30)).findings
    assert not stashed and held == []         # no spill folder (the Python API): nothing walked early
    with spill.spilling(None) as plan:
        result = analyze_file(path, builtin_rules, batch=VerdictBatch(builtin_rules, max_resets=30))
        early = result.findings
        left = list(plan.directory.iterdir())
        written = plan.files
    monkeypatch.undo()
    pd.testing.assert_frame_equal(whole.drop(columns=["conn_id", "conn_lineage"]),
                                  in_memory.drop(columns=["conn_id", "conn_lineage"]))
    assert len(stashed) >= 5 and written >= len(stashed) and not left, (stashed, written, left)
    assert len(whole) == len(early) > 1000 and max(held) < len(whole) // 3, held
    assert whole["conn.server_rst_burst"].max() > 1 and whole["conn.server_alive_in_burst"].max() > 0
    ignore = ["conn_id", "conn_lineage"]                  # places in a batch's own table
    pd.testing.assert_frame_equal(whole.drop(columns=ignore), early.drop(columns=ignore))


def test_the_older_connection_is_looked_for_in_the_resets_own_tunnel(builtin_rules, monkeypatch):
    """A challenge-ACK reset names the older connection on its 4-tuple: the same 4-tuple in another
    tunnel is another flow, never it (it was found there when both were in one batch, and not when
    the flows went to different slices: the verdict depended on the batching)."""
    import numpy as np
    from rstwatch import analyze
    from rstwatch.analyze import VerdictBatch
    from rstwatch.sources.capture import read_segments
    from rstwatch.sources.diagnostics import Diagnostics
    from rstwatch.sources.segments import Segments
    path = ROOT / "captures" / "halfopen" / "curl-reconnect-after-client-crash.pcap"
    plain = read_segments(path, Diagnostics(str(path)))
    cols = {k: v.copy() for k, v in plain.cols.items()}
    cols["frame"] = cols["frame"] + int(plain["frame"].max())
    cols["ts_ns"] = cols["ts_ns"] + int(plain["ts_ns"].max() - plain["ts_ns"].min()) + 1_000_000_000
    cols["tunnel"] = np.full(len(plain), 0x1234, np.uint64)           # the same packets again, in a tunnel
    both = Segments.concat([plain, Segments(cols)])

    def older(batch: VerdictBatch) -> list:
        batch.add("owner", "both", both)
        table = analyze.assemble(batch.take("owner"), None, batch.empty)
        hit = table[table["rst.answers_challenge_ack"].fillna(False).astype(bool)]
        return [(int(f), int(o), list(e)) for f, o, e in zip(hit["frame"], hit["conn.older_first_frame"], hit["evidence"])]
    whole = older(VerdictBatch(builtin_rules, max_resets=10**9))
    monkeypatch.setattr(analyze, "SLICE_ABOVE", 0)
    monkeypatch.setattr(analyze, "SLICE_RESETS", 1)
    sliced = older(VerdictBatch(builtin_rules, max_resets=1))
    shift = int(plain["frame"].max())
    assert len(whole) == 2 and whole == sliced, (whole, sliced)
    (f1, o1, _), (f2, o2, ev2) = whole
    assert f2 == f1 + shift and o2 == o1 + shift and min(ev2) > shift      # its own tunnel's older connection


def test_many_small_files_cost_milliseconds_each(tmp_path: Path):
    """3,000 rotated two-packet captures took ~90 ms each (a classification per file); 400 of
    them must now cost well under 10 ms a file over one file alone."""
    import time
    one, many = tmp_path / "one", tmp_path / "many"
    hostile.small_files(one, 1)
    hostile.small_files(many, 400)
    t = time.perf_counter()
    _, rows_one, _ = read_with_peak(str(one))
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    _, rows, _ = read_with_peak(str(many))
    t_many = time.perf_counter() - t
    assert len(rows_one) == 1 and len(rows) == 400 and {r["cause"] for r in rows} == {"closed-port"}
    assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    per_file_ms = (t_many - t_one) / 399 * 1000
    assert per_file_ms < 10, f"{per_file_ms:.1f} ms per file"


def test_many_small_files_hold_little_memory_each(tmp_path: Path, builtin_rules):
    """The findings of a folder of small captures, gathered with all_findings, hold a few KB per
    file (a DataFrame per file was ~30 KB of Python objects and ~100 KB of RSS)."""
    import tracemalloc
    from rstwatch.analyze import VerdictBatch, all_findings, analyze_file
    paths = hostile.small_files(tmp_path / "many", 300)
    batch = VerdictBatch(builtin_rules)
    all_findings([analyze_file(paths[0], builtin_rules, batch=batch)])        # warm caches
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        results = [analyze_file(p, builtin_rules, batch=batch) for p in paths]
        found = all_findings(results)
        per_file = (tracemalloc.get_traced_memory()[0] - before) / len(paths)
    finally:
        tracemalloc.stop()
    assert list(found["file"]) == [str(p) for p in paths]
    assert (found["cause"] == "closed-port").all()
    assert per_file < 15 * 1024, f"{per_file / 1024:.1f} KiB per file"


def _trickle_with_storm(path: Path, n: int, storm: int) -> None:
    """A spoofed trickle (99/s) with a flood against another host in its middle: a file whose
    findings are settled in many batches and also hold a flood row (ordered by frame then)."""
    import numpy as np
    a = hostile.rst_records(n, 99.0, seed=3)
    b = hostile.rst_records(storm, 500.0, seed=4, target=(10, 0, 0, 2))
    b["sec"] += n // 200
    rec = np.concatenate([a, b])
    rec = rec[np.argsort(rec["sec"].astype(np.int64) * 1_000_000 + rec["usec"], kind="stable")]
    path.write_bytes(hostile.PCAP_HEADER + rec.tobytes())


def _small_batches(tmp_path: Path, monkeypatch, rules, resets: int, small_files: int):
    """Inputs that cross every batch boundary (a trickle with a flood in the middle, a folder of
    small captures, the bundled captures), batches of 150 resets, spilling after 300 findings;
    returns (inputs, analysed) where analysed() reads them afresh into FileResults."""
    from conftest import CAPTURES
    from rstwatch import analyze, spill
    from rstwatch.analyze import VerdictBatch
    from rstwatch.run import analyze_paths
    mixed = tmp_path / "mixed.pcap"
    _trickle_with_storm(mixed, resets, 600)
    hostile.small_files(tmp_path / "rotated", small_files)
    inputs = [mixed, tmp_path / "rotated", CAPTURES]
    monkeypatch.setattr(analyze, "RESET_BATCH", 150)
    monkeypatch.setattr(analyze, "SETTLE_MIN_RESETS", 50)
    monkeypatch.setattr(spill, "SPILL_AFTER", 300)

    def analysed():
        analyze._shared[:] = [VerdictBatch(rules, max_resets=150)]
        results, errors = analyze_paths(inputs, rules)
        assert not errors
        return results
    return inputs, analysed


def test_streamed_output_is_byte_for_byte_what_writing_all_at_once_gives(tmp_path: Path, builtin_rules,
                                                                        monkeypatch):
    """`read` in a format it streams (JSON Lines, CSV, EVE, Zeek, Parquet) keeps only the output
    columns (Parquet: all of them), spills finished batches to disk and
    writes them back in order, a table at a time: the bytes must be those of writing the whole
    findings table at once (order, columns, nulls), across many batches, spilled tables, a
    flood in the middle of a file, a folder of small files and the bundled captures."""
    import io
    from conftest import CAPTURES
    from rstwatch import spill
    from rstwatch.analyze import all_findings, findings_in_order
    from rstwatch.report.formats import FORMATS
    from rstwatch.run import ALL_COLUMNS, REPORTS, STREAMED, _stream
    from rstwatch.report.records import CONTRACT_FIELDS, EXTRA_FIELDS
    inputs, analysed = _small_batches(tmp_path, monkeypatch, builtin_rules, 2_000, 40)
    mixed = inputs[0]
    monkeypatch.setattr("rstwatch.sources.stream.CHUNK_BYTES", 64 * 1024)

    assert set(STREAMED) == {"jsonl", "csv", "eve", "zeek", "zeek-json", "parquet", "html", "md", "table"}
    texts = {}
    for name in STREAMED:
        if name in REPORTS:         # the next test
            continue
        fmt = FORMATS[name]
        whole, streamed = (io.BytesIO(), io.BytesIO()) if fmt.binary else (io.StringIO(), io.StringIO())
        fmt.writer()(all_findings(analysed()), whole)
        with spill.spilling(None if name in ALL_COLUMNS else CONTRACT_FIELDS + EXTRA_FIELDS + ["conn_first_frame"]):
            results = analysed()
            plan = spill._plan[0]
            assert plan.files >= 5 and plan.held <= 300, plan        # most batches went to disk
            _stream(fmt, findings_in_order(results, rows=77), streamed)
        if name == "parquet":       # the same table read back, written a row group at a time
            from rstwatch.report.parquet import read_parquet
            tables = []
            for buf in (whole, streamed):
                (tmp_path / "f.parquet").write_bytes(buf.getvalue())
                tables.append(read_parquet(tmp_path / "f.parquet")[0])
            pd.testing.assert_frame_equal(tables[1], tables[0])
            assert len(tables[0]) > 2_000 and len(tables[0].columns) > 60        # every feature column
            continue
        got, want = streamed.getvalue(), whole.getvalue()
        if name == "zeek":          # #open/#close say when the log was written
            got, want = ([ln for ln in t.splitlines() if not ln.startswith(("#open", "#close"))] for t in (got, want))
        assert got == want, name
        texts[name] = whole.getvalue()
    rows = [json.loads(line) for line in texts["jsonl"].splitlines()]
    assert len(rows) > 2_000 and [r["cause"] for r in rows if r["file"] == str(mixed)].count("rst-storm") == 1
    assert {r["file"] for r in rows} >= {str(mixed), str(CAPTURES / "closed-port.pcap")}


def test_report_from_a_stream_of_tables_is_the_report_of_all_findings(tmp_path: Path, builtin_rules, monkeypatch):
    """`read -o r.html|r.md` digests the findings a table at a time (report/digest.py: counters,
    the first rows, sample candidates) and writes the full CSV as it goes: the report and the
    CSV beside it are byte for byte those made from the whole findings table, across spilled
    batches, a flood, a folder of small files and the bundled captures (many causes, ties in
    the alternatives and senders, findings with equal times)."""
    import io
    import re
    from rstwatch import spill
    from rstwatch.analyze import all_findings, findings_in_order
    from rstwatch.report import incident
    from rstwatch.report.records import CONTRACT_FIELDS, EXTRA_FIELDS
    from rstwatch.run import _stream
    from rstwatch.run_report import run_info
    from rstwatch.report.formats import FORMATS
    _, analysed = _small_batches(tmp_path, monkeypatch, builtin_rules, 2_000, 40)
    monkeypatch.setattr(incident, "EMBED_CSV_BYTES", 200_000)     # the CSV goes beside the report

    def made(streamed: bool, name: str) -> tuple[str, bytes]:
        out = tmp_path / name / f"r.{name}"
        out.parent.mkdir()
        if streamed:
            with spill.spilling(CONTRACT_FIELDS + EXTRA_FIELDS + ["conn_first_frame", "conn_last_frame"]):
                results = analysed()
                assert spill._plan[0].files >= 5
                info = run_info(results, builtin_rules, [])
                info.output, info.force = out, False
                buf = io.StringIO()
                _stream(FORMATS[name], findings_in_order(results, rows=77), buf, info)
        else:
            results = analysed()
            info = run_info(results, builtin_rules, [])
            info.output, info.force = out, False
            buf = io.StringIO()
            FORMATS[name].writer()(all_findings(results), buf, info=info)
        text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "", buf.getvalue())    # when it was made
        return text, (out.parent / "r.findings.csv").read_bytes()

    for name in ("html", "md"):
        whole = made(False, name)
        (tmp_path / name).rename(tmp_path / f"{name}-whole")
        streamed = made(True, name)
        assert streamed[0] == whole[0], name
        assert streamed[1] == whole[1] and len(whole[1]) > 200_000, name
        assert "rst-storm" in whole[0] and "closed-port" in whole[0]


def test_evidence_extracted_while_streaming_is_what_extracting_all_at_once_gives(tmp_path: Path, builtin_rules,
                                                                               monkeypatch):
    """`read --extract DIR` in a streamed format takes each finding's packets a pass of findings at
    a time while the spilled batches are written: the same files, byte for byte, as extracting
    from the whole findings table, across spilled batches, several passes over one capture, a
    flood row, a folder of small files and the bundled captures; a second run without --force
    is refused before it writes a file."""
    import hashlib
    from rstwatch import analyze
    from rstwatch.analyze import VerdictBatch, all_findings
    from rstwatch.report import extract as ex
    from rstwatch.run import run_read
    inputs, analysed = _small_batches(tmp_path, monkeypatch, builtin_rules, 1_500, 30)
    monkeypatch.setattr(ex, "PASS_WANTS", 200)

    def files(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    results = analysed()
    findings = all_findings(results)
    whole, _ = ex.extract(findings, {r.path: Path(r.path) for r in results}, tmp_path / "whole", False)
    analyze._shared[:] = [VerdictBatch(builtin_rules, max_resets=150)]
    assert run_read(inputs, "jsonl", tmp_path / "f.jsonl", False, [], 1, extract=tmp_path / "streamed") == 0
    assert len(whole) > 1_500 and files(tmp_path / "streamed") == files(tmp_path / "whole")
    from rstwatch.errors import OutputError
    before = files(tmp_path / "streamed")
    try:
        run_read(inputs, "jsonl", tmp_path / "g.jsonl", False, [], 1, extract=tmp_path / "streamed")
    except OutputError as exc:
        assert "already exists" in str(exc)
    else:
        raise AssertionError("a second --extract into the same folder was not refused")
    assert files(tmp_path / "streamed") == before and not (tmp_path / "g.jsonl").exists()


def test_spoofed_trickle_memory_does_not_grow_with_its_findings(tmp_path: Path):
    """Spoofed RSTs just under the flood rate are one finding each. Their findings used to be held
    as pandas rows until the end (~4 KiB of RSS a reset: 300,000 took 1.15 GiB); now they are
    spilled to disk and written back in order. From 20,000 to 80,000 resets the peak may grow by
    what bounded caches take (community ids, address texts), not by ~4 KiB a reset."""
    small, big = tmp_path / "t20k.pcap", tmp_path / "t80k.pcap"
    hostile.rst_trickle(small, 20_000)
    hostile.rst_trickle(big, 80_000)
    rss_small, rows_small, _ = read_with_peak(str(small))
    rss_big, rows_big, _ = read_with_peak(str(big))
    assert len(rows_small) == 20_000 and len(rows_big) == 80_000
    assert [r["frame"] for r in rows_big] == list(range(1, 80_001))        # in order, every reset
    per_reset = (rss_big - rss_small) * 2**20 / 60_000
    assert per_reset < 2048, f"{rss_small} MiB for 20,000 resets, {rss_big} MiB for 80,000"


def test_findings_stay_in_memory_when_the_spill_folder_cannot_be_written(tmp_path: Path, builtin_rules,
                                                                         monkeypatch):
    """A full disk (here: the temporary folder gone) must not lose findings or end in an internal
    error: tables stay in memory, the output is the same, and the plan says why for the warning."""
    import io
    from rstwatch import analyze, spill
    from rstwatch.analyze import VerdictBatch, all_findings, findings_in_order
    from rstwatch.report.formats import FORMATS
    from rstwatch.report.jsonl import write_jsonl
    from rstwatch.report.records import CONTRACT_FIELDS, EXTRA_FIELDS
    from rstwatch.run import _stream, analyze_paths
    mixed = tmp_path / "mixed.pcap"
    _trickle_with_storm(mixed, 1_500, 600)
    monkeypatch.setattr(analyze, "RESET_BATCH", 150)
    monkeypatch.setattr(analyze, "SETTLE_MIN_RESETS", 50)
    monkeypatch.setattr(spill, "SPILL_AFTER", 300)
    whole, streamed = io.StringIO(), io.StringIO()
    analyze._shared[:] = [VerdictBatch(builtin_rules, max_resets=150)]
    write_jsonl(all_findings(analyze_paths([mixed], builtin_rules)[0]), whole)
    with spill.spilling(CONTRACT_FIELDS + EXTRA_FIELDS + ["conn_first_frame"]) as plan:
        plan.directory = tmp_path / "gone" / "spill"
        analyze._shared[:] = [VerdictBatch(builtin_rules, max_resets=150)]
        results = analyze_paths([mixed], builtin_rules)[0]
        _stream(FORMATS["jsonl"], findings_in_order(results), streamed)
    assert plan.files == 0 and plan.failed and "No such file" in plan.failed, plan
    assert plan.held == 1_500                  # every trickle finding, none lost
    assert streamed.getvalue() == whole.getvalue() and whole.getvalue().count("\n") > 1_500


def test_a_read_where_no_temporary_folder_is_usable_keeps_its_findings_in_memory(tmp_path: Path, monkeypatch):
    """No usable temporary folder at all (/tmp and /var/tmp read-only): tempfile's own lookup
    fails, and naming the folder for the warning asked it again (an internal error, exit 70,
    found by a review). The plan must say why (`read` warns with it) and keep findings, and a
    burst's walked slices, in memory."""
    import tempfile
    from rstwatch import spill

    def nowhere(*args, **kwargs):
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp', '/var/tmp']")
    monkeypatch.setattr(tempfile, "TemporaryDirectory", nowhere)
    monkeypatch.setattr(tempfile, "gettempdir", nowhere)
    monkeypatch.setattr(tempfile, "tempdir", None)
    with spill.spilling(None) as plan:
        assert plan.directory is None and "No usable temporary directory" in plan.failed
        assert not spill.can_stash()


def test_jobs_workers_spill_each_into_their_own_files(tmp_path: Path, builtin_rules, monkeypatch):
    """`read DIR --jobs 2` past SPILL_AFTER findings per worker: the workers inherit the parent's
    spill folder, and with the same table names (000001.pkl...) one worker overwrote the other's
    tables (wrong file names, duplicated and missing findings, or a truncated pickle). Every
    finding must come back once, under its own file, in the order `--jobs 1` gives."""
    import io
    from rstwatch import analyze, run, spill
    from rstwatch.analyze import VerdictBatch, findings_in_order
    from rstwatch.columns import Table
    from rstwatch.report.formats import FORMATS
    from rstwatch.report.records import CONTRACT_FIELDS, EXTRA_FIELDS
    from rstwatch.run import _stream, analyze_paths
    folder = tmp_path / "two"
    folder.mkdir()
    for seed in (3, 4):
        rec = hostile.rst_records(1_200, 99.0, seed=seed)
        (folder / f"host{seed}.pcap").write_bytes(hostile.PCAP_HEADER + rec.tobytes())
    monkeypatch.setattr(analyze, "RESET_BATCH", 150)
    monkeypatch.setattr(analyze, "SETTLE_MIN_RESETS", 50)
    monkeypatch.setattr(spill, "SPILL_AFTER", 300)
    # the workers make their own batch (the rules come to them as a copy): small ones there too
    monkeypatch.setattr(VerdictBatch.__init__, "__defaults__", (150,))
    monkeypatch.setattr(run, "GROUP_BYTES", (1, 64 << 20))     # a file per worker, not both in one group
    texts = {}
    for jobs in (1, 2):
        out = io.StringIO()
        with spill.spilling(CONTRACT_FIELDS + EXTRA_FIELDS + ["conn_first_frame"]):
            analyze._shared[:] = [VerdictBatch(builtin_rules, max_resets=150)]
            results, errors = analyze_paths([folder], builtin_rules, jobs=jobs)
            assert not errors
            if jobs == 2:
                # what came back: pieces, no DataFrame; at most SPILL_AFTER rows in memory a
                # worker (tests/test_jobs.py), the rest tables on disk by name
                assert all(r._findings is None for r in results)
                tables = {id(t): t for r in results for t, _, _ in r._pieces}      # files may share tables
                in_memory = [t for t in tables.values() if not isinstance(t, spill.Spilled)]
                on_disk = [t for t in tables.values() if isinstance(t, spill.Spilled)]
                assert all(isinstance(t, Table) for t in in_memory)
                assert sum(len(t) for t in in_memory) <= 2 * 300 and len(on_disk) >= 6
                assert {t.path.parent for t in on_disk} == {spill._plan[0].directory}
                assert len({t.path.name.split("-")[0] for t in on_disk}) == 2    # both workers spilled
            _stream(FORMATS["jsonl"], findings_in_order(results), out)
        texts[jobs] = out.getvalue()
    rows = [json.loads(line) for line in texts[2].splitlines()]
    for seed in (3, 4):
        frames = [r["frame"] for r in rows if r["file"] == str(folder / f"host{seed}.pcap")]
        assert frames == list(range(1, 1_201)), (seed, len(frames))
    assert texts[2] == texts[1]
