"""Issue 11, "never write where the user did not mean" and "never lose what was seen": outputs that
are devices, FIFOs, symlinks or inputs; evidence files behind symlinks or on a full disk; SIGHUP;
folders with unreadable entries; exit statuses (a full stdout, a closed pipe) against the README.

Root-only parts (device nodes, a 64 KiB tmpfs, network namespaces, an unprivileged user via setpriv)
run in CI, which runs as root; the namespaces here are called `ha*`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import CAPTURES, ROOT, run_cli

CLOSED = CAPTURES / "closed-port.pcap"           # one RST, one finding
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (device nodes, mounts, namespaces)")


def exe() -> str:
    return shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or shutil.which("rstwatch")


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    if "stdout" not in kw and "stderr" not in kw:
        kw["capture_output"] = True
    return subprocess.run([exe(), *args], text=True, timeout=300, **kw)


def one_error(res: subprocess.CompletedProcess, *words: str) -> str:
    lines = [l for l in res.stderr.strip().splitlines() if not l.startswith("rstwatch: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("rstwatch: error: "), res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ---- 1. read -o: devices and FIFOs are written through, symlinks refused, files get the umask ----

@needs_root
def test_output_to_a_character_device_writes_through_and_never_replaces_it(tmp_path: Path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))      # a private /dev/null: the real one stays safe
    for extra in ([], ["--force"]):
        res = run("read", str(CLOSED), "--format", "jsonl", "-o", str(null), *extra)
        assert res.returncode == 0, res.stderr
        assert stat.S_ISCHR(os.lstat(null).st_mode), "the device node was replaced by a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]     # no temporary file left


def test_output_to_a_fifo_writes_through(tmp_path: Path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    res = run("read", str(CLOSED), "--format", "jsonl", "-o", str(fifo), "--force")
    reader.join(30)
    assert res.returncode == 0, res.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [json.loads(line)["cause"] for line in got[0].splitlines()] == ["closed-port"]


def test_stdout_names_write_to_stdout():
    for name in ("/dev/stdout", "-"):
        res = run("read", str(CLOSED), "--format", "jsonl", "-o", name)
        assert res.returncode == 0, res.stderr
        assert [json.loads(line)["cause"] for line in res.stdout.splitlines()] == ["closed-port"]


def test_symlink_output_is_refused_even_with_force(tmp_path: Path):
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    link, dangling = tmp_path / "out.jsonl", tmp_path / "dangling.jsonl"
    link.symlink_to(target)
    dangling.symlink_to(tmp_path / "nowhere")
    for path in (link, dangling):
        for extra in ([], ["--force"]):
            res = run("read", str(CLOSED), "-o", str(path), *extra)
            assert res.returncode == 2
            one_error(res, str(path), "symbolic link")
            assert path.is_symlink()
    assert target.read_text() == "precious\n" and not (tmp_path / "nowhere").exists()


def test_output_files_get_the_users_umask_and_force_keeps_the_mode(tmp_path: Path):
    new = tmp_path / "new.jsonl"
    res = subprocess.run(f"umask 027; exec {exe()} read {CLOSED} -o {new}", shell=True, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    old = tmp_path / "old.jsonl"
    old.write_text("x\n")
    old.chmod(0o604)
    res = subprocess.run(f"umask 077; exec {exe()} read {CLOSED} -o {old} --force", shell=True, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(old.stat().st_mode) == 0o604 and old.read_text().count("\n") == 1


# ---- 3. the output is never one of the inputs ----

def test_output_that_is_an_input_is_refused_before_any_work(tmp_path: Path):
    cap = tmp_path / "x.pcap"
    shutil.copy(CLOSED, cap)
    (tmp_path / "hard.pcap").hardlink_to(cap)
    before = cap.read_bytes()
    for args in ([str(cap), "-o", str(cap)], [str(tmp_path), "-o", str(tmp_path / "hard.pcap")],
                 [str(tmp_path / "hard.pcap"), "-o", str(cap)]):
        res = run("read", *args, "--force")
        assert res.returncode == 2
        one_error(res, "is one of the inputs")
        assert res.stdout == ""
        assert cap.read_bytes() == before
    with open(cap, "ab") as fh:                               # `rstwatch read x.pcap >> x.pcap`
        res = run("read", str(cap), stdout=fh, stderr=subprocess.PIPE)
    assert res.returncode == 2 and "is one of the inputs" in res.stderr
    assert cap.read_bytes() == before


# ---- 13. folders say what they skipped, and the exit status says something was not read ----

def test_folder_with_a_file_corrupt_at_byte_0_is_partial(tmp_path: Path):
    shutil.copy(CLOSED, tmp_path / "good.pcap")
    (tmp_path / "bad.pcap").write_bytes(b"\x00" * 64)
    (tmp_path / "empty.pcapng").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a capture\n")
    res = run("read", str(tmp_path), "--format", "jsonl")
    assert res.returncode == 1, res.stderr
    assert [json.loads(line)["cause"] for line in res.stdout.splitlines()] == ["closed-port"]
    errors = [l for l in res.stderr.splitlines() if l.startswith("rstwatch: error: ")]
    assert len(errors) == 2
    assert any("bad.pcap: not a pcap or pcapng file" in e for e in errors), errors
    assert any("empty.pcapng: empty file" in e for e in errors), errors
    assert re.search(r"warning: .*: skipped 1 file\(s\) that are not captures: notes\.txt", res.stderr), res.stderr
    # a folder holding nothing readable, next to a good file: partial, not a usage error
    (tmp_path / "void").mkdir()
    res = run("read", str(CLOSED), str(tmp_path / "void"), "--format", "jsonl")
    assert res.returncode == 1 and res.stdout.count("\n") == 1
    one_error(res, "void: directory holds no pcap or pcapng files")


def _as_nobody(*args: str) -> subprocess.CompletedProcess:
    cmd = [exe(), *args]
    if os.geteuid() == 0:       # root reads everything: drop to nobody so permissions count
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd="/")


@pytest.fixture
def open_folder():
    """A folder every user can enter (pytest's tmp_path is root-only)."""
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="rstwatch-ha-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_folder_unreadable_file_and_subfolder_are_named(open_folder: Path):
    d = open_folder / "caps"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    shutil.copy(CLOSED, d / "a.pcap")
    (d / "a.pcap").chmod(0o644)
    shutil.copy(CLOSED, d / "locked.pcap")
    (d / "locked.pcap").chmod(0o000 if os.geteuid() else 0o600)
    (d / "private").mkdir(mode=0o700)
    (d / "private").chmod(0o700)
    shutil.copy(CLOSED, d / "private" / "b.pcap")
    res = _as_nobody("read", str(d), "--format", "jsonl")
    assert res.returncode == 1, res.stderr
    assert res.stdout.count("\n") == 1
    errors = sorted(l for l in res.stderr.splitlines() if l.startswith("rstwatch: error: "))
    assert errors == [f"rstwatch: error: {d}/locked.pcap: permission denied",
                      f"rstwatch: error: {d}/private: permission denied (folder skipped)"], res.stderr
    (d / "a.pcap").chmod(0o600 if os.geteuid() == 0 else 0o000)
    res = _as_nobody("read", str(d), "--format", "jsonl")
    assert res.returncode == 2 and res.stdout == "", res.stderr


# ---- 14. one exit-status table: a full stdout, a closed pipe ----

@pytest.mark.parametrize("page,heading", [("docs/usage.md", "## Exit codes and messages"),
                                          ("docs/safe-io.md", "## Exit statuses")])
def test_documented_exit_tables_match_the_code(page: str, heading: str):
    from rstwatch.exitcodes import ExitStatus
    text = (ROOT / page).read_text()
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)]
    assert documented == sorted(int(s) for s in ExitStatus), (page, documented)


