"""`read --scheduler` (#23 item 3): a real Dask scheduler and two workers, each its own process
started with the `dask scheduler` / `dask worker` commands on 127.0.0.1, give the findings of
`--jobs 1` byte for byte: from paths, from file:// URLs, with a worker SIGKILLed while it reads,
and with findings spilled on a worker's disk. An unreachable scheduler, or no Dask installed,
is one line and exit 2. The Kubernetes manifest for it is schema-checked."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import CAPTURES, ROOT, run_cli

# bin/setup installs the cluster extra: a missing Dask is an install bug, not a reason to skip
import distributed  # noqa: E402,F401
DASK = Path(sys.executable).parent / "dask"
RSTWATCH = shutil.which("rstwatch", path=str(Path(sys.executable).parent)) or "rstwatch"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A scheduler and two single-threaded workers, separate processes; the workers' temporary
    folder is `tmp` (where a task's spilled findings go)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, []
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = dict(os.environ, TMPDIR=str(tmp))
        # each in its own process group, so that close() can end a nanny and its worker together
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp, start_new_session=True)
        self.procs.append(subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                            "--no-dashboard"], **quiet))
        for i in range(2):
            self.procs.append(subprocess.Popen([str(DASK), "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                                                "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}",
                                                "--local-directory", str(tmp / f"w{i}")], **quiet))
        self.client = distributed.Client(self.address, timeout=30)
        self.client.wait_for_workers(2, timeout=60)

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of the worker process (the nanny's child, which does the work)."""
        return self.client.run(os.getpid)

    def close(self) -> None:
        try:
            self.client.shutdown()          # the scheduler and the workers stop at once
        except Exception:                   # noqa: BLE001 (gone already: the processes are ended below)
            pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        # A nanny whose worker was killed and restarted (test below) takes 8 s to end on SIGTERM:
        # what is still there after a second is killed with its children.
        for p in reversed(self.procs):
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("dask"))
    yield lab
    lab.close()


