"""Resets made by real software, with the kernel's own reason for each: the real-software lab.

Run as root:  python3 lab/make_real_captures.py [--out captures/real] [--only name,...]
Servers: nginx, HAProxy, Redis, lighttpd, memcached, gunicorn (Debian packages / PyPI). Clients: curl,
python-requests, redis-py, redis-cli, ApacheBench, HAProxy's health checks. Paths: a wire with latency
(lab/wire.py), a router with nftables (firewall rules, NAT with conntrack timeouts).

Ground truth: every RST frame gets the cause the scenario set up, checked against the kernel's
tcp_send_reset reason (a run whose kernel reasons show the race did not happen as intended is
redone, up to 3 times). Later RSTs of a connection already reset are follow-ups: same cause,
`follows` = the first reset's frame.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import driver as D  # noqa: E402
from lab import realnet as R  # noqa: E402
from lab import realservers as srv  # noqa: E402
from lab.driver import Scenario  # noqa: E402
from lab.realnet import C_ADDR, CLIENT, S_ADDR, SERVER, Proc  # noqa: E402


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, cause: str | None, software: list[str], **kw):
    def deco(fn):
        SCENARIOS[name] = Scenario(name=name, fn=fn, cause=cause, doc=" ".join((fn.__doc__ or "").split()),
                                   software=software, **kw)
        return fn
    return deco


def curl(*args: str, stdin: bool = False) -> Proc:
    return Proc(CLIENT, [R.tool("curl"), "-sS", "-o", "/dev/null", "-w", '{"result": {"http": "%{http_code}"}}\\n', *args],
                stdin=stdin)


def curl_telnet(port: int, first: str, pause: float, second: str) -> dict:
    """A script piping two commands, `pause` seconds apart, to a server through curl telnet://
    (curl keeps writing whatever the server did meanwhile)."""
    script = (f"(printf '{first}\\r\\n'; sleep {pause}; printf '{second}\\r\\n'; sleep 1) | "
              f"{R.tool('curl')} -sS telnet://{S_ADDR}:{port}; echo '{{\"result\": {{\"curl_exit\": '$?'}}}}'")
    return Proc(CLIENT, ["sh", "-c", script]).finish()


def haproxy_tcp_check(work: Path, name: str, port: int, inter_ms: int) -> None:
    """HAProxy on the client host balancing TCP to one backend on the server, checked every
    `inter_ms` with a plain TCP check, for 1.3 s."""
    p = srv.haproxy(work / "haproxy", f"""
defaults
  mode tcp
  timeout connect 1s
  timeout client 5s
  timeout server 5s
listen {name}
  bind 127.0.0.1:{port}
  server b1 {S_ADDR}:{port} check inter {inter_ms}ms