@pytest.mark.parametrize("args", [["read", str(CAPTURES), "--format", "jsonl"], ["read", str(CAPTURES), "--format", "csv"],
                                  ["read", str(CAPTURES), "--format", "table"], ["rules", "list"], ["rules", "features"],
                                  ["version"], ["--version"], ["--help"], ["read", "--help"], ["completion", "bash"]],
                         ids=["jsonl", "csv", "table", "rules-list", "rules-features", "version", "--version", "--help",
                              "read-help", "completion"])
def test_full_stdout_is_one_line_not_an_internal_error(args: list[str]):
    with open("/dev/full", "w") as full:
        res = run(*args, stdout=full, stderr=subprocess.PIPE)
    assert res.returncode == 2, res.stderr
    errors = [l for l in res.stderr.splitlines() if not l.startswith("rstwatch: warning: ")]   # a folder's skipped files
    assert errors == ["rstwatch: error: stdout: No space left on device; the output is incomplete"], res.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "table"])
def test_closed_pipe_exits_0(fmt: str):
    proc = subprocess.Popen([exe(), "read", str(CAPTURES), "--format", fmt], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()                        # `| head -0`: the reader is gone before the first write
    err = proc.stderr.read()
    assert proc.wait(120) == 0, err
    assert "error" not in err and "Traceback" not in err, err


@needs_root
def test_output_file_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path):
    with tmpfs(tmp_path / "small") as disk:
        (disk / "filler").write_bytes(b"\0" * (60 * 1024))
        out = disk / "out.jsonl"
        res = run("read", str(CAPTURES), "--format", "jsonl", "-o", str(out))
        assert res.returncode == 2
        one_error(res, str(out), "No space left on device", "nothing was written")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


