"""The `app` column (sources/framing.py): what a segment's first payload bytes say about HTTP/1
and TLS framing, the same from the compiled reader (hotloops.pyx) and its Python twin, within
whatever the capture kept of the payload, and never more than kinds and lengths."""
from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from rstwatch import hotloops_py as twin
from rstwatch.sources import framing as F

compiled = pytest.importorskip("rstwatch.hotloops")

REPLY = (b"HTTP/1.1 200 OK\r\nDate: Fri, 04 Dec 2026 10:26:31 GMT\r\nContent-Length: 2\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n\r\nok")
ERROR = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length:  0 \r\nConnection: close\r\n\r\n"
POST = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 524288\r\n\r\n" + b"x" * 40
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"
ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00])        # TLS close_notify (warning)


def code(kind: int, length: int = 0, last_chunk: bool = False) -> int:
    return kind | (F.LAST_CHUNK if last_chunk else 0) | (length << F.LENGTH_SHIFT)


@pytest.mark.parametrize("payload,want", [
    (REPLY, code(F.HTTP_REPLY, len(REPLY))),                     # header + Content-Length: the whole reply
    (ERROR, code(F.HTTP_ERROR_REPLY, len(ERROR))),               # header names in any case, blanks around the value
    (POST, code(F.HTTP_REQUEST, POST.index(b"\r\n\r\n") + 4 + 524288)),
    (GET, code(F.HTTP_REQUEST, len(GET))),                       # a request without a body: its header
    (CHUNKED, code(F.HTTP_REPLY, 0, last_chunk=True)),           # chunked: no length, its last chunk seen
    (b"0\r\n\r\n", code(F.NONE, last_chunk=True)),
    (ALERT, F.TLS_ALERT),
    (NO_CONTENT, code(F.HTTP_REPLY, len(NO_CONTENT))),          # no body by its status
    (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", code(F.HTTP_REPLY)),            # a reply without a length
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", code(F.HTTP_REPLY)),  # a length that is not one
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9", code(F.HTTP_REPLY)),            # header cut off by the snap
    (b"GETTING", F.NONE), (b"", F.NONE), (b"\x15\x03", F.NONE), (b"\x18\x03\x03\x00\x02", F.NONE),
    (b"\x16\x03\x01\x00\x05", F.TLS_HANDSHAKE), (b"\x14\x03\x03\x00\x01", F.TLS_HANDSHAKE),   # ClientHello, change_cipher_spec
    (b"\x17\x03\x03\x00\x13", F.TLS_APP_DATA), (b"\x17\x03\x05\x00\x13", F.NONE),
])
def test_frame_code(payload: bytes, want: int) -> None:
    assert F.frame_code(payload, len(payload)) == want
    assert decode_both([payload])[0] == want


def test_last_chunk_needs_the_whole_payload() -> None:
    """`0` CRLF CRLF at the end of what the snap kept is not the end of the segment."""
    assert F.frame_code(b"0\r\n\r\n", 1448) == 0
    assert decode_both([b"x" * 10 + b"\r\n0\r\n\r\n" + b"y" * 500], snap=17 + 40)[0] == 0


def packet(payload: bytes, seq: int = 1) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 7, 0, 64, 6, 0, bytes([10, 0, 0, 1]),
                     bytes([10, 0, 0, 2]))
    return ip + tcp + payload


def decode_both(payloads: list[bytes], snap: int | None = None) -> list[int]:
    """Both readers' `app` column for raw IPv4 packets carrying `payloads`, cut at `snap` bytes."""
    frames = [packet(p)[:snap] if snap else packet(p) for p in payloads]
    buf = np.frombuffer(b"".join(frames), np.uint8)
    starts = np.cumsum([0] + [len(f) for f in frames[:-1]]).astype(np.int64)
    caplen = np.array([len(f) for f in frames], np.int64)
    n = len(frames)
    args = (buf, starts, caplen, np.full(n, 101, np.int32), np.arange(1, n + 1, dtype=np.int64), np.zeros(n, np.int64))
    a, b = compiled.decode_tcp(*args)[0]["app"], twin.decode_tcp(*args)[0]["app"]
    assert a.dtype == b.dtype == np.int32 and a.tolist() == b.tolist()
    return a.tolist()


def test_compiled_and_python_agree_on_mangled_framing() -> None:
    """Random cuts and byte flips of every sample, at every snap length: the same codes."""
    rng = random.Random(22)
    samples = [REPLY, ERROR, POST, GET, CHUNKED, ALERT]
    payloads = []
    for _ in range(3000):
        p = bytearray(rng.choice(samples))
        for _ in range(rng.randint(0, 3)):
            if p:
                p[rng.randrange(len(p))] = rng.choice(b"\r\n :0123456789HTTPabcdefghijklmnopqrstuvwxyz\x15\x03")
        if rng.random() < 0.3:
            p = p[:rng.randint(0, len(p))]
        payloads.append(bytes(p))
    for snap in (None, 40 + 12, 40 + 60, 40 + 126):
        got = decode_both(payloads, snap)
        assert len(got) == len(payloads)
        if snap is None:
            assert got == [F.frame_code(p, len(p)) for p in payloads]


@pytest.mark.parametrize("name,frame,framing,cause", [
    # a browser resets after a whole byte-range response (Content-Length within the snap) and the
    # server's FIN, its window open: it had its answer
    ("zeek/http/m57-long-49583-80.pcap", 226, 2, "linger-zero-abort"),
    # a whole 200 response sent before the handshake completed, then the client's FIN and RST
    ("arkime/CVE-2018-6794.pcap", 32, 2, "linger-zero-abort"),
    # a 404 without a length, more of it in flight after the RST: reset halfway, not an abort
    ("suricata-verify/bug-78-uricontent/input.pcap", 7, 1, "unread-data-close"),
])
def test_reply_framing_on_public_traces(name: str, frame: int, framing: int, cause: str) -> None:
    import rstwatch
    from conftest import EXTERNAL
    row = rstwatch.read(EXTERNAL / name).set_index("frame").loc[frame]
    assert row["receiver.reply_framing"] == framing
    assert row["cause"] == cause
    other = {"linger-zero-abort": "unread-data-close", "unread-data-close": "linger-zero-abort"}[cause]
    assert other in list(row["alternatives"])          # the pair stays open: no kernel label on these
