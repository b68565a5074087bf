"""Reproduce every reset cause for real in network namespaces and record ground truth.

Run as root:  python3 lab/make_captures.py [--out captures] [--only closed-port,...]
For each scenario: capture the traffic, record the kernel's own tcp_send_reset reasons and what
the applications saw, then write captures/<cause>.<ext> and an entry in captures/manifest.json
naming the cause of every RST frame.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import netlab as N  # noqa: E402
from lab.netlab import App, Capture, C_ADDR, CLIENT, ROUTER, S_ADDR, S6_ADDR, SERVER  # noqa: E402

SCENARIOS = {}


def scenario(cause: str, file: str, iface: str = "c0", ns: str = CLIENT, tool: str = "tcpdump", nano: bool = False,
             gz: bool = False, note: str = ""):
    def deco(fn):
        SCENARIOS[cause] = dict(fn=fn, file=file, iface=iface, ns=ns, tool=tool, nano=nano, gz=gz, note=note,
                                cause=cause, doc=(fn.__doc__ or "").strip())
        return fn
    return deco


def server(name: str, port: int, arg=None, host: str = S_ADDR) -> App:
    app = App(SERVER, name, host, port, arg)
    app.wait_for("ready")
    return app


# ------------------------------------------------------------------ scenarios
@scenario("closed-port", "closed-port.pcap")
def closed_port(port):
    """A client connects to a port with no listener; the server kernel answers RST|ACK."""
    return {"client": App(CLIENT, "client_connect", S_ADDR, port).result()}


@scenario("closed-port-ipv6", "closed-port-ipv6.pcapng", tool="dumpcap", note="IPv6, pcapng written by dumpcap")
def closed_port_v6(port):
    """The same refusal over IPv6, captured by dumpcap as pcapng."""
    return {"client": App(CLIENT, "client_connect", S6_ADDR, port).result()}


@scenario("late-synack", "late-synack.pcap")
def late_synack(port):
    """The router holds back the server's SYN-ACKs; the client's 0.5 s connect timeout fires and it
    closes; the server's retransmitted SYN-ACK then reaches a client kernel with no socket."""
    srv = server("server_echo", port, 5)
    N.nft(f"ip saddr {S_ADDR} tcp sport {port} tcp flags & (syn|ack) == syn|ack drop")
    cli = App(CLIENT, "client_give_up", S_ADDR, port, 0.5)
    res = cli.result()
    time.sleep(0.3)
    N.nft_flush()
    time.sleep(2.5)          # SYN-ACK retransmissions at ~1 s and ~3 s
    srv.kill()
    return {"client": res}


@scenario("abort-before-accept", "abort-before-accept.pcap")
def abort_before_accept(port):
    """The client completes the handshake and aborts (SO_LINGER 0) before the server accepts."""
    srv = server("server_accept_later", port, 1.0)
    cli = App(CLIENT, "client_abort_fresh", S_ADDR, port).result()
    return {"client": cli, "server": srv.result()}


@scenario("accept-queue-overflow", "accept-queue-overflow.pcap")
def accept_queue_overflow(port):
    """Backlog 1, tcp_abort_on_overflow=1 and eight simultaneous connects: the handshakes that find
    the accept queue full are answered with a RST."""
    N.nsx(SERVER, "sysctl -qw net.ipv4.tcp_abort_on_overflow=1")
    try:
        srv = server("server_slow_accept", port, 1)       # backlog 1: the accept queue holds 2
        cli = App(CLIENT, "client_burst", S_ADDR, port, 3)
        cli.wait_for("first")                             # one connection already queued
        # Hold back the next handshakes' last ACKs so their SYNs are all admitted first (a full
        # queue drops new SYNs); the SYN-ACK retransmission then brings the ACKs in together.
        N.nft(f"ip daddr {S_ADDR} tcp dport {port} tcp flags & (syn|ack) == ack drop")
        cli.tell()
        time.sleep(0.6)
        N.nft_flush()
        return {"client": cli.result(), "server": srv.result()}
    finally:
        N.nsx(SERVER, "sysctl -qw net.ipv4.tcp_abort_on_overflow=0")


@scenario("listener-closed", "listener-closed.pcap")
def listener_closed(port):
    """The server never accepts and closes its listener with three handshaken connections queued."""
    srv = server("server_never_accept", port, 1.5)
    clients = [App(CLIENT, "client_request", S_ADDR, port) for _ in range(3)]
    return {"clients": [c.result() for c in clients], "server": srv.result()}


