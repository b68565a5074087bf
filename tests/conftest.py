from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = Path(os.environ.get("RSTWATCH_CAPTURES", ROOT / "captures"))
EXTERNAL = Path(os.environ.get("RSTWATCH_EXTERNAL", ROOT / "tests" / "external"))


def run_cli(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or shutil.which("rstwatch")
    return subprocess.run([exe, *args], capture_output=True, text=True, input=stdin, cwd=cwd, timeout=300)


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((CAPTURES / "manifest.json").read_text())


@pytest.fixture(scope="session")
def builtin_rules():
    from rstwatch.engine.loader import load_rules
    return load_rules()
