"""The `rstwatch` command's entry point: `--version` is answered before the CLI (typer, click)
is imported, so a version check costs an interpreter start and no more (~0.05 s)."""
from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from . import __version__
        print(__version__)
        return
    from .cli import main as cli_main
    cli_main()
