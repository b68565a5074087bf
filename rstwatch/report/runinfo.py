"""What a writer may say besides the findings: how many packets were read, from which files,
with which rules, and where the extracted evidence went. Provenance (sizes, SHA-256) is
computed only by the writers that print it."""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class InputFile:
    path: str
    size: int | None = None
    sha256: str | None = None
    packets: int | None = None
    carried: bool = False       # named inside a findings Parquet: shown as recorded, never opened or hashed

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "packets": self.packets}


@dataclass
class RunInfo:
    packets: int = 0
    files: int = 0
    inputs: list[InputFile] = field(default_factory=list)
    rules: list[Any] = field(default_factory=list)          # engine.model.Rule
    rule_dirs: list[str] = field(default_factory=list)
    title: str | None = None
    output: Path | None = None                              # the file being written, when there is one
    evidence: dict[tuple[str, int], Path] = field(default_factory=dict)   # (file, frame) -> extracted pcap
    dropped: int | None = None                              # capture drops, when known (live)
    received: int | None = None
    warnings: list[str] = field(default_factory=list)
    source: str = "read"                                    # read | live | parquet
    carried: dict[str, Any] = field(default_factory=dict)   # provenance found in a Parquet file
    force: bool = False
    packets_for: dict[str, Path] = field(default_factory=dict)   # finding `file` label -> capture to re-read
    vantage: dict | None = None        # read --hosts: the Vantage points section (vantage/section.vantage_facts)


def file_digest(path: str | Path) -> tuple[int | None, str | None]:
    """(size, SHA-256) of a regular file, or (None, None) when it cannot be read or is not one
    (a FIFO or /dev/zero would block or never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None, None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, None
        h = hashlib.sha256()
        for block in iter(lambda: os.read(fd, 1 << 20), b""):
            h.update(block)
        return st.st_size, h.hexdigest()
    except OSError:
        return None, None
    finally:
        os.close(fd)


def with_digests(inputs: list[InputFile]) -> list[InputFile]:
    for f in inputs:
        if f.sha256 is None and not f.carried:
            f.size, f.sha256 = file_digest(f.path)
    return inputs


def rules_digest(rules: list[Any]) -> str:
    """One SHA-256 over the rule files in use, so two reports can be compared for the rule set."""
    h = hashlib.sha256()
    for r in sorted(rules, key=lambda r: r.id):
        h.update(r.id.encode())
        try:
            h.update(Path(r.source).read_bytes())
        except OSError:
            h.update(r.name.encode())
    return h.hexdigest()
