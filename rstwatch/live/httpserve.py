"""A small HTTP/1.x server for the metrics endpoint: one thread and one selector for every client.

prometheus_client's server starts a thread per connection: under the systemd unit's TasksMax=64,
80 idle connections left no thread for a scrape, and each malformed request printed a traceback.
Here the number of threads is one whatever clients do, a client has IDLE_S to send its request
and read the answer, at most MAX_CLIENTS connections are held (a new one pushes out the oldest),
and a bad request gets a short 4xx answer and nothing on stderr.
"""
from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from typing import Callable

MAX_CLIENTS = 48            # connections held at once; a new one closes the oldest (scrapes are quick)
HEAD_LIMIT = 16 * 1024      # request line + headers, bytes (Prometheus sends ~300)
MAX_HEADERS = 100           # header lines in one request
IDLE_S = 10.0               # a client's whole exchange: request in, answer out

# render(method, target, headers) -> (status line text, [(header, value)], body)
Render = Callable[[str, str, dict[str, str]], tuple[str, list[tuple[str, str]], bytes]]


class _Client:
    __slots__ = ("sock", "deadline", "inbox", "outbox")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock, self.deadline, self.inbox, self.outbox = sock, now + IDLE_S, bytearray(), b""


class BadRequest(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers with lower-case names) of a request head, or BadRequest."""
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise BadRequest("400 Bad Request")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest("431 Request Header Fields Too Large")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest("400 Bad Request")
        headers[name.lower()] = value.strip()
    return parts[0], parts[1], headers


def response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers),
            f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1") + body


class SelectorServer:
    """Serves render() on a listening socket from one daemon thread until close()."""

    def __init__(self, listener: socket.socket, render: Render) -> None:
        self.listener, self.render = listener, render
        self.clients: dict[int, _Client] = {}        # by fd, in accept order (oldest first)
        self.sel = selectors.DefaultSelector()
        self._stop = False
        self._paused_until = 0.0
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._run, name="rstwatch-metrics", daemon=True)

    def start(self) -> "SelectorServer":
        self.thread.start()
        return self

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)

    def _run(self) -> None:
        while not self._stop:
            now = time.monotonic()
            if self._paused_until and now >= self._paused_until:
                self._paused_until = 0.0
                self.sel.register(self.listener, selectors.EVENT_READ)
            nearest = min((c.deadline for c in self.clients.values()), default=now + 1.0)
            for key, events in self.sel.select(min(max(nearest - now, 0.0), 1.0)):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._serve(self.clients.get(key.fd), events)
            now = time.monotonic()
            for c in [c for c in self.clients.values() if c.deadline <= now]:
                self._drop(c)                       # too slow: sent no whole request, or read no answer
        for c in list(self.clients.values()):
            self._drop(c)
        self.sel.close()
        self.listener.close()

    def _accept(self) -> None:
        for _ in range(64):                         # a burst of connections, without starving the others
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:                  # out of descriptors: make room, or wait a moment
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM) and self.clients:
                    self._drop(next(iter(self.clients.values())))
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                self.sel.unregister(self.listener)
                self._paused_until = time.monotonic() + 0.2
                return
            if len(self.clients) >= MAX_CLIENTS:
                self._drop(next(iter(self.clients.values())))
            sock.setblocking(False)
            c = _Client(sock, time.monotonic())
            self.clients[sock.fileno()] = c
            self.sel.register(sock, selectors.EVENT_READ)

    def _serve(self, c: _Client | None, events: int) -> None:
        if c is None:
            return
        try:
            if c.outbox:
                self._send(c)
            elif events & selectors.EVENT_READ:
                self._receive(c)
        except Exception:                           # noqa: BLE001 - gone (reset, broken pipe) or odd: one client, not the server
            self._drop(c)

    def _receive(self, c: _Client) -> None:
        data = c.sock.recv(4096)
        if not data:
            self._drop(c)
            return
        c.inbox += data
        end = c.inbox.find(b"\r\n\r\n")
        cut = 4
        if end < 0:
            end, cut = c.inbox.find(b"\n\n"), 2
        if end < 0:
            if len(c.inbox) > HEAD_LIMIT:
                self._answer(c, response("431 Request Header Fields Too Large", [], b""))
            return
        if end > HEAD_LIMIT:
            self._answer(c, response("431 Request Header Fields Too Large", [], b""))
            return
        try:
            method, target, headers = parse_head(bytes(c.inbox[:end]))
            status, extra, body = self.render(method, target, headers)
        except BadRequest as bad:
            status, extra, body = bad.status, [], b""
        except Exception:                           # noqa: BLE001 - a failed collection answers 500, not a traceback
            status, extra, body = "500 Internal Server Error", [], b""
        del c.inbox[:end + cut]
        self._answer(c, response(status, extra, body))

    def _answer(self, c: _Client, data: bytes) -> None:
        c.outbox = data
        c.inbox.clear()
        self.sel.modify(c.sock, selectors.EVENT_WRITE)
        self._send(c)

    def _send(self, c: _Client) -> None:
        n = c.sock.send(c.outbox)
        c.outbox = c.outbox[n:]
        if not c.outbox:
            self._drop(c)

    def _drop(self, c: _Client) -> None:
        if self.clients.pop(c.sock.fileno(), None) is None:
            return
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

