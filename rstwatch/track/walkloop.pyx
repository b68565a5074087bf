# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=False
"""The per-connection walk of track/connection.py in C (Cython): the same TCP bookkeeping with
each side's state in a C struct instead of a Python object, reading the segment columns as
numpy arrays and writing each RST's features into typed columns (track/rstrows.py), so a reset
costs no Python object per feature (a list of ~47 values per RST, then turning them into
columns, was ~8 us of a ~25 us reset).

connection.py stays the reference, readable one, and is what runs without a compiler;
tests/test_walk_twin.py checks both give identical connections (history, conn_state, rtt,
every feature of every RST, evidence) on every bundled and public capture and on random
segment streams. A change to the walk is made in both."""
cimport cython
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t, uint64_t

import numpy as np

from .connection import REPLY_CUT_SHORT as _REPLY_CUT_SHORT, REPLY_SEEN as _REPLY_SEEN, REPLY_WHOLE as _REPLY_WHOLE
from .connection import TLS_ALERT as _TLS_ALERT, TLS_APP_DATA as _TLS_APP_DATA, TLS_HANDSHAKE as _TLS_HANDSHAKE
from .connection import (RESET_DELAY_NS as _RESET_DELAY_NS, AFTER_RECEIVER as _AFTER_RECEIVER,
                         AFTER_SENDER as _AFTER_SENDER, WALK_FEATURES, Connection, ConnRst)
from ..features.registry import FEATURES
from . import zeek
from ..sources import framing as _framing
from dataclasses import fields as _fields

# The compiled walk's connections (WalkedConnection, below) have Connection's fields: a field
# added there must be added here and to WalkedConnection (checked when this module loads).
_CONNECTION_FIELDS = ("idx", "flipped", "client_dir", "role_inferred", "history", "conn_state", "rtt_ns",
                      "rsts", "continues")
if tuple(f.name for f in _fields(Connection)) != _CONNECTION_FIELDS:
    raise RuntimeError("walkloop: Connection's fields changed; update _CONNECTION_FIELDS and new_connection")


# Where each feature (WALK_FEATURES order) lives: its kind's block and its row in the block.
cdef enum:
    K_BOOL = 0
    K_INT = 1
    K_FLOAT = 2
    K_STR = 3
    MAX_FEATURES = 64
cdef int KIND[MAX_FEATURES]
cdef int SLOT[MAX_FEATURES]
_KIND_CODES = {"bool": K_BOOL, "int": K_INT, "float": K_FLOAT, "str": K_STR}
if len(WALK_FEATURES) > MAX_FEATURES:
    raise RuntimeError("walkloop: more features than MAX_FEATURES")
_per_kind = [0, 0, 0, 0]
for _k, _name in enumerate(WALK_FEATURES):
    KIND[_k] = _KIND_CODES[FEATURES[_name].kind]
    SLOT[_k] = _per_kind[KIND[_k]]
    _per_kind[KIND[_k]] += 1
N_BOOL, N_INT, N_FLOAT, N_STR = _per_kind
if N_STR != 1 or FEATURES[WALK_FEATURES[20]].kind != "str":
    raise RuntimeError("walkloop: trigger.kind is expected to be the only text feature, 21st")
# trigger.kind's values, by code
TRIGGER_KINDS = ("none", "rst", "synack", "syn", "fin", "probe", "data", "ack")
cdef enum:
    T_NONE = 0
    T_RST = 1
    T_SYNACK = 2
    T_SYN = 3
    T_FIN = 4
    T_PROBE = 5
    T_DATA = 6
    T_ACK = 7


cdef class Cols:
    """The segment columns the walk reads, typed (the dtypes of sources/segments.SEGMENT_COLUMNS)."""
    cdef const unsigned short[:] flags, win, sport, dport
    cdef const unsigned int[:] seq, ack
    cdef const int[:] plen, ipid, app
    cdef const unsigned char[:] ttl, hlen
    cdef const int64_t[:] frame, ts
    cdef const uint64_t[:] src_lo, src_hi

    def __cinit__(self, dict P):
        self.flags, self.win, self.sport, self.dport = P["flags"], P["win"], P["sport"], P["dport"]
        self.seq, self.ack, self.plen, self.ipid = P["seq"], P["ack"], P["plen"], P["ipid"]
        self.ttl, self.hlen, self.frame, self.ts = P["ttl"], P["hlen"], P["frame"], P["ts_ns"]
        self.src_lo, self.src_hi = P["src_lo"], P["src_hi"]
        self.app = P["app"]


