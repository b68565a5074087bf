"""Start-up stays small: each command imports only what it uses. `--version` is answered before
the CLI is built, `--help` needs no data library, and reading a capture to JSON Lines loads
neither the report (matplotlib, jinja2), nor live (prometheus_client, psutil), nor the tshark
engine (pyshark, asyncio). The times themselves are measured by benchmarks/startup.py."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CAPTURES

HEAVY = {"pandas", "numpy", "pyarrow", "matplotlib", "jinja2", "prometheus_client", "psutil", "pyshark",
         "asyncio", "yaml", "rich"}


def imported_by(*argv: str) -> set[str]:
    """Top-level packages loaded by `rstwatch ARGV...` (through the installed entry point)."""
    probe = ("import json, sys\n"
             f"sys.argv = ['rstwatch', *{list(argv)!r}]\n"
             "from rstwatch.entry import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "sys.stdout.flush()\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return set(json.loads(res.stderr.strip().splitlines()[-1]))


def test_version_imports_neither_the_cli_nor_any_library():
    loaded = imported_by("--version")
    assert not loaded & (HEAVY | {"typer", "click"}), loaded & (HEAVY | {"typer"})


@pytest.mark.parametrize("argv", [("--help",), ("read", "--help"), ("live", "--help"), ("report", "--help")])
def test_help_loads_no_data_library(argv):
    loaded = imported_by(*argv)
    assert not loaded & HEAVY, loaded & HEAVY


def test_reading_a_capture_loads_only_what_reading_needs():
    loaded = imported_by("read", str(CAPTURES / "closed-port.pcap"), "--format", "jsonl")
    assert {"pandas", "numpy", "yaml"} <= loaded
    assert not loaded & {"matplotlib", "jinja2", "prometheus_client", "psutil", "pyshark", "asyncio", "rich"}, \
        loaded & {"matplotlib", "jinja2", "prometheus_client", "psutil", "pyshark", "asyncio", "rich"}
