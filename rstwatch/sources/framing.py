"""What a segment's first payload bytes say about the application's messages: framing only.

Whether the side that reset had read what it was sent is often written in the application's own
framing: a client that got a whole HTTP/1 response and then reset read it (an abortive close,
SO_LINGER 0); a server that answered an error while the request body was still arriving closed
with that body unread. The readers (hotloops.pyx, and hotloops_py.py through `frame_code`) read
the payload bytes the capture kept (a live capture keeps 192 bytes a packet, headers included)
and store one small integer per segment, the `app` column. No content is kept: no method, URL,
status text or header value, only the message kind, a status class and a length.

    bits 0-2  kind: NONE, HTTP_REQUEST (an HTTP/1 request line), HTTP_REPLY (an HTTP/1 status line,
              status < 400), HTTP_ERROR_REPLY (status >= 400), TLS_ALERT (a TLS alert record),
              TLS_HANDSHAKE (a TLS handshake or change_cipher_spec record), TLS_APP_DATA (a TLS
              application-data record: data, and in TLS 1.3 every record once keys are set,
              alerts and the handshake's end included; only its type is visible)
    bit 3     LAST_CHUNK: the whole payload was captured and ends with the last chunk of an HTTP/1
              chunked body (`0` CRLF CRLF)
    bits 4-31 for an HTTP/1 message starting here: its length from this segment's first byte
              (header + Content-Length; a request without a body: the header) when the whole
              header is in the snap; 0 when unknown (chunked, no Content-Length, header cut off)

hotloops.pyx's `_framing` is the same function in C: a change here is made there too
(tests/test_framing.py checks both give the same codes).
"""
from __future__ import annotations

NONE, HTTP_REQUEST, HTTP_REPLY, HTTP_ERROR_REPLY, TLS_ALERT, TLS_HANDSHAKE, TLS_APP_DATA = 0, 1, 2, 3, 4, 5, 6
KIND_MASK = 7
LAST_CHUNK = 8
LENGTH_SHIFT = 4
MAX_LENGTH = (1 << 27) - 1
METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE ")
_DIGITS = b"0123456789"
_TLS_KINDS = (TLS_HANDSHAKE, TLS_ALERT, TLS_HANDSHAKE, TLS_APP_DATA)    # content types 20 (change_cipher_spec) to 23


def frame_code(b: bytes, plen: int) -> int:
    """The `app` code of a segment whose captured payload is `b` (of `plen` bytes on the wire)."""
    n = len(b)
    if n == 0:
        return 0
    code = 0
    if n == plen and (b == b"0\r\n\r\n" or b.endswith(b"\r\n0\r\n\r\n")):
        code = LAST_CHUNK
    if n >= 5 and b[1] == 3 and b[2] <= 4 and 20 <= b[0] <= 23:    # a TLS record header: its content type
        return code | _TLS_KINDS[b[0] - 20]
    no_body = False
    if (n >= 12 and b.startswith(b"HTTP/1.") and b[7] in b"01" and b[8] == 0x20 and b[9] in b"12345"
            and b[10] in _DIGITS and b[11] in _DIGITS):
        status = int(b[9:12])
        kind = HTTP_REPLY if status < 400 else HTTP_ERROR_REPLY
        no_body = status < 200 or status in (204, 304)
    elif b.startswith(METHODS):
        kind = HTTP_REQUEST
    else:
        return code
    return code | kind | (_message_length(b, kind, no_body) << LENGTH_SHIFT)


def _message_length(b: bytes, kind: int, no_body: bool) -> int:
    """Header plus Content-Length, when the whole header is in `b`; else 0."""
    end = b.find(b"\r\n\r\n")
    if end < 0:
        return 0
    head = end + 4
    body, chunked = None, False
    pos = b.find(b"\r\n")                        # end of the start line
    while pos < end:
        start = pos + 2
        pos = b.find(b"\r\n", start)
        name, colon, value = b[start:pos].partition(b":")
        if not colon:
            continue
        name = name.lower()
        if name == b"content-length" and body is None:
            value = value.strip(b" \t")
            body = int(value) if 0 < len(value) <= 9 and all(c in _DIGITS for c in value) else -1
        elif name == b"transfer-encoding":
            chunked = True
    if chunked or body == -1:
        return 0
    if no_body:
        total = head
    elif body is not None:
        total = head + body
    elif kind == HTTP_REQUEST:
        total = head
    else:
        return 0
    return total if total <= MAX_LENGTH else 0
