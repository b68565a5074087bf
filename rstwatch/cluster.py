"""`read`/`report --scheduler`: the per-file work of `--jobs` (run._analyze_one, the same code) as
Dask tasks, on a running dask.distributed scheduler or, with `--scheduler local`, a LocalCluster.

Files are submitted and gathered in input order, and a task's result is the file's FileResult, so
the merge and the writers are today's and the findings are those of `--jobs 1`, byte for byte. A
task retried after its worker died replaces the lost result (one result per file, never two).
What comes back is self-contained: a task's findings are read back from its own spill folder on
the worker (unique per task, removed when it ends) before they leave it, since the client cannot
read a worker's disk. Dask is optional (`pip install 'rstwatch[cluster]'`) and imported only here,
only when `--scheduler` is given. docs/deploy.md says how to run it."""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from .errors import RstwatchError

LOCAL = "local"                 # --scheduler local: a LocalCluster on this machine
CONNECT_TIMEOUT_S = 5           # an unreachable scheduler: one line after this long, not a hang
# `s3://b/k` given as a Path reads `s3:/b/k`: a scheme of two letters or more (not a drive letter)
URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):/+(.*)", re.S)

_current: list["Cluster"] = []


@contextmanager
def using(address: str, workers: int = 0) -> Iterator["Cluster"]:
    """Within this block, run.analyze_paths sends each file to `address` (connected at first use).
    `workers`: a LocalCluster's worker processes (0: one per core)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise RstwatchError("--scheduler", "needs dask.distributed, which is not installed here "
                            "(pip install 'rstwatch[cluster]')") from None
    cluster = Cluster(address, workers)
    _current[:] = [cluster]
    try:
        yield cluster
    finally:
        _current.clear()
        cluster.close()


def current() -> "Cluster | None":
    return _current[0] if _current else None


class Cluster:
    def __init__(self, address: str, workers: int = 0) -> None:
        self.address, self.workers = address, workers
        self._client = self._local = None

    def client(self):
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self):
        from distributed import Client, LocalCluster
        if self.address == LOCAL:
            # worker processes, one thread each: a task's spill plan and verdict batch are per process
            self._local = LocalCluster(n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1,
                                       processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
            return Client(self._local)
        # Client's own timeout does not cover a peer that accepts and never answers (a wrong port,
        # a proxy): it waits for ever. So it connects in a thread given a deadline of our own.
        box: list = []

        def connect() -> None:
            try:
                box.append(Client(self.address, timeout=CONNECT_TIMEOUT_S))
            except BaseException as exc:        # noqa: BLE001 (told in the caller's thread)
                box.append(exc)
        attempt = threading.Thread(target=connect, name="rstwatch-dask-connect", daemon=True)
        attempt.start()
        attempt.join(CONNECT_TIMEOUT_S + 1)
        if not box:
            raise RstwatchError(self.address, f"cannot reach the Dask scheduler: no answer within "
                                              f"{CONNECT_TIMEOUT_S} s")
        if isinstance(box[0], (OSError, ValueError, TypeError)):    # refused, timed out, not an address
            raise RstwatchError(self.address, f"cannot reach the Dask scheduler: {box[0]}")
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def close(self) -> None:
        for part in (self._client, self._local):
            if part is not None:
                try:
                    part.close()
                except Exception:       # noqa: BLE001 (a scheduler gone already: nothing left to close)
                    pass
        self._client = self._local = None

    def map_files(self, files: list[Path], rules, debug: bool, storm_min: int, keep) -> list:
        """One outcome per file in input order: a FileResult, or the line saying why it was not read."""
        from distributed import KilledWorker
        client = self.client()
        items = [_source(f) for f in files]
        [shared_rules] = client.scatter([rules], broadcast=True, hash=False)   # once per worker, not per task
        futures = client.map(_task, items, rules=shared_rules, debug=debug, storm_min=storm_min, keep=keep,
                             plan=_plan_here(), pure=False)
        out = []
        try:
            for fut, (_, label) in zip(futures, items):        # input order, whatever order they finish in
                try:
                    out.append(fut.result())
                except KilledWorker:        # the workers running it died again and again (memory?)
                    out.append(f"{label}: the Dask workers reading it died (allowed_failures reached)")
                fut.release()               # its result is here now: the worker may let it go
        except OSError as exc:              # the scheduler went away mid-run
            raise RstwatchError(self.address, f"lost the Dask scheduler: {exc}") from None
        return out


def _source(path: Path) -> tuple[str, str]:
    """(what a worker opens, the file's name in the findings). A local path as given on the command
    line is the name (as `--jobs 1` says it) and opened absolute (a worker's working folder is its
    own); anything naming an fsspec protocol that is not a local file is a URL a worker opens."""
    text = str(path)
    if text == "-":
        raise RstwatchError("-", "standard input cannot be read by Dask workers: give files or URLs")
    if URL.fullmatch(text) and not path.exists():
        url = "::".join(map(_slashes, text.split("::")))     # chained: zip://a.pcap::s3://b/a.zip
        return url, url
    return os.path.abspath(path), text


def _slashes(part: str) -> str:
    """`s3:/b/k` (a Path's spelling) -> `s3://b/k`; `file:/x` -> `file:///x`."""
    m = URL.fullmatch(part)
    if not m:
        return part
    scheme, rest = m.groups()
    return f"{scheme}:///{rest}" if scheme == "file" else f"{scheme}://{rest}"


def _plan_here() -> tuple | None:
    """The client's spill plan (columns, lean), so a worker keeps the columns the output needs."""
    from . import spill
    if not spill._plan:
        return None
    plan = spill._plan[0]
    return (None if plan.columns is None else sorted(plan.columns), plan.after < spill.SPILL_AFTER)


# A worker started with --nthreads > 1 would run tasks side by side in one process, where the
# spill plan and the verdict batch are process-wide: one file at a time per worker process.
_one_at_a_time = threading.Lock()


def _task(item: tuple[str, str], rules, debug: bool, storm_min: int, keep, plan: tuple | None):
    """On a worker: today's per-file work on the file, and its findings as one table."""
    from . import spill
    from .analyze import FileResult
    from .run import _analyze_one
    source, label = item
    with _one_at_a_time, _in_scratch(), _opened(source, label, debug) as (path, problem):
        if problem is not None:
            return problem
        with spill.spilling(*plan) if plan is not None else nullcontext():   # a folder of this task's own
            out = _analyze_one((path, rules, debug, storm_min, keep, label))
            if isinstance(out, str):        # the worker's name for it -> the user's
                return out.replace(str(path), label, 1)
            return FileResult(out.path, out.diag, findings=out.findings)   # spilled tables read back here


@contextmanager
def _in_scratch() -> Iterator[None]:
    """Temporary files (spilled findings, copies of URLs) in this worker's own folder: when a worker
    is killed, the next worker started on that host removes its folder (Dask's workspace), so a
    retried task leaves nothing behind; two workers on one host never share one."""
    try:
        from distributed import get_worker
        folder = get_worker().local_directory
    except ValueError:                  # not on a worker (called directly): the usual folder
        yield
        return
    before, tempfile.tempdir = tempfile.tempdir, folder
    try:
        yield
    finally:
        tempfile.tempdir = before


@contextmanager
def _opened(source: str, label: str, debug: bool) -> Iterator[tuple[Path | None, str | None]]:
    """A local path for `source`: itself, the file a file:// URL names, or a private copy of a
    remote URL (its name kept: .gz and .pcapng are told by it too) removed afterwards."""
    if not URL.fullmatch(source) or os.path.exists(source):
        yield Path(source), None
        return
    import fsspec
    try:
        fs, where = fsspec.core.url_to_fs(source)
    except (ImportError, ValueError) as exc:        # s3:// without s3fs, an unknown protocol
        if debug:
            raise
        yield None, f"{label}: cannot open this URL here ({exc})"
        return
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        yield Path(where), None
        return
    folder = tempfile.mkdtemp(prefix="rstwatch-url-")
    try:
        local = Path(folder) / (Path(where).name or "capture")
        try:
            fs.get_file(where, str(local))
        except (OSError, ValueError) as exc:
            if debug:
                raise
            why = "no such file" if isinstance(exc, FileNotFoundError) else (getattr(exc, "strerror", None) or exc)
            yield None, f"{label}: {why}"
            return
        yield local, None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
