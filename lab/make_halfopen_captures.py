"""The half-open discovery lab (issue #22 item 2): a SYN on a 4-tuple the server still holds.

Run as root:  python3 lab/make_halfopen_captures.py [--out captures/halfopen] [--only name,...]

A client that reconnects from a fixed source port (curl --local-port) meets the server's older
connection or attempt on the same 4-tuple: the server answers the new SYN with a bare ACK of the old
state (RFC 5961 challenge ACK), and the client's kernel resets it (seq = that ACK's ack), which clears
the old state; the client's next SYN then connects. Two reasons the old state is there:
- the client's host lost an established connection (killed with its FIN and RST dropped, its socket
  destroyed as a crash would: the server still holds it);
- the client gave up an earlier attempt whose SYN-ACK came late (the path dropped the SYN-ACKs; the
  server still holds the request in SYN_RECV).
Captured on the server's link (what the client's host sent into the void never gets there). Its own
namespaces and addresses (hf*, 10.87/16); ground truth and kernel labels as in the other labs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import driver as D  # noqa: E402
from lab.driver import Scenario  # noqa: E402
from lab.realnet import Proc, tool, wait_listening  # noqa: E402
from lab.topology import Topology, nsx  # noqa: E402

NET = Topology(client="hfc", wire="hfw", router="hfr", server="hfs", net="10.87", c_if="fc0", s_if="fs0",
               r_c_if="fr0", r_s_if="fr1", w_c_if="fwc", w_r_if="fwr")
CLIENT, WIRE, ROUTER, SERVER = NET.namespaces()
C_ADDR, S_ADDR = NET.c_addr, NET.s_addr
HERE = Path(__file__).resolve().parent
SCENARIOS: dict[str, Scenario] = {}
PORTS = range(7620, 7640)
DEBIAN_PACKAGES = {"curl": "curl", "socat": "socat", "tcpdump": "tcpdump", "nft": "nftables"}
# The kernel's reason for a RST sent in SYN_SENT on an unacceptable ACK (Linux >= 6.10)
REASONS = {"TCP_INVALID_ACK_SEQUENCE"}


scenario = D.scenario_registry(SCENARIOS, family="half-open", capture="server")


def ensure_tools() -> None:
    D.install_missing(DEBIAN_PACKAGES)


def echo_server(port: int, *opts: str) -> Proc:
    p = Proc(SERVER, [tool("socat"), *opts, f"TCP-LISTEN:{port},reuseaddr,fork", "EXEC:cat"])
    wait_listening(SERVER, port)
    return p


def curl_from(local_port: int, port: int, say: str) -> Proc:
    """curl's telnet:// client from a fixed source port, sending one line and waiting a second."""
    return Proc(CLIENT, ["sh", "-c", f"(echo {say}; sleep 1.5) | {tool('curl')} -sS --max-time 2.5 --local-port {local_port} "
                                     f"telnet://{S_ADDR}:{port}; echo \"curl exit $?\" >&2"])


def drop_from_client() -> None:
    NET.nft(f"table ip void {{\n chain forward {{\n type filter hook forward priority 0; ip saddr {C_ADDR} drop\n }}\n}}\n")


def drop_synacks() -> None:
    NET.nft(f"table ip void {{\n chain forward {{\n type filter hook forward priority 0; "
            f"ip saddr {S_ADDR} tcp flags & (syn | ack) == syn | ack drop\n }}\n}}\n")


def undrop() -> None:
    nsx(ROUTER, "nft delete table ip void")


@scenario("curl-reconnect-after-client-crash", "half-open-lost-connection", ["socat (echo server)", "curl --local-port"],
          reasons=REASONS)
def lost_established(work: Path):
    """curl (telnet://, source port 40001) talks to a socat echo server; the client's host crashes:
    curl is killed and its host's FIN and RST never reach the server (dropped on the way), and its
    socket is gone (ss -K, as a reboot). curl then reconnects from the same port: the server still
    holds the old connection and answers the SYN with a challenge ACK; the client resets it, and
    its retransmitted SYN connects."""
    s = echo_server(7621)
    first = Proc(CLIENT, ["sh", "-c", f"(echo hello; sleep 30) | exec {tool('curl')} -sS --local-port 40001 "
                                      f"telnet://{S_ADDR}:7621"])
    time.sleep(1.0)
    drop_from_client()
    nsx(CLIENT, "pkill -9 -x curl", check=False)
    first.stop()
    time.sleep(0.3)
    nsx(CLIENT, f"ss -K dst {S_ADDR} dport = :7621", check=False)
    time.sleep(0.2)
    undrop()
    again = curl_from(40001, 7621, "again").finish()
    time.sleep(0.3)
    s.stop()
    return {"curl_again": again}


@scenario("curl-reconnect-after-late-synack", "half-open-abandoned-attempt", ["socat (echo server)", "curl --local-port"],
          reasons=REASONS)
def abandoned_attempt(work: Path):
    """The path drops the server's SYN-ACKs; curl (--connect-timeout 0.5, source port 40002) gives up.
    The server still holds the attempt (SYN_RECV, retransmitting its SYN-ACK). The path heals and curl
    tries again from the same port before the server's next SYN-ACK: the server answers the new SYN
    with an ACK of the old attempt; the client resets it and its next SYN connects."""
    s = echo_server(7622)
    drop_synacks()
    first = Proc(CLIENT, [tool("curl"), "-sS", "--connect-timeout", "0.5", "--local-port", "40002",
                          f"telnet://{S_ADDR}:7622"]).finish()
    time.sleep(0.8)           # the server's SYN-ACK retransmissions: 1 s, then 3 s after the SYN
    undrop()
    again = curl_from(40002, 7622, "again").finish()
    time.sleep(0.3)
    s.stop()
    return {"curl_first": first, "curl_again": again}


@scenario("control-curl-same-port-after-close", None, ["socat (echo server, -T 1)", "curl --local-port"])
def control(work: Path):
    """The control: the echo server closes an idle connection first (socat -T 1), and curl connects
    again from the same source port: the server's TIME_WAIT takes the new SYN, no challenge, no reset."""
    s = echo_server(7623, "-T", "1")
    first = curl_from(40003, 7623, "hello").finish()
    time.sleep(0.3)
    again = curl_from(40003, 7623, "again").finish()
    s.stop()
    return {"curl_first": first, "curl_again": again}


ours = D.lab_trace_filter("10.87.", PORTS)     # trace lines of this lab only


LAB = D.Lab(name="make_halfopen_captures", tracer="rstwatch-halfopen", setup=NET.setup, teardown=NET.teardown,
            flush_firewalls=NET.flush_firewalls, client=(CLIENT, NET.c_if), server=(SERVER, NET.s_if), ours=ours,
            scenarios=SCENARIOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE.parent / "captures" / "halfopen")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("make_halfopen_captures: needs root (network namespaces, nftables, tracefs)")
    ensure_tools()
    D.run(LAB, args.out, [s for s in args.only.split(",") if s] or None)


if __name__ == "__main__":
    main()
