from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Parsed rule files are cached between runs (rstwatch/engine/rulecache.py): the tests and every
# process they start keep theirs in a folder of their own, new for each session, never the
# user's ~/.cache
_RULE_CACHE = tempfile.mkdtemp(prefix="rstwatch-test-cache-")
os.environ["RSTWATCH_CACHE_DIR"] = _RULE_CACHE
atexit.register(shutil.rmtree, _RULE_CACHE, True)
CAPTURES = Path(os.environ.get("RSTWATCH_CAPTURES", ROOT / "captures"))
EXTERNAL = Path(os.environ.get("RSTWATCH_EXTERNAL", ROOT / "tests" / "external"))


def run_cli(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or shutil.which("rstwatch")
    return subprocess.run([exe, *args], capture_output=True, text=True, input=stdin, cwd=cwd, timeout=300)


def run_with_terminal_stderr(*args: str, columns: int = 120) -> tuple[int, str]:
    """The console script with stderr a terminal (a pty, as an SRE's shell gives) and stdout
    thrown away: (exit status, what stderr showed, its escape sequences taken out)."""
    import pty
    import re
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or shutil.which("rstwatch")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": str(columns)})
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:                 # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    status = proc.wait(timeout=120)
    os.close(leader)
    return status, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))


def findings_of(folder: Path):
    """Every finding of the captures below `folder` (pcap, pcapng, gzip), one table."""
    import pandas as pd
    import rstwatch
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".pcap", ".pcapng", ".gz") and p.is_file())
    tables = [t for t in (rstwatch.read(p) for p in files) if len(t)]
    assert tables, folder
    return pd.concat(tables, ignore_index=True)


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((CAPTURES / "manifest.json").read_text())


@pytest.fixture(scope="session")
def builtin_rules():
    from rstwatch.engine.loader import load_rules
    return load_rules()


def assert_same(a, b, where: str) -> None:
    """The compiled loops and their numpy twin gave the same: dicts, sequences, arrays (dtype too), values."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
