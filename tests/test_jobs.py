"""`read --jobs N` (rstwatch/workers.py): files grouped for the workers, Ctrl-C and dead workers.
What the workers send back, pieces bounded in memory, is checked in tests/test_hostile.py
(test_jobs_workers_spill_each_into_their_own_files), the reader's imports in test_startup.py.

Before, each worker sent a file's findings back as one DataFrame: the reader held every finding
of every file at once (a 1,000,000-reset file and a 300,000-reset one: 2.5 GB in the reader,
against 415 MB with --jobs 1), and a Ctrl-C made a waiting worker print a traceback while the
reader waited for the files being read (forever for a pipe that sends nothing more)."""
from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CAPTURES, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import hostile  # noqa: E402

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def test_a_file_without_findings_read_by_a_worker(tmp_path: Path):
    """The table of no finding is made by the reader for files that come back with none."""
    from rstwatch.analyze import all_findings
    from rstwatch.engine.loader import builtin_rules_dir, load_rules
    from rstwatch.run import analyze_paths
    rules = load_rules([builtin_rules_dir()])
    calm = [CAPTURES / "normal-close.pcap", *sorted((CAPTURES / "real").glob("control-*.pcap"))[:1]]
    results, errors = analyze_paths(calm, rules, jobs=2)
    assert not errors and len(results) == 2 and all(r.no_findings for r in results)
    found = all_findings(results)
    assert len(found) == 0 and {"cause", "rule", "community_id"} <= set(found.columns)


def _reader(files: list[Path], tmp: Path, *more: str) -> subprocess.Popen:
    """`read --jobs 2 FILES` in its own process group, Ctrl-C handled as in a terminal, its
    temporary files in `tmp`."""
    tmp.mkdir()
    return subprocess.Popen([sys.executable, "-m", "rstwatch", "read", "--jobs", "2", *map(str, files), "--format", "jsonl",
                             *more], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            env=dict(os.environ, TMPDIR=str(tmp)))


def _open_when_read(fifo: Path, proc: subprocess.Popen) -> int:
    """The writing end of `fifo`, once a worker has opened it to read."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _reading(parent: int, fifo: Path) -> int:
    """The worker of `parent` that has `fifo` open (its open() returns just after ours)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for worker in map(int, Path(f"/proc/{parent}/task/{parent}/children").read_text().split()):
            try:
                if any(os.readlink(f"/proc/{worker}/fd/{fd}") == str(fifo) for fd in os.listdir(f"/proc/{worker}/fd")):
                    return worker
            except OSError:                 # a descriptor closed while we looked
                continue
        time.sleep(0.05)
    raise AssertionError(f"no worker of {parent} has {fifo} open")


@pytest.mark.parametrize("to_whom", ["group", "reader"])
def test_ctrl_c_ends_busy_workers_at_once(tmp_path: Path, to_whom: str):
    """One worker blocked reading a pipe that sends nothing after its header, the other done with
    its file and waiting for work: Ctrl-C to the process group (a terminal's: the waiting worker
    printed a traceback) or to the reader alone (kill -INT: it waited for the pipe, forever) must
    end the run at once with its one line and exit 130, and leave no worker reading the pipe."""
    fifo, other = tmp_path / "a.pcap", tmp_path / "b.pcap"
    os.mkfifo(fifo)
    hostile.rst_trickle(other, 16_000)      # over a megabyte: a group of its own (run._groups)
    assert other.stat().st_size > 1 << 20
    proc = _reader([fifo, other], tmp_path / "tmp")
    end = None
    try:
        end = _open_when_read(fifo, proc)
        os.write(end, PCAP_HEADER)
        time.sleep(2.5)                     # one worker waits in read(), the other for a file
        started = time.monotonic()
        if to_whom == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and err == "rstwatch: interrupted\n" and out == "", (proc.returncode, err)
    assert took < 10, took
    with pytest.raises(BrokenPipeError):       # no worker left reading it
        os.write(end, b"\0" * 16)
    os.close(end)
    assert not list((tmp_path / "tmp").iterdir())          # the spill folder went too