""", 0, CLIENT)
    time.sleep(1.3)
    p.stop()


def upload(work: Path, size: int) -> Path:
    """A file of `size` bytes for curl to POST (curl reads --data-binary files into memory first)."""
    path = work / f"upload-{size}.bin"
    path.write_bytes(b"u" * size)
    return path


# ------------------------------------------------------------------ keep-alive, FIN crossing a request
@scenario("nginx-keepalive-race", "keepalive-race", ["nginx", "python-requests"], delay_ms=100,
          reasons={"TCP_ABORT_ON_DATA", "NO_SOCKET"})
def nginx_keepalive_race(work: Path):
    """nginx (keepalive_timeout 1s) behind a 100 ms path; python-requests reuses its pooled
    connection after 0.9 s idle: nginx's FIN and the next request cross on the wire. The client
    takes in the FIN, then the RST answering its request (seq = the FIN's own seq)."""
    s = srv.nginx(work, keepalive="1s")
    res = R.client_py("requests_reuse", f"http://{S_ADDR}/index.html", 0.9).finish()
    s.stop()
    return {"client": res}


@scenario("redis-idle-timeout", "data-after-close", ["redis-server", "curl"],
          reasons={"TCP_TIMEWAIT_SOCKET", "NO_SOCKET", "TCP_ABORT_ON_DATA"})
def redis_idle_timeout(work: Path):
    """Redis closes clients idle for 1 s (`timeout 1`); a script piping commands through curl
    (telnet://) sends the next one 2.5 s later, after its kernel acknowledged Redis's FIN: the write goes out
    and is reset. (redis-py and redis-cli notice the FIN and reconnect instead.)"""
    s = srv.redis(work, "--timeout", "1")
    res = curl_telnet(6379, "PING", 2.5, "PING")
    s.stop()
    return {"client": res}


@scenario("memcached-idle-timeout", "data-after-close", ["memcached", "curl"],
          reasons={"TCP_TIMEWAIT_SOCKET", "NO_SOCKET", "TCP_ABORT_ON_DATA"})
def memcached_idle_timeout(work: Path):
    """memcached with idle_timeout=1 closes an idle client; curl (telnet://) writes the next
    command 3.5 s later, after having acknowledged the FIN."""
    s = srv.memcached("-o", "idle_timeout=1")
    res = curl_telnet(11211, "version", 3.5, "stats")
    s.stop()
    return {"client": res}


# ------------------------------------------------------------------ closing with unread data
@scenario("nginx-444-post", "unread-data-close", ["nginx", "python-requests"],
          reasons={"TCP_ABORT_ON_CLOSE"})
def nginx_444(work: Path):
    """nginx `return 444` (close without a response, a common bot block) for a 1 MB POST:
    nginx closes with the body unread."""
    s = srv.nginx(work, server="location /api { return 444; }")
    res = R.client_py("requests_upload", f"http://{S_ADDR}/api", 1_000_000).finish()
    s.stop()
    return {"client": res}


@scenario("gunicorn-413-zero-window", "unread-data-close", ["gunicorn", "curl"],
          reasons={"TCP_ABORT_ON_CLOSE"})
def gunicorn_413(work: Path):
    """A WSGI app under gunicorn checks Content-Length, takes 1.5 s, answers 413 and never reads
    the 16 MB upload: the server advertises a zero window, curl sends zero-window probes, then the
    server's close with unread data resets."""
    s = srv.gunicorn(8000)
    res = curl("--data-binary", f"@{upload(work, 16_000_000)}", "-H", "Expect:",
               "--max-time", "8", f"http://{S_ADDR}:8000/upload").finish()
    s.stop()
    return {"client": res}


# ------------------------------------------------------------------ deliberate aborts (SO_LINGER 0)
@scenario("nginx-send-timeout-reset", "linger-zero-abort", ["nginx", "python-requests"],
          reasons={"TCP_STATE", "TCP_ABORT_ON_LINGER", "TCP_DISCONNECT_WITH_DATA"})
def nginx_send_timeout(work: Path):
    """nginx (send_timeout 1s, reset_timedout_connection on) sends a 32 MB file to a client that
    reads one chunk and stalls: its window closes, nginx probes the zero window, times out and
    aborts with SO_LINGER 0."""
    s = srv.nginx(work, http="send_timeout 1s; reset_timedout_connection on; sendfile off;")
    res = R.client_py("requests_stall", f"http://{S_ADDR}/big.bin", 4).finish()
    s.stop()
    return {"client": res}


HAPROXY_DEFAULTS = """
defaults
  mode http
  timeout connect 2s
  timeout client 5s
  timeout server 5s
"""


@scenario("haproxy-nolinger", "linger-zero-abort", ["haproxy", "nginx", "curl"],
          reasons={"TCP_STATE", "TCP_ABORT_ON_LINGER", "TCP_DISCONNECT_WITH_DATA"})
def haproxy_nolinger(work: Path):
    """HAProxy in front of nginx with `option nolinger` and `http-server-close`-less close mode
    (`option httpclose`): it answers curl, then closes the client side abortively (SO_LINGER 0)."""
    be = srv.nginx(work / "nginx", port=8080)
    p = srv.haproxy(work / "haproxy", HAPROXY_DEFAULTS + """
frontend fe
  bind :80
  option nolinger
  option httpclose
  default_backend be
backend be
  server web 127.0.0.1:8080
""", 80, SERVER)
    res = [curl(f"http://{S_ADDR}/index.html").finish() for _ in range(2)]
    p.stop()
    be.stop()
    return {"client": res}


# ------------------------------------------------------------------ health checks
@scenario("haproxy-check-redis", "abort-before-accept", ["haproxy (health checks)", "redis-server"],
          reasons={"TCP_STATE"})
def haproxy_check_redis(work: Path):
    """HAProxy (a TCP load balancer in front of Redis, on the client host) checks its Redis
    backend every 300 ms with a plain TCP check: SYN, SYN-ACK, then a RST|ACK that completes the
    handshake (HAProxy turns off quick-ACK and aborts)."""
    s = srv.redis(work / "redis")
    haproxy_tcp_check(work, "redis", 6379, 300)
    s.stop()
    return {"haproxy": "checks ran"}


@scenario("haproxy-check-memcached", "abort-before-accept", ["haproxy (health checks)", "memcached"],
          reasons={"TCP_STATE"})
def haproxy_check_memcached(work: Path):
    """The same plain TCP health check against memcached, every 400 ms."""
    s = srv.memcached()
    haproxy_tcp_check(work, "mc", 11211, 400)
    s.stop()
    return {"haproxy": "checks ran"}


# ------------------------------------------------------------------ refusals and connect timeouts
@scenario("curl-closed-port", "closed-port", ["curl", "redis-cli"], reasons={"NO_SOCKET"})
def curl_closed_port(work: Path):
    """curl to a web port nobody listens on and redis-cli to a Redis port that is not up."""
    a = curl(f"http://{S_ADDR}:8081/").finish()
    b = Proc(CLIENT, [R.tool("redis-cli"), "-h", S_ADDR, "-p", "6380", "ping"]).finish()
    return {"curl": a, "redis-cli": b}


@scenario("curl-connect-timeout", "late-synack", ["curl", "nginx"], delay_ms=300, reasons={"NO_SOCKET"})
def curl_connect_timeout(work: Path):
    """A 300 ms path (600 ms round trip) and curl --connect-timeout 0.4: curl gives up before the
    SYN-ACK arrives and its kernel answers the SYN-ACK with a RST."""
    s = srv.nginx(work)
    res = curl("--connect-timeout", "0.4", f"http://{S_ADDR}/").finish()
    time.sleep(1.0)
    s.stop()
    return {"client": res}


@scenario("redis-listener-killed", "listener-closed", ["redis-server", "redis-cli"], reasons={"TCP_STATE"})
def redis_listener_killed(work: Path):
    """Redis is frozen (SIGSTOP), three redis-cli clients connect (the kernel completes their
    handshakes into the accept queue), then Redis is killed: the queued connections are reset."""
    s = srv.redis(work)
    R.sh(f"kill -STOP {s.proc.pid}")
    clients = [Proc(CLIENT, [R.tool("redis-cli"), "-h", S_ADDR, "ping"]) for _ in range(3)]
    time.sleep(0.8)
    R.sh(f"kill -KILL {s.proc.pid}")
    res = [c.finish() for c in clients]
    s.stop()
    return {"clients": res}


# ------------------------------------------------------------------ lost state: reboots, keepalive
@scenario("nginx-reboot-service-back", "peer-lost-state", ["nginx", "python-requests"], reasons={"TCP_FLAGS"})
def nginx_reboot_back(work: Path):
    """python-requests keeps a pooled connection to nginx; the server host crashes and comes back
    with nginx running again; the next request on the old connection reaches the new listener,
    which answers a non-SYN with a RST."""
    s = srv.nginx(work)
    c = R.client_py("requests_reuse_signal", f"http://{S_ADDR}/index.html", stdin=True)
    c.readline()
    R.reboot_server()
    s = srv.nginx(work)
    c.tell()
    res = c.finish()
    s.stop()
    return {"client": res}


def _old_connection_or_refused(r: dict, first: dict) -> str:
    """The reset on the connection held across the crash is lost state; the client's reconnect
    to a port nobody listens on any more is a refusal."""
    return "peer-lost-state" if (r["dport"], r["sport"]) == (first["dport"], first["sport"]) else "closed-port"


@scenario("redis-reboot-nothing-listening", "peer-lost-state", ["redis-server", "redis-py"], reasons={"NO_SOCKET"},
          label=_old_connection_or_refused)
def redis_reboot_gone(work: Path):
    """redis-py holds a connection; the Redis host crashes and comes back without Redis; the next
    PING is answered by a kernel with no socket for it, and redis-py's reconnect is refused."""
    srv.redis(work)
    c = R.client_py("redis_signal", S_ADDR, stdin=True)
    c.readline()
    R.reboot_server()
    c.tell()
    return {"client": c.finish()}


@scenario("redis-keepalive-timeout", "keepalive-timeout", ["redis-server", "redis-py"], reasons={"TCP_KEEPALIVE_TIMEOUT"})
def redis_keepalive(work: Path):
    """redis-py with socket_keepalive (idle 1 s, interval 1 s, 2 probes) while the router starts
    dropping everything from the Redis host: the keepalive gives up and resets."""
    s = srv.redis(work)
    c = R.client_py("redis_pause", S_ADDR, 6, 1)
    c.readline()
    R.nft(f"table ip lab {{\n chain forward {{\n type filter hook forward priority 0; ip saddr {S_ADDR} drop\n }}\n}}\n")
    res = c.finish()
    R.flush_firewalls()
    s.stop()
    return {"client": res}


# ------------------------------------------------------------------ boxes on the path
@scenario("firewall-session-byte-limit", "middlebox-reset", ["nftables firewall", "nginx", "curl"])
def firewall_bytes(work: Path):
    """A firewall on the router resets HTTP flows that upload more than 20 kB (nftables
    `ct original bytes > 20000 reject with tcp reset`): curl's upload is cut in the server's name."""
    s = srv.nginx(work, http="client_max_body_size 10m;", server="location /up { return 200; }")
    R.nft(f"table ip lab {{\n chain forward {{\n type filter hook forward priority 0;\n"
          f" ip daddr {S_ADDR} tcp dport 80 ct original bytes > 20000 reject with tcp reset\n }}\n}}\n")
    res = curl("--data-binary", f"@{upload(work, 200_000)}", "-H", "Expect:", "--max-time", "4",
               f"http://{S_ADDR}/up").finish()
    time.sleep(0.5)
    R.flush_firewalls()
    s.stop()
    return {"client": res}


@scenario("nat-idle-timeout-redis", "idle-timeout-reset", ["nftables NAT", "redis-server", "redis-py"])
def nat_idle(work: Path):
    """The router masquerades the client (source NAT) with a 2 s established timeout and rejects
    packets it no longer tracks; redis-py's connection idles 4 s and its next PING is reset."""
    R.nsx(R.ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0", check=False)
    R.nft(f"""table ip lab {{
  chain forward {{
    type filter hook forward priority 0; ct state invalid reject with tcp reset
  }}
  chain post {{
    type nat hook postrouting priority 100; ip saddr {C_ADDR} oifname "r1" masquerade
  }}
}}
""")
    R.nsx(R.ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=2")
    s = srv.redis(work)
    try:
        res = R.client_py("redis_pause", S_ADDR, 4).finish()
    finally:
        R.flush_firewalls()
        R.nsx(R.ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=432000", check=False)
    s.stop()
    return {"client": res}


# ------------------------------------------------------------------ clean controls
@scenario("control-curl-nginx", None, ["nginx", "curl"])
def control_curl(work: Path):
    """curl fetches three pages from nginx over one keep-alive connection; clean close."""
    s = srv.nginx(work, keepalive="5s")
    u = f"http://{S_ADDR}/index.html"
    res = curl(u, u, u).finish()
    s.stop()
    return {"client": res}


@scenario("control-redis-cli", None, ["redis-server", "redis-cli"])
def control_redis(work: Path):
    """redis-cli SET, GET, PING, each on its own connection; clean closes."""
    s = srv.redis(work)
    res = [Proc(CLIENT, [R.tool("redis-cli"), "-h", S_ADDR, *cmd]).finish() for cmd in (["set", "k", "v"], ["get", "k"], ["ping"])]
    s.stop()
    return {"clients": res}


@scenario("control-ab-lighttpd", None, ["lighttpd", "ApacheBench"], delay_ms=5)
def control_ab(work: Path):
    """ApacheBench, 40 keep-alive requests over 4 connections to lighttpd, over a 5 ms path."""
    s = srv.lighttpd(work)
    res = Proc(CLIENT, [R.tool("ab"), "-q", "-k", "-n", "40", "-c", "4", f"http://{S_ADDR}/index.html"]).finish()
    s.stop()
    return {"ab": res}


@scenario("control-requests-haproxy", None, ["haproxy", "nginx", "python-requests"], delay_ms=20)
def control_haproxy(work: Path):
    """python-requests, two requests through HAProxy (default keep-alive mode) to nginx."""
    be = srv.nginx(work / "nginx", port=8080)
    p = srv.haproxy(work / "haproxy", HAPROXY_DEFAULTS + """
frontend fe
  bind :80
  default_backend be
backend be
  server web 127.0.0.1:8080
""", 80, SERVER)
    res = R.client_py("requests_reuse", f"http://{S_ADDR}/index.html", 0.2).finish()
    p.stop()
    be.stop()
    return {"client": res}


LAB = D.Lab(name="make_real_captures", tracer="rstwatch-reallab", setup=R.setup, teardown=R.teardown,
            flush_firewalls=R.flush_firewalls, client=(CLIENT, R.NET.c_if), server=(SERVER, R.NET.s_if), scenarios=SCENARIOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "captures" / "real")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("make_real_captures: needs root (network namespaces, nftables, tracefs)")
    D.run(LAB, args.out, [s for s in args.only.split(",") if s] or None)


if __name__ == "__main__":
    main()
