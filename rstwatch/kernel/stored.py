"""Kernel reasons kept with the packets: a `live --write` file carries, on each reset the kernel's
tcp_send_reset tracepoint explained, a pcapng packet comment (EPB option opt_comment) with the
event; `read` of that file settles the reset's verdict with it, as the live run did.

Why a packet comment and not a custom block: it sits on the very packet it explains (no key to
match, nothing lost when a ring file rotates or a tool cuts the file), and Wireshark, tshark
(`frame.comment`) and editcap show and keep it. The comment is one line: a fixed prefix, then the
event as JSON.

Reading: the fast reader hands over the comments it finds (only EPBs whose first option is a
comment are looked at, in Python: the hot loop is unchanged); they wait here, by capture time in
microseconds, until classification settles the matching finding (engine/evaluate.classify calls
`settle_stored`) with the same `fits` and `settle` the live join uses.
"""
from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING

from .decide import settle
from .events import KernelEvent

PREFIX = "rstwatch kernel reason "
FROM_FILE = "from-file"           # kernel_match of a finding whose reason came from the capture file
MAX_STORED = 200_000              # packet times with comments kept (a hostile file cannot grow it without bound)
_TEXT_LIMIT = 64                  # reason, state, comm: short tokens in a real trace

if TYPE_CHECKING:
    import pandas as pd
    from ..columns import Table

STORED: dict[int, list[KernelEvent]] = {}      # capture time (us) -> events read from comments
_seen = [False]                                # a file with stored reasons was read in this process


# ------------------------------------------------------------------ writing (live --write)
def comment_text(ev: KernelEvent) -> str:
    return PREFIX + json.dumps({"reason": ev.reason, "state": ev.state, "context": ev.context, "pid": ev.pid,
                                "comm": ev.comm, "src": ev.src, "sport": ev.sport, "dst": ev.dst,
                                "dport": ev.dport}, separators=(",", ":"))


def with_comment(block: bytes, text: str, big: bool) -> bytes:
    """An Enhanced Packet Block with `text` as its first option (existing options kept)."""
    e = ">" if big else "<"
    total, = struct.unpack(e + "I", block[4:8])
    caplen, = struct.unpack(e + "I", block[20:24])
    opts_at = 28 + ((caplen + 3) & ~3)
    kept = []
    pos = opts_at
    while pos + 4 <= total - 4:
        code, length = struct.unpack(e + "HH", block[pos:pos + 4])
        if code == 0:
            break
        step = 4 + ((length + 3) & ~3)
        kept.append(block[pos:pos + step])
        pos += step
    value = text.encode("utf-8")[:65535]
    comment = struct.pack(e + "HH", 1, len(value)) + value + b"\0" * (-len(value) % 4)
    options = comment + b"".join(kept) + b"\0\0\0\0"
    new_total = opts_at + len(options) + 4
    return block[:4] + struct.pack(e + "I", new_total) + block[8:opts_at] + options + struct.pack(e + "I", new_total)


# ------------------------------------------------------------------ reading (read of such a file)
def parse_comment(text: str) -> KernelEvent | None:
    if not text.startswith(PREFIX):
        return None
    try:
        d = json.loads(text[len(PREFIX):])
        ev = KernelEvent(mono=0.0, time=0.0, src=_text(d["src"]), sport=_port(d["sport"]), dst=_text(d["dst"]),
                         dport=_port(d["dport"]), state=_text(d["state"]) if d.get("state") is not None else None,
                         reason=_text(d["reason"]), active=False, context=_text(d["context"]),
                         pid=int(d["pid"]) if isinstance(d.get("pid"), int) else None,
                         comm=_text(d["comm"]) if d.get("comm") is not None else None, cpu=-1)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None                     # someone else's comment, or a damaged one: no reason
    return ev


def _text(v) -> str:
    if not isinstance(v, str):
        raise TypeError("not a string")
    return v[:_TEXT_LIMIT]


def _port(v) -> int:
    if not isinstance(v, int) or not 0 <= v <= 65535:
        raise ValueError("not a port")
    return v


def first_comment(block: bytes, opts_at: int, big: bool) -> str | None:
    """The text of the comment an EPB starts its options with."""
    e = ">" if big else "<"
    code, length = struct.unpack(e + "HH", block[opts_at:opts_at + 4])
    if code != 1 or opts_at + 4 + length > len(block):
        return None
    return block[opts_at + 4:opts_at + 4 + length].decode("utf-8", "replace")


def remember(ts_ns: int, ev: KernelEvent) -> None:
    if len(STORED) >= MAX_STORED:
        return
    STORED.setdefault(ts_ns // 1000, []).append(ev)
    _seen[0] = True


# ------------------------------------------------------------------ settling (classification)
def settle_stored(out: Table, rules) -> Table:
    """Kernel fields and the kernel-settled cause on each finding whose reset carried a stored
    reason; nothing at all unless a file with stored reasons was read (then through pandas)."""
    if not _seen[0] or not len(out):
        return out
    from ..columns import Table
    settled = _settle_frame(out.to_pandas(), rules)
    return out if settled is None else Table.from_pandas(settled)


def _settle_frame(out: pd.DataFrame, rules) -> pd.DataFrame | None:
    """settle_stored on a DataFrame: a settled copy, or None when no finding has a stored reason."""
    import pandas as pd
    from .join import KERNEL_FIELDS, WireRst, fits      # join imports the pipeline: import when needed
    found = []
    for i, (t, src, sport, dst, dport, frame) in enumerate(zip(out["time"], out["src"], out["sport"], out["dst"],
                                                               out["dport"], out["frame"])):
        us = int(round(float(t) * 1e6))             # `time` is a float: the microsecond may be off by one
        evs = STORED.get(us, []) + STORED.get(us - 1, []) + STORED.get(us + 1, [])
        if evs:
            w = WireRst(int(frame), float(t), src, int(sport), dst, int(dport))
            ev = next((e for e in evs if fits(e, w)), None)
            if ev is not None:
                found.append((i, ev))
    if not found:
        return None
    by_name = {r.name: r for r in rules}
    out = out.copy()
    cols: dict[str, list] = {f: [None] * len(out) for f in KERNEL_FIELDS}
    for i, ev in found:
        row = out.index[i]
        cause = out.at[row, "cause"]
        s = settle(cause, list(out.at[row, "alternatives"]), float(out.at[row, "confidence"]), ev.reason, ev.state,
                   set(by_name))
        for f, v in (("kernel_match", FROM_FILE), ("kernel_reason", ev.reason), ("kernel_state", ev.state),
                     ("kernel_context", ev.context), ("kernel_pid", ev.pid), ("kernel_comm", ev.comm),
                     ("decided_by", s.decided_by), ("wire_cause", cause), ("kernel_agrees", s.kernel_agrees)):
            cols[f][i] = v
        out.at[row, "alternatives"] = s.alternatives
        out.at[row, "confidence"] = s.confidence
        if s.cause != cause:
            out.at[row, "cause"] = s.cause
            out.at[row, "rule"] = by_name[s.cause].id
    for f, values in cols.items():
        out[f] = pd.Series(values, index=out.index, dtype=object)
    return out
