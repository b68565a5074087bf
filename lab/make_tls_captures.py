"""The TLS lab (issue #22 item 1): SO_LINGER 0 vs a close with unread data when the payload is TLS.

Run as root:  python3 lab/make_tls_captures.py [--out captures/tls] [--only name,...]

Under TLS the HTTP/1 framing the linger lab reads is encrypted; what the wire still shows is the
record layer: each record's content type (handshake, application data, alert), and in TLS 1.3 every
record sent once keys are set, alerts included, as application data. httperf --ssl
--close-with-reset reads each whole response (TLS 1.2 and 1.3), sends its close_notify and closes
with SO_LINGER {1, 0} (kernel reason TCP_STATE); gnutls-cli refusing a self-signed certificate stops
reading the server's TLS 1.3 flight at the certificate, sends an alert and closes with the rest of the
flight unread (TCP_ABORT_ON_CLOSE). Real programs from Debian (OpenSSL's s_server, GnuTLS's
gnutls-cli, stunnel4, httperf with --ssl), in the lab's own namespaces and addresses (tl*, 10.89/16);
ground truth and kernel labels as in the other labs (lab/driver.py), so lab/calibration.py scores it.

The `heldout-*` scenarios (stunnel4 as the server) were kept aside while the TLS features and rules
were written, and run once at the end: their score is the out-of-sample figure (docs/causes.md).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import driver as D  # noqa: E402
from lab.driver import Scenario  # noqa: E402
from lab.realnet import Proc, tool, wait_listening  # noqa: E402
from lab.topology import Topology  # noqa: E402

HERE = Path(__file__).resolve().parent
NET = Topology(client="tlc", wire="tlw", router="tlr", server="tls", net="10.89", c_if="tc0", s_if="ts0",
               r_c_if="tr0", r_s_if="tr1", w_c_if="twc", w_r_if="twr")
CLIENT, WIRE, ROUTER, SERVER = NET.namespaces()
S_ADDR = NET.s_addr
SCENARIOS: dict[str, Scenario] = {}
PORTS = range(8400, 8500)            # this lab's server ports: a listener's traced reset names only its port
DEBIAN_PACKAGES = {"gnutls-cli": "gnutls-bin", "openssl": "openssl",
                   "stunnel4": "stunnel4", "httperf": "httperf", "webfsd": "webfs", "tcpdump": "tcpdump",
                   "editcap": "wireshark-common"}
SNAPLEN = 200                        # as the other labs (and about what live keeps: 192)


scenario = D.scenario_registry(SCENARIOS, family="tls")


def ensure_tools() -> None:
    D.install_missing(DEBIAN_PACKAGES)


def certificate(work: Path) -> tuple[Path, Path]:
    """A throwaway self-signed key and certificate for the server."""
    key, cert = work / "key.pem", work / "cert.pem"
    subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=tls-lab", "-keyout", str(key), "-out", str(cert)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o644)
    return key, cert


def openssl_www(work: Path, port: int, *opts: str) -> Proc:
    """openssl s_server -www: answers a GET with a status page (HTTP/1.0) and closes."""
    key, cert = certificate(work)
    p = Proc(SERVER, [tool("openssl"), "s_server", "-quiet", "-accept", str(port), "-key", str(key),
                      "-cert", str(cert), "-www", *opts])
    wait_listening(SERVER, port)
    return p


def docroot(work: Path) -> Path:
    """A folder with one 4 KB page (a few segments: the answer is not one packet)."""
    root = work / "www"
    root.mkdir()
    (root / "page.html").write_text("<html><body>" + "tls lab " * 500 + "</body></html>\n")
    return root


def stunnel_webfs(work: Path, port: int, tls_max: str = "TLSv1.2") -> list[Proc]:
    """stunnel4 terminating TLS (up to `tls_max`) on `port` in front of webfsd on the server's loopback."""
    backend = port + 50
    web = Proc(SERVER, [tool("webfsd"), "-F", "-4", "-p", str(backend), "-r", str(docroot(work)), "-i", "127.0.0.1"])
    wait_listening(SERVER, backend)
    key, cert = certificate(work)
    conf = work / "stunnel.conf"
    conf.write_text(f"foreground = yes\npid =\n[lab]\naccept = {S_ADDR}:{port}\nconnect = 127.0.0.1:{backend}\n"
                    f"cert = {cert}\nkey = {key}\nsslVersionMax = {tls_max}\n")
    tun = Proc(SERVER, [tool("stunnel4"), str(conf)])
    wait_listening(SERVER, port)
    return [tun, web]


def httperf_ssl(port: int, conns: int, reset: bool, uri: str = "/") -> Proc:
    """httperf over TLS: `conns` connections, one GET each, 4 a second; with --close-with-reset each is
    closed by SO_LINGER {1, 0} once its whole response is in."""
    return Proc(CLIENT, [tool("httperf"), "--hog", "--ssl", "--server", S_ADDR, "--port", str(port), "--uri", uri,
                         "--num-conns", str(conns), "--num-calls", "1", "--rate", "4", "--timeout", "5",
                         *(["--close-with-reset"] if reset else [])])


@scenario("httperf-reset-openssl-tls12", "linger-zero-abort", ["httperf --ssl", "openssl s_server -www -tls1_2"],
          reasons={"TCP_STATE"})
