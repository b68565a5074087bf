"""Which captures belong to which host: `--host NAME=PATH` (repeatable) and `--hosts DIR`.

`--hosts DIR`: every subfolder of DIR is one host named after the folder (all its captures, e.g.
one per interface); a capture file directly in DIR is a host named after the file (its stem).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RstwatchError


@dataclass
class Host:
    name: str
    paths: list[Path] = field(default_factory=list)


def _capture_stem(path: Path) -> str:
    name = path.name
    for ext in (".gz", ".pcapng", ".pcap", ".cap"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


def parse_hosts(specs: list[str], folder: Path | None) -> list[Host]:
    """Hosts in the order given; a spec without NAME=PATH, or a --hosts that is not a folder, is a
    usage error (exit 2). A PATH that does not exist is kept: it fails later as one line for that
    host while the other hosts are analysed."""
    hosts: dict[str, Host] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise RstwatchError("--host", f"{spec!r}: expected NAME=PATH (e.g. server=/captures/server.pcap)")
        hosts.setdefault(name, Host(name)).paths.append(Path(path))
    if folder is not None:
        if not folder.is_dir():
            raise RstwatchError(str(folder), "--hosts needs a folder holding one subfolder (or capture file) per host")
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or entry.name == "manifest.json":
                continue
            name = entry.name if entry.is_dir() else _capture_stem(entry)
            hosts.setdefault(name, Host(name)).paths.append(entry)
    if len(hosts) < 1:
        raise RstwatchError("--hosts", f"{folder}: no host folders or capture files in it")
    return list(hosts.values())
