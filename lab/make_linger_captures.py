"""The linger lab (issue #22 item 1): SO_LINGER 0 after a whole answer vs a close with unread data.

Run as root:  python3 lab/make_linger_captures.py [--out captures/linger] [--only name,...]

Both send RST|ACK acknowledging what the peer sent after the sender's last write; the HTTP/1
framing of those bytes says which. httperf --close-with-reset reads each whole response, then closes
with SO_LINGER {1, 0} (kernel reason TCP_STATE); a small static server given a POST closes with the
request body still arriving (TCP_ABORT_ON_CLOSE). Real programs from
Debian, in the lab's own namespaces and addresses (lg*, 10.88/16); ground truth and kernel labels
as in the other labs (lab/driver.py), so lab/calibration.py scores it.

The `heldout-*` scenarios (mini_httpd, busybox httpd) were kept aside while the framing features
and rules were written, and run once at the end: their score is the out-of-sample figure
(docs/linger.md).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import driver as D  # noqa: E402
from lab.driver import Scenario  # noqa: E402
from lab.realnet import Proc, tool, wait_listening  # noqa: E402
from lab.topology import Topology, nsx  # noqa: E402

HERE = Path(__file__).resolve().parent
NET = Topology(client="lgc", wire="lgw", router="lgr", server="lgs", net="10.88", c_if="gc0", s_if="gs0",
               r_c_if="gr0", r_s_if="gr1", w_c_if="gwc", w_r_if="gwr")
CLIENT, WIRE, ROUTER, SERVER = NET.namespaces()
S_ADDR = NET.s_addr
SCENARIOS: dict[str, Scenario] = {}
PORTS = range(7800, 7900)            # this lab's server ports: a listener's traced reset names only its port
DEBIAN_PACKAGES = {"httperf": "httperf", "webfsd": "webfs", "mini_httpd": "mini-httpd", "busybox": "busybox",
                   "curl": "curl", "tcpdump": "tcpdump", "editcap": "wireshark-common"}
SNAPLEN = 200                        # as the other labs (and about what live keeps: 192)
BODY_KB = 512                        # a POST body far larger than the socket buffers take at once


scenario = D.scenario_registry(SCENARIOS, family="linger")


def ensure_tools() -> None:
    D.install_missing(DEBIAN_PACKAGES)


def docroot(work: Path) -> Path:
    """A folder with one 4 KB page (a few segments: the answer is not one packet)."""
    root = work / "www"
    root.mkdir()
    (root / "page.html").write_text("<html><body>" + "linger lab " * 370 + "</body></html>\n")
    return root


def webfs(work: Path, port: int) -> Proc:
    p = Proc(SERVER, [tool("webfsd"), "-F", "-4", "-p", str(port), "-r", str(docroot(work)), "-i", S_ADDR])
    wait_listening(SERVER, port)
    return p


def mini_httpd(work: Path, port: int) -> Proc:
    p = Proc(SERVER, [tool("mini_httpd"), "-D", "-p", str(port), "-h", S_ADDR, "-d", str(docroot(work))])
    wait_listening(SERVER, port)
    return p


def busybox_httpd(work: Path, port: int) -> Proc:
    p = Proc(SERVER, [tool("busybox"), "httpd", "-f", "-p", f"{S_ADDR}:{port}", "-h", str(docroot(work))])
    wait_listening(SERVER, port)
    return p


def httperf(port: int, conns: int, reset: bool) -> Proc:
    """httperf: `conns` connections, one GET each, 4 a second; with --close-with-reset each is closed
    by SO_LINGER {1, 0} once its whole response is in."""
    return Proc(CLIENT, [tool("httperf"), "--hog", "--server", S_ADDR, "--port", str(port), "--uri", "/page.html",
                         "--num-conns", str(conns), "--num-calls", "1", "--rate", "4", "--timeout", "5",
                         *(["--close-with-reset"] if reset else [])])


def curl_post(work: Path, port: int) -> Proc:
    """curl POSTs a large body (no Expect: 100-continue, so the body follows the header at once)."""
    body = work / "body.bin"
    body.write_bytes(os.urandom(BODY_KB << 10))
    return Proc(CLIENT, [tool("curl"), "-sS", "-o", str(work / "answer"), "-w", "%{http_code}\n", "-H", "Expect:",
                         "--data-binary", f"@{body}", f"http://{S_ADDR}:{port}/page.html"])


def curl_get(work: Path, port: int) -> Proc:
    return Proc(CLIENT, [tool("curl"), "-sS", "-o", str(work / "page"), "-w", "%{http_code}\n",
                         f"http://{S_ADDR}:{port}/page.html"])


def small_buffers() -> None:
    """Small receive buffers at the server, so a POST body cannot all be queued before it answers."""
    nsx(SERVER, "sysctl -qw net.ipv4.tcp_rmem='4096 16384 16384'")


@scenario("httperf-reset-webfs", "linger-zero-abort", ["httperf", "webfs (webfsd)"], reasons={"TCP_STATE"})
def httperf_reset_webfs(work: Path):
    """httperf --close-with-reset fetches a 4 KB page from webfsd four times: each whole response is
    read, then the connection is closed with SO_LINGER {1, 0}: a RST|ACK acknowledging the response."""
    s = webfs(work, 7801)
    res = httperf(7801, 4, reset=True).finish()
    time.sleep(0.3)
    s.stop()
    return {"httperf": res}


@scenario("curl-post-webfs", "unread-data-close", ["curl", "webfs (webfsd)"], reasons={"TCP_ABORT_ON_CLOSE"})
def curl_post_webfs(work: Path):
    """curl POSTs 512 KB to webfsd, which serves files only: it reads the request header and closes
    without an answer, the body still arriving, unread."""
    small_buffers()
    s = webfs(work, 7802)
    res = curl_post(work, 7802).finish()
    time.sleep(0.3)
    s.stop()
    return {"curl": res}


@scenario("control-httperf-webfs", None, ["httperf", "curl", "webfs (webfsd)"])
def control_webfs(work: Path):
    """The control: httperf without --close-with-reset, and curl GETs, against webfsd: clean closes."""
    s = webfs(work, 7803)
    res = httperf(7803, 3, reset=False).finish()
    gets = [curl_get(work, 7803).finish() for _ in range(2)]
    time.sleep(0.3)
    s.stop()
    return {"httperf": res, "curl": gets}


@scenario("heldout-httperf-reset-mini-httpd", "linger-zero-abort", ["httperf", "mini_httpd"], reasons={"TCP_STATE"})
def heldout_httperf_mini(work: Path):
    """Held out: httperf --close-with-reset against mini_httpd (its own headers, Connection: close)."""
    s = mini_httpd(work, 7811)
    res = httperf(7811, 4, reset=True).finish()
    time.sleep(0.3)
    s.stop()
    return {"httperf": res}


@scenario("heldout-curl-post-busybox-httpd", "unread-data-close", ["curl", "busybox httpd"],
          reasons={"TCP_ABORT_ON_CLOSE"})
def heldout_post_busybox(work: Path):
    """Held out: curl POSTs 512 KB to busybox httpd's static page, which it answers without reading
    the body and closes."""
    small_buffers()
    s = busybox_httpd(work, 7812)
    res = curl_post(work, 7812).finish()
    time.sleep(0.3)
    s.stop()
    return {"curl": res}


LAB = D.Lab(name="make_linger_captures", tracer="rstwatch-linger", setup=NET.setup, teardown=NET.teardown,
            flush_firewalls=NET.flush_firewalls, client=(CLIENT, NET.c_if), server=(SERVER, NET.s_if), ours=D.lab_trace_filter("10.88.", PORTS),
            scenarios=SCENARIOS)


def main() -> None:
    D.main(LAB, HERE.parent / "captures" / "linger", ensure_tools, SNAPLEN, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
