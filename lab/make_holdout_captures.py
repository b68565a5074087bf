"""The holdout lab: resets from real software the rules were NOT built against, kernel-labelled.

Run as root:  python3 lab/make_holdout_captures.py [--out captures/holdout] [--only name,...]

captures/ and captures/real/ score 100% because the rules were written against them. This lab judges
the rules out of sample: other servers (Apache httpd, PostgreSQL, Node.js http, tinyproxy, socat),
other clients (psql, wget, Node's http agent, Python's http.client) and other path boxes (iptables-nft
REJECT, DNAT with a conntrack timeout), in its own namespaces (ho*) and addresses (10.79/16,
lab/holdout_net.py), so it can run while the other labs run.

Ground truth, decided from the scenario's design before rstwatch is asked: the cause each scenario
sets up, checked against the kernel's own tcp_send_reset reason (a run whose first resets carry a
reason the design does not expect is redone, up to 3 times) and what each application saw. Later
RSTs of a connection already reset are follow-ups (`follows` = the first reset's frame).
The manifest has the shape of captures/real/manifest.json: lab/calibration.py scores it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import driver as D  # noqa: E402
from lab import holdout_net as H  # noqa: E402
from lab import holdout_servers as srv  # noqa: E402
from lab.driver import Scenario  # noqa: E402
from lab.holdout_net import C_ADDR, CLIENT, R_CLIENT_SIDE, ROUTER, S_ADDR, SERVER  # noqa: E402
from lab.realnet import Proc, tool  # noqa: E402

HERE = Path(__file__).resolve().parent
SCENARIOS: dict[str, Scenario] = {}
# Every server port of this lab is in 7900-7999, so that a listener's reset (traced with wildcard
# addresses, 0.0.0.0:port) is never confused with one from another lab running at the same time.
PORTS = range(7900, 8000)
AFTER_FIN = {"TCP_TIMEWAIT_SOCKET", "NO_SOCKET", "TCP_ABORT_ON_DATA"}
ABORT = {"TCP_STATE", "TCP_ABORT_ON_LINGER", "TCP_DISCONNECT_WITH_DATA"}


def scenario(name: str, cause: str | None, software: list[str], family: str, **kw):
    def deco(fn):
        SCENARIOS[name] = Scenario(name=name, fn=fn, cause=cause, doc=" ".join((fn.__doc__ or "").split()),
                                   software=software, family=family, **kw)
        return fn
    return deco


def client_py(*args: str, stdin: bool = False) -> Proc:
    """lab/holdout_clients.py under this interpreter."""
    return Proc(CLIENT, [sys.executable, str(HERE / "holdout_clients.py"), *map(str, args)], stdin=stdin)


def shell(ns: str, script: str) -> dict:
    """A shell pipeline as an operator would type it; its exit status and last words are kept."""
    return Proc(ns, ["sh", "-c", script]).finish()


def psql_pipe(port: int, host: str, *steps: str) -> dict:
    """psql reading SQL from a pipe, fed by `steps` ("sleep N" or a statement), as a cron job or a
    migration script does."""
    feed = "; ".join(s if s.startswith("sleep ") else f"echo \"{s}\"" for s in steps)
    return shell(CLIENT, f"({feed}) | {tool('psql')} -X -q -h {host} -p {port} -U postgres -d postgres "
                         f"-v ON_ERROR_STOP=1; echo \"psql exit $?\" >&2")


def wget(*args: str) -> Proc:
    return Proc(CLIENT, [tool("wget"), "-q", "-O", "/dev/null", "--tries=1", *args])


def curl(*args: str) -> Proc:
    return Proc(CLIENT, [tool("curl"), "-sS", "-o", "/dev/null", "-w", '{"result": {"http": "%{http_code}"}}\\n', *args])


def big_file(work: Path, size: int) -> Path:
    path = work / f"upload-{size}.bin"
    path.write_bytes(b"h" * size)
    return path


# ================================================================== keep-alive: a FIN crossing a request
@scenario("node-keepalive-race", "keepalive-race", ["node http server", "python http.client"], "keep-alive",
          delay_ms=100, reasons={"TCP_ABORT_ON_DATA", "NO_SOCKET"})
def node_keepalive_race(work: Path):
    """A Node.js http server with server.keepAliveTimeout = 1000 ms (Node 20 closes an idle
    connection about 1 s later than that: measured 2.0 s) behind a 100 ms path; Python's
    http.client reuses its connection after 1.9 s idle: Node's FIN and the next request cross."""
    s = srv.node(7901, "keepalive", 1000)
    res = client_py("httpclient_reuse", S_ADDR, 7901, 1.9).finish()
    s.stop()
    return {"client": res}


