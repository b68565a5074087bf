"""`read` on a terminal shows one progress bar for the whole run: bytes and packets so far, the
file being read and its number. (A bar per file showed a small file's zeros, then vanished.)"""
from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CAPTURES, run_cli

FOLDER = CAPTURES / "tunnels"


def test_a_folder_is_one_bar_counting_every_files_packets(tmp_path):
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or shutil.which("rstwatch")
    leader, follower = pty.openpty()            # stderr a terminal, as an SRE's shell gives
    proc = subprocess.Popen([exe, "read", str(FOLDER), "-T", "jsonl", "-o", str(tmp_path / "f.jsonl")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "160"})
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:                         # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=120) == 0, seen
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    files = sorted(p for p in FOLDER.iterdir() if p.suffix in (".pcap", ".pcapng"))
    numbers = {int(k) for k, n in re.findall(r"\((\d+)/(\d+)\)", text) if int(n) == len(files)}
    assert numbers and max(numbers) == len(files), text
    total = int(re.search(r"(\d+) packets read", run_cli("read", str(FOLDER), "-T", "table").stdout).group(1))
    counts = [int(c.replace(",", "")) for c in re.findall(r"([\d,]+) packets", text)]
    assert max(counts) == total, (counts, total)           # every file's packets, not the last one's
