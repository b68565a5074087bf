"""Zeek-compatible endpoint states, history letters and conn_state.

Follows Zeek's definitions (scripts/base/protocols/conn/main.zeek and its TCP analyzer): one
state per endpoint, history letters upper case for the originator, lower case for the responder,
each letter once per direction except retransmissions/gaps/zero windows, which are repeated at
the 1st, 10th, 100th... occurrence.
"""
from __future__ import annotations

import re

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
REPEATING = set("tgw")
RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R.*")


class History:
    def __init__(self, flipped: bool) -> None:
        self.text = "^" if flipped else ""
        self.counts: dict[str, int] = {}

    def add(self, letter: str, is_orig: bool) -> None:
        key = letter.upper() if is_orig else letter.lower()
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if n == 1 or (letter.lower() in REPEATING and n in (10, 100, 1000, 10000)):
            self.text += key


def next_state(state: int, peer: int, flags_syn: bool, flags_ack: bool, fin: bool, rst: bool,
               has_data: bool) -> tuple[int, int]:
    """New (endpoint, peer) states after the endpoint sends a segment."""
    if rst:
        if state == CLOSED and peer == CLOSED:
            return state, peer           # RST after a FIN exchange does not change Zeek's state
        return RESET, peer
    if state == RESET:
        return state, peer
    if fin:
        return CLOSED, peer
    if state == INACTIVE:
        if flags_syn:
            return (SYN_ACK_SENT if flags_ack else SYN_SENT), peer
        return PARTIAL, peer
    if state == SYN_SENT and not flags_syn and flags_ack:
        if peer in (SYN_ACK_SENT, ESTABLISHED):
            return ESTABLISHED, ESTABLISHED
        return state, peer
    if state == SYN_ACK_SENT and not flags_syn and peer == ESTABLISHED:
        return ESTABLISHED, peer
    return state, peer


def conn_state(orig: int, resp: int, orig_size: int, resp_size: int, history: str) -> str:
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (orig == RESET and orig_size == 0 and resp_size == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig == RESET:
        if r_inactive:
            return "RSTOS0" if RSTOS0_HISTORY.fullmatch(history) else "OTH"
        return "RSTO"
    if orig == CLOSED and resp == CLOSED:
        return "SF"
    if orig == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig == SYN_SENT and resp == INACTIVE:
        return "S0"
    if orig == ESTABLISHED and resp == ESTABLISHED:
        return "S1"
    return "OTH"