@scenario("uvicorn-keepalive-race", "keepalive-race", ["uvicorn", "python http.client"], "keep-alive",
          delay_ms=100, reasons={"TCP_ABORT_ON_DATA", "NO_SOCKET"})
def uvicorn_keepalive_race(work: Path):
    """uvicorn (--timeout-keep-alive 1) behind a 100 ms path; Python's http.client reuses its
    connection after 0.95 s idle: uvicorn's FIN and the next request cross on the wire."""
    s = srv.uvicorn(7902, "--timeout-keep-alive", "1")
    res = client_py("httpclient_reuse", S_ADDR, 7902, 0.95).finish()
    s.stop()
    return {"client": res}


# ================================================================== idle timeouts: data after the FIN
@scenario("postgres-idle-session-timeout", "data-after-close", ["postgresql", "psql"], "idle-close",
          reasons=AFTER_FIN)
def postgres_idle_session(work: Path):
    """PostgreSQL with idle_session_timeout = 1 s; psql reads a script from a pipe that sends its
    next statement 2.5 s after the first: the server has closed (FATAL, then FIN), psql's kernel
    acknowledged the FIN, the statement goes out and is reset."""
    s = srv.postgres(work, 7903, "idle_session_timeout=1000")
    res = psql_pipe(7903, S_ADDR, "select 1;", "sleep 2.5", "select 2;", "sleep 0.5")
    s.stop()
    return {"psql": res}


@scenario("node-request-timeout-408", "data-after-close", ["node http server", "curl (telnet)"], "idle-close",
          reasons=AFTER_FIN)
def node_request_timeout(work: Path):
    """A Node.js http server with headersTimeout = requestTimeout = 1 s (a slow-client defence);
    the client sends half a request, stalls 2.5 s, then sends the rest: Node had answered 408 and
    closed, and the rest arrives after its FIN was acknowledged."""
    s = srv.node(7904, "slow-headers", 1000)
    script = (f"(printf 'GET / HTTP/1.1\\r\\nHost: lab\\r\\n'; sleep 2.5; printf 'Accept: */*\\r\\n\\r\\n'; sleep 1) | "
              f"{tool('curl')} -sS telnet://{S_ADDR}:7904 >/dev/null; echo \"curl exit $?\" >&2")
    res = shell(CLIENT, script)
    s.stop()
    return {"client": res}


# ================================================================== closing with unread data
@scenario("node-413-connection-close", "unread-data-close", ["node http server", "wget"], "unread-data",
          reasons={"TCP_ABORT_ON_CLOSE"})
def node_413(work: Path):
    """A Node.js http server rejects uploads over 64 kB early (413 with Connection: close, body not
    read); wget posts 8 MB: Node ends the response and closes with the upload still arriving."""
    s = srv.node(7906, "body-limit", 65536)
    res = wget(f"--post-file={big_file(work, 8_000_000)}", "--timeout=5", f"http://{S_ADDR}:7906/upload").finish()
    s.stop()
    return {"client": res}


@scenario("python-http-server-post-501", "unread-data-close", ["python3 -m http.server", "curl"], "unread-data",
          reasons={"TCP_ABORT_ON_CLOSE"})
def python_http_server_post(work: Path):
    """`python3 -m http.server` (a static file server people start everywhere) receives a 2 MB POST
    from curl: it answers 501 Unsupported method without reading the body and closes."""
    root = srv.www(work)
    s = Proc(SERVER, [sys.executable, "-m", "http.server", "7907", "--bind", "0.0.0.0", "--directory", str(root)])
    srv.wait_listening(SERVER, 7907)
    res = curl("--data-binary", f"@{big_file(work, 2_000_000)}", "-H", "Expect:", "--max-time", "8",
               f"http://{S_ADDR}:7907/upload").finish()
    s.stop()
    return {"client": res}


