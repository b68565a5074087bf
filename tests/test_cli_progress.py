"""`read` on a terminal shows one progress bar for the whole run: bytes and packets so far, the
file being read and its number. (A bar per file showed a small file's zeros, then vanished.)"""
from __future__ import annotations

import re

from conftest import CAPTURES, run_cli, run_with_terminal_stderr

FOLDER = CAPTURES / "tunnels"


def test_a_folder_is_one_bar_counting_every_files_packets(tmp_path):
    status, text = run_with_terminal_stderr("read", str(FOLDER), "-T", "jsonl", "-o", str(tmp_path / "f.jsonl"),
                                            columns=160)
    assert status == 0, text
    files = sorted(p for p in FOLDER.iterdir() if p.suffix in (".pcap", ".pcapng"))
    numbers = {int(k) for k, n in re.findall(r"\((\d+)/(\d+)\)", text) if int(n) == len(files)}
    assert numbers and max(numbers) == len(files), text
    total = int(re.search(r"(\d+) packets read", run_cli("read", str(FOLDER), "-T", "table").stdout).group(1))
    counts = [int(c.replace(",", "")) for c in re.findall(r"([\d,]+) packets", text)]
    assert max(counts) == total, (counts, total)           # every file's packets, not the last one's
