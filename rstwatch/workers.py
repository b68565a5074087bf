"""`read --jobs N`: work items run in forked worker processes, their outcomes in input order.

concurrent.futures' process pool does the dispatch; what it leaves to its caller is done here:
- Ctrl-C (which a terminal sends to every process of the group) is the reader's alone: SIGINT is
  blocked while the workers are forked and ignored in them, and the reader ends them at once,
  rather than each printing a traceback (or one forked mid-signal living on) and the reader
  waiting for what they had begun.
- A worker that dies (the OOM killer, kill -9) ends the run with one line, even while it was
  sending its result: the reader keeps no copy of the result pipe's writing end, so a message
  cut short is read as the end of the pipe, not waited for forever (the pool's own thread hung
  there, at the run's end or at the interpreter's exit).
The pool's processes and pipes are its private attributes (as Python 3.11 names them, checked
here); where one is missing, that step is skipped and the pool's own behaviour is what is left."""
from __future__ import annotations

import multiprocessing
import signal
from typing import Any, Callable

from .errors import RstwatchError


def run_in_workers(task: Callable, items: list, workers: int, prepare: Callable | None = None, prepared: tuple = (),
                   meanwhile: Callable[[], Any] | None = None) -> tuple[list, Any]:
    """`task(item)` for each item in `workers` forked processes, the outcomes in input order;
    `prepare(*prepared)` first in each worker. What every item shares goes there, once (a fork
    copies it): the items pass through a pipe the pool fills ahead of the workers, and when
    they were large (~60 KB of rules each) its feeding thread blocked on it, which hung the
    pool's end when a worker died. `meanwhile()` runs in this process while they work (what
    only it can do: a worker's standard input is /dev/null); its outcome comes second."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start, initargs=(prepare, prepared))
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:                                # forked now, all of them: a fork copies a blocked signal
            futures = [pool.submit(task, item) for item in items]
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)    # a Ctrl-C meanwhile is raised here
        _close(getattr(getattr(pool, "_result_queue", None), "_writer", None))
        own = meanwhile() if meanwhile is not None else None
        _wait(futures, list((getattr(pool, "_processes", None) or {}).values()))
        outcomes = [f.result() for f in futures]
    except BrokenProcessPool:
        _end(pool)
        raise RstwatchError("--jobs", f"a worker process was killed while reading (out of memory?); nothing was "
                            f"written: try fewer jobs than {workers}") from None
    except BaseException:
        _end(pool)
        raise
    pool.shutdown()
    return outcomes, own


def _wait(futures: list, processes: list) -> None:
    """Until every future is done, one fails, or a worker is found dead: the pool's thread
    notices a death only between messages, and one that died writing its result leaves it
    reading the rest for as long as another worker lives (BrokenProcessPool raised here)."""
    from concurrent.futures import FIRST_EXCEPTION, wait
    from concurrent.futures.process import BrokenProcessPool
    pending = futures
    while pending:
        done, pending = wait(pending, timeout=WATCH_S, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            return                      # raised by its result(), in input order
        if pending and any(p.exitcode not in (None, 0) for p in processes):
            raise BrokenProcessPool("a worker process died")


# How often the reader looks whether a worker died while it waits for results
WATCH_S = 0.25


def _start(prepare: Callable | None, prepared: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if prepare is not None:
        prepare(*prepared)


def _close(connection) -> None:
    if connection is not None:
        connection.close()


def _end(pool) -> None:
    """Stop `pool`'s workers now, not after the items they are on, and let its thread end (a
    message cut short by the end of its writer reads as a broken pool)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join()
    _close(getattr(getattr(pool, "_result_queue", None), "_writer", None))
    if manager is not None:
        manager.join(timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)