# ================================================================== deliberate aborts
@scenario("socat-linger-zero", "linger-zero-abort", ["socat", "apache2 (event MPM)", "python http.client"], "abort",
          reasons=ABORT)
def socat_linger(work: Path):
    """socat relays port 7908 to Apache httpd (KeepAliveTimeout 1) with `linger=0` (SO_LINGER {1, 0},
    so that relay sockets never sit in TIME_WAIT); Python's http.client keeps its connection idle:
    Apache closes it after 1 s, socat passes the FIN on, waits its 0.5 s half-close timeout and
    closes abortively: a RST right after its FIN."""
    be = srv.apache(work / "apache", 7918, "KeepAlive On\nKeepAliveTimeout 1\n")
    relay = srv.socat_relay(7908, "127.0.0.1:7918", "linger=0")
    res = client_py("httpclient_reuse", S_ADDR, 7908, 2.5).finish()
    relay.stop()
    be.stop()
    return {"client": res}


@scenario("socat-linger-zero-last-ack", "linger-zero-abort", ["socat", "apache2 (event MPM)", "wget"], "abort", delay_ms=20,
          reasons={"TCP_FLAGS"})
def socat_linger_last_ack(work: Path):
    """The same socat relay with `linger=0`, but wget closes first: socat answers with its FIN and
    closes abortively while its FIN is unacknowledged (LAST_ACK), which sends no RST but erases the
    connection; wget's final ACK then reaches only the listener, which answers it with a bare RST.
    The reset is the abortive close's doing (kernel reason TCP_FLAGS, from the listener).
    The 20 ms path makes that order certain: with no delay the ACK can beat socat's close by
    microseconds and the connection ends cleanly."""
    be = srv.apache(work / "apache", 7919)
    relay = srv.socat_relay(7909, "127.0.0.1:7919", "linger=0")
    res = [wget(f"http://{S_ADDR}:7909/index.html").finish() for _ in range(2)]
    time.sleep(0.5)          # wget's last ACK is still on the 20 ms path: the listener must be there to answer it
    relay.stop()
    be.stop()
    return {"client": res}


# ================================================================== listener gone with connections queued
@scenario("apache-stop-with-queue", "listener-closed", ["apache2 (prefork MPM)", "curl", "wget"], "listener",
          reasons={"TCP_STATE"})
def apache_stop_queue(work: Path):
    """Apache httpd (prefork, one worker) busy with a slow download (wget --limit-rate); three curl
    clients connect and wait in the accept queue; the operator stops Apache (SIGTERM): the queued
    connections are reset."""
    s = srv.apache(work, 7930, "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nServerLimit 1\n"
                               "MaxRequestWorkers 1\nKeepAlive Off\n", mpm="prefork")
    (work / "www" / "big.bin").write_bytes(b"b" * 4_000_000)
    slow = wget("--limit-rate=300k", f"http://{S_ADDR}:7930/big.bin")
    time.sleep(0.5)
    queued = [curl("--max-time", "5", f"http://{S_ADDR}:7930/index.html") for _ in range(3)]
    time.sleep(0.8)
    srv.apache_stop(work)
    res = [c.finish() for c in queued]
    # The killed worker's socket still drains what the kernel holds (~1.2 MB, about 4 s at this
    # rate): wget must read it all, or its close with unread data adds a reset of its own.
    slow_res = slow.finish(timeout=25)
    s.stop()
    return {"queued": res, "slow": slow_res}


# ================================================================== refused, connect timeout
@scenario("psql-wget-closed-port", "closed-port", ["psql", "wget"], "refused", reasons={"NO_SOCKET"})
def closed_port(work: Path):
    """psql to a PostgreSQL port nobody listens on, and wget to a web port that is not up."""
    a = shell(CLIENT, f"{tool('psql')} -h {S_ADDR} -p 7910 -U postgres -c 'select 1'; echo \"psql exit $?\" >&2")
    b = wget(f"http://{S_ADDR}:7911/").finish()
    return {"psql": a, "wget": b}


@scenario("tinyproxy-upstream-down", "closed-port", ["tinyproxy", "curl"], "refused", reasons={"NO_SOCKET"})
def tinyproxy_upstream_down(work: Path):
    """curl asks tinyproxy (a forward proxy on the client host) for a site whose server is down:
    the proxy's connection to the origin is refused and curl gets a 500 from the proxy."""
    p = srv.tinyproxy(work / "tinyproxy", 7981, ns=CLIENT)
    res = curl("-x", "http://127.0.0.1:7981", "--max-time", "4", f"http://{S_ADDR}:7931/").finish()
    p.stop()
    return {"client": res}


