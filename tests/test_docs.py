"""The README and every page in docs/ are checked: their examples run as written, what they
show as output is what the commands really print, and every relative link leads to a file.

Conventions in the Markdown (GitHub renders the words after the language as nothing):
- ```sh blocks run in bash (errexit, pipefail), ```python blocks in this interpreter, from the
  repository root, with the installed `rstwatch` first on PATH; each must print something.
- ```sh root / ```python root: live capture or tracing; run where that can (root; CI runs as root).
- ```sh norun / ```python norun: cannot run in CI (sudo and systemd, container builds, the lab's
  namespaces, a benchmark of minutes, a fragment); kept few, each covered elsewhere (see NORUN).
- A ```text block right after a runnable block (nothing but blank lines between) is its output:
  every line of it must appear in what the block printed (stdout or stderr), as a whole line or a
  part of one; a line `...` stands for lines left out. ```text fuzzy compares with every number
  (times, ephemeral ports, rates) and run of spaces made alike, for output that differs run to run.
A ```text block after a norun block, or after prose, is an illustration and is not checked."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

# Pages whose examples are not run here, and why. Every other page in docs/ is covered.
EXCLUDED: dict[str, str] = {}
PAGES = ["README.md"] + sorted(
    p for p in (str(f.relative_to(ROOT)) for f in (ROOT / "docs").glob("*.md")) if p not in EXCLUDED)

# Every norun block, by page, with what covers it instead: a new norun block fails
# test_norun_blocks_are_accounted_for until it is listed here (keeps them few and deliberate).
NORUN = {
    "README.md": 2,          # bin/rstwatch + bin/test on a fresh machine (CI runs exactly these, .ci/run); the command list
    "docs/bounded.md": 2,    # benchmarks/hostile.py and benchmarks/outputs.py at full size (minutes, GBs); the page runs hostile.py small, tests/test_hostile.py the generators
    "docs/causes.md": 1,     # the labs rebuilt as root in namespaces: bin/test, tests/test_lab_captures.py, tests/test_lab_real.py
    "docs/deploy.md": 3,
    "docs/holdout.md": 1,    # the holdout lab rebuilt as root in namespaces: tests/test_lab_holdout.py     # sudo bin/setup --service, systemd, docker/podman: tests/test_deploy.py
    "docs/kernel.md": 1,     # live eth0 / kernel streaming for a minute: tests/test_kernel.py (root) does the real run
    "docs/live.md": 1,       # the everyday commands on eth0/any; the root blocks on the page run the same paths on lo
    "docs/performance.md": 3,  # bin/benchmark (side by side), bin/benchmark files 1M/4 GB, benchmarks/live.py at full size (minutes); the page runs all three small
    "docs/report.md": 2,     # the commands on an incident of yours (the page runs them on bundled captures); a FORMATS entry
    "docs/usage.md": 1,      # the everyday commands on files of yours; the page runs each on the bundled captures
}
# A page announced by another engineer that may not be committed yet: links to it pass until it
# exists, and are checked like any other once it does.
PENDING: set[str] = set()

FENCE = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    flags: set[str]
    body: str
    expect: str | None = None       # the ```text block that shows its output
    fuzzy: bool = False

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    out: list[Block] = []
    prev_end, prev = -1, None
    for m in FENCE.finditer(text):
        lang, flags, body = m.group(1), set(m.group(2).split()), m.group(3)
        if lang == "text" and prev is not None and not text[prev_end:m.start()].strip():
            prev.expect, prev.fuzzy = body, "fuzzy" in flags
        block = Block(page, text[:m.start()].count("\n") + 1, lang, flags, body)
        out.append(block)
        prev = block if lang in ("sh", "python") and "norun" not in flags else None
        prev_end = m.end()
    return out


ALL = [b for page in PAGES for b in parse(page)]
RUNNABLE = [b for b in ALL if b.lang in ("sh", "python") and "norun" not in b.flags]


def _alike(line: str, fuzzy: bool) -> str:
    line = line.rstrip()
    if fuzzy:
        line = re.sub(r"\d[\d,.]*\d|\d", "0", re.sub(r"\s+", " ", line.strip()))
    return line


def missing_lines(expect: str, output: str, fuzzy: bool) -> list[str]:
    """Lines of `expect` found in no line of `output` (`...` lines stand for what was left out)."""
    got = [_alike(line, fuzzy) for line in output.splitlines()]
    return [want for want in expect.splitlines()
            if want.strip() and want.strip() != "..."
            and not any(_alike(want, fuzzy) in line for line in got)]


def test_every_page_is_covered():
    pages = {str(f.relative_to(ROOT)) for f in (ROOT / "docs").glob("*.md")}
    assert pages - set(EXCLUDED) <= set(PAGES)
    for page in PAGES:
        assert any(b.page == page for b in RUNNABLE), f"{page}: no runnable example"


def test_norun_blocks_are_accounted_for():
    counts: dict[str, int] = {}
    for b in ALL:
        if "norun" in b.flags:
            counts[b.page] = counts.get(b.page, 0) + 1
    assert counts == NORUN


def test_output_check_can_fail():
    # the comparison the examples rely on: a line that is not printed is reported
    assert missing_lines("a b\n...\nc", "x a b y\nc", False) == []
    assert missing_lines("a b\nd", "a b\nc", False) == ["d"]
    assert missing_lines("12:00:01  port 40000, 1,250.5 MiB", "09:59:59  port 5, 99.1 MiB", True) == []
    assert missing_lines("port 4 server", "port 4 client", True) == ["port 4 server"]


def test_relative_links_resolve():
    bad = []
    for page in ["README.md"] + sorted(str(f.relative_to(ROOT)) for f in (ROOT / "docs").glob("*.md")):
        text = FENCE.sub("", (ROOT / page).read_text())
        for m in LINK.finditer(text):
            target = (m.group(1) or m.group(2)).split("#")[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue                                # an anchor on the page, or a URL
            path = ((ROOT / page).parent / target).resolve()
            if not path.exists() and os.path.relpath(path, ROOT.resolve()) not in PENDING:
                bad.append(f"{page}: {target}")
    assert not bad, bad


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_example_runs(block: Block):
    if "root" in block.flags and os.geteuid() != 0:
        pytest.skip("live capture needs root (CI runs as root)")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               MPLBACKEND="Agg")
    env.pop("COLUMNS", None)
    if block.lang == "sh":
        cmd = ["bash", "-c", "set -euo pipefail\n" + block.body]
    else:
        cmd = [sys.executable, "-c", block.body]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    where = f"{block.id}\n{block.body}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"
    assert res.returncode == 0, where
    assert res.stdout.strip(), f"{block.id}: the example printed nothing"
    if block.expect is not None:
        missing = missing_lines(block.expect, res.stdout + "\n" + res.stderr, block.fuzzy)
        assert not missing, f"the page shows lines the command did not print: {missing}\n{where}"
