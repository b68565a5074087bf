"""Bad input: one line naming the file and the reason, exit 2 when nothing could be read, no
traceback; a damaged file still yields what was read before the damage."""
from __future__ import annotations

import gzip
import json


from conftest import CAPTURES, run_cli

GOOD = CAPTURES / "listener-closed.pcap"      # three RSTs near the end


def assert_clean_error(res, *words):
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_file(tmp_path):
    assert_clean_error(run_cli("read", str(tmp_path / "nope.pcap")), "nope.pcap", "no such file")


def test_directory_without_captures(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_clean_error(run_cli("read", str(tmp_path)), str(tmp_path), "no pcap or pcapng")


def test_not_a_capture(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_text("this is not a capture\n")
    assert_clean_error(run_cli("read", str(p)), "x.pcap", "not a pcap or pcapng file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.pcap"
    p.write_bytes(b"")
    assert_clean_error(run_cli("read", str(p)), "empty.pcap", "empty file")


def test_gzip_of_something_else(tmp_path):
    p = tmp_path / "x.pcap.gz"
    p.write_bytes(gzip.compress(b"hello world, not a capture"))
    assert_clean_error(run_cli("read", str(p)), "x.pcap.gz", "gzip data that is not a capture")


def test_gzip_damaged_in_its_first_block(tmp_path):
    """zlib's own error before the first bytes came out (it was an internal error, exit 70)."""
    packed = gzip.compress(GOOD.read_bytes())
    p = tmp_path / "bad.pcap.gz"
    p.write_bytes(packed[:10] + bytes([packed[10] ^ 1]) + packed[11:])
    assert_clean_error(run_cli("read", str(p)), "bad.pcap.gz", "not a readable gzip file (Error -3 while decompressing")


def test_truncated_file_keeps_resets_before_the_damage(tmp_path):
    data = GOOD.read_bytes()
    p = tmp_path / "cut.pcap"
    p.write_bytes(data[:-30])                 # cut inside the last record
    res = run_cli("read", str(p), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "cut.pcap" in res.stderr and "truncated" in res.stderr
    full = [json.loads(x) for x in run_cli("read", str(GOOD), "--format", "jsonl").stdout.splitlines()]
    cut = [json.loads(x) for x in res.stdout.splitlines()]
    assert 0 < len(cut) <= len(full)
    assert [r["frame"] for r in cut] == [r["frame"] for r in full][:len(cut)]


def test_truncated_gzip(tmp_path):
    p = tmp_path / "cut.pcap.gz"
    p.write_bytes(gzip.compress(GOOD.read_bytes())[:-40])
    res = run_cli("read", str(p), "--format", "jsonl")
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "cut.pcap.gz" in res.stderr and ("truncated" in res.stderr or "ends early" in res.stderr)


def test_corrupt_record_length(tmp_path):
    data = bytearray(GOOD.read_bytes())
    data[24 + 8:24 + 12] = (10**8).to_bytes(4, "little")     # first record claims 100 MB
    p = tmp_path / "corrupt.pcap"
    p.write_bytes(bytes(data))
    res = run_cli("read", str(p), "--format", "jsonl")
    assert "Traceback" not in res.stderr
    assert "corrupt.pcap" in res.stderr and "corrupt record header" in res.stderr
    assert res.stdout == ""


def test_one_bad_file_among_good_ones(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_text("nope")
    res = run_cli("read", str(GOOD), str(bad), "--format", "jsonl")
    assert res.returncode == 1
    assert len(res.stdout.splitlines()) == 3
    assert "bad.pcap" in res.stderr and "Traceback" not in res.stderr


def test_debug_shows_the_traceback(tmp_path):
    res = run_cli("read", str(tmp_path / "nope.pcap"), "--debug")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_usage_errors_are_one_line_naming_the_help():
    # click's own form is four lines (Usage, Try, a blank line, Error); ours is the one every error has
    cases = [(["read", str(GOOD), "--format", "xml"], "'xml' is not one of", "rstwatch read --help"),
             (["read", "--bogus", str(GOOD)], "No such option: --bogus", "rstwatch read --help"),
             (["reed", str(GOOD)], "Did you mean 'read'?", "rstwatch --help"),
             (["live"], "Missing argument", "rstwatch live --help"),
             (["kernel", "-d", "soon"], "'soon' is not a duration", "rstwatch kernel --help"),
             (["kernel", "-f", "csv"], "'--format' / '-T' / '-f': 'csv' is not one of 'table', 'jsonl'", "rstwatch kernel --help"),  # -f: still the format
             (["rules", "explian"], "No such command", "rstwatch rules --help"),
             (["read", str(GOOD), "-o", ""], "'--output' / '-o': an empty name", "rstwatch read --help"),  # not "."
             (["live", "lo", "--write", ""], "'--write' / '-w': an empty name", "rstwatch live --help"),
             (["read", ""], "'paths': an empty name", "rstwatch read --help"),      # not the current folder
             (["read", str(GOOD), "--rules", ""], "'--rules': an empty name", "rstwatch read --help"),
             (["rules", "validate", ""], "'folders': an empty name", "rstwatch rules validate --help"),
             # an option's value missing: click names no command, the words do
             (["read", str(GOOD), "-o"], "Option '-o' requires an argument", "rstwatch read --help"),
             (["rules", "explain", "--rules"], "requires an argument", "rstwatch rules explain --help")]
    for args, what, help_command in cases:
        res = run_cli(*args)
        assert_clean_error(res, "rstwatch: error: ", what, f"See '{help_command}'.")
        assert res.stdout == ""
    # the help itself is still the help: no arguments at all, --help, and a good run exits 0
    assert "Commands:" in run_cli().stderr + run_cli().stdout
    assert run_cli("read", "--help").returncode == 0
    assert run_cli("read", "-T", "csv", str(GOOD)).returncode == 0


def test_a_file_cut_before_its_first_packet_is_an_error_and_keeps_the_output(tmp_path):
    """Nothing could be read: exit 2 with one line naming the file and the damage, and an output
    named with --force is left as it was (it is opened only once there are findings to write)."""
    closed, v6 = CAPTURES / "closed-port.pcap", CAPTURES / "closed-port-ipv6.pcapng"
    cases = {"magic.pcap": closed.read_bytes()[:4], "half.pcap": closed.read_bytes()[:10],
             "first.pcap": closed.read_bytes()[:100], "t.pcapng": v6.read_bytes()[:100],
             "t.pcap.gz": (CAPTURES / "keepalive-timeout.pcap.gz").read_bytes()[:40]}
    keep = tmp_path / "keep.jsonl"
    keep.write_text("mine\n")
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        res = run_cli("read", str(p), "-o", str(keep), "--force")
        assert res.returncode == 2, (name, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"rstwatch: error: {p}: ") and \
            ("truncated" in lines[0] or "incomplete" in lines[0]), (name, res.stderr)
        assert keep.read_text() == "mine\n"
    # a header and no packet at all is an empty capture, not a damaged one
    empty = tmp_path / "empty-capture.pcap"
    empty.write_bytes(closed.read_bytes()[:24])
    res = run_cli("read", str(empty))
    assert res.returncode == 0 and res.stdout == "", res.stderr


def test_a_pipe_named_by_its_path_is_read_as_standard_input_is(tmp_path):
    """`read <(zcat x.gz)`, `read /dev/stdin`, a FIFO: the same findings as the file (the first
    bytes cannot be read twice, so they are handed back as for `-`)."""
    import os
    import subprocess
    import threading
    from conftest import ROOT
    exe = str(ROOT / ".venv" / "bin" / "rstwatch")
    plain, packed = CAPTURES / "closed-port.pcap", CAPTURES / "keepalive-timeout.pcap.gz"
    want = {p: run_cli("read", "-T", "jsonl", str(p)).stdout for p in (plain, packed)}
    assert all(want.values())

    def same(out: str, path) -> bool:     # every field but the file's name
        strip = lambda text: [{k: v for k, v in json.loads(line).items() if k != "file"} for line in text.splitlines()]  # noqa: E731
        return strip(out) == strip(want[path])

    for path in (plain, packed):
        res = subprocess.run(["bash", "-c", f'"{exe}" read -T jsonl <(cat "{path}")'], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and same(res.stdout, path), res.stderr
        res = subprocess.run([exe, "read", "-T", "jsonl", "/dev/stdin"], input=path.read_bytes(), capture_output=True, timeout=120)
        assert res.returncode == 0 and same(res.stdout.decode(), path), res.stderr
    fifo = tmp_path / "fifo.pcap"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(plain.read_bytes()))
    writer.start()
    res = subprocess.run([exe, "read", "-T", "jsonl", str(fifo)], capture_output=True, text=True, timeout=120)
    writer.join(timeout=60)
    assert res.returncode == 0 and same(res.stdout, plain), res.stderr


def test_a_rules_folder_without_rule_files_is_named_without_a_line_number(tmp_path):
    (tmp_path / "notes").mkdir()
    res = run_cli("read", str(GOOD), "--rules", str(tmp_path / "notes"))
    assert_clean_error(res, "notes: no .yaml rule files in this folder")
    assert "notes:1:" not in res.stderr


def test_a_capture_with_only_its_header_is_read_with_a_warning(tmp_path):
    """Valid, so exit 0, but an SRE whose tcpdump watched the wrong interface is told why
    nothing came out; a pcapng cut after its interface block likewise."""
    pcap = tmp_path / "header.pcap"
    pcap.write_bytes(GOOD.read_bytes()[:24])
    res = run_cli("read", str(pcap))
    assert res.returncode == 0 and res.stdout == ""
    assert res.stderr.strip() == f"rstwatch: warning: {pcap}: no packets: the capture holds only its header"
    lines = run_cli("read", str(GOOD)).stderr + run_cli("read", str(GOOD), "-c", "2").stderr
    assert "no packets" not in lines            # -c stops the read after its first chunk


def test_saved_findings_given_to_read_point_to_report(tmp_path):
    saved = tmp_path / "findings.parquet"
    assert run_cli("read", str(GOOD), "-o", str(saved)).returncode == 0
    assert_clean_error(run_cli("read", str(saved)), "findings.parquet", "a Parquet file, not a capture",
                       "`rstwatch report` reads them")