def httperf_reset_openssl12(work: Path):
    """httperf --ssl --close-with-reset against openssl s_server -www limited to TLS 1.2: the server
    answers and sends its close_notify (an alert record, type 21, in TLS 1.2), httperf sends its own
    and, once the server's FIN is in, closes with SO_LINGER {1, 0}: a RST|ACK of that FIN."""
    s = openssl_www(work, 8402, "-tls1_2")
    res = httperf_ssl(8402, 4, reset=True).finish()
    time.sleep(0.3)
    s.stop()
    return {"httperf": res}


@scenario("httperf-reset-openssl-tls13", "linger-zero-abort", ["httperf --ssl", "openssl s_server -www"],
          reasons={"TCP_STATE"})
def httperf_reset_openssl13(work: Path):
    """The same with TLS 1.3: both close_notify alerts are encrypted, each a 24-byte segment that
    shows only an application-data record."""
    s = openssl_www(work, 8403)
    res = httperf_ssl(8403, 4, reset=True).finish()
    time.sleep(0.3)
    s.stop()
    return {"httperf": res}


def refuse_certificate(work: Path, port: int, *server_opts: str) -> dict:
    """gnutls-cli, verifying, connects to openssl s_server -www with its self-signed certificate."""
    req = work / "get.txt"
    req.write_bytes(b"GET / HTTP/1.0\r\n\r\n")
    s = openssl_www(work, port, *server_opts)
    c = Proc(CLIENT, ["sh", "-c", f"{tool('gnutls-cli')} -p {port} {S_ADDR} < {req}"])
    res = c.finish(timeout=5)
    time.sleep(0.3)
    s.stop()
    return {"gnutls-cli": res}


@scenario("gnutls-cli-refuses-cert", "unread-data-close", ["gnutls-cli (verifying)", "openssl s_server -www"],
          reasons={"TCP_ABORT_ON_CLOSE"})
def refuses_cert_tls13(work: Path):
    """gnutls-cli refuses the server's self-signed certificate (TLS 1.3): it stops reading the
    server's first flight at the certificate, sends an alert (encrypted with the handshake keys: the
    wire shows a 24-byte application-data record after the server's handshake records) and closes
    with the rest of that flight unread: FIN, then RST|ACK (TCP_ABORT_ON_CLOSE). With TLS 1.2 the
    same refusal gave no reset (the client reads the whole flight before it checks the certificate)."""
    return refuse_certificate(work, 8405)


@scenario("control-tls", None, ["httperf --ssl", "gnutls-cli", "openssl s_server -www"])
def control_tls(work: Path):
    """The control: httperf --ssl without --close-with-reset, and gnutls-cli GETs (not verifying),
    against openssl s_server -www: clean closes."""
    s = openssl_www(work, 8406, "-tls1_2")
    res = httperf_ssl(8406, 3, reset=False).finish()
    s.stop()
    req = work / "get.txt"
    req.write_bytes(b"GET / HTTP/1.0\r\n\r\n")
    o = openssl_www(work, 8407)
    gets = [Proc(CLIENT, ["sh", "-c", f"{tool('gnutls-cli')} --insecure -p 8407 {S_ADDR} < {req}"]).finish()
            for _ in range(2)]
    time.sleep(0.3)
    o.stop()
    return {"httperf": res, "gnutls-cli": gets}


@scenario("heldout-httperf-reset-stunnel", "linger-zero-abort", ["httperf --ssl", "stunnel4", "webfs (webfsd)"],
          reasons={"TCP_STATE"})
def heldout_httperf_stunnel(work: Path):
    """Held out: httperf --ssl --close-with-reset against stunnel4 terminating TLS (1.2) in front of
    webfsd (a 4 KB page)."""
    procs = stunnel_webfs(work, 8411)
    res = httperf_ssl(8411, 4, reset=True, uri="/page.html").finish()
    time.sleep(0.3)
    for p in procs:
        p.stop()
    return {"httperf": res}


@scenario("heldout-gnutls-cli-refuses-stunnel-cert", "unread-data-close", ["gnutls-cli (verifying)", "stunnel4"],
          reasons={"TCP_ABORT_ON_CLOSE"})
def heldout_gnutls_cli_refuses_stunnel(work: Path):
    """Held out: gnutls-cli, verifying, refuses stunnel4's self-signed certificate (TLS 1.3).
    (openssl s_client -verify_return_error, tried first, closed cleanly over TLS 1.2 and 1.3 alike:
    it reads the whole flight before it stops.)"""
    procs = stunnel_webfs(work, 8412, "TLSv1.3")
    c = Proc(CLIENT, ["sh", "-c", f"echo | {tool('gnutls-cli')} -p 8412 {S_ADDR}"])
    res = c.finish(timeout=5)
    time.sleep(0.3)
    for p in procs:
        p.stop()
    return {"gnutls-cli": res}


LAB = D.Lab(name="make_tls_captures", tracer="rstwatch-tls", setup=NET.setup, teardown=NET.teardown,
            flush_firewalls=NET.flush_firewalls, client=(CLIENT, NET.c_if), server=(SERVER, NET.s_if),
            ours=D.lab_trace_filter("10.89.", PORTS), scenarios=SCENARIOS)


def main() -> None:
    D.main(LAB, HERE.parent / "captures" / "tls", ensure_tools, SNAPLEN, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
