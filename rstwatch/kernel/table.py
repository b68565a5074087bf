"""The decision table: the kernel's reset reason (enum sk_rst_reason, Linux >= 6.10) and socket state
-> the causes (rule names) it can stand for, most likely first. Data, kept in step with
docs/kernel.md by a test; the wire's own candidates pick among these (see decide.py).

Observed on Linux 6.18 in network namespaces (tests/test_kernel.py) or read in net/ipv4/tcp*.c.
"""
from __future__ import annotations

# reason -> list of (states or None for any, causes most likely first, why)
DECISIONS: dict[str, list[tuple[frozenset[str] | None, list[str], str]]] = {
    "NO_SOCKET": [(None, ["closed-port", "late-synack", "peer-lost-state", "data-after-close", "port-scan", "syn-flood"],
                   "no socket for the segment: nothing listens, the connection was never known or is gone")],
    "TCP_FLAGS": [(None, ["peer-lost-state"],
                   "a listener got a segment that is not a SYN: a restarted service meets an old connection")],
    "INVALID_SYN": [(None, ["accept-queue-overflow"],
                     "the handshake's last ACK met a full accept queue with tcp_abort_on_overflow=1")],
    "TCP_ABORT_ON_CLOSE": [(None, ["unread-data-close"], "close() with unread bytes in the receive buffer")],
    "TCP_DISCONNECT_WITH_DATA": [(None, ["unread-data-close"], "connect(AF_UNSPEC) with unread bytes")],
    "TCP_ABORT_ON_LINGER": [(None, ["linger-zero-abort"], "close() in FIN_WAIT2 with TCP_LINGER2 < 0: an abortive close")],
    "TCP_STATE": [
        (frozenset({"TCP_CLOSE"}), ["linger-zero-abort", "abort-before-accept", "listener-closed"],
         "the socket was torn down (SO_LINGER 0, a queued child of a closed listener, ss -K)"),
        (None, ["linger-zero-abort", "abort-before-accept", "listener-closed"], "the socket was torn down"),
    ],
    "TCP_TIMEWAIT_SOCKET": [(None, ["data-after-close"], "data reached a closed (timewait) connection")],
    "TCP_ABORT_ON_DATA": [(None, ["keepalive-race", "data-after-close"],
                           "data arrived after this side's application had closed")],
    "TCP_KEEPALIVE_TIMEOUT": [(None, ["keepalive-timeout"], "keepalive probes went unanswered")],
    # Reasons that name no rstwatch cause: the wire's verdict stands, the reason is still shown.
    "TCP_ABORT_ON_MEMORY": [(None, [], "out of memory or too many orphaned sockets")],
    "TCP_INVALID_ACK_SEQUENCE": [(None, [], "an ACK that fits no sent data during the handshake")],
    "TCP_RFC7323_PAWS": [(None, [], "a PAWS timestamp check failed during the handshake")],
    "TCP_TOO_OLD_ACK": [(None, [], "an ACK for data older than the window")],
    "TCP_ACK_UNSENT_DATA": [(None, [], "an ACK for data never sent")],
    "TCP_OLD_ACK": [(None, [], "an old ACK in SYN-RECV")],
    "NOT_SPECIFIED": [(None, [], "the kernel gave no reason")],
}


def kernel_causes(reason: str, state: str | None) -> list[str]:
    """The causes a kernel reason stands for, given the socket state ([] when it names none)."""
    for states, causes, _ in DECISIONS.get(reason, []):
        if states is None or state in states:
            return list(causes)
    return []
