"""Join keys other tools share: the Community ID flow hash (Zeek, Suricata, Arkime, Elastic)
and an ISO 8601 UTC time with every nanosecond the capture gave (`time`, a float, keeps only
about a quarter of a microsecond)."""
from __future__ import annotations

import binascii
import hashlib
import os
import struct
# socket's C module: `socket` itself makes enums of every constant at import (~3 ms of every start-up)
from _socket import AF_INET, AF_INET6, inet_pton
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:                  # pandas is imported where a table is made: a read without resets needs none
    import pandas as pd

TCP = 6


def iso_ns(ts_ns: int) -> str:
    """Epoch nanoseconds -> '2026-11-21T06:19:12.737123456Z' (always nine digits, always UTC)."""
    sec, ns = divmod(int(ts_ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


# The C twins of iso_ns_column and community_id_column (rstwatch/rowtexts.pyx) when they were
# built, as for the packet loops (rstwatch/loops.py); RSTWATCH_PURE_PYTHON=1 keeps the Python
# ones below, the reference (tests/test_rowtexts.py).
_compiled = None
if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
    try:
        from . import rowtexts as _compiled
    except ImportError:
        pass


def iso_ns_column(ts_ns: Iterable[int]) -> list[str]:
    """Many at once, as iso_ns gives each: ~0.15 us a row in C, else ~0.8 us through numpy.
    Every int64 nanosecond time falls in years 1677-2262, four digits."""
    ts = np.asarray(ts_ns if isinstance(ts_ns, np.ndarray) else list(ts_ns), dtype=np.int64)
    if _compiled is not None:
        return _compiled.iso_ns_texts(np.ascontiguousarray(ts))
    return iso_ns_numpy(ts)


def iso_ns_numpy(ts: np.ndarray) -> list[str]:
    """iso_ns_column through numpy, which formats nanosecond datetimes in C (~0.8 us a row
    against ~1.7 us with a cached date part per second)."""
    return [t + "Z" for t in np.datetime_as_string(ts.astype("datetime64[ns]"), unit="ns").tolist()]


def iso_parts(isos: list) -> tuple[np.ndarray, np.ndarray] | None:
    """(seconds since the epoch, float64 whole numbers; nanoseconds within the second, int64) of
    each text when every one is written as iso_ns_column writes them
    ('2026-11-21T06:19:12.737123456Z'), else None: the nanoseconds read from the texts' bytes in
    numpy, each distinct second parsed once by datetime (~0.3 us a row; a text at a time through
    datetime ~1.5 us, through pandas' strptime ~0.7)."""
    if not isos or set(map(type, isos)) != {str} or set(map(len, isos)) != {30}:
        return None
    try:
        data = "".join(isos).encode("ascii")
    except UnicodeEncodeError:
        return None
    rows = np.frombuffer(data, np.uint8).reshape(len(isos), 30)
    digits = rows[:, 20:29] - np.uint8(48)          # a byte below '0' wraps round, above 9 too
    if (rows[:, 19] != ord(".")).any() or (rows[:, 29] != ord("Z")).any() or (digits > 9).any():
        return None
    nanos = digits.astype(np.int64) @ (10 ** np.arange(8, -1, -1, dtype=np.int64))
    heads, at = np.unique(np.ascontiguousarray(rows[:, :19]).view("S19").ravel(), return_inverse=True)
    try:
        seconds = np.array([datetime.fromisoformat(h.decode("ascii") + "+00:00").timestamp() for h in heads.tolist()])
    except ValueError:                              # not a date: the caller's own parse says why
        return None
    return seconds[at.ravel()], nanos


def ns_of_iso_texts(isos: list) -> np.ndarray | None:
    """Nanoseconds since the epoch (int64) of texts iso_ns_column writes, exactly; None for
    any other text or a time int64 nanoseconds cannot hold."""
    parts = iso_parts(isos)
    if parts is None:
        return None
    seconds, nanos = parts
    if not (np.abs(seconds) < 9.2e9).all():         # (years 1678-2261: no overflow below)
        return None
    return seconds.astype(np.int64) * 10**9 + nanos


_ADDRESS_FAMILIES = (AF_INET, AF_INET6)
_SEED = struct.pack("!H", 0)           # Community ID seed 0, as Zeek and Suricata use by default


def _packed(addr: str) -> bytes | None:
    """Network-order bytes of an IPv4 or IPv6 address written as text; None for anything else."""
    for family in _ADDRESS_FAMILIES:
        try:
            return inet_pton(family, addr)
        except (OSError, TypeError, ValueError):        # ValueError: text with a NUL in it
            pass
    return None


_PORTS = struct.Struct("!BBHH")        # protocol, padding, the two ports
try:        # CPython's own SHA-1: the same digest, without OpenSSL's per-hash set-up (~0.6 vs ~1.1 us)
    from _sha1 import sha1 as _sha1
except ImportError:
    _sha1 = hashlib.sha1


@lru_cache(maxsize=65536)        # one flow can hold several resets (and live re-sees flows)
def community_id(src: str, dst: str, sport: int, dport: int, proto: int = TCP) -> str | None:
    """Community ID v1 (seed 0) of a flow; None when an end is not one address (a flood from
    many sources). Both directions give one id: the smaller end (address bytes, then port) is
    hashed first. Computed here with hashlib (the `communityid` package spent ~60 us a flow in
    its own objects and logging; tests/test_interop.py checks both agree)."""
    return _community_id(_packed(src), _packed(dst), sport, dport, proto)


def _community_id(a: bytes | None, b: bytes | None, sport: int, dport: int, proto: int) -> str | None:
    if a is None or b is None:
        return None
    sp, dp = int(sport), int(dport)
    if not (a < b or (a == b and sp < dp)):
        a, b, sp, dp = b, a, dp, sp
    try:
        tail = _PORTS.pack(int(proto), 0, sp, dp)
    except struct.error:           # a port or protocol out of range: not a flow
        return None
    digest = _sha1(_SEED + a + b + tail).digest()
    return "1:" + binascii.b2a_base64(digest, newline=False).decode("ascii")


def community_id_column(df: pd.DataFrame) -> list[str | None]:
    """The Community ID of every finding: in C when the ports are plain integer columns
    (rstwatch/rowtexts.pyx, ~0.5 us a row), else each address packed once for the table and a
    hash per row (~2.5 us)."""
    from . import columns
    if not len(df):
        return []
    src, dst = columns.tolist(df["src"]), columns.tolist(df["dst"])
    sport, dport = _int64s(df["sport"]), _int64s(df["dport"])
    if _compiled is not None and sport is not None and dport is not None:
        return _compiled.community_ids(src, dst, np.ascontiguousarray(sport), np.ascontiguousarray(dport), TCP)
    return community_ids_python(src, dst, columns.tolist(df["sport"]), columns.tolist(df["dport"]))


def _int64s(col) -> np.ndarray | None:
    """A column's values when it is a plain int64 one (a numpy array, or a Series of one)."""
    if isinstance(col, np.ndarray):
        return col if col.dtype == np.int64 else None
    return col.to_numpy() if getattr(col, "dtype", None) == np.int64 else None


def community_ids_python(src: list, dst: list, sports: list, dports: list) -> list[str | None]:
    """community_id_column in Python: each address packed once, then a hash per row."""
    packed = {a: _packed(a) for a in set(src).union(dst)}
    # a flood finding (ports 0) names hosts, not one flow: no id rather than a made-up one
    return [_community_id(packed[s], packed[d], sp, dp, TCP) if (sp or dp) else None
            for s, d, sp, dp in zip(src, dst, sports, dports)]


def add_join_keys(df: pd.DataFrame, ts_ns: np.ndarray | list[int] | None = None) -> pd.DataFrame:
    """Add `ts` (from `ts_ns`, else from `time`, which has lost the last digits) and
    `community_id` to findings, in place; returns `df`. Flood findings stand for many flows
    and get None."""
    from . import columns
    if ts_ns is None:
        ts_ns = np.round(columns.to_numpy(df["time"], np.float64, np.nan) * 1e9).astype("int64") if len(df) else []
    if isinstance(df, columns.Table):           # a read's batch (no pandas): kept as objects when made a DataFrame
        df["ts"] = columns.Objects(iso_ns_column(ts_ns))
        df["community_id"] = columns.Objects(community_id_column(df))
        return df
    import pandas as pd
    df["ts"] = pd.Series(iso_ns_column(ts_ns), index=df.index, dtype=object)
    df["community_id"] = pd.Series(community_id_column(df), index=df.index, dtype=object)
    return df


def frame_times(frames: np.ndarray, seg_frames: np.ndarray, seg_ts_ns: np.ndarray) -> np.ndarray:
    """Nanosecond time of each of `frames`, looked up among the segments' frames."""
    if not len(frames):
        return np.zeros(0, np.int64)
    order = np.argsort(seg_frames, kind="stable")
    at = np.searchsorted(seg_frames[order], frames)
    at = np.minimum(at, len(order) - 1)
    return np.asarray(seg_ts_ns)[order][at].astype(np.int64)


# Per-connection ids for the consumers that key on one: Suricata's `flow_id` and Zeek's `uid`.
# Both tools draw theirs at run time; rstwatch derives them from the connection so every format
# and every run gives a connection the same id. A connection is its flow (Community ID), the
# capture it is in (file name without folders, so `read ./x.pcap` and `read dir/` agree) and its
# first frame there (a new connection on the same four-tuple is another one, as in Zeek).
FLOW_ID_MASK = (1 << 51) - 1           # Suricata keeps flow_id within 51 bits: JSON readers that
                                       # hold numbers as doubles (JavaScript, jq 1.6) stay exact
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
UID_DIGITS = 17                        # 96 bits in base 62, as long as Zeek's own uids


def _basename(file: str) -> str:
    return file.replace("\\", "/").rsplit("/", 1)[-1]


def _connection_digest(cid: str, file: str, first_frame: int | None) -> bytes:
    return _digest(cid, _basename(file), first_frame)


def flow_id(digest: bytes) -> int:
    """A positive integer below 2**51 (0 is taken to mean no flow by some readers)."""
    return (int.from_bytes(digest[:8], "big") & FLOW_ID_MASK) or 1


def zeek_uid(digest: bytes) -> str:
    """'C' and 17 base-62 digits of 96 bits, the form of Zeek's connection uids."""
    n, digits = int.from_bytes(digest[:12], "big"), []
    for _ in range(UID_DIGITS):
        n, r = divmod(n, 62)
        digits.append(_BASE62[r])
    return "C" + "".join(reversed(digits))


def connection_digests(df: pd.DataFrame) -> list[bytes | None]:
    """One digest per finding, equal for every finding of one connection; None for a flood
    finding, which stands for many connections (as Zeek's scan notices have no uid)."""
    if not len(df):
        return []
    from . import columns                       # a DataFrame's or a columns.Table's columns
    cids = columns.tolist(df["community_id"]) if "community_id" in df else community_id_column(df)
    files = columns.tolist(df["file"])
    firsts = _frames(df["conn_first_frame"]) if "conn_first_frame" in df else [None] * len(df)
    known: dict[str, str] = {}          # the file names repeat: each one's base name once
    bases = [known.get(f) or known.setdefault(f, _basename(str(f))) for f in files]

    def one(k: int) -> bytes | None:
        return _digest(cids[k], bases[k], firsts[k]) if isinstance(cids[k], str) else None
    if _compiled is not None:
        return _compiled.connection_digests(cids, bases, firsts, one)
    return [one(k) for k in range(len(cids))]


def _frames(col) -> list[int | None]:
    """_frame of each value: a column of integers without a missing one as it is."""
    if isinstance(col, np.ndarray) and col.dtype.kind in "iu":     # a columns.Table's
        return col.tolist()
    from . import columns
    if not hasattr(col, "isna") or isinstance(col, columns.Missing):
        return [None if v is None or v != v else int(v) for v in columns.tolist(col)]     # None where missing
    if col.dtype.kind in "iu" and not col.isna().any():     # int64, and pandas' Int64 without NA
        return col.to_numpy(dtype=np.int64).tolist()
    return [_frame(v) for v in col.tolist()]


def _digest(cid: str, base: str, first_frame: int | None) -> bytes:
    return hashlib.sha1(f"{cid}|{base}|{first_frame}".encode()).digest()


def _frame(value) -> int | None:
    import pandas as pd
    return None if value is None or value is pd.NA or value != value else int(value)


def flow_id_column(df: pd.DataFrame) -> list[int | None]:
    return flow_ids(connection_digests(df))


def flow_ids(digests: list[bytes | None]) -> list[int | None]:
    """flow_id of each digest (None stays None), all at once in numpy."""
    joined = b"".join(digests) if digests and None not in digests else b""
    if joined and len(joined) == len(digests) * len(digests[0]):    # no flood row, SHA-1s: 8 bytes of each at once
        rows = np.frombuffer(joined, np.uint8).reshape(len(digests), -1)
        ids = rows[:, :8].copy().view(">u8").ravel() & np.uint64(FLOW_ID_MASK)
        ids[ids == 0] = 1
        return ids.tolist()
    at = [k for k, d in enumerate(digests) if d is not None]
    out: list[int | None] = [None] * len(digests)
    if not at:
        return out
    ids = np.frombuffer(b"".join(digests[k][:8] for k in at), ">u8") & np.uint64(FLOW_ID_MASK)
    ids[ids == 0] = 1
    for k, v in zip(at, ids.tolist()):
        out[k] = v
    return out


def uid_column(df: pd.DataFrame) -> list[str | None]:
    return zeek_uids(connection_digests(df))


def flow_id_and_uid_columns(df: pd.DataFrame) -> tuple[list[int | None], list[str | None]]:
    """flow_id_column and uid_column from one pass over the connections' digests."""
    digests = connection_digests(df)
    return flow_ids(digests), zeek_uids(digests)


def zeek_uids(digests: list[bytes | None]) -> list[str | None]:
    """zeek_uid of each digest (None stays None), all at once: the 96 bits as three 32-bit limbs
    divided by 62 in numpy, a digit a step (zeek_uid's loop of 17 divisions of a big integer was
    ~5 us a finding); in C when rowtexts was built (~0.05 us against ~0.4)."""
    if _compiled is not None:
        return _compiled.zeek_uids(digests, UID_DIGITS)
    return zeek_uids_python(digests)


def zeek_uids_python(digests: list[bytes | None]) -> list[str | None]:
    """zeek_uids in numpy: the reference of the compiled twin."""
    at = [k for k, d in enumerate(digests) if d is not None]
    out: list[str | None] = [None] * len(digests)
    if not at:
        return out
    limbs = np.frombuffer(b"".join(digests[k][:12] for k in at), ">u4").reshape(-1, 3).astype(np.uint64).T.copy()
    digits = np.empty((len(at), UID_DIGITS + 1), np.uint8)
    digits[:, 0] = ord("C")
    for place in range(UID_DIGITS, 0, -1):          # the least significant digit first
        rest = np.zeros(len(at), np.uint64)
        for j in range(3):                          # long division, most significant limb first
            cur = (rest << np.uint64(32)) | limbs[j]
            limbs[j], rest = cur // np.uint64(62), cur % np.uint64(62)
        digits[:, place] = np.frombuffer(_BASE62.encode(), np.uint8)[rest.astype(np.intp)]
    text, width = digits.tobytes().decode("ascii"), UID_DIGITS + 1
    for n, k in enumerate(at):
        out[k] = text[n * width:(n + 1) * width]
    return out