def test_a_worker_killed_is_one_line_and_the_output_is_kept(tmp_path: Path):
    """A worker killed from outside (the OOM killer's SIGKILL) while it reads: one line saying
    so, exit 2, the output file as it was. It was an internal error (exit 70) naming
    concurrent.futures' BrokenProcessPool."""
    fifo, out = tmp_path / "a.pcap", tmp_path / "kept.jsonl"
    os.mkfifo(fifo)
    out.write_text("precious\n")
    proc = _reader([fifo, CAPTURES / "closed-port.pcap"], tmp_path / "tmp", "-o", str(out), "--force")
    end = None
    try:
        end = _open_when_read(fifo, proc)
        os.write(end, PCAP_HEADER)
        reading = _reading(proc.pid, fifo)
        os.kill(reading, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if end is not None:
            os.close(end)
    assert proc.returncode == 2, (proc.returncode, err)
    assert err.startswith("rstwatch: error: --jobs: a worker process was killed") and err.count("\n") == 1, err
    assert out.read_text() == "precious\n"


def test_small_files_go_to_a_worker_together_in_input_order(tmp_path: Path):
    """Small files are sent in groups of neighbours (classified together there, as --jobs 1
    classifies a folder); a file past the group's share of the bytes goes alone."""
    from rstwatch.run import GROUP_BYTES, _groups
    small = [tmp_path / f"s{k:02d}.pcap" for k in range(40)]
    for path in small:
        path.write_bytes((CAPTURES / "closed-port.pcap").read_bytes())
    big = tmp_path / "big.pcap"
    big.write_bytes(b"\0" * (GROUP_BYTES[0] + 1))
    work = [(p, None, False, 0, None) for p in [*small[:20], big, *small[20:]]]
    groups = _groups(work, 2)
    assert [w for g in groups for w in g] == work                # every file once, in order
    assert [len(g) for g in groups] == [20, 1, 20]


def test_an_error_raised_in_a_worker_is_its_own(tmp_path: Path):
    """Under --debug a file's error is raised in its worker and sent to the reader: it must come
    back as itself (RstwatchError took two arguments where unpickling gave one, the pool broke
    and the reader said a worker was killed)."""
    from rstwatch.errors import CaptureError, RuleError
    import pickle
    for error in (CaptureError("x.pcap", "not a pcap"), RuleError(["r.yaml:3: unknown feature", "r.yaml:9: bad"])):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error) and again.where == error.where
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all\n" * 4)
    res = subprocess.run([sys.executable, "-m", "rstwatch", "read", str(CAPTURES / "closed-port.pcap"), str(garbage),
                          str(CAPTURES / "rst-storm.pcap"), "--jobs", "2", "--debug", "--format", "jsonl"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "worker process was killed" not in res.stderr
    assert f"CaptureError: {garbage}: not a pcap or pcapng file" in res.stderr.splitlines()[-1], res.stderr[-500:]


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_standard_input_among_files_is_read_by_the_reader(name: str):
    """A worker's sys.stdin is /dev/null: `-` among other files is read by the reader while the
    workers read the rest (before, `-: empty file` and exit 1). /dev/stdin, opened by its name,
    reads the pipe the worker inherited."""
    files = [str(CAPTURES / "data-after-close.pcap"), name, str(CAPTURES / "linger-zero-abort.pcap"),
             str(CAPTURES / "rst-storm.pcap")]
    piped = (CAPTURES / "closed-port.pcap").read_bytes()
    runs = [subprocess.run([sys.executable, "-m", "rstwatch", "read", *files, "--jobs", jobs, "--format", "jsonl"],
                           input=piped, capture_output=True, timeout=120) for jobs in ("2", "1")]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr.decode()[-300:]
    lines = runs[0].stdout.decode().splitlines()
    assert [line.split('"cause":"')[1].split('"')[0] for line in lines] == [
        "data-after-close", "closed-port", "linger-zero-abort", "rst-storm"]
    assert f'"file":"{name}"' in lines[1] and runs[0].stdout == runs[1].stdout
