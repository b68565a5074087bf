"""Rule files parsed on an earlier run, kept so that the next run neither parses them nor imports
PyYAML.

Loading the 21 built-in rules cost ~18 ms of CPU on every run: ~10 ms to import PyYAML and ~8 ms
to walk the files' YAML events (ruleyaml.py), about a fifteenth of reading a million packets.
What a parse gives (data, key lines, duplicate keys) is kept in one JSON file, keyed by the file's
whole text, so a hit is exact by construction: a file changed by one byte is parsed again. Only
parses that came back clean and survive JSON exactly (types included) are kept; a problem is
always found by parsing. A new PyYAML or a changed ruleyaml.py starts the cache afresh.

The cache only saves time: a missing, unreadable, corrupt or unwritable one is ignored, and it
is replaced whole (a temporary file renamed over it), never edited in place. Where:
$RSTWATCH_CACHE_DIR, else $XDG_CACHE_HOME/rstwatch, else ~/.cache/rstwatch; RSTWATCH_CACHE_DIR
set to an empty value turns it off."""
from __future__ import annotations

import json
import os
import stat
import tempfile
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

FORMAT = 1
FILE_NAME = "parsed-rules.json"
MAX_FILE_BYTES = 8 * 1024 * 1024     # a cache of every rule file a user has: far less
MAX_ENTRIES = 512                     # more distinct texts than that: keep only the last run's

_store: dict[str, str] | None = None          # text -> its parse as JSON text, as read from disk
_used: dict[str, str] = {}                    # the entries this process looked up or made
_dirty = False


def cache_dir() -> Path | None:
    where = os.environ.get("RSTWATCH_CACHE_DIR")
    if where is not None:
        return Path(where) if where else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rstwatch"


def parsed(text: str) -> tuple[Any, dict[str, int], list[tuple[str, int]]]:
    """load_yaml(text): from the cache when this exact text parsed before, else parsed (and
    kept when it parses cleanly). Raises YamlProblem as load_yaml does."""
    global _dirty
    store = _load()
    entry = store.get(text)
    if entry is not None:
        try:
            data, lines, dupes = json.loads(entry)
            dupes = [(path, line) for path, line in dupes]
            if isinstance(lines, dict):
                _used[text] = entry
                return data, lines, dupes
        except (ValueError, TypeError):
            pass
        # a damaged entry (the file was edited by hand): parsed again below
    from .ruleyaml import load_yaml
    data, lines, dupes = load_yaml(text)
    try:
        entry = json.dumps([data, lines, dupes], allow_nan=False)      # NaN would not read back equal
    except (TypeError, ValueError):
        return data, lines, dupes
    if json.loads(entry) == [data, lines, [list(d) for d in dupes]]:   # JSON keeps int, float, bool apart
        _used[text] = entry
        _dirty = True
    return data, lines, dupes


def save() -> None:
    """Write what this process parsed anew (with the entries already kept), if anything."""
    global _dirty, _store
    where = cache_dir()
    if not _dirty or where is None:
        return
    _dirty = False
    entries = dict(_store or {})
    entries.update(_used)
    if len(entries) > MAX_ENTRIES:
        entries = dict(_used)
    _store = entries
    blob = json.dumps({"format": FORMAT, "parser": _parser_stamp(), "entries": entries})
    try:
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".parsed-rules-", dir=where)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(blob)
            os.replace(tmp, where / FILE_NAME)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def _load() -> dict[str, str]:
    global _store
    if _store is None:
        _store = {}
        where = cache_dir()
        if where is not None:
            try:
                path = where / FILE_NAME
                st = path.stat()
                if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_FILE_BYTES:   # never a FIFO's read
                    kept = json.loads(path.read_text(encoding="utf-8"))
                    if (kept.get("format") == FORMAT and kept.get("parser") == _parser_stamp()
                            and isinstance(kept.get("entries"), dict)):
                        _store = {k: v for k, v in kept["entries"].items() if isinstance(k, str) and isinstance(v, str)}
            except (OSError, ValueError, AttributeError):
                pass
    return _store


def _parser_stamp() -> list:
    """What a parse depends on besides the text: ruleyaml.py and PyYAML's own files (their size
    and time), found without importing PyYAML."""
    stamp: list = []
    spec = PathFinder.find_spec("yaml")
    for path in (Path(__file__).with_name("ruleyaml.py"), Path(spec.origin) if spec and spec.origin else None):
        try:
            st = path.stat() if path is not None else None
            stamp.append([str(path), st.st_size, st.st_mtime_ns] if st else None)
        except OSError:
            stamp.append(None)
    return stamp
