"""Tiny client and server programs the lab runs inside network namespaces.

Each prints one JSON object on stdout: what the application saw (errno names), so the
manifest records the real application-side outcome next to the wire.
Usage: python3 apps.py NAME HOST PORT [ARG]
"""
from __future__ import annotations

import errno
import json
import socket
import struct
import sys
import time

LINGER_ZERO = struct.pack("ii", 1, 0)


def err_name(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code:                        # ETIMEDOUT from the kernel also arrives as TimeoutError
        return errno.errorcode.get(code, str(exc))
    return "TIMEOUT (application timeout)" if isinstance(exc, socket.timeout) else type(exc).__name__


def attempt(fn):
    try:
        out = fn()
        return "ok" if out is None else ("EOF" if out == b"" else "ok")
    except OSError as exc:
        return err_name(exc)


def listener(host: str, port: int, backlog: int = 16) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    print(json.dumps({"ready": True}), flush=True)
    return s


def connect(host: str, port: int, timeout: float | None = 5.0) -> socket.socket:
    c = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    c.settimeout(timeout)
    c.connect((host, port))
    return c


# ---------------------------------------------------------------- clients
def client_connect(host, port, _=None):
    """Connect to a port nobody listens on."""
    return {"connect": attempt(lambda: connect(host, port))}


def client_give_up(host, port, arg=None):
    """Connect with a short timeout, then close: the SYN-ACK comes too late."""
    c = socket.socket()
    c.settimeout(float(arg or 0.5))
    res = attempt(lambda: c.connect((host, port)))
    c.close()
    return {"connect": res}


def client_abort_fresh(host, port, _=None):
    c = connect(host, port)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    c.close()
    return {"close": "ok"}


def client_burst(host, port, arg=None):
    """One connection, then (once the lab says so on stdin) N more at once, non-blocking;
    finally look at each without sending anything."""
    n = int(arg or 2)
    first = connect(host, port)
    print(json.dumps({"first": True}), flush=True)
    sys.stdin.readline()
    socks = []
    for _ in range(n):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect((host, port))
        except BlockingIOError:
            pass
        socks.append(c)
    time.sleep(2.5)
    seen = [attempt(lambda: c.recv(10, socket.MSG_DONTWAIT)) for c in [first] + socks]
    for c in [first] + socks:
        c.close()
    return {"recv": seen}


def client_request(host, port, arg=None):
    """Send a request and wait for the answer; report what recv saw."""
    c = connect(host, port)
    c.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n" + b"x" * int(arg or 0))
    first = attempt(lambda: c.recv(4096))
    second = attempt(lambda: c.recv(4096)) if first == "ok" else None
    c.close()
    return {"recv": first, "recv_again": second}


def client_write_after_close(host, port, _=None):
    c = connect(host, port)
    c.sendall(b"GET /1 HTTP/1.1\r\n\r\n")
    got = c.recv(4096)
    eof = c.recv(4096)                 # the server's FIN
    time.sleep(0.2)
    first = attempt(lambda: c.send(b"GET /2 HTTP/1.1\r\n\r\n"))
    time.sleep(0.3)
    second = attempt(lambda: c.send(b"GET /3 HTTP/1.1\r\n\r\n"))
    c.close()
    return {"response": len(got), "eof": eof == b"", "first_write": first, "second_write": second}


def _send_pause_send(host, port, first: bytes, second: bytes, pause: float, timeout: float):
    """Send, read the answer, stay idle (the lab changes something meanwhile), send again:
    returns what the second write and the read after it saw."""
    c = connect(host, port, timeout=timeout)
    c.sendall(first)
    c.recv(4096)
    time.sleep(pause)
    write = attempt(lambda: c.sendall(second))
    read = attempt(lambda: c.recv(4096))
    c.close()
    return write, read


def client_reuse_after_idle(host, port, arg=None):
    """A keep-alive client reusing its connection after an idle pause."""
    write, read = _send_pause_send(host, port, b"GET /1 HTTP/1.1\r\n\r\n", b"GET /2 HTTP/1.1\r\n\r\n",
                                   float(arg or 1.5), 5)
    return {"reused_write": write, "reused_read": read}


def client_echo_pause_echo(host, port, arg=None):
    """Echo once, wait (the lab breaks something meanwhile), echo again."""
    write, read = _send_pause_send(host, port, b"ping-1", b"ping-2", float(arg or 2.0), 15)
    return {"write": write, "read": read}


def client_keepalive(host, port, _=None):
    c = connect(host, port, timeout=30)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    c.sendall(b"ping")
    c.recv(100)
    print(json.dumps({"established": True}), flush=True)
    read = attempt(lambda: c.recv(100))
    c.close()
    return {"read": read}


def client_chat(host, port, arg=None):
    """Several echo rounds with pauses, then a normal close (FIN/FIN)."""
    rounds = int(arg or 3)
    c = connect(host, port)
    print(json.dumps({"local_port": c.getsockname()[1]}), flush=True)
    for k in range(rounds):
        c.sendall(f"ping-{k}".encode())
        c.recv(100)
        time.sleep(0.6)
    c.shutdown(socket.SHUT_WR)
    rest = c.recv(100)
    c.close()
    return {"rounds": rounds, "clean_eof": rest == b""}


def client_scan(host, port, arg=None):
    """Connect to N consecutive closed ports, as a port scanner does."""
    n = int(arg or 600)
    refused = 0
    for p in range(port, port + n):
        c = socket.socket()
        c.settimeout(1)
        try:
            c.connect((host, p))
        except ConnectionRefusedError:
            refused += 1
        except OSError:
            pass
        c.close()
    return {"ports": n, "refused": refused}


# ---------------------------------------------------------------- servers
def server_accept_later(host, port, arg=None):
    s = listener(host, port)
    time.sleep(float(arg or 1.5))
    conn, _ = s.accept()
    return {"first_recv_after_accept": attempt(lambda: conn.recv(10))}


def server_slow_accept(host, port, arg=None):
    s = listener(host, port, backlog=int(arg or 1))
    time.sleep(2.5)
    s.settimeout(0.5)
    accepted = 0
    while True:
        try:
            conn, _ = s.accept()
        except OSError:
            break
        accepted += 1
        conn.close()
    return {"accepted": accepted}


def server_never_accept(host, port, arg=None):
    s = listener(host, port)
    time.sleep(float(arg or 1.5))
    s.close()                          # the process "dies" with connections queued
    return {"listener": "closed with queued connections"}


def server_close_unread(host, port, _=None):
    s = listener(host, port)
    conn, _ = s.accept()
    time.sleep(0.4)                    # the request has arrived, nobody reads it
    conn.close()
    return {"closed": "with unread data"}


def server_linger_zero(host, port, _=None):
    s = listener(host, port)
    conn, _ = s.accept()
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    time.sleep(0.3)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    conn.close()
    return {"closed": "SO_LINGER 0"}


def server_respond_close(host, port, arg=None):
    s = listener(host, port)
    conn, _ = s.accept()
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    time.sleep(float(arg or 0))
    conn.close()
    time.sleep(1.5)
    return {"closed": "after response"}


def server_echo(host, port, arg=None):
    """Echo until EOF; with arg 'abort-on-hup' the lab may kill it (state lost silently)."""
    s = listener(host, port)
    conn, _ = s.accept()
    conn.settimeout(float(arg or 20))
    while True:
        try:
            data = conn.recv(4096)
        except OSError as exc:
            return {"recv": err_name(exc)}
        if not data:
            conn.close()
            return {"recv": "EOF"}
        conn.sendall(data)


def server_echo_then_vanish(host, port, arg=None):
    """Echo once, then drop the connection without telling anyone (the lab blocks the RST)."""
    s = listener(host, port)
    conn, _ = s.accept()
    conn.sendall(conn.recv(100))
    time.sleep(float(arg or 0.5))
    s.close()                          # a crashed host has no listener either
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    conn.close()
    print(json.dumps({"vanished": True}), flush=True)
    time.sleep(3)
    return {"state": "lost"}


def main() -> None:
    name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    result = globals()[name](host, port, arg)
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