@scenario("wget-connect-timeout", "late-synack", ["wget", "apache2 (event MPM)"], "refused", delay_ms=300,
          reasons={"NO_SOCKET"})
def wget_connect_timeout(work: Path):
    """A 300 ms path (600 ms round trip) and wget --connect-timeout=0.4: wget gives up before the
    SYN-ACK arrives, and its kernel answers the late SYN-ACK with a RST."""
    s = srv.apache(work, 7912)
    res = wget("--connect-timeout=0.4", f"http://{S_ADDR}:7912/").finish()
    time.sleep(1.0)
    s.stop()
    return {"client": res}


# ================================================================== lost state: crash, keepalive
@scenario("postgres-reboot-service-back", "peer-lost-state", ["postgresql", "psql"], "lost-state",
          reasons={"TCP_FLAGS"})
def postgres_reboot(work: Path):
    """psql holds a session (statements from a pipe); the database host crashes and comes back with
    PostgreSQL running again; psql's next statement reaches the new listener, which answers the
    old connection's segment with a RST."""
    s = srv.postgres(work, 7913)
    c = Proc(CLIENT, [tool("psql"), "-X", "-h", S_ADDR, "-p", "7913", "-U", "postgres", "-d", "postgres",
                      "-v", "ON_ERROR_STOP=1"], stdin=True)
    c.tell("select 1;")
    time.sleep(1.0)
    H.crash_server()
    s.stop()             # reap the dead postmaster: a zombie's pid would look alive to its lock file
    s = srv.postgres(work, 7913)
    c.tell("select 2;")
    c.tell("\\q")
    res = c.finish()
    s.stop()
    return {"psql": res}


@scenario("postgres-server-keepalive", "keepalive-timeout", ["postgresql", "psql"], "lost-state",
          capture="server", reasons={"TCP_KEEPALIVE_TIMEOUT"})
def postgres_keepalive(work: Path):
    """PostgreSQL with tcp_keepalives_idle = 1, interval = 1, count = 2; an idle psql session whose
    host drops off the network (the router drops everything from it): the server's keepalive gives
    up and resets."""
    s = srv.postgres(work, 7914, "tcp_keepalives_idle=1", "tcp_keepalives_interval=1", "tcp_keepalives_count=2")
    c = Proc(CLIENT, [tool("psql"), "-X", "-h", S_ADDR, "-p", "7914", "-U", "postgres", "-d", "postgres"], stdin=True)
    c.tell("select 1;")
    time.sleep(0.7)
    H.nft(f"table ip lab {{\n chain forward {{\n type filter hook forward priority 0; ip saddr {C_ADDR} drop\n }}\n}}\n")
    time.sleep(5.5)
    H.flush_firewalls()
    c.tell("\\q")
    res = c.finish(timeout=5)
    s.stop()
    return {"psql": res}


# ================================================================== boxes on the path
@scenario("iptables-string-reject", "middlebox-reset", ["iptables-nft REJECT", "apache2 (event MPM)", "curl", "wget"],
          "middlebox")
def iptables_string(work: Path):
    """The router's firewall (iptables-nft) blocks requests for /admin with
    `-m string --string /admin -j REJECT --reject-with tcp-reset`: curl and wget are reset in the
    server's name, mid-connection; the server never hears of it."""
    s = srv.apache(work, 7915)
    H.nsx(ROUTER, "iptables-nft -A FORWARD -p tcp --dport 7915 -m string --algo bm --string /admin "
                  "-j REJECT --reject-with tcp-reset")
    a = curl("--max-time", "4", f"http://{S_ADDR}:7915/admin/").finish()
    b = wget("--timeout=4", f"http://{S_ADDR}:7915/admin/users").finish()
    time.sleep(0.3)
    s.stop()
    return {"curl": a, "wget": b}


@scenario("dnat-idle-timeout-postgres", "idle-timeout-reset", ["iptables-nft DNAT", "postgresql", "psql"], "middlebox",
          reasons={"NO_SOCKET"})