class tmpfs:
    """A tiny tmpfs mounted for the test: a disk that really fills up."""

    def __init__(self, where: Path, size: str = "64k") -> None:
        self.where, self.size = where, size

    def __enter__(self) -> Path:
        self.where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.where)], check=True)
        return self.where

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.where)], check=False)


# ---- 2, 9, 10. live: evidence files, SIGHUP, a full disk ----

from test_live import Session, namespace, ns_pids, refuse     # noqa: E402  (the live tests' session driver)

NS = "ha-io"


@pytest.fixture
def ha_ns():
    with namespace(NS) as ns:
        yield ns


@needs_root
def test_live_write_refuses_a_symlink_even_with_force(ha_ns, tmp_path: Path):
    target = tmp_path / "precious"
    target.write_bytes(b"precious")
    ev = tmp_path / "ev.pcapng"
    ev.symlink_to(target)
    ring = tmp_path / "rg_00002.pcapng"
    ring.symlink_to(target)
    for args in (["--write", str(ev)], ["--write", str(ev), "--force"],
                 ["--write", str(tmp_path / "rg.pcapng"), "--ring-files", "3", "--force"]):
        s = Session(ha_ns, "lo", *args)
        assert s.finish(30) == 2, s.err
        assert len(s.err) == 1 and "symbolic link" in s.err[0], s.err
    assert target.read_bytes() == b"precious" and ev.is_symlink() and ring.is_symlink()


def test_evidence_never_follows_a_symlink_planted_during_the_session(tmp_path: Path):
    """The ring's next file is opened with O_EXCL|O_NOFOLLOW: a link planted after the start check
    stops the evidence with one warning; its target is untouched and the session goes on."""
    from rstwatch.live.evidence import Evidence
    data = (CAPTURES / "out-of-window-rst.pcapng").read_bytes()
    target = tmp_path / "precious"
    target.write_bytes(b"precious")
    warnings: list[str] = []
    ev = Evidence(tmp_path / "ev.pcapng", force=True, ring_files=3, ring_mb=len(data) / 2**20 / 2, warn=warnings.append)
    ev.write(b"", data)                                   # ev_00001 gets the stream
    (tmp_path / "ev_00002.pcapng").symlink_to(target)     # planted after the start check
    ev.write(data[:28], data)                             # rotation: must not follow the link
    ev.write(data[:28], data)
    ev.close()
    assert target.read_bytes() == b"precious"
    assert len(warnings) == 1 and "ev_00002.pcapng: is a symbolic link" in warnings[0], warnings
    assert (tmp_path / "ev_00001.pcapng").read_bytes() == data
    res = run_cli("read", str(tmp_path / "ev_00001.pcapng"), "--format", "jsonl")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2, res.stderr


@needs_root
def test_sighup_ends_live_like_sigterm(ha_ns):
    s = Session(ha_ns, "lo", "--format", "jsonl")
    s.wait_watching()
    refuse(ha_ns, 3)
    time.sleep(0.5)                            # read, not yet decided: the pending verdicts must still come out
    s.proc.send_signal(signal.SIGHUP)
    rc = s.finish()
    assert rc == 0, "".join(s.err)
    assert [r["cause"] for r in s.records()] == ["closed-port"] * 3
    assert any("3 resets: closed-port 3" in line for line in s.err), s.err
    assert ns_pids(ha_ns) == [], "dumpcap outlived rstwatch"


@needs_root
def test_hung_up_terminal_keeps_the_evidence_and_exits_cleanly(ha_ns, tmp_path: Path):
    """A dropped SSH session: the terminal hangs up (SIGHUP, then EIO on every write to it)."""
    import pty
    master, slave = pty.openpty()
    ev, log = tmp_path / "ev.pcapng", tmp_path / "stderr.txt"

    def own_terminal() -> None:        # the pty becomes the session's controlling terminal
        os.setsid()
        import fcntl
        import termios
        fcntl.ioctl(1, termios.TIOCSCTTY, 0)

    with open(log, "w") as err:
        proc = subprocess.Popen(["ip", "netns", "exec", ha_ns, sys.executable, "-m", "rstwatch", "live", "lo",
                                 "--format", "jsonl", "--write", str(ev)],
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=err, cwd=ROOT, preexec_fn=own_terminal)
    os.close(slave)
    deadline = time.monotonic() + 30
    while "watching" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    refuse(ha_ns, 4)
    time.sleep(1.5)
    os.close(master)                           # hang up
    rc = proc.wait(15)
    text = log.read_text()
    assert rc == 0, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert ns_pids(ha_ns) == []
    res = run_cli("read", str(ev), "--format", "jsonl")
    assert res.returncode == 0 and "truncated" not in res.stderr, res.stderr
    assert [json.loads(l)["cause"] for l in res.stdout.splitlines()] == ["closed-port"] * 4