cdef class RstOut:
    """Every RST the walk met, a row each: which connection, segment row, frame, sender, position
    in its connection, evidence frames, and its features in typed blocks (bools as -1/0/1 with -1
    for unknown; integers and floats with a missing mask; trigger.kind as a code)."""
    cdef public object bools, ints, int_missing, floats, float_missing, kinds, conn, row, frame, sender, pos
    cdef public list evidence
    cdef public Py_ssize_t n
    cdef signed char[:, ::1] bv
    cdef int64_t[:, ::1] iv
    cdef unsigned char[:, ::1] imv
    cdef double[:, ::1] fv
    cdef unsigned char[:, ::1] fmv
    cdef signed char[::1] kv
    cdef int64_t[::1] connv, rowv, framev, senderv, posv

    def __cinit__(self, Py_ssize_t capacity):
        self.bools = np.empty((N_BOOL, capacity), np.int8)
        self.ints = np.empty((N_INT, capacity), np.int64)
        self.int_missing = np.zeros((N_INT, capacity), np.uint8)
        self.floats = np.empty((N_FLOAT, capacity), np.float64)
        self.float_missing = np.zeros((N_FLOAT, capacity), np.uint8)
        self.kinds = np.empty(capacity, np.int8)
        self.conn, self.row, self.frame = (np.empty(capacity, np.int64) for _ in range(3))
        self.sender, self.pos = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
        self.bv, self.iv, self.imv = self.bools, self.ints, self.int_missing
        self.fv, self.fmv, self.kv = self.floats, self.float_missing, self.kinds
        self.connv, self.rowv, self.framev = self.conn, self.row, self.frame
        self.senderv, self.posv = self.sender, self.pos
        self.evidence = []
        self.n = 0

    cdef inline void put_bool(self, int k, int v):          # v: -1 unknown, 0, 1
        self.bv[SLOT[k], self.n] = v

    cdef inline void put_int(self, int k, int64_t v):
        self.iv[SLOT[k], self.n] = v

    cdef inline void put_int_missing(self, int k):
        self.iv[SLOT[k], self.n] = 0
        self.imv[SLOT[k], self.n] = 1

    cdef inline void put_float(self, int k, double v):
        self.fv[SLOT[k], self.n] = v

    cdef inline void put_float_missing(self, int k):
        self.fv[SLOT[k], self.n] = 0.0
        self.fmv[SLOT[k], self.n] = 1

    def trimmed(self):
        """The rows written (views)."""
        n = self.n
        return (self.bools[:, :n], self.ints[:, :n], self.int_missing[:, :n], self.floats[:, :n],
                self.float_missing[:, :n], self.kinds[:n], self.conn[:n], self.row[:n], self.frame[:n],
                self.sender[:n], self.pos[:n], self.evidence)

    def values(self, Py_ssize_t r):
        """Row r's features as the Python walk lists them (WALK_FEATURES order): for the twin test."""
        out = []
        for k in range(len(WALK_FEATURES)):
            kind, slot = KIND[k], SLOT[k]
            if kind == K_BOOL:
                v = self.bv[slot, r]
                out.append(None if v < 0 else bool(v))
            elif kind == K_INT:
                out.append(None if self.imv[slot, r] else int(self.iv[slot, r]))
            elif kind == K_FLOAT:
                out.append(None if self.fmv[slot, r] else float(self.fv[slot, r]))
            else:
                out.append(TRIGGER_KINDS[self.kv[r]])
        return out


cdef class WalkedConnection:
    """track.connection.Connection as the compiled walk makes it: the same fields (the Python
    walk's dataclass stays the reference), held in C slots instead of an instance dict: ~300
    bytes and a dict's inserts and frees less for every connection walked. Its segment rows are a
    slice of one int64 array shared by every connection of a walk (`idx` makes the list when asked):
    a list of ten int objects per connection was ~450 bytes, and the pipeline reads only the
    first and the last row."""
    cdef object _rows               # int64 array; this connection's rows are _rows[_start:_stop]
    cdef const int64_t *_data       # _rows' data, alive as long as _rows is
    cdef Py_ssize_t _start, _stop
    cdef public bint flipped
    cdef public object client_dir
    cdef public bint role_inferred
    cdef public str history
    cdef public str conn_state
    cdef public object rtt_ns
    cdef public object continues
    cdef list _rsts
    cdef Py_ssize_t place           # its place in the list connection_columns was last given

    @property
    def idx(self):
        return None if self._rows is None else self._rows[self._start:self._stop].tolist()

    @idx.setter
    def idx(self, rows):
        arr = np.array(rows, dtype=np.int64)       # a copy: the connection's own rows
        cdef const int64_t[::1] view = arr
        self._rows, self._start, self._stop = arr, 0, len(arr)
        self._data = &view[0] if len(arr) else NULL

    cdef inline int64_t first_row(self) noexcept:
        return self._data[self._start]

    cdef inline int64_t last_row(self) noexcept:
        return self._data[self._stop - 1]

    @property
    def rsts(self):             # the pipeline's RSTs are columns (RstOut); walk() fills this one
        if self._rsts is None:
            self._rsts = []
        return self._rsts

    def __repr__(self):
        return (f"WalkedConnection(idx={self.idx!r}, flipped={self.flipped!r}, client_dir={self.client_dir!r}, "
                f"role_inferred={self.role_inferred!r}, history={self.history!r}, conn_state={self.conn_state!r}, "
                f"rtt_ns={self.rtt_ns!r}, rsts={self.rsts!r}, continues={'...' if self.continues is not None else None})")


if any(not hasattr(WalkedConnection, name) for name in _CONNECTION_FIELDS):
    raise RuntimeError("walkloop: WalkedConnection lacks a field of Connection")


cdef WalkedConnection new_connection(object rows, const int64_t *data, Py_ssize_t start, Py_ssize_t stop,
                                     bint flipped, object client_dir, bint inferred):
    cdef WalkedConnection conn = WalkedConnection.__new__(WalkedConnection)
    conn._rows, conn._data, conn._start, conn._stop = rows, data, start, stop
    conn.flipped = flipped
    conn.client_dir = client_dir
    conn.role_inferred = inferred
    conn.history = ""
    conn.conn_state = ""
    conn.rtt_ns = None
    conn.continues = None
    return conn

cdef long long SEQ_MOD = 1LL << 32
cdef long long HALF = 1LL << 31
cdef int FIN = 1, SYN = 2, RST = 4, ACK = 16
cdef int ECHO_LOOKBACK = 64
# sources/framing.py's codes
cdef int APP_KIND_MASK = _framing.KIND_MASK, APP_LAST_CHUNK = _framing.LAST_CHUNK, APP_SHIFT = _framing.LENGTH_SHIFT
cdef int REPLY_SEEN = _REPLY_SEEN, REPLY_WHOLE = _REPLY_WHOLE, REPLY_CUT_SHORT = _REPLY_CUT_SHORT
cdef int APP_REQUEST = _framing.HTTP_REQUEST, APP_REPLY = _framing.HTTP_REPLY, APP_ERROR_REPLY = _framing.HTTP_ERROR_REPLY
cdef int APP_TLS_HANDSHAKE = _framing.TLS_HANDSHAKE, APP_TLS_APP_DATA = _framing.TLS_APP_DATA, APP_TLS_ALERT = _framing.TLS_ALERT
cdef int TLS_HANDSHAKE = _TLS_HANDSHAKE, TLS_APP_DATA = _TLS_APP_DATA, TLS_ALERT = _TLS_ALERT
cdef Py_ssize_t AFTER_SENDER = _AFTER_SENDER, AFTER_RECEIVER = _AFTER_RECEIVER
cdef int MAX_WSCALE = 14
cdef long long RESET_DELAY_NS = _RESET_DELAY_NS
cdef int INACTIVE = 0, SYN_SENT = 1, SYN_ACK_SENT = 2, PARTIAL = 3, ESTABLISHED = 4, CLOSED = 5, RESET = 6