def dnat_idle(work: Path):
    """A port forward on the router (iptables-nft DNAT 10.79.1.1:7916 -> the database) with a 2 s
    conntrack established timeout and strict tracking (nf_conntrack_tcp_loose=0); psql idles 4 s:
    its next segment no longer matches the NAT, reaches the router itself, and the router's
    kernel answers it with a RST in the database's name."""
    H.nsx(ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0", check=False)
    H.nsx(ROUTER, f"iptables-nft -t nat -A PREROUTING -d {R_CLIENT_SIDE} -p tcp --dport 7916 "
                  f"-j DNAT --to-destination {S_ADDR}:7916")
    H.nsx(ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=2")
    s = srv.postgres(work, 7916)
    try:
        res = psql_pipe(7916, R_CLIENT_SIDE, "select 1;", "sleep 4", "select 2;", "sleep 0.5")
    finally:
        H.nsx(ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=432000", check=False)
    # The database still holds the session; stopping it (a lab step, not part of the story) would send
    # its goodbye un-NATed to the client and draw more resets: keep that off the wire.
    H.nft(f"table ip quiet {{\n chain forward {{\n type filter hook forward priority 0; ip saddr {S_ADDR} drop\n }}\n}}\n")
    s.stop()
    return {"psql": res}


# ================================================================== clean controls
@scenario("control-wget-apache", None, ["apache2 (event MPM)", "wget"], "control", delay_ms=5)
def control_wget(work: Path):
    """wget fetches three pages from Apache httpd over one keep-alive connection; clean close."""
    s = srv.apache(work, 7920)
    u = f"http://{S_ADDR}:7920/index.html"
    res = wget(u, u, u).finish()
    s.stop()
    return {"client": res}


@scenario("control-psql-postgres", None, ["postgresql", "psql"], "control")
def control_psql(work: Path):
    """psql runs three statements, each in its own session; clean terminations."""
    s = srv.postgres(work, 7921)
    res = [shell(CLIENT, f"{tool('psql')} -X -h {S_ADDR} -p 7921 -U postgres -d postgres -c '{q}' >/dev/null; "
                         "echo \"psql exit $?\" >&2") for q in ("select 1", "create table t(a int)", "select count(*) from t")]
    s.stop()
    return {"psql": res}


@scenario("control-node-agent", None, ["node http server", "node http agent"], "control", delay_ms=20)
def control_node(work: Path):
    """A Node.js client with a keep-alive agent, three requests 0.2 s apart to a Node.js http server."""
    s = srv.node(7922, "keepalive", 5000)
    res = Proc(CLIENT, [tool("node"), str(HERE / "holdout_node_client.js"), f"http://{S_ADDR}:7922/index.html",
                        "200", "3"]).finish()
    s.stop()
    return {"client": res}


# ================================================================== ground truth
def _unmapped(endpoint: str) -> str:
    """[::ffff:10.79.2.2]:80 -> 10.79.2.2:80: dual-stack listeners (Apache's `Listen PORT`) trace
    IPv4 peers as IPv4-mapped IPv6 addresses; the capture shows them as IPv4."""
    return endpoint.replace("[::ffff:", "").replace("]:", ":") if endpoint.startswith("[::ffff:") else endpoint


_this_lab = D.lab_trace_filter("10.79.", PORTS)


def ours(trace: list[dict]) -> list[dict]:
    """Trace lines of this lab only, their addresses as the capture shows them."""
    return _this_lab([dict(t, src=_unmapped(t["src"]), dst=_unmapped(t["dst"])) for t in trace])


LAB = D.Lab(name="make_holdout_captures", tracer="rstwatch-holdout", setup=H.setup, teardown=H.teardown,
            flush_firewalls=H.flush_firewalls, client=(CLIENT, H.C_IF), server=(SERVER, H.S_IF), ours=ours,
            scenarios=SCENARIOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE.parent / "captures" / "holdout")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--list", action="store_true", help="print the scenarios and exit")
    args = ap.parse_args()
    if args.list:
        for name, sc in SCENARIOS.items():
            print(f"{name:34} {sc.family:12} {sc.cause}")
        return
    if os.geteuid() != 0:
        sys.exit("make_holdout_captures: needs root (network namespaces, nftables, tracefs)")
    D.run(LAB, args.out, [s for s in args.only.split(",") if s] or None)


if __name__ == "__main__":
    main()