def _read(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RSTWATCH, "read", *args, "--format", "jsonl"], capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def resets_folder(tmp_path_factory) -> Path:
    """6 captures where every connection ends in a reset, 6,000 resets each (~0.7 s each to read)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from side_by_side import write_resets
    folder = tmp_path_factory.mktemp("resets")
    write_resets(folder / "r00.pcap", 6000)
    for i in range(1, 6):
        shutil.copyfile(folder / "r00.pcap", folder / f"r{i:02d}.pcap")
    return folder


def test_same_bytes_as_jobs_1_and_a_bad_file_is_one_line(lab, tmp_path):
    missing = str(tmp_path / "gone.pcap")
    inputs = [*sorted(map(str, CAPTURES.glob("*.pcap*"))), missing]     # the labelled captures, ~20 files
    local = _read(*inputs, "--jobs", "1")
    dask = _read(*inputs, "--scheduler", lab.address)
    assert local.returncode == dask.returncode == 1, dask.stderr
    assert dask.stdout == local.stdout and len(local.stdout.splitlines()) > 15
    errors = [line for line in dask.stderr.decode().splitlines() if line.startswith("rstwatch: error:")]
    assert errors == [f"rstwatch: error: {missing}: no such file"], dask.stderr
    assert b"Traceback" not in dask.stderr


def test_urls_read_by_the_workers(lab, tmp_path):
    names = sorted(p for p in CAPTURES.glob("*.pcap*"))[:4]
    local = _read(*map(str, names))
    # file:// (opened in place) and a zip member (an fsspec filesystem that is not local: copied to
    # the worker's folder, read, removed); a member that is not there is one line, the rest is read
    with zipfile.ZipFile(tmp_path / "caps.zip", "w") as z:
        z.write(names[3], names[3].name)
    urls = [p.resolve().as_uri() for p in names[:3]] + [f"zip://{names[3].name}::{(tmp_path / 'caps.zip').as_uri()}"]
    gone = f"zip://gone.pcap::{(tmp_path / 'caps.zip').as_uri()}"
    dask = _read(*urls, gone, "--scheduler", lab.address)
    assert local.returncode == 0 and dask.returncode == 1, dask.stderr
    assert dask.stderr.decode().splitlines() == [f"rstwatch: error: {gone}: no such file"]
    rows = [json.loads(x) for x in dask.stdout.splitlines()]
    assert {r["file"] for r in rows} == set(urls)             # each finding names the URL it came from
    for r in rows:
        r["file"] = str(names[urls.index(r["file"])])
    assert rows == [json.loads(x) for x in local.stdout.splitlines()]
    assert not list(lab.tmp.rglob("rstwatch-url-*"))        # the copy is gone


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(lab, resets_folder):
    local = _read(str(resets_folder))
    assert local.returncode == 0 and len(local.stdout.splitlines()) > 6 * 5000
    pids = lab.worker_pids()
    run = subprocess.Popen([RSTWATCH, "read", str(resets_folder), "--format", "jsonl", "--scheduler", lab.address],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and run.poll() is None:
        busy = {w: keys for w, keys in lab.client.processing().items() if any("_task" in str(k) for k in keys)}
        done = lab.client.run_on_scheduler(lambda dask_scheduler: sum(
            1 for k, ts in dask_scheduler.tasks.items() if "_task" in str(k) and ts.state == "memory"))
        if busy and done >= 1:              # the second file or later, being read on this worker right now
            victim = sorted(busy)[0]
            os.kill(pids[victim], signal.SIGKILL)
        time.sleep(0.05)
    out, err = run.communicate(timeout=120)
    assert victim is not None, "the run ended before a worker could be killed"
    assert run.returncode == 0 and b"Traceback" not in err, err
    assert out == local.stdout, "findings lost or duplicated after the worker died"
    # the nanny starts a new worker (which removes the dead one's folder): later tests have two
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = lab.client.scheduler_info()["workers"]
        if len(workers) == 2 and victim not in workers:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no second worker after the kill: {sorted(workers)}")


def test_findings_spilled_on_a_worker_come_back_whole(lab, resets_folder, tmp_path):
    # Parquet keeps every column and spills past 5,000 findings: each 6,000-reset file spills on its worker
    files = [str(resets_folder / "r00.pcap"), str(resets_folder / "r01.pcap")]
    a, b = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    assert run_cli("read", *files, "-T", "parquet", "-o", str(a)).returncode == 0
    res = run_cli("read", *files, "-T", "parquet", "-o", str(b), "--scheduler", lab.address)
    assert res.returncode == 0, res.stderr
    import pandas as pd
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    assert len(pd.read_parquet(b)) > 2 * 5000
    left = list(lab.tmp.rglob("rstwatch-*"))       # each task's folder is removed when it ends
    assert not left, f"spill folders left on the workers' disk: {left}"


def test_unreachable_scheduler_is_one_line_and_exit_2(tmp_path):
    # accepts connections and never answers (a wrong port, a stuck proxy): Dask's Client alone waits
    # for ever there; a refused port is the easy case (Dask's own connect timeout)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    try:
        res = subprocess.run([RSTWATCH, "read", str(CAPTURES / "closed-port.pcap"), "--scheduler", address],
                             capture_output=True, text=True, timeout=60)
    finally:
        silent.close()
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.splitlines() == [f"rstwatch: error: {address}: cannot reach the Dask scheduler: "
                                       f"no answer within 5 s"]


def test_without_dask_installed_scheduler_is_one_line_and_exit_2():
    probe = ("import sys\n"
             "sys.modules['distributed'] = None      # as if dask were not installed\n"
             f"sys.argv = ['rstwatch', 'read', {str(CAPTURES / 'closed-port.pcap')!r}, '--scheduler', 'local']\n"
             "from rstwatch.entry import main\n"
             "main()\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines() == ["rstwatch: error: --scheduler: needs dask.distributed, which is not "
                                       "installed here (pip install 'rstwatch[cluster]')"]


def test_kubernetes_manifest_validates():
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "dask.yaml").read_text()) if d]
    for version in ("1.30.0", kv.latest_version()):
        for doc in docs:
            kv.validate(doc, version, strict=True)
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Deployment") == 2 and "Service" in kinds
    workers = [d for d in docs if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]][0]
    args = workers["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["worker", "tcp://rstwatch-dask-scheduler:8786"] and "--nthreads" in args


def test_report_on_dask_is_the_local_report(lab, tmp_path):
    files = [str(CAPTURES / "closed-port.pcap"), str(CAPTURES / "listener-closed.pcap")]
    pages = []
    for name, extra in (("local", []), ("dask", ["--scheduler", lab.address])):
        res = run_cli("report", *files, "-T", "md", "-o", str(tmp_path / f"{name}.md"), *extra)
        assert res.returncode == 0, res.stderr
        text = (tmp_path / f"{name}.md").read_text().replace(f"{name}_files/", "FILES/")
        pages.append([line for line in text.splitlines()        # when it was made, the command line
                      if " · generated " not in line and "; command: `rstwatch report" not in line])
    assert pages[0] == pages[1] and any("listener-closed" in line for line in pages[1])


def test_extract_from_urls_is_the_local_extraction(lab, tmp_path):
    """--extract with inputs read on Dask by URL: the client takes each finding's packets from the
    URL it was read from (file:// in place, a zip member copied and removed), the same evidence
    files, byte for byte, as extracting from the paths."""
    names = sorted(p for p in CAPTURES.glob("*.pcap"))[:3]
    with zipfile.ZipFile(tmp_path / "caps.zip", "w") as z:
        z.write(names[2], names[2].name)
    urls = [p.resolve().as_uri() for p in names[:2]] + [f"zip://{names[2].name}::{(tmp_path / 'caps.zip').as_uri()}"]
    local = _read(*map(str, names), "--extract", str(tmp_path / "local"))
    dask = _read(*urls, "--scheduler", lab.address, "--extract", str(tmp_path / "dask"))
    assert local.returncode == dask.returncode == 0, dask.stderr
    assert b"not extracted" not in dask.stderr, dask.stderr
    got = sorted(p.name for p in (tmp_path / "dask").iterdir())
    assert got == sorted(p.name for p in (tmp_path / "local").iterdir()) and len(got) >= 3
    fields = ["-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw",
              "-e", "tcp.flags", "-e", "frame.comment"]
    for name in got:        # the same packets, the same comments (frame numbers and the capture's name)
        a, b = (subprocess.run(["tshark", "-r", str(tmp_path / side / name), *fields], capture_output=True,
                               text=True, check=True).stdout.splitlines() for side in ("local", "dask"))
        assert a == b and a, name
    assert not list(tmp_path.rglob("rstwatch-url-*"))
