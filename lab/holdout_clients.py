"""Clients for the holdout lab that the rules were not built against: Python's standard
http.client (no urllib3/requests pool logic), psql fed from a pipe, wget, and Node's http agent
(lab/holdout_node_client.js). Each prints one JSON line {"result": {...}}: what the application saw.

Usage: python3 holdout_clients.py NAME ARG...
"""
from __future__ import annotations

import http.client
import json
import sys
import time

from realclients import _err   # errno name behind a wrapped exception (same folder, run as a script)


def _try(fn) -> str:
    try:
        return str(fn())
    except Exception as exc:  # noqa: BLE001 - the point is to record what the application saw
        return f"{type(exc).__name__}: {_err(exc)}"


def httpclient_reuse(host: str, port: str, pause: str, rounds: str = "2") -> dict:
    """http.client.HTTPConnection: GET, idle `pause` seconds, GET again on the same connection."""
    conn = http.client.HTTPConnection(host, int(port), timeout=5)

    def get() -> int:
        conn.request("GET", "/index.html")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    out = []
    for n in range(int(rounds)):
        if n:
            time.sleep(float(pause))
        out.append(_try(get))
    return {"requests": out}


def main() -> None:
    name, *args = sys.argv[1:]
    print(json.dumps({"result": globals()[name](*args)}), flush=True)


if __name__ == "__main__":
    main()
