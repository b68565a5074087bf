"""The `rstwatch` command's entry point: `--version` is answered before the CLI (typer, click)
is imported, so a version check costs an interpreter start and no more (~0.05 s)."""
from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from . import __version__
        try:
            print(__version__, flush=True)
        except OSError as exc:
            sys.exit(stdout_failed(exc))
        return
    # pandas keeps text columns in Arrow arrays; Arrow's own allocator holds on to what it
    # freed, the system's returns it: 300,000 resets peak 267 -> 243 MiB (JSON Lines), 362 ->
    # 312 MiB (HTML report), same time. A value the user set wins.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    # numpy's OpenBLAS starts a thread per core when it is imported, and they spin: ~60 ms of CPU
    # on this 2-core machine for every command, though rstwatch does no linear algebra (a 2-packet
    # read 0.23 -> 0.14 s of CPU, measured). A value the user set wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Imports (typer, numpy, pandas, pyarrow) make a few hundred thousand objects that live until
    # exit: collections among them find nothing (~40 ms of a 0.4 s import, measured). The
    # collector comes back when the command has loaded what it needs (gcpause.settle_startup,
    # called by read, report, live and kernel); the short commands end before it matters.
    gc.disable()
    from .cli import main as cli_main
    cli_main()


def stdout_failed(exc: OSError) -> int:
    """Writing stdout failed outside a command's own guard (--version, click's help): a closed
    pipe ends quietly as `cat` does, anything else (a full disk) is one line and exit 2; either
    way what is left in the buffer goes to /dev/null, not to a traceback at Python's exit."""
    from .report.output import settle_stdout
    quiet = isinstance(exc, BrokenPipeError)
    if not quiet:
        try:
            sys.stderr.write(f"rstwatch: error: stdout: {exc.strerror or exc}; the output is incomplete\n")
        except OSError:
            pass
    settle_stdout()
    return 0 if quiet else 2
