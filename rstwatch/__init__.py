import os as _os
import tempfile as _tempfile

__version__ = "0.1.0"


def _numba_cache_dir() -> None:
    """numba caches compiled code next to the sources; when that folder is read-only (a system-wide
    install used by an unprivileged user) and no user cache is writable either, caching fails with
    an exception. Point it at a per-user folder that can be written instead."""
    if "NUMBA_CACHE_DIR" in _os.environ or _os.access(_os.path.dirname(__file__), _os.W_OK):
        return
    for base in (_os.environ.get("XDG_CACHE_HOME") or _os.path.expanduser("~/.cache"), _tempfile.gettempdir()):
        target = _os.path.join(base, f"rstwatch-numba-{_os.getuid()}")
        try:
            _os.makedirs(target, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if _os.access(target, _os.W_OK):
            _os.environ["NUMBA_CACHE_DIR"] = target
            return


_numba_cache_dir()