@scenario("unread-data-close", "unread-data-close.pcap")
def unread_data_close(port):
    """The server accepts, never reads the request, and closes."""
    srv = server("server_close_unread", port)
    return {"client": App(CLIENT, "client_request", S_ADDR, port).result(), "server": srv.result()}


@scenario("linger-zero-abort", "linger-zero-abort.pcap", iface="any", note="Linux cooked capture (any)")
def linger_zero(port):
    """The server answers, then closes with SO_LINGER {1, 0}: an abortive close."""
    srv = server("server_linger_zero", port)
    return {"client": App(CLIENT, "client_request", S_ADDR, port).result(), "server": srv.result()}


@scenario("data-after-close", "data-after-close.pcap", nano=True, note="nanosecond pcap")
def data_after_close(port):
    """The server responds and closes; the client reads the EOF, then writes twice: the first write
    succeeds and draws a RST, the second fails with EPIPE."""
    srv = server("server_respond_close", port)
    return {"client": App(CLIENT, "client_write_after_close", S_ADDR, port).result(), "server": srv.result()}


@scenario("keepalive-race", "keepalive-race.pcap", iface="s0", ns=SERVER, note="captured on the server side")
def keepalive_race(port):
    """The server closes an idle keep-alive connection; its FIN is held back by the router, so the
    client's next request crosses it and hits a closed socket."""
    N.nft(f"ip saddr {S_ADDR} tcp sport {port} tcp flags & fin == fin drop")
    try:
        srv = server("server_respond_close", port, 0.8)
        cli = App(CLIENT, "client_reuse_after_idle", S_ADDR, port, 1.5).result()
        return {"client": cli, "server": srv.result()}
    finally:
        N.nft_flush()


@scenario("peer-lost-state", "peer-lost-state.pcap")
def peer_lost_state(port):
    """The server host loses the connection silently (its RST is blackholed, as in a crash); the
    client's next segment is answered by a kernel that has no socket for it."""
    srv = App(SERVER, "server_echo_then_vanish", S_ADDR, port, 0.8)
    srv.wait_for("ready")
    N.nft(f"ip saddr {S_ADDR} tcp sport {port} tcp flags & rst == rst drop")
    try:
        cli = App(CLIENT, "client_echo_pause_echo", S_ADDR, port, 2.0)
        srv.wait_for("vanished")
        time.sleep(0.3)
        N.nft_flush()
        return {"client": cli.result(), "server": srv.result()}
    finally:
        N.nft_flush()


@scenario("keepalive-timeout", "keepalive-timeout.pcap.gz", gz=True, note="gzip-compressed pcap")
def keepalive_timeout(port):
    """After the handshake the router drops everything from the server; the client's keepalive
    (idle 1 s, interval 1 s, 2 probes) gives up and resets."""
    srv = server("server_echo", port, 15)
    cli = App(CLIENT, "client_keepalive", S_ADDR, port)
    cli.wait_for("established")
    N.nft(f"ip saddr {S_ADDR} drop")
    try:
        res = cli.result(timeout=20)
    finally:
        N.nft_flush()
    srv.kill()
    return {"client": res}


@scenario("middlebox-reset", "middlebox-reset.pcap")
def middlebox_reset(port):
    """A firewall on the router rejects the client's first data segment with a TCP reset, forged
    in the server's name (its TTL gives it away)."""
    N.nft(f"ip daddr {S_ADDR} tcp dport {port} tcp flags & psh == psh reject with tcp reset")
    try:
        srv = server("server_echo", port, 3)
        cli = App(CLIENT, "client_request", S_ADDR, port).result()
        srv.kill()
        return {"client": cli}
    finally:
        N.nft_flush()