@needs_root
def test_full_disk_under_write_warns_once_and_keeps_reporting(ha_ns, tmp_path: Path):
    with tmpfs(tmp_path / "small") as disk:
        ev = disk / "ev.pcapng"
        s = Session(ha_ns, "lo", "--format", "jsonl", "--write", str(ev), "--storm-min", "0")
        s.wait_watching()
        refuse(ha_ns, 600)                     # ~120 KiB of packets: twice the disk
        time.sleep(2.5)
        s.proc.send_signal(signal.SIGTERM)
        rc = s.finish(30)
        err = "".join(s.err)
        assert rc == 0, err
        warnings = [l for l in s.err if "warning" in l]
        assert len(warnings) == 1 and str(ev) in warnings[0] and "No space left on device" in warnings[0], s.err
        assert "internal error" not in err and "error:" not in err, err
        assert [r["cause"] for r in s.records()] == ["closed-port"] * 600
        assert "600 resets: closed-port 600" in err, err
        assert "writing stopped early" in err, err
        res = run_cli("read", str(ev), "--format", "jsonl", "--storm-min", "0")    # cut at a whole block
        assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
        kept = len(res.stdout.splitlines())
        assert 0 < kept < 600, kept


# ---- issue 20 item 6 and 9: side files (evidence, a report's folder) never through planted links ----

def test_extract_never_writes_through_a_link_planted_in_its_folder(tmp_path: Path):
    """A shared folder: someone plants links at the names rstwatch's temporary files had
    (`.NAME.part`) and at the evidence file itself; a mode-600 file they point at stays as it was."""
    secret = tmp_path / "secret"
    secret.write_text("keep me\n")
    secret.chmod(0o600)
    folder = tmp_path / "evidence"
    folder.mkdir()
    name = "closed-port-f2-closed-port.pcapng"
    (folder / f".{name}.part").symlink_to(secret)
    res = run("read", str(CLOSED), "--extract", str(folder), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert secret.read_text() == "keep me\n" and (folder / name).is_file() and not (folder / name).is_symlink()
    assert (folder / name).read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"            # a pcapng, written in place
    (folder / name).unlink()
    (folder / name).symlink_to(secret)                                       # the evidence name itself
    res = run("read", str(CLOSED), "--extract", str(folder), "--format", "jsonl", "--force")
    assert res.returncode == 2
    one_error(res, name, "symbolic link")
    assert secret.read_text() == "keep me\n" and (folder / name).is_symlink()
    assert not [p for p in folder.iterdir() if p.name.endswith(".part") and not p.is_symlink()]


def test_markdown_report_folder_is_never_followed_through_a_link(tmp_path: Path):
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "timeline.svg").write_text("keep me\n")
    out = tmp_path / "r.md"
    (tmp_path / "r_files").symlink_to(secret_dir)                            # the folder itself a link
    for extra in ([], ["--force"]):
        res = run("report", str(CAPTURES / "listener-closed.pcap"), "-o", str(out), *extra)
        assert res.returncode == 2
        one_error(res, "r_files", "symbolic link")
    assert (secret_dir / "timeline.svg").read_text() == "keep me\n" and not out.exists()
    (tmp_path / "r_files").unlink()
    (tmp_path / "r_files").mkdir()
    (tmp_path / "r_files" / "timeline.svg").symlink_to(secret_dir / "timeline.svg")   # a link inside it
    res = run("report", str(CAPTURES / "listener-closed.pcap"), "-o", str(out), "--force")
    assert res.returncode == 2
    one_error(res, "timeline.svg", "symbolic link")
    assert (secret_dir / "timeline.svg").read_text() == "keep me\n"


@needs_root
def test_extract_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path: Path):
    with tmpfs(tmp_path / "small", size="16k") as disk:
        (disk / "filler").write_bytes(b"\0" * (12 * 1024))
        res = run("read", str(CAPTURES / "listener-closed.pcap"), "--extract", str(disk / "ev"), "--format", "jsonl")
        assert res.returncode == 2, res.stderr
        one_error(res, "No space left on device")
        left = [p.name for p in (disk / "ev").iterdir()] if (disk / "ev").exists() else []
        assert not [n for n in left if n.endswith(".part")], left
