"""Which packets of a capture to read, the way tcpdump users say it: a capture filter
(`--bpf`), a time window (`--since/--until`) and a packet count (`-c`). Applied to the records
a reader found, before decoding, so frame numbers stay the capture's own."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from ..arrays import distinct
from ..errors import RstwatchError
from .segments import RecordIndex


def parse_time(text: str, option: str) -> int:
    """Epoch seconds ('1795241944.39') or ISO 8601 ('2026-11-21T06:19:12.5Z', '2026-11-21 06:19',
    '2026-11-21'); without a zone it is UTC, the zone rstwatch prints. Returns epoch ns."""
    s = text.strip()
    if re.fullmatch(r"\d+(\.\d*)?", s):
        whole, _, frac = s.partition(".")
        return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    iso = s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s
    frac_ns = 0
    m = re.search(r"(\.\d+)(?=([+-]\d\d:?\d\d)?$)", iso)     # keep nanoseconds datetime would drop
    if m:
        frac_ns = int((m.group(1)[1:] + "000000000")[:9])
        iso = iso[:m.start(1)] + iso[m.end(1):]
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise RstwatchError(option, f"{text!r} is not a time (examples: 2026-11-21T06:19:12Z, "
                                    f"'2026-11-21 06:19', 1795241944.39)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp()) * 1_000_000_000 + frac_ns


@dataclass
class ReadFilter:
    """Settings plus, per file, the compiled programs and the packets kept so far. Pickled
    (for --jobs) without the compiled programs, which each process compiles again."""
    bpf: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    count: int | None = None
    kept: int = 0
    _programs: dict = field(default_factory=dict, repr=False)

    @property
    def active(self) -> bool:
        return bool(self.bpf) or self.since_ns is not None or self.until_ns is not None or self.count is not None

    @property
    def done(self) -> bool:
        """The count is reached: the reader can stop."""
        return self.count is not None and self.kept >= self.count

    def fresh(self) -> "ReadFilter":
        """The same settings with nothing counted: one per input file."""
        return replace(self, kept=0, _programs={})

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_programs"] = {}
        return state

    def __call__(self, buf: np.ndarray, rec: RecordIndex) -> RecordIndex:
        keep = np.ones(len(rec), bool)
        if self.since_ns is not None:
            keep &= rec.ts_ns >= self.since_ns
        if self.until_ns is not None:
            keep &= rec.ts_ns < self.until_ns
        if self.bpf:
            for lt in distinct(rec.linktype[keep]).tolist():
                at = np.flatnonzero(keep & (rec.linktype == lt))
                keep[at] = self._program(int(lt)).matches(buf, rec.data[at], rec.caplen[at])
        if self.count is not None:
            room = max(self.count - self.kept, 0)
            over = np.flatnonzero(keep)[room:]
            keep[over] = False
        self.kept += int(keep.sum())
        if keep.all():
            return rec
        idx = np.flatnonzero(keep)
        return RecordIndex(data=rec.data[idx], caplen=rec.caplen[idx], linktype=rec.linktype[idx],
                           frame=rec.frame[idx], ts_ns=rec.ts_ns[idx], iface=rec.iface[idx])

    def _program(self, linktype: int):
        prog = self._programs.get(linktype)
        if prog is None:
            from .bpf import BpfProgram
            prog = self._programs[linktype] = BpfProgram(self.bpf, linktype)
        return prog


def make_filter(bpf: str | None, since: str | None, until: str | None, count: int | None) -> ReadFilter | None:
    """Parse and check the options before any file is read; None when nothing is filtered."""
    f = ReadFilter(bpf=bpf or None, since_ns=parse_time(since, "--since") if since else None,
                   until_ns=parse_time(until, "--until") if until else None, count=count)
    if f.since_ns is not None and f.until_ns is not None and f.until_ns <= f.since_ns:
        raise RstwatchError("--until", "must be later than --since")
    if f.bpf:
        from .bpf import check_expression
        check_expression(f.bpf)
    return f if f.active else None