cdef struct Side:
    int state
    bint has_isn
    long long isn
    bint has_nxt
    long long nxt
    bint has_last_ack
    long long last_ack
    long long last_win
    long long data_bytes
    long long size
    long long peer_bytes_since_my_data
    bint has_ack_at_last_write
    long long ack_at_last_write
    bint has_sent_after_synack
    long long sent_after_synack
    bint has_syn_frame
    long long syn_frame
    bint has_syn_ts
    long long syn_ts_ns
    bint has_fin_seq
    long long fin_seq
    bint has_fin_frame
    long long fin_frame
    bint fin_acked
    long long retrans
    int ttl_count[256]
    int ttl_order[256]          # TTLs in the order first seen (Counter.most_common's tie order)
    int ttl_kinds
    long long probes            # keepalive probes since the peer last spoke, and the last 3 frames
    long long probe_frames[3]
    long long zw_probes         # zero-window probes, and the last 3 frames
    long long zw_frames[3]
    int msg_kind                # connection.Side's HTTP/1 message: kind, after the peer's last data,
    bint msg_fresh              # its end when known, all sent (connection._note_message)
    bint has_msg_end
    long long msg_end
    bint msg_done
    int tls_record              # connection.Side.tls_record


@cython.cdivision(True)              # the remainder's sign is fixed below, as Python's is
cdef inline long long sdiff(long long a, long long b) noexcept nogil:
    cdef long long d = (a - b + HALF) % SEQ_MOD
    if d < 0:
        d += SEQ_MOD
    return d - HALF


cdef inline void note_probe(long long *count, long long *frames, long long frame) noexcept nogil:
    frames[count[0] % 3] = frame
    count[0] += 1


cdef int last_probes(long long count, long long *frames, int n, long long *out, int used) noexcept nogil:
    """Append the last `n` probe frames (probes[-n:]) to out[used:]; returns the new count."""
    cdef long long k
    for k in range(max(0, count - n), count):
        out[used] = frames[k % 3]
        used += 1
    return used


# One-letter texts by character code, so a history letter is appended without making a string
cdef enum:
    HISTORY_MAX = 128      # at most ~50 letters: 10 kinds once per direction, t/g/w 4 times more, '^'


cdef class History:
    """zeek.History: a letter per direction once, t/g/w again at the 10th, 100th... time. The
    letters are ASCII, kept in a C buffer: upper case for the originator is a bit, not
    str.upper() (a Python call per packet was ~13% of the walk), and the text is made once."""
    cdef int counts[128]
    cdef char letters[HISTORY_MAX]
    cdef int used

    def __cinit__(self, bint flipped):
        self.used = 0
        if flipped:
            self.letters[0] = b'^'
            self.used = 1

    cdef inline void add(self, int letter, bint is_orig):
        cdef int lower = letter | 0x20
        cdef int c = (lower & ~0x20) if is_orig else lower
        self.counts[c] += 1
        cdef int n = self.counts[c]
        # t, g, w (zeek.REPEATING) are logged again at their 10th, 100th... occurrence
        if n == 1 or ((lower == c't' or lower == c'g' or lower == c'w')
                      and (n == 10 or n == 100 or n == 1000 or n == 10000)):
            if self.used < HISTORY_MAX:
                self.letters[self.used] = <char>c
                self.used += 1

    cdef str text(self):
        return self.letters[:self.used].decode("ascii")


cdef inline (int, int) next_state(int state, int peer, bint syn, bint has_ack, bint fin, bint rst,
                                  bint has_data) noexcept nogil:
    """zeek.next_state."""
    if rst:
        if state == CLOSED and peer == CLOSED:
            return state, peer
        return RESET, peer
    if state == RESET:
        return state, peer
    if fin:
        return CLOSED, peer
    if state == INACTIVE:
        if syn:
            return (SYN_ACK_SENT if has_ack else SYN_SENT), peer
        return PARTIAL, peer
    if state == SYN_SENT and not syn and has_ack:
        if peer == SYN_ACK_SENT or peer == ESTABLISHED:
            return ESTABLISHED, ESTABLISHED
        return state, peer
    if state == SYN_ACK_SENT and not syn and peer == ESTABLISHED:
        return ESTABLISHED, peer
    return state, peer


