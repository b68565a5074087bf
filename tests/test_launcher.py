"""bin/rstwatch, the checkout's launcher: it runs bin/setup again only when a source changed
since the last set-up. Checked on a copy of the launcher in a fake checkout whose bin/setup and
.venv/bin/rstwatch only leave a mark, so what runs is the launcher's own decision."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from conftest import ROOT

COMPILED = ["hotloops", "track/walkloop", "report/jsonfill", "rowtexts", "live/afring"]


def _fake_checkout(tmp: Path) -> Path:
    (tmp / "bin").mkdir()
    shutil.copy2(ROOT / "bin" / "rstwatch", tmp / "bin" / "rstwatch")
    setup = tmp / "bin" / "setup"
    setup.write_text('#!/usr/bin/env bash\necho ran >> "$(dirname "$0")/../setup-runs"\n')
    setup.chmod(0o755)
    venv_bin = tmp / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "rstwatch").write_text('#!/usr/bin/env bash\necho "rstwatch $*"\n')
    (venv_bin / "rstwatch").chmod(0o755)
    for m in COMPILED:
        so = tmp / "rstwatch" / f"{m}.cpython-311-x86_64-linux-gnu.so"
        so.parent.mkdir(parents=True, exist_ok=True)
        so.write_bytes(b"")
    (tmp / "rstwatch" / "cli.py").write_text("# source\n")
    (tmp / "pyproject.toml").write_text("[project]\n")
    (tmp / "setup.py").write_text("\n")
    return tmp


def _setup_runs(tmp: Path) -> int:
    marks = tmp / "setup-runs"
    return len(marks.read_text().splitlines()) if marks.exists() else 0


def _launch(tmp: Path) -> str:
    done = subprocess.run([str(tmp / "bin" / "rstwatch"), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_setup_runs_once_then_again_for_a_new_or_copied_source(tmp_path):
    tmp = _fake_checkout(tmp_path)
    assert _launch(tmp) == "rstwatch --version\n"
    assert _setup_runs(tmp) == 1                      # first use: set up
    _launch(tmp)
    assert _setup_runs(tmp) == 1                      # nothing changed: straight to the program
    time.sleep(1.1)                                   # past the ready mark's time, at any clock resolution
    (tmp / "rstwatch" / "cli.py").write_text("# edited\n")
    _launch(tmp)
    assert _setup_runs(tmp) == 2                      # an edited source
    # a source copied in with its old modification time (cp -p, tar -x): still new to the launcher
    old = tmp_path.parent / f"{tmp_path.name}-old.py"
    old.write_text("# from elsewhere\n")
    os.utime(old, (time.time() - 86_400, time.time() - 86_400))
    time.sleep(1.1)
    subprocess.run(["cp", "-p", str(old), str(tmp / "rstwatch" / "copied.py")], check=True)
    assert (tmp / "rstwatch" / "copied.py").stat().st_mtime < time.time() - 3600
    _launch(tmp)
    assert _setup_runs(tmp) == 3
    _launch(tmp)
    assert _setup_runs(tmp) == 3


def test_a_missing_compiled_module_sets_up_again(tmp_path):
    tmp = _fake_checkout(tmp_path)
    _launch(tmp)
    (tmp / "rstwatch" / "track" / "walkloop.cpython-311-x86_64-linux-gnu.so").unlink()
    _launch(tmp)
    assert _setup_runs(tmp) == 2


def _makes_venvs(python: str) -> bool:
    return subprocess.run([python, "-c", "import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))"],
                          capture_output=True).returncode == 0


def test_the_checkouts_venv_runs_on_the_distributions_python():
    """bin/setup makes .venv from /usr/bin/python3 (Debian's is built with PGO and LTO: 3-14% less
    CPU per command than pyenv's default build, docs/performance.md) unless PYTHON names another."""
    venv = ROOT / ".venv" / "bin" / "python"
    base = subprocess.run([str(venv), "-c", "import sys; print(sys._base_executable)"], capture_output=True,
                          text=True, check=True).stdout.strip()
    chosen = os.environ.get("PYTHON") or ("/usr/bin/python3" if Path("/usr/bin/python3").exists()
                                          and _makes_venvs("/usr/bin/python3") else shutil.which("python3"))
    chosen = subprocess.run([chosen, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                            check=True).stdout.strip()        # through a shim (pyenv) to the interpreter
    assert os.path.realpath(base) == os.path.realpath(chosen)
