"""The examples in the docs pages run as written: every ```sh block in bash (errexit, pipefail)
and every ```python block in this interpreter, from the repository root, with the installed
`rstwatch` first on PATH. A block marked ```python root watches an interface live and runs
where live capture can (root; CI runs as root)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = ["docs/api.md", "docs/interop.md"]          # the pages this test owns; others may add theirs
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, int, str, str, str]]:
    out = []
    for page in PAGES:
        text = (ROOT / page).read_text()
        for m in FENCE.finditer(text):
            lang, flags, body = m.group(1), m.group(2).strip(), m.group(3)
            if lang in ("sh", "python"):
                out.append((page, text[:m.start()].count("\n") + 1, lang, flags, body))
    return out


BLOCKS = blocks()


def test_pages_have_examples():
    for page in PAGES:
        assert sum(b[0] == page for b in BLOCKS) >= 4, page


@pytest.mark.parametrize("page,line,lang,flags,body", BLOCKS, ids=[f"{b[0]}:{b[1]}" for b in BLOCKS])
def test_example_runs(page, line, lang, flags, body):
    if flags == "root" and os.geteuid() != 0:
        pytest.skip("live capture needs root (CI runs as root)")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               MPLBACKEND="Agg")
    if lang == "sh":
        cmd = ["bash", "-c", "set -euo pipefail\n" + body]
    else:
        cmd = [sys.executable, "-c", body]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"{page}:{line}\n{body}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"
    assert res.stdout.strip(), f"{page}:{line}: the example printed nothing"