cdef str conn_state(int orig, int resp, long long orig_size, long long resp_size, str history):
    """zeek.conn_state (its regular expression for RSTOS0 is asked only there)."""
    cdef bint o_inactive = orig == INACTIVE or orig == PARTIAL
    cdef bint r_inactive = resp == INACTIVE or resp == PARTIAL
    if resp == RESET:
        if orig == SYN_SENT or orig == SYN_ACK_SENT or (orig == RESET and orig_size == 0 and resp_size == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig == RESET:
        if r_inactive:
            return "RSTOS0" if zeek.RSTOS0_HISTORY.fullmatch(history) else "OTH"
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


def connection_columns(list conns):
    """features.extract.connection_columns_python for the compiled walk's connections (any other
    object: None, and the caller uses the Python one): first and last segment row, conn_state,
    history, roles inferred with a client known, and lineage, a value per connection."""
    cdef Py_ssize_t n = len(conns), k
    cdef WalkedConnection c, root, cont
    for obj in conns:
        if type(obj) is not WalkedConnection:
            return None
    first_arr, last_arr, lineage_arr = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    inferred_arr = np.empty(n, np.bool_)
    cdef int64_t[::1] first = first_arr, last = last_arr, lineage = lineage_arr
    cdef unsigned char[::1] inferred = inferred_arr.view(np.uint8)
    states, histories = [None] * n, [None] * n
    for k in range(n):
        c = <WalkedConnection>conns[k]
        c.place = k
    for k in range(n):
        c = <WalkedConnection>conns[k]
        if c._stop <= c._start:
            raise ValueError("a connection without segments")
        first[k] = c.first_row()
        last[k] = c.last_row()
        states[k] = c.conn_state
        histories[k] = c.history
        inferred[k] = c.role_inferred and c.client_dir is not None
        root = c            # the first piece it continues, through pieces in `conns` only
        while root.continues is not None:
            cont = <WalkedConnection?>root.continues
            if not (0 <= cont.place < n and conns[cont.place] is cont):
                break
            root = cont
        lineage[k] = root.place
    return first_arr, last_arr, states, histories, inferred_arr, lineage_arr


def walk(dict P, list idx):
    """track.connection.walk, compiled: the Connection with its RSTs as ConnRst (the twin test's
    view; the pipeline uses walk_groups, which writes the RSTs' features as columns)."""
    cdef Cols c = Cols(P)
    cdef Py_ssize_t r
    cdef RstOut out = RstOut(sum(1 for i in idx if c.flags[i] & RST))
    rows = np.array(idx, dtype=np.int64)
    cdef const int64_t[::1] view = rows
    if not len(idx):
        raise ValueError("a connection without segments")
    conn = conn_walk(c, out, 0, rows, &view[0], 0, len(idx))
    for r in range(out.n):
        conn.rsts.append(ConnRst(pos=int(out.pos[r]), frame=int(out.frame[r]), sender=int(out.sender[r]),
                                 values=out.values(r), evidence=out.evidence[r]))
    return conn


cdef WalkedConnection conn_walk(Cols c, RstOut out, Py_ssize_t conn_no, object rows, const int64_t *data,
                                Py_ssize_t start, Py_ssize_t stop):
    """One connection, whose segment rows are rows[start:stop] (`data` is rows' data): its
    Connection, and a row in `out` per RST."""
    cdef Py_ssize_t n = stop - start, pos
    cdef int d, f, client_dir = -1
    cdef bint inferred = True, flipped, syn, fin, rst, has_ack
    cdef long long seq, ack, plen, end, i, win, ttl, sp, dp, first
    cdef uint64_t a_lo, a_hi
    cdef unsigned short a_port
    cdef Side sides[2]
    cdef Side *me
    cdef Side *peer
    cdef Py_ssize_t first_row = out.n, rst_count = 0
    cdef long long *idx = <long long *>(data + start)      # read only
    cdef char *dirs = <char *>malloc(n)
    if dirs == NULL:
        raise MemoryError()
    first = idx[0]
    a_port, a_lo, a_hi = c.sport[first], c.src_lo[first], c.src_hi[first]
    for pos in range(n):
        i = idx[pos]
        dirs[pos] = 0 if (c.sport[i] == a_port and c.src_lo[i] == a_lo and c.src_hi[i] == a_hi) else 1
    # roles: the first SYN or SYN-ACK says who the client is; without one, the ports
    for pos in range(n):
        f = c.flags[idx[pos]]
        if f & SYN:
            d = dirs[pos]
            client_dir = (1 - d) if f & ACK else d
            inferred = False
            break
    if inferred:
        sp, dp = c.sport[first], c.dport[first]
        if dp < 1024 <= sp or (dp < sp and sp >= 32768 > dp):
            client_dir = 0
        elif sp < 1024 <= dp or (sp < dp and dp >= 32768 > sp):
            client_dir = 1
    f = c.flags[first]
    flipped = (f & SYN) and (f & ACK)
    if flipped:
        for pos in range(n):
            dirs[pos] = 1 - dirs[pos]
        client_dir = 0
    conn = new_connection(rows, data, start, stop, flipped, None if client_dir < 0 else client_dir, inferred)
    memset_side(&sides[0])
    memset_side(&sides[1])
    cdef History hist = History(flipped)
    cdef bint has_rtt = False
    cdef long long rtt_ns = 0
    for pos in range(n):
        i = idx[pos]
        d = dirs[pos]
        me = &sides[d]
        peer = &sides[1 - d]
        f = c.flags[i]
        seq = c.seq[i]
        ack = c.ack[i]
        plen = c.plen[i]
        win = c.win[i]
        syn, fin, rst, has_ack = (f & SYN) != 0, (f & FIN) != 0, (f & RST) != 0, (f & ACK) != 0
        if rst:
            describe_rst(c, out, conn_no, client_dir, inferred, idx, dirs, pos, sides, rst_count, has_rtt, rtt_ns)
            rst_count += 1
        # --- history letters
        if syn:
            hist.add(c'Q' if (fin or rst) else (c'H' if has_ack else c'S'), d == 0)
        else:
            if fin:
                hist.add(c'F', d == 0)
            if rst:
                hist.add(c'R', d == 0)
            if plen > 0 and not rst:
                hist.add(c'D', d == 0)
            elif has_ack and not fin and not rst:
                hist.add(c'A', d == 0)
        if plen > 0 and not rst and me.has_nxt and sdiff(seq, me.nxt) < 0:
            me.retrans += 1
            hist.add(c'T', d == 0)
        if has_ack and not rst and peer.has_nxt and peer.has_isn and sdiff(ack, peer.nxt) > 0:
            hist.add(c'g', d == 1)
            peer.nxt = ack
        if not syn and not rst and win == 0 and has_ack:
            hist.add(c'W', d == 0)
        # --- probes
        if (not (syn or fin or rst) and plen <= 1 and me.has_nxt and sdiff(seq, me.nxt) == -1):
            if peer.has_last_ack and peer.last_win == 0:
                note_probe(&me.zw_probes, me.zw_frames, c.frame[i])
            else:
                note_probe(&me.probes, me.probe_frames, c.frame[i])
        elif not rst and (plen > 0 or syn or fin):
            me.probes = 0
            me.zw_probes = 0
        if not rst:
            peer.probes = 0
            if plen > 0 or win != 0 or fin:
                peer.zw_probes = 0
        # --- sequence bookkeeping
        if syn and has_ack and not rst:
            if not me.has_sent_after_synack:
                me.has_sent_after_synack = True
                me.sent_after_synack = 0
        elif me.has_sent_after_synack:
            me.sent_after_synack += 1
        end = (seq + plen + (1 if syn else 0) + (1 if fin else 0)) % SEQ_MOD
        if end < 0:
            end += SEQ_MOD
        if syn:
            me.has_isn, me.isn = True, seq
            me.has_syn_frame, me.syn_frame = True, c.frame[i]
            me.has_syn_ts, me.syn_ts_ns = True, c.ts[i]
        elif (not has_rtt and has_ack and not rst and me.has_syn_ts and peer.has_isn
              and sdiff(ack, peer.isn) >= 1):
            has_rtt, rtt_ns = True, c.ts[i] - me.syn_ts_ns
        if not rst:
            if not me.has_nxt or sdiff(end, me.nxt) > 0:
                me.has_nxt, me.nxt = True, end
            if plen > 0:
                me.data_bytes += plen
                me.size += plen
                me.peer_bytes_since_my_data = 0
                peer.peer_bytes_since_my_data += plen
                note_message(me, peer, c.app[i], seq, plen)
            if fin and not me.has_fin_seq:
                me.has_fin_seq, me.fin_seq = True, (seq + plen) % SEQ_MOD
                if me.fin_seq < 0:
                    me.fin_seq += SEQ_MOD
                me.has_fin_frame, me.fin_frame = True, c.frame[i]
            if (plen > 0 or fin) and has_ack:
                me.has_ack_at_last_write, me.ack_at_last_write = True, ack
            if has_ack:
                me.has_last_ack, me.last_ack, me.last_win = True, ack, win
                if peer.has_fin_seq and sdiff(ack, peer.fin_seq) >= 1:
                    peer.fin_acked = True
            ttl = c.ttl[i]
            if me.ttl_count[ttl] == 0:
                me.ttl_order[me.ttl_kinds] = <int>ttl
                me.ttl_kinds += 1
            me.ttl_count[ttl] += 1
        me.state, peer.state = next_state(me.state, peer.state, syn, has_ack, fin, rst, plen > 0)
    if has_rtt:
        conn.rtt_ns = rtt_ns
    text = hist.text()
    conn.history = text
    conn.conn_state = conn_state(sides[0].state, sides[1].state, sides[0].size, sides[1].size, text)
    after_rst(c, out, first_row, idx, dirs, n)
    free(dirs)
    return conn


@cython.cdivision(True)              # seq and plen are never negative
cdef inline void note_message(Side *me, Side *peer, int app, long long seq, long long plen) noexcept nogil:
    """connection._note_message."""
    cdef int kind = app & APP_KIND_MASK
    cdef long long length, e
    if kind == APP_REQUEST or kind == APP_REPLY or kind == APP_ERROR_REPLY:
        length = app >> APP_SHIFT
        me.msg_kind, me.msg_fresh, me.msg_done = kind, True, False
        me.has_msg_end = length != 0
        me.msg_end = (seq + length) % SEQ_MOD
    if me.msg_kind != 0 and app & APP_LAST_CHUNK:
        me.msg_done = True
    if me.has_msg_end:
        e = (seq + plen) % SEQ_MOD
        if sdiff(e, me.msg_end) >= 0:
            me.msg_done = True
    peer.msg_fresh = False
    if kind == APP_TLS_HANDSHAKE:
        me.tls_record = TLS_HANDSHAKE
    elif kind == APP_TLS_APP_DATA:
        me.tls_record = TLS_APP_DATA
    elif kind == APP_TLS_ALERT:
        me.tls_record = TLS_ALERT


cdef void memset_side(Side *s) noexcept nogil:
    cdef int k
    s.state = INACTIVE
    s.has_isn = s.has_nxt = s.has_last_ack = s.has_ack_at_last_write = False
    s.has_sent_after_synack = s.has_syn_frame = s.has_syn_ts = s.has_fin_seq = s.has_fin_frame = False
    s.fin_acked = False
    s.isn = s.nxt = s.last_ack = s.last_win = s.data_bytes = s.size = s.peer_bytes_since_my_data = 0
    s.ack_at_last_write = s.sent_after_synack = s.syn_frame = s.syn_ts_ns = s.fin_seq = s.fin_frame = 0
    s.retrans = s.probes = s.zw_probes = 0
    s.ttl_kinds = 0
    s.msg_kind = 0
    s.tls_record = 0
    s.msg_fresh = s.has_msg_end = s.msg_done = False
    s.msg_end = 0
    for k in range(256):
        s.ttl_count[k] = 0


cdef inline int tri(bint known, bint value) noexcept nogil:
    """A bool feature's code: -1 unknown, else 0/1."""
    return (1 if value else 0) if known else -1


cdef void describe_rst(Cols c, RstOut o, Py_ssize_t conn_no, int client, bint role_inferred, long long *idx,
                       char *dirs, Py_ssize_t pos, Side *sides, Py_ssize_t index_in_conn, bint has_rtt,
                       long long rtt_ns) except *:
    """connection._describe_rst, compiled: the features of the RST at `pos`, written as row o.n."""
    cdef long long i = idx[pos]
    cdef int d = dirs[pos]
    cdef Side *snd = &sides[d]
    cdef Side *rcv = &sides[1 - d]
    cdef Side *cli = NULL
    cdef Side *srv = NULL
    cdef int f = c.flags[i], tf = 0, fj, k, best, trigger_kind
    cdef long long seq = c.seq[i], ack = c.ack[i], j, t_plen = 0, offset = 0, window, t_ack = 0, a = 0
    cdef long long ttl_i, ttl_delta = 0, ipid
    cdef bint has_ack = (f & ACK) != 0, has_trig, has_offset, at_fin, t_probe, in_window = False
    cdef bint completes_handshake, has_acked_after = False, has_ttl_delta = False
    cdef int echoes = -1
    cdef Py_ssize_t tpos = -1, same_ack = -1, data_ack = -1, trig = -1
    cdef long long ev[16]
    cdef int nev = 0, x, y
    cdef long long tmp
    if client >= 0:
        cli = &sides[client]
        srv = &sides[1 - client]
    if pos > 0 and dirs[pos - 1] != d:
        tpos = pos - 1
    if not has_ack:
        for k in range(pos - 1, max(-1, pos - 9), -1):
            j = idx[k]
            fj = c.flags[j]
            if dirs[k] != d and fj & ACK and not fj & RST and c.ack[j] == seq:
                if same_ack < 0:
                    same_ack = k
                if c.plen[j] > 0:
                    data_ack = k
        if data_ack >= 0:
            tpos = data_ack
        elif same_ack >= 0:
            tpos = same_ack
    has_trig = tpos >= 0
    if has_trig:
        trig = idx[tpos]
        tf = c.flags[trig]
        t_plen = c.plen[trig]
        t_ack = c.ack[trig]
    t_probe = (has_trig and not (tf & (SYN | FIN | RST)) and t_plen <= 1 and rcv.has_nxt
               and sdiff(c.seq[trig], rcv.nxt) == -1)
    if not has_trig:
        trigger_kind = T_NONE
    elif tf & RST:
        trigger_kind = T_RST
    elif tf & SYN and tf & ACK:
        trigger_kind = T_SYNACK
    elif tf & SYN:
        trigger_kind = T_SYN
    elif tf & FIN:
        trigger_kind = T_FIN
    elif t_probe:
        trigger_kind = T_PROBE
    elif t_plen > 0:
        trigger_kind = T_DATA
    else:
        trigger_kind = T_ACK

    has_offset = rcv.has_last_ack
    if has_offset:
        offset = sdiff(seq, rcv.last_ack)
    at_fin = has_offset and offset == -1 and snd.has_fin_seq and seq == snd.fin_seq
    window = max(rcv.last_win << MAX_WSCALE, 65535)
    if has_offset:
        in_window = (0 <= offset <= window) or at_fin
    after_own_fin = has_ack and snd.has_fin_seq and seq == (snd.fin_seq + 1) % SEQ_MOD
    completes_handshake = (client >= 0 and d == client and has_ack and srv.has_isn
                           and ack == (srv.isn + 1) % SEQ_MOD
                           and (not cli.has_last_ack or sdiff(cli.last_ack, srv.isn) < 1))
    if has_offset and not in_window:
        echoes = 0
        for k in range(pos - 1, max(-1, pos - ECHO_LOOKBACK), -1):
            j = idx[k]
            fj = c.flags[j]
            if dirs[k] != d and fj & ACK and not fj & RST and c.ack[j] == seq:
                echoes = 1
                break
    if has_ack and snd.has_ack_at_last_write:
        has_acked_after = True
        a = max(0, sdiff(ack, snd.ack_at_last_write))
        if (a and rcv.has_fin_seq and sdiff(rcv.fin_seq, snd.ack_at_last_write) >= 0
                and sdiff(ack, rcv.fin_seq) >= 1):
            a -= 1
    ttl_i = c.ttl[i]
    if snd.ttl_kinds:
        best = snd.ttl_order[0]
        for k in range(1, snd.ttl_kinds):
            if snd.ttl_count[snd.ttl_order[k]] > snd.ttl_count[best]:
                best = snd.ttl_order[k]
        has_ttl_delta, ttl_delta = True, abs(ttl_i - best)
    ipid = c.ipid[i]
    # in connection.WALK_FEATURES order (RST_FEATURES, then the two after.* set by after_rst)
    o.put_bool(0, tri(client >= 0, d == client))                         # rst.from_client
    o.put_bool(1, tri(client >= 0, d != client))                         # rst.from_server
    o.put_bool(2, has_ack)                                               # rst.has_ack
    o.put_bool(3, c.win[i] == 0 and c.hlen[i] == 20 and (ipid == 0 or ipid == -1))   # rst.stateless_shape
    o.put_bool(4, c.plen[i] > 0)                                         # rst.has_payload
    o.put_bool(5, trigger_kind == T_SYN and has_ack and ack == (c.seq[trig] + 1) % SEQ_MOD
               and not snd.has_syn_frame)                                # rst.answers_syn
    o.put_bool(6, trigger_kind == T_SYNACK and not has_ack and seq == t_ack)   # rst.answers_synack
    o.put_bool(7, tri(has_trig and (tf & ACK) != 0, seq == t_ack))      # rst.seq_eq_trigger_ack
    if has_offset:                                                       # rst.seq_offset
        o.put_int(8, offset)
    else:
        o.put_int_missing(8)
    o.put_bool(9, tri(has_offset, in_window))                            # rst.seq_in_window
    o.put_bool(10, tri(has_offset, offset == 0 or at_fin))              # rst.seq_exact
    o.put_bool(11, echoes)                                               # rst.seq_echoes_receiver_ack
    o.put_bool(12, at_fin)                                               # rst.seq_at_fin
    o.put_bool(13, after_own_fin)                                        # rst.after_own_fin
    o.put_bool(14, completes_handshake)                                  # rst.completes_handshake
    o.put_int(15, ttl_i)                                                 # rst.ttl
    if has_ttl_delta:                                                    # rst.ttl_delta
        o.put_int(16, ttl_delta)
    else:
        o.put_int_missing(16)
    o.put_bool(17, tri(has_ttl_delta, ttl_delta >= 1))                   # rst.ttl_mismatch
    o.put_int(18, index_in_conn)                                         # rst.index_in_conn
    if pos > 0:                                                          # rst.gap_s
        o.put_float(19, (c.ts[i] - c.ts[idx[pos - 1]]) / 1e9)
    else:
        o.put_float_missing(19)
    o.kv[o.n] = trigger_kind                                             # trigger.kind
    o.put_bool(21, t_plen > 0)                                           # trigger.has_data
    o.put_bool(22, tri(snd.has_fin_seq and has_trig and (tf & ACK) != 0,
                       sdiff(t_ack, snd.fin_seq) >= 1))                  # trigger.acks_sender_fin
    if has_trig and tpos > 0:                                            # trigger.idle_before_s
        o.put_float(23, (c.ts[trig] - c.ts[idx[tpos - 1]]) / 1e9)
    elif pos > 0:
        o.put_float(23, (c.ts[i] - c.ts[idx[pos - 1]]) / 1e9)
    else:
        o.put_float_missing(23)
    o.put_bool(24, cli != NULL and cli.has_syn_frame)                    # conn.syn_seen
    o.put_bool(25, srv != NULL and srv.has_syn_frame)                    # conn.synack_seen
    o.put_bool(26, completes_handshake or (
        cli != NULL and srv.has_isn and cli.has_last_ack and cli.has_syn_frame
        and sdiff(cli.last_ack, srv.isn) >= 1))                          # conn.handshake_complete
    o.put_bool(27, not sides[0].has_syn_frame and not sides[1].has_syn_frame)   # conn.midstream
    if cli == NULL:                                                      # conn.client_bytes, conn.server_bytes
        o.put_int_missing(28)
        o.put_int_missing(29)
    else:
        o.put_int(28, cli.data_bytes)
        o.put_int(29, srv.data_bytes)
    if srv == NULL or not srv.has_sent_after_synack:                     # conn.server_packets_after_synack
        o.put_int_missing(30)
    else:
        o.put_int(30, srv.sent_after_synack)
    o.put_bool(31, role_inferred)                                        # conn.role_inferred
    if has_rtt:                                                          # conn.rtt_s
        o.put_float(32, rtt_ns / 1e9)
    else:
        o.put_float_missing(32)
    o.put_bool(33, snd.has_fin_seq)                                      # sender.fin_sent
    o.put_bool(34, snd.fin_acked)                                        # sender.fin_acked
    o.put_int(35, snd.data_bytes)                                        # sender.bytes
    o.put_int(36, snd.probes)                                            # sender.keepalive_probes
    o.put_int(37, snd.zw_probes)                                         # sender.zero_window_probes
    o.put_bool(38, snd.has_last_ack and snd.last_win == 0)               # sender.zero_window
    if has_acked_after:                                                  # sender.bytes_acked_after_last_write
        o.put_int(39, a)
    else:
        o.put_int_missing(39)
    o.put_bool(40, rcv.has_fin_seq)                                      # receiver.fin_sent
    o.put_int(41, rcv.data_bytes)                                        # receiver.bytes
    o.put_int(42, snd.peer_bytes_since_my_data)                          # receiver.bytes_after_sender_data
    o.put_int(43, rcv.retrans)                                           # receiver.retransmissions
    o.put_int(44, rcv.zw_probes)                                         # receiver.zero_window_probes
    o.put_bool(45, rcv.has_last_ack and rcv.last_win == 0)               # receiver.zero_window
    o.put_bool(46, not has_ack and trigger_kind == T_ACK and snd.has_isn and snd.has_syn_frame
               and not rcv.has_syn_frame and t_ack != (snd.isn + 1) % SEQ_MOD
               and seq == t_ack)                                         # rst.answers_challenge_ack
    if rcv.msg_fresh and (rcv.msg_kind == APP_REPLY or rcv.msg_kind == APP_ERROR_REPLY):   # receiver.reply_framing
        o.put_int(47, REPLY_WHOLE if rcv.msg_done else (REPLY_CUT_SHORT if rcv.has_msg_end else REPLY_SEEN))
    else:
        o.put_int(47, 0)
    if rcv.msg_kind != APP_REQUEST:                                     # receiver.request_framing
        o.put_int(48, 0)
    else:
        o.put_int(48, REPLY_WHOLE if rcv.msg_done else (REPLY_CUT_SHORT if rcv.has_msg_end else REPLY_SEEN))
    if snd.msg_kind == 0 or snd.msg_kind == APP_REQUEST:                 # sender.error_reply
        o.put_bool(49, -1)
    else:
        o.put_bool(49, snd.msg_kind == APP_ERROR_REPLY)
    o.put_int(50, snd.tls_record)                                        # sender.tls_last_record
    o.put_int(51, rcv.tls_record)                                        # receiver.tls_last_record
    # after.sender_packets, after.receiver_packets: after_rst
    # evidence frames, sorted, each once
    if cli != NULL and cli.has_syn_frame:
        ev[nev] = cli.syn_frame
        nev += 1
    if srv != NULL and srv.has_syn_frame:
        ev[nev] = srv.syn_frame
        nev += 1
    if snd.has_fin_frame:
        ev[nev] = snd.fin_frame
        nev += 1
    if rcv.has_fin_frame:
        ev[nev] = rcv.fin_frame
        nev += 1
    nev = last_probes(snd.probes, snd.probe_frames, 3, ev, nev)
    nev = last_probes(snd.zw_probes, snd.zw_frames, 2, ev, nev)
    nev = last_probes(rcv.zw_probes, rcv.zw_frames, 2, ev, nev)
    if has_trig:
        ev[nev] = c.frame[trig]
        nev += 1
    ev[nev] = c.frame[i]
    nev += 1
    for x in range(1, nev):                 # insertion sort: at most 12 frames
        tmp = ev[x]
        y = x - 1
        while y >= 0 and ev[y] > tmp:
            ev[y + 1] = ev[y]
            y -= 1
        ev[y + 1] = tmp
    evidence = []
    for x in range(nev):
        if x == 0 or ev[x] != ev[x - 1]:
            evidence.append(ev[x])
    o.evidence.append(evidence)
    o.connv[o.n] = conn_no
    o.rowv[o.n] = i
    o.framev[o.n] = c.frame[i]
    o.senderv[o.n] = d
    o.posv[o.n] = pos
    o.n += 1


cdef void after_rst(Cols c, RstOut o, Py_ssize_t first_row, long long *idx, char *dirs, Py_ssize_t n):
    """connection._after_rst: what each side sent after each RST, in one backward pass (the
    connection's RST rows are first_row..o.n - 1, in position order)."""
    cdef long long later[2]
    later[0] = later[1] = 0
    cdef Py_ssize_t pos, r = o.n - 1
    cdef int s
    cdef int k_snd = SLOT[AFTER_SENDER], k_rcv = SLOT[AFTER_RECEIVER]
    if r < first_row:
        return
    for pos in range(n - 1, -1, -1):
        while r >= first_row and o.posv[r] == pos:
            s = <int>o.senderv[r]
            o.iv[k_snd, r] = later[s]
            o.iv[k_rcv, r] = later[1 - s]
            r -= 1
        if not c.flags[idx[pos]] & RST:
            later[<int>dirs[pos]] += 1


def split_connections(dict P, list idx):
    """connection.split_connections, compiled."""
    cdef Cols c = Cols(P)
    rows = np.array(idx, dtype=np.int64)
    cdef Py_ssize_t n = len(rows), pieces, k
    if not n:
        return []
    cdef const int64_t[::1] view = rows
    cdef Py_ssize_t[::1] starts = np.empty(n, np.intp)
    cdef signed char[::1] continues = np.empty(n, np.int8)
    pieces = split_range(c, &view[0], 0, n, &starts[0], &continues[0])
    return [(idx[starts[k]:starts[k + 1] if k + 1 < pieces else n], bool(continues[k])) for k in range(pieces)]


cdef Py_ssize_t split_range(Cols c, const int64_t *rows, Py_ssize_t lo, Py_ssize_t hi,
                            Py_ssize_t *starts, signed char *continues) noexcept:
    """connection.split_connections over the segment rows rows[lo:hi] (lo < hi): writes where each
    piece starts (it ends where the next starts, the last at hi) and whether it continues the
    one before; returns how many pieces (at most hi - lo: the room `starts` and `continues` need)."""
    cdef Py_ssize_t pieces = 1, pos
    cdef bint has_syn_seq = False, has_rst = False, syn_only, fresh_syn, stale
    cdef long long syn_seq = 0, last_rst_ns = 0, ts
    cdef int64_t i
    cdef int f
    starts[0], continues[0] = lo, False
    for pos in range(lo, hi):
        i = rows[pos]
        f = c.flags[i]
        ts = c.ts[i]
        syn_only = (f & SYN) != 0 and not (f & ACK)
        fresh_syn = syn_only and (has_rst or (has_syn_seq and c.seq[i] != syn_seq))
        stale = has_rst and ts - last_rst_ns > RESET_DELAY_NS
        if pos > lo and (stale or fresh_syn):
            starts[pieces], continues[pieces] = pos, not syn_only
            pieces += 1
            has_syn_seq, has_rst = False, False
        if syn_only and not has_syn_seq:
            has_syn_seq, syn_seq = True, c.seq[i]
        if f & RST:
            has_rst, last_rst_ns = True, ts
    return pieces


def walk_groups(dict P, order, bounds):
    """The connections holding a RST in each 4-tuple group order[bounds[g]:bounds[g + 1]] (int
    arrays), as tracker.rst_connections walks them (before sorting), each linked to the earlier
    piece it continues; and an RstOut with a row per RST (its `conn` numbering the connections
    returned). Each connection's rows are a slice of `order`, shared, not a copy."""
    cdef Cols c = Cols(P)
    cdef RstOut out = RstOut(int(np.count_nonzero(np.asarray(P["flags"]) & RST)))
    cdef list conns = []
    rows = np.ascontiguousarray(order, dtype=np.int64)
    cdef const int64_t[::1] rv = rows
    cdef const int64_t[::1] bv = np.ascontiguousarray(bounds, dtype=np.int64)
    cdef Py_ssize_t n = len(rows), g, k, pos, a, b, pieces
    cdef bint any_rst
    if not n:
        return conns, out
    for g in range(len(bv) - 1):         # unchecked indexing below: a bad group would read past the rows
        if not 0 <= bv[g] <= bv[g + 1] <= n:
            raise ValueError(f"walk_groups: group {g} spans rows {bv[g]}..{bv[g + 1]} of {n}")
    cdef const int64_t *data = &rv[0]
    cdef Py_ssize_t[::1] starts = np.empty(n, np.intp)      # each group's pieces (split_range)
    cdef signed char[::1] continues = np.empty(n, np.int8)
    for g in range(len(bv) - 1):
        if bv[g + 1] <= bv[g]:
            continue
        pieces = split_range(c, data, bv[g], bv[g + 1], &starts[0], &continues[0])
        prev = None
        for k in range(pieces):
            a = starts[k]
            b = starts[k + 1] if k + 1 < pieces else bv[g + 1]
            any_rst = False
            for pos in range(a, b):
                if c.flags[data[pos]] & RST:
                    any_rst = True
                    break
            if any_rst:
                conn = conn_walk(c, out, len(conns), rows, data, a, b)
                conn.continues = prev if continues[k] else None
                conns.append(conn)
                prev = conn
            elif not continues[k]:
                prev = None
    return conns, out


def first_rows(list conns):
    """The first segment row of each of the compiled walk's connections (an int64 array)."""
    cdef Py_ssize_t n = len(conns), k
    cdef WalkedConnection c
    out_arr = np.empty(n, np.int64)
    cdef int64_t[::1] out = out_arr
    for k in range(n):
        c = <WalkedConnection?>conns[k]
        if c._stop <= c._start:
            raise ValueError("a connection without segments")
        out[k] = c.first_row()
    return out_arr
