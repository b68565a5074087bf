"""Write a findings table in any registered format to stdout or a file: the one place `read`,
`report` and `live --report` hand their findings to (formats.py says which writer)."""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from .formats import Format
from .output import open_output
from .runinfo import RunInfo


def write_findings(fmt: Format, findings: pd.DataFrame, output: Path | None, force: bool, info: RunInfo) -> None:
    info.output = output
    info.force = force
    writer = fmt.writer()
    takes_info = "info" in inspect.signature(writer).parameters
    with _open(output, force, fmt.binary) as out:
        if takes_info:
            writer(findings, out, info=info)
        else:
            writer(findings, out)


@contextmanager
def _open(output: Path | None, force: bool, binary: bool) -> Iterator:
    if not binary:
        with open_output(output, force) as out:
            yield out
        return
    try:
        opened = open_output(output, force, binary=True)
    except TypeError:                          # an output layer without binary streams: the text one's buffer
        with open_output(output, force) as out:
            yield out.buffer
        return
    with opened as out:
        yield out


def extract_evidence(findings: pd.DataFrame, folder: Path, info: RunInfo, force: bool) -> list[str]:
    """--extract: one pcapng per finding into `folder`; records the files in `info` for links.
    Returns warning lines (findings whose packets could not be taken)."""
    from .extract import extract
    if not len(findings):
        folder.mkdir(exist_ok=True)
        return []
    written, problems = extract(findings, info.packets_for, folder, force)
    info.evidence.update(written)
    return problems
