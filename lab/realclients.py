"""Real client libraries driven the way applications use them (python-requests, redis-py).

Each function prints one JSON line {"result": {...}}: what the application saw, as errno names.
Usage: python3 realclients.py NAME ARG...
"""
from __future__ import annotations

import errno
import json
import socket
import sys
import time


def _err(exc: BaseException) -> str:
    """The errno name behind a library exception (requests and redis-py wrap the OSError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        if isinstance(code, int) and code in errno.errorcode:
            return errno.errorcode[code]
        args = getattr(exc, "args", ())
        for a in args:
            if isinstance(a, BaseException):
                inner = _err(a)
                if inner.startswith("E"):
                    return inner
        exc = exc.__cause__ or exc.__context__
    return "error"


def _try(fn) -> str:
    try:
        out = fn()
        return "ok" if out is None or out is True else str(out)
    except Exception as exc:  # noqa: BLE001 - the point is to record what the app saw
        name = _err(exc)
        return f"{type(exc).__name__}: {name}"


def requests_reuse(url: str, pause: str, rounds: str = "2") -> dict:
    """A pooled session (urllib3 keeps the connection) that pauses between requests, with no retries."""
    import requests
    from requests.adapters import HTTPAdapter
    s = requests.Session()
    s.mount("http://", HTTPAdapter(max_retries=0))
    out = []
    for n in range(int(rounds)):
        if n:
            time.sleep(float(pause))
        out.append(_try(lambda: s.get(url, timeout=5).status_code))
    return {"requests": out}


def requests_reuse_signal(url: str, rounds: str = "2") -> dict:
    """Like requests_reuse, but waits for a line on stdin between requests (the lab acts meanwhile)."""
    import requests
    from requests.adapters import HTTPAdapter
    s = requests.Session()
    s.mount("http://", HTTPAdapter(max_retries=0))
    out = [_try(lambda: s.get(url, timeout=5).status_code)]
    for _ in range(int(rounds) - 1):
        print(json.dumps({"waiting": True}), flush=True)
        sys.stdin.readline()
        out.append(_try(lambda: s.get(url, timeout=5).status_code))
    return {"requests": out}


def requests_stall(url: str, stall: str) -> dict:
    """Stream a large download, read the first chunk, then stop reading for `stall` seconds."""
    import requests
    out = {}
    try:
        r = requests.get(url, stream=True, timeout=10)
        it = r.iter_content(4096)
        next(it)
        time.sleep(float(stall))
        total = 0
        for chunk in it:
            total += len(chunk)
        out["read"] = f"ok {total} bytes"
    except Exception as exc:  # noqa: BLE001
        out["read"] = f"{type(exc).__name__}: {_err(exc)}"
    return out


def requests_upload(url: str, size: str) -> dict:
    """POST a body of `size` bytes in one go. The socket is corked (urllib3's socket_options), so
    the headers and the body's start leave in one segment, as from a client that writes them in
    one call: requests sends the headers alone first, and a server that answers on the headers
    alone (nginx's `return 444`) then closed before any body arrived in about 1 attempt in 5 (in
    3 of 3 under a loaded CI run), which is data after close, not the close with unread data the
    scenario is about."""
    import requests
    from requests.adapters import HTTPAdapter

    class Corked(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["socket_options"] = [(socket.IPPROTO_TCP, socket.TCP_CORK, 1)]
            super().init_poolmanager(*args, **kwargs)

    body = b"x" * int(size)
    with requests.Session() as session:
        session.mount("http://", Corked())
        return {"post": _try(lambda: session.post(url, data=body, timeout=10).status_code)}


def redis_pause(host: str, pause: str, keepalive: str = "0") -> dict:
    """redis-py: PING, pause, PING (no retries), optionally with aggressive TCP keepalive."""
    import redis
    opts = {}
    if keepalive == "1":
        opts = dict(socket_keepalive=True, socket_keepalive_options={
            socket.TCP_KEEPIDLE: 1, socket.TCP_KEEPINTVL: 1, socket.TCP_KEEPCNT: 2})
    r = redis.Redis(host=host, port=int(__import__("os").environ.get("REDIS_PORT", 6379)), socket_timeout=15, retry_on_timeout=False, retry=None, **opts)
    first = _try(r.ping)
    print(json.dumps({"established": True}), flush=True)
    time.sleep(float(pause))
    return {"ping": first, "ping_after_pause": _try(r.ping)}


def redis_signal(host: str) -> dict:
    """redis-py: PING, wait for a line on stdin (the lab acts meanwhile), PING again."""
    import redis
    r = redis.Redis(host=host, port=int(__import__("os").environ.get("REDIS_PORT", 6379)), socket_timeout=5, retry=None)
    first = _try(r.ping)
    print(json.dumps({"waiting": True}), flush=True)
    sys.stdin.readline()
    return {"ping": first, "ping_after": _try(r.ping)}


def main() -> None:
    name, *args = sys.argv[1:]
    print(json.dumps({"result": globals()[name](*args)}), flush=True)


if __name__ == "__main__":
    main()