@scenario("idle-timeout-reset", "idle-timeout-reset.pcap")
def idle_timeout_reset(port):
    """The router tracks connections (conntrack, established timeout 3 s, no loose pickup) and
    rejects packets of flows it forgot; the client pauses 5 s and its next segment is reset."""
    N.nsx(ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0", check=False)
    N.nft("ct state invalid reject with tcp reset")
    N.nsx(ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=3")
    try:
        srv = server("server_echo", port, 15)
        cli = App(CLIENT, "client_echo_pause_echo", S_ADDR, port, 5.0).result()
        srv.kill()
        return {"client": cli}
    finally:
        N.nft_flush()
        N.nsx(ROUTER, "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=432000", check=False)


@scenario("out-of-window-rst", "out-of-window-rst.pcapng", tool="dumpcap", note="pcapng written by dumpcap")
def out_of_window(port, capture_path=None):
    """Two RSTs forged from the router in the server's name: one far behind the client's window
    (dropped silently), one inside it but not exact (answered by a challenge ACK). The
    connection carries on and closes normally."""
    srv = server("server_echo", port, 15)
    cli = App(CLIENT, "client_chat", S_ADDR, port, 4)
    cport = cli.wait_for("local_port")["local_port"]
    time.sleep(0.9)
    rcv_nxt = _client_rcv_nxt(capture_path, port)
    forged = []
    for offset in (-(1 << 20), 1000):
        seq = (rcv_nxt + offset) % (1 << 32)
        N.nsx(ROUTER, f"{sys.executable} {Path(__file__).with_name('forge.py')} {S_ADDR} {port} {C_ADDR} {cport} {seq} 222")
        forged.append({"seq_offset": offset})
        time.sleep(0.4)
    res = cli.result()
    return {"client": res, "server": srv.result(), "forged": forged}


def _client_rcv_nxt(path: Path, sport: int) -> int:
    """The next sequence number the client expects from the server, read from the live capture."""
    from rstwatch.sources.capture import read_segments
    from rstwatch.sources.diagnostics import Diagnostics
    seg = read_segments(path, Diagnostics(str(path)))
    sel = seg["sport"] == sport
    ends = (seg["seq"][sel].astype("int64") + seg["plen"][sel] + ((seg["flags"][sel] & 3) > 0)) % (1 << 32)
    return int(ends[-1])


@scenario("port-scan", "port-scan.pcap", note="flood: one finding for 600 resets")
def port_scan(port):
    """The client connects to 600 consecutive closed ports of the server."""
    return {"client": App(CLIENT, "client_scan", S_ADDR, 20000, 600).result(timeout=60)}


@scenario("rst-storm", "rst-storm.pcap", note="flood: one finding for 600 forged resets")
def rst_storm(port):
    """The router sprays 600 RSTs from random spoofed addresses at the client's ports: none
    belongs to a connection."""
    N.nsx(ROUTER, f"{sys.executable} {Path(__file__).with_name('forge.py')} --flood rst 10.99.0.1 {C_ADDR} 0 600 50")
    return {"forged": 600}


@scenario("syn-flood", "syn-flood.pcap", iface="s0", ns=SERVER, note="flood: captured on the server side")
def syn_flood(port):
    """600 SYNs forged in the client's name reach a listening server; its SYN-ACKs reach the real
    client, whose kernel knows nothing of them and answers each with a RST (backscatter)."""
    srv = server("server_echo", port, 4)
    N.nsx(ROUTER, f"{sys.executable} {Path(__file__).with_name('forge.py')} --flood syn {C_ADDR} {S_ADDR} {port} 600 63")
    time.sleep(1.5)
    srv.kill()
    return {"forged_syns": 600}


@scenario("normal-close", "normal-close.pcap", note="no RST: FIN/FIN closes must yield no finding")
def normal_close(port):
    """Three echo rounds and a clean FIN/FIN close in both directions."""
    srv = server("server_echo", port, 10)
    return {"client": App(CLIENT, "client_chat", S_ADDR, port, 3).result(), "server": srv.result()}


# ------------------------------------------------------------------ ground truth
def rst_frames(path: Path) -> list[dict]:
    from rstwatch.sources.segments import address_text
    from rstwatch.sources.capture import read_segments
    from rstwatch.sources.diagnostics import Diagnostics
    seg = read_segments(path, Diagnostics(str(path)))
    out = []
    for i in range(len(seg)):
        if seg["flags"][i] & 4:
            v6 = bool(seg["v6"][i])
            out.append({"frame": int(seg["frame"][i]),
                        "src": address_text(v6, int(seg["src_hi"][i]), int(seg["src_lo"][i])), "sport": int(seg["sport"][i]),
                        "dst": address_text(v6, int(seg["dst_hi"][i]), int(seg["dst_lo"][i])), "dport": int(seg["dport"][i]),
                        "_ack": bool(seg["flags"][i] & 0x10)})      # for attach_kernel_reasons; not written out
    return out


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def attach_kernel_reasons(resets: list[dict], trace: list[dict]) -> None:
    """Match tracepoint lines to RST frames by 4-tuple. When the kernel sent more RSTs on a tuple
    than the capture holds (some were dropped on the way, as in the crash scenario), the
    captured ones are the last ones. A reset sent on a listening socket is traced with wildcard
    addresses (0.0.0.0:port -> 0.0.0.0:0) and answers a stray segment carrying ACK, so it is a
    bare RST: frames left over once a tuple's own lines are used (RST|ACK frames take those
    first) get the port's wildcard lines in order. The trace's order across CPUs is not reliable
    enough to interleave the two kinds."""
    for r in resets:
        r["kernel_reason"] = None      # default: not sent by a kernel here (forged or a middlebox)
    by_tuple: dict[tuple, list[dict]] = {}
    for r in resets:
        by_tuple.setdefault((r["src"], r["sport"], r["dst"], r["dport"]), []).append(r)
    wild_frames: dict[int, list[dict]] = {}
    for key, frames in by_tuple.items():
        lines = [t for t in trace if _endpoint(t["src"]) == key[:2] and _endpoint(t["dst"]) == key[2:]]
        if len(lines) >= len(frames):
            pairs = list(zip(frames[::-1], lines[::-1]))
        else:
            preferred = [r for r in frames if r.get("_ack", True)] + [r for r in frames if not r.get("_ack", True)]
            pairs = list(zip(preferred, lines))
            taken = {id(r) for r, _ in pairs}
            wild_frames.setdefault(key[1], []).extend(r for r in frames if id(r) not in taken)
        for r, t in pairs:
            r["kernel_reason"], r["kernel_state"] = t["reason"], t["state"]
    for port, frames in wild_frames.items():
        wild = {("0.0.0.0", port), ("::", port)}
        lines = [t for t in trace if _endpoint(t["src"]) in wild and _endpoint(t["dst"]) in (("0.0.0.0", 0), ("::", 0))]
        for r, t in zip(sorted(frames, key=lambda r: r["frame"]), lines):
            r["kernel_reason"], r["kernel_state"] = t["reason"], t["state"]
    for r in resets:
        r.pop("_ack", None)


def run(out: Path, only: list[str] | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and only else {"captures": {}}
    N.setup()
    tracer = N.ResetTracer()
    try:
        for n, (name, sc) in enumerate(SCENARIOS.items()):
            if only and name not in only:
                continue
            port = 9001 + n
            raw = out / (sc["file"][:-3] if sc["gz"] else sc["file"])
            raw.unlink(missing_ok=True)
            tracer.take()
            cap = Capture(sc["ns"], sc["iface"], raw, tool=sc["tool"], nano=sc["nano"])
            try:
                kwargs = {"capture_path": raw} if "capture_path" in sc["fn"].__code__.co_varnames else {}
                apps = sc["fn"](port, **kwargs)
            finally:
                cap.stop()
                N.nft_flush()
            trace = tracer.take()
            if os.environ.get("LAB_DEBUG"):
                print(trace)
            resets = rst_frames(raw)
            attach_kernel_reasons(resets, trace)
            cause = sc["cause"].replace("-ipv6", "")
            for r in resets:
                r["cause"] = cause
                if name in ("port-scan", "rst-storm", "syn-flood"):
                    r["storm"] = True      # reported as one flood finding, not row by row
                if name == "middlebox-reset" and r["src"] == C_ADDR:
                    # The client's kernel lost the flow to the forged RST, then answered the
                    # server's FIN with a RST of its own: a follow-up of the middlebox's reset.
                    r["follows"] = resets[0]["frame"]
            if sc["gz"]:
                with open(raw, "rb") as src, gzip.open(out / sc["file"], "wb", compresslevel=9) as dst:
                    shutil.copyfileobj(src, dst)
                raw.unlink()
            os.chmod(out / sc["file"], 0o644)
            manifest["captures"][sc["file"]] = {
                "scenario": name, "cause": None if name == "normal-close" else cause,
                "what_happened": " ".join(sc["doc"].split()), "capture_point": f"{sc['ns']}:{sc['iface']}",
                "format": sc["note"] or "pcap", "resets": resets, "applications_saw": apps,
                "kernel_reasons_seen": trace and sorted({t["reason"] for t in trace}) or [],
            }
            reasons = sorted({str(r["kernel_reason"]) for r in resets})
            print(f"{sc['file']:32} {len(resets)} RST(s) kernel={reasons} apps={json.dumps(apps)[:150]}", flush=True)
    finally:
        tracer.close()
        N.teardown()
    manifest["generated_on"] = {"kernel": os.uname().release, "date": time.strftime("%Y-%m-%d")}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "captures")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("make_captures: needs root (network namespaces, nftables, tracefs)")
    run(args.out, [s for s in args.only.split(",") if s] or None)


if __name__ == "__main__":
    main()
