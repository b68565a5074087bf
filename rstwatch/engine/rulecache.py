"""Rule files parsed on an earlier run, kept so that the next run neither parses them nor imports
PyYAML.

Loading the 21 built-in rules cost ~26 ms of CPU on every run: ~10 ms to import PyYAML, ~8 ms to
walk the files' YAML events (ruleyaml.py), the rest checking them. What a parse gives (data, key
lines, duplicate keys) is kept in one JSON file, keyed by the file's whole text, so a hit is exact
by construction: a file changed by one byte is parsed again. Only parses that succeed and survive
JSON exactly (types included) are kept; a file that does not parse is parsed, and its problem
reported, every time. A new PyYAML or a changed ruleyaml.py starts the cache afresh. The file
holds the rule files of the last load that parsed something anew.

The cache only saves time: a missing, unreadable, damaged or unwritable one is ignored, and it is
replaced whole (a temporary file renamed over it), never edited in place. It is trusted only when
it is the user's own: the folder and the file must belong to the effective user, be writable by
no one else and not be symbolic links, in a folder of the user's (or root's) that others cannot
write; no parent folder is ever made (so root run with a user's HOME neither reads, writes nor
makes anything in that user's home). Where: $RSTWATCH_CACHE_DIR, else $XDG_CACHE_HOME/rstwatch (an absolute path,
as the XDG spec says), else ~/.cache/rstwatch; RSTWATCH_CACHE_DIR set to an empty value turns it
off."""
from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

FORMAT = 2
FILE_NAME = "parsed-rules.json"
TEMP_PREFIX = ".parsed-rules-"
# The rules loaded together hold at most 4 MiB of text (loader.MAX_SET_BYTES); their parses, as
# JSON texts inside the JSON file, about twice that and more for texts full of quotes. A cache
# that would be larger is not written (the rules are parsed as before).
MAX_FILE_BYTES = 16 * 1024 * 1024
STALE_TEMP_S = 60           # a temporary file this old was left by a process killed mid-write

_store: dict[str, str] | None = None          # text -> its parse as JSON text: what the last load used
_used: dict[str, str] = {}                    # the entries the current load looked up or made
_dirty = False


def cache_dir() -> Path | None:
    where = os.environ.get("RSTWATCH_CACHE_DIR")
    if where is not None:
        return Path(where).absolute() if where else None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "rstwatch"
    home = os.path.expanduser("~")              # "~" itself when there is no HOME and no passwd entry
    if not os.path.isabs(home) or home == "/":
        return None
    return Path(home) / ".cache" / "rstwatch"


def parsed(text: str) -> tuple[Any, dict[str, int], list[tuple[str, int]]]:
    """load_yaml(text): from the cache when this exact text parsed before, else parsed (and
    kept when it parses). Raises YamlProblem as load_yaml does."""
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
        except Exception:           # noqa: BLE001 - e.g. nested too deep for json (RecursionError)
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
    """The end of a load: write its entries if it parsed anything anew (and the file is not too
    large); the next load in this process starts from them."""
    global _dirty, _store, _used
    entries, dirty = _used, _dirty
    _used, _dirty = {}, False
    if not dirty:                   # every file came from the cache: nothing to write
        return
    _store = entries
    where = cache_dir()
    blob = json.dumps({"format": FORMAT, "parser": _parser_stamp(), "entries": entries})
    if where is None or len(blob) > MAX_FILE_BYTES:
        return
    try:
        if not _folder_usable(where, create=True):
            return
        _remove_stale_temps(where)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=where)
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
        try:
            kept = _read_kept(where) if where is not None else None
            if (isinstance(kept, dict) and kept.get("format") == FORMAT and kept.get("parser") == _parser_stamp()
                    and isinstance(kept.get("entries"), dict)):
                _store = {k: v for k, v in kept["entries"].items() if isinstance(k, str) and isinstance(v, str)}
        except Exception:           # noqa: BLE001 - whatever is wrong with a cache, it is only not used
            pass
    return _store


def _read_kept(where: Path):
    """The cache file's JSON, or None when the file is not there or not to be trusted: opened
    without following a link or waiting on a FIFO, then checked on the open file (no race)."""
    if not _folder_usable(where, create=False):
        return None
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    with os.fdopen(os.open(where / FILE_NAME, flags), "rb") as fh:
        st = os.fstat(fh.fileno())
        # a real cache file is never empty: /proc and /sys files say 0 bytes whatever they hold
        if not _ours(st, stat.S_ISREG) or not 0 < st.st_size <= MAX_FILE_BYTES:
            return None
        blob = fh.read(MAX_FILE_BYTES + 1)
    return json.loads(blob) if len(blob) <= MAX_FILE_BYTES else None


def _folder_usable(where: Path, create: bool) -> bool:
    """The cache folder is the effective user's, not a link, and sits in a folder of this user's
    (or root's) that no one else can write, unless sticky (/tmp): so it cannot be swapped for a
    link between the check and the write. Only the cache folder itself is ever made, never a
    parent: root run with a user's HOME makes nothing in that home."""
    try:
        parent = os.stat(where.parent)
        if not (stat.S_ISDIR(parent.st_mode) and parent.st_uid in (os.geteuid(), 0)
                and (not parent.st_mode & 0o022 or parent.st_mode & stat.S_ISVTX)):
            return False
        if create and not os.path.lexists(where):
            os.mkdir(where, 0o700)
        return _ours(os.lstat(where), stat.S_ISDIR)
    except OSError:
        return False


def _ours(st: os.stat_result, kind) -> bool:
    """A file or folder of this kind, the effective user's, that no one else can write."""
    return kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _remove_stale_temps(where: Path) -> None:
    """Temporary files of writers killed between writing and renaming (old enough not to be a
    writer at work)."""
    now = time.time()
    for left in where.glob(TEMP_PREFIX + "*"):
        try:
            if now - left.lstat().st_mtime > STALE_TEMP_S:
                left.unlink()
        except OSError:
            pass


def _parser_stamp() -> list:
    """What a parse depends on besides the text: ruleyaml.py and PyYAML's files, its C part
    (libyaml, linked into it) included, by name, size and time, found without importing PyYAML."""
    files = [Path(__file__).with_name("ruleyaml.py")]
    spec = PathFinder.find_spec("yaml")
    if spec is not None and spec.origin:
        try:
            files += sorted(p for p in Path(spec.origin).parent.iterdir() if p.suffix in (".py", ".so"))
        except OSError:
            pass
    stamp: list = []
    for path in files:
        try:
            st = path.stat()
            stamp.append([path.name, st.st_size, st.st_mtime_ns])
        except OSError:
            stamp.append([path.name])
    return stamp
