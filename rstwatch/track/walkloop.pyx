# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=False
"""The per-connection walk of track/connection.py in C (Cython): the same TCP bookkeeping with
each side's state in a C struct instead of a Python object, for a ~10x cheaper walk per reset.

connection.py stays the reference, readable one, and is what runs without a compiler;
tests/test_walk_twin.py checks both give identical connections (history, conn_state, rtt,
every feature of every RST, evidence) on every bundled and public capture and on random
segment streams. A change to the walk is made in both."""
from .connection import (RESET_DELAY_NS as _RESET_DELAY_NS, AFTER_RECEIVER as _AFTER_RECEIVER,
                         AFTER_SENDER as _AFTER_SENDER, Connection, ConnRst)
from . import zeek
from dataclasses import fields as _fields

# A Connection made without the dataclass's __init__ (Python code, ~2 us of a ~15 us walk): its
# fields set directly, in the order declared. A field added there must be added here.
_CONNECTION_FIELDS = ("idx", "flipped", "client_dir", "role_inferred", "history", "conn_state", "rtt_ns",
                      "rsts", "continues")
if tuple(f.name for f in _fields(Connection)) != _CONNECTION_FIELDS:
    raise RuntimeError("walkloop: Connection's fields changed; update _CONNECTION_FIELDS and new_connection")


cdef object new_connection(list idx, bint flipped, object client_dir, bint inferred):
    conn = Connection.__new__(Connection)
    cdef dict d = conn.__dict__
    d["idx"] = idx
    d["flipped"] = flipped
    d["client_dir"] = client_dir
    d["role_inferred"] = inferred
    d["history"] = ""
    d["conn_state"] = ""
    d["rtt_ns"] = None
    d["rsts"] = []
    d["continues"] = None
    return conn

cdef long long SEQ_MOD = 1LL << 32
cdef long long HALF = 1LL << 31
cdef int FIN = 1, SYN = 2, RST = 4, ACK = 16
cdef int ECHO_LOOKBACK = 64
cdef Py_ssize_t AFTER_SENDER = _AFTER_SENDER, AFTER_RECEIVER = _AFTER_RECEIVER
cdef int MAX_WSCALE = 14
cdef long long RESET_DELAY_NS = _RESET_DELAY_NS
cdef int INACTIVE = 0, SYN_SENT = 1, SYN_ACK_SENT = 2, PARTIAL = 3, ESTABLISHED = 4, CLOSED = 5, RESET = 6
# letters whose repeats are logged at the 1st, 10th, 100th... occurrence (zeek.REPEATING)
cdef bytes REPEATING = b"tgw"

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


cdef inline long long sdiff(long long a, long long b):
    cdef long long d = (a - b + HALF) % SEQ_MOD
    if d < 0:
        d += SEQ_MOD
    return d - HALF


cdef inline void note_probe(long long *count, long long *frames, long long frame):
    frames[count[0] % 3] = frame
    count[0] += 1


cdef list last_probes(long long count, long long *frames, int n):
    """The last `n` probe frames, oldest first (probes[-n:])."""
    cdef list out = []
    cdef long long k
    for k in range(max(0, count - n), count):
        out.append(frames[k % 3])
    return out


cdef class History:
    """zeek.History: a letter per direction once, t/g/w again at the 10th, 100th... time."""
    cdef int counts[128]
    cdef list letters

    def __cinit__(self, bint flipped):
        self.letters = ["^"] if flipped else []

    cdef inline void add(self, str letter, bint is_orig):
        cdef str key = letter.upper() if is_orig else letter.lower()
        cdef int c = ord(key)
        self.counts[c] += 1
        cdef int n = self.counts[c]
        if n == 1 or (ord(letter.lower()) in REPEATING and (n == 10 or n == 100 or n == 1000 or n == 10000)):
            self.letters.append(key)


cdef inline (int, int) next_state(int state, int peer, bint syn, bint has_ack, bint fin, bint rst, bint has_data):
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


def walk(dict P, list idx):
    """track.connection.walk, compiled."""
    cdef list flags = P["flags"], seqs = P["seq"], acks = P["ack"], plens = P["plen"]
    cdef list ttls = P["ttl"], wins = P["win"], frames = P["frame"], tss = P["ts_ns"]
    cdef list sports = P["sport"], src_los = P["src_lo"], src_his = P["src_hi"], dports = P["dport"]
    cdef Py_ssize_t n = len(idx), pos
    cdef int d, f, client_dir = -1
    cdef bint inferred = True, flipped, syn, fin, rst, has_ack
    cdef long long seq, ack, plen, end, i, win, ttl, ts, sp, dp
    cdef Side sides[2]
    cdef Side *me
    cdef Side *peer
    cdef list dirs = [0] * n
    first = idx[0]
    a_port, a_lo, a_hi = sports[first], src_los[first], src_his[first]
    for pos in range(n):
        j = idx[pos]
        dirs[pos] = 0 if (sports[j] == a_port and src_los[j] == a_lo and src_his[j] == a_hi) else 1
    # roles: the first SYN or SYN-ACK says who the client is; without one, the ports
    for pos in range(n):
        f = flags[idx[pos]]
        if f & SYN:
            d = dirs[pos]
            client_dir = (1 - d) if f & ACK else d
            inferred = False
            break
    if inferred:
        sp, dp = sports[first], dports[first]
        if dp < 1024 <= sp or (dp < sp and sp >= 32768 > dp):
            client_dir = 0
        elif sp < 1024 <= dp or (sp < dp and dp >= 32768 > sp):
            client_dir = 1
    f = flags[first]
    flipped = (f & SYN) and (f & ACK)
    if flipped:
        dirs = [1 - x for x in dirs]
        client_dir = 0
    conn = new_connection(idx, flipped, None if client_dir < 0 else client_dir, inferred)
    memset_side(&sides[0])
    memset_side(&sides[1])
    cdef History hist = History(flipped)
    cdef list rsts = conn.rsts
    cdef bint has_rtt = False
    cdef long long rtt_ns = 0
    for pos in range(n):
        i = idx[pos]
        d = dirs[pos]
        me = &sides[d]
        peer = &sides[1 - d]
        f = flags[i]
        seq = seqs[i]
        ack = acks[i]
        plen = plens[i]
        win = wins[i]
        syn, fin, rst, has_ack = (f & SYN) != 0, (f & FIN) != 0, (f & RST) != 0, (f & ACK) != 0
        if rst:
            rsts.append(describe_rst(P, conn, client_dir, idx, dirs, pos, sides, len(rsts),
                                     has_rtt, rtt_ns))
        # --- history letters
        if syn:
            hist.add("Q" if (fin or rst) else ("H" if has_ack else "S"), d == 0)
        else:
            if fin:
                hist.add("F", d == 0)
            if rst:
                hist.add("R", d == 0)
            if plen > 0 and not rst:
                hist.add("D", d == 0)
            elif has_ack and not fin and not rst:
                hist.add("A", d == 0)
        if plen > 0 and not rst and me.has_nxt and sdiff(seq, me.nxt) < 0:
            me.retrans += 1
            hist.add("T", d == 0)
        if has_ack and not rst and peer.has_nxt and peer.has_isn and sdiff(ack, peer.nxt) > 0:
            hist.add("G" if d == 1 else "g", d == 1)
            peer.nxt = ack
        if not syn and not rst and win == 0 and has_ack:
            hist.add("W", d == 0)
        # --- probes
        if (not (syn or fin or rst) and plen <= 1 and me.has_nxt and sdiff(seq, me.nxt) == -1):
            if peer.has_last_ack and peer.last_win == 0:
                note_probe(&me.zw_probes, me.zw_frames, frames[i])
            else:
                note_probe(&me.probes, me.probe_frames, frames[i])
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
            me.has_syn_frame, me.syn_frame = True, frames[i]
            me.has_syn_ts, me.syn_ts_ns = True, tss[i]
        elif (not has_rtt and has_ack and not rst and me.has_syn_ts and peer.has_isn
              and sdiff(ack, peer.isn) >= 1):
            has_rtt, rtt_ns = True, <long long>tss[i] - me.syn_ts_ns
        if not rst:
            if not me.has_nxt or sdiff(end, me.nxt) > 0:
                me.has_nxt, me.nxt = True, end
            if plen > 0:
                me.data_bytes += plen
                me.size += plen
                me.peer_bytes_since_my_data = 0
                peer.peer_bytes_since_my_data += plen
            if fin and not me.has_fin_seq:
                me.has_fin_seq, me.fin_seq = True, (seq + plen) % SEQ_MOD
                if me.fin_seq < 0:
                    me.fin_seq += SEQ_MOD
                me.has_fin_frame, me.fin_frame = True, frames[i]
            if (plen > 0 or fin) and has_ack:
                me.has_ack_at_last_write, me.ack_at_last_write = True, ack
            if has_ack:
                me.has_last_ack, me.last_ack, me.last_win = True, ack, win
                if peer.has_fin_seq and sdiff(ack, peer.fin_seq) >= 1:
                    peer.fin_acked = True
            ttl = ttls[i]
            if me.ttl_count[ttl] == 0:
                me.ttl_order[me.ttl_kinds] = <int>ttl
                me.ttl_kinds += 1
            me.ttl_count[ttl] += 1
        me.state, peer.state = next_state(me.state, peer.state, syn, has_ack, fin, rst, plen > 0)
    if has_rtt:
        conn.rtt_ns = rtt_ns
    text = "".join(hist.letters)
    conn.history = text
    conn.conn_state = zeek.conn_state(sides[0].state, sides[1].state, sides[0].size, sides[1].size, text)
    after_rst(flags, idx, dirs, rsts)
    return conn


cdef void memset_side(Side *s):
    cdef int k
    s.state = INACTIVE
    s.has_isn = s.has_nxt = s.has_last_ack = s.has_ack_at_last_write = False
    s.has_sent_after_synack = s.has_syn_frame = s.has_syn_ts = s.has_fin_seq = s.has_fin_frame = False
    s.fin_acked = False
    s.isn = s.nxt = s.last_ack = s.last_win = s.data_bytes = s.size = s.peer_bytes_since_my_data = 0
    s.ack_at_last_write = s.sent_after_synack = s.syn_frame = s.syn_ts_ns = s.fin_seq = s.fin_frame = 0
    s.retrans = s.probes = s.zw_probes = 0
    s.ttl_kinds = 0
    for k in range(256):
        s.ttl_count[k] = 0


cdef object describe_rst(dict P, object conn, int client, list idx, list dirs, Py_ssize_t pos, Side *sides,
                         Py_ssize_t index_in_conn, bint has_rtt, long long rtt_ns):
    """connection._describe_rst, compiled: the features of the RST at `pos`."""
    cdef list flags = P["flags"], seqs = P["seq"], acks = P["ack"], plens = P["plen"], tss = P["ts_ns"]
    cdef list frames = P["frame"]
    cdef long long i = idx[pos]
    cdef int d = dirs[pos]
    cdef Side *snd = &sides[d]
    cdef Side *rcv = &sides[1 - d]
    cdef Side *cli = NULL
    cdef Side *srv = NULL
    cdef int f = flags[i], tf = 0, fj, k, best
    cdef long long seq = seqs[i], ack = acks[i], j, t_plen = 0, offset = 0, window, t_ack = 0, a
    cdef bint has_ack = (f & ACK) != 0, has_trig, has_offset, at_fin, t_probe
    cdef Py_ssize_t tpos = -1, same_ack = -1, data_ack = -1, trig = -1
    if client >= 0:
        cli = &sides[client]
        srv = &sides[1 - client]
    if pos > 0 and dirs[pos - 1] != d:
        tpos = pos - 1
    if not has_ack:
        for k in range(pos - 1, max(-1, pos - 9), -1):
            j = idx[k]
            fj = flags[j]
            if dirs[k] != d and fj & ACK and not fj & RST and acks[j] == seq:
                if same_ack < 0:
                    same_ack = k
                if plens[j] > 0:
                    data_ack = k
        if data_ack >= 0:
            tpos = data_ack
        elif same_ack >= 0:
            tpos = same_ack
    has_trig = tpos >= 0
    if has_trig:
        trig = idx[tpos]
        tf = flags[trig]
        t_plen = plens[trig]
        t_ack = acks[trig]
    t_probe = (has_trig and not (tf & (SYN | FIN | RST)) and t_plen <= 1 and rcv.has_nxt
               and sdiff(seqs[trig], rcv.nxt) == -1)
    if not has_trig:
        trigger_kind = "none"
    elif tf & RST:
        trigger_kind = "rst"
    elif tf & SYN and tf & ACK:
        trigger_kind = "synack"
    elif tf & SYN:
        trigger_kind = "syn"
    elif tf & FIN:
        trigger_kind = "fin"
    elif t_probe:
        trigger_kind = "probe"
    elif t_plen > 0:
        trigger_kind = "data"
    else:
        trigger_kind = "ack"
    prev_ts = tss[idx[pos - 1]] if pos > 0 else None
    before_trig_ts = tss[idx[tpos - 1]] if has_trig and tpos > 0 else None
    if has_trig and before_trig_ts is not None:
        idle = (tss[trig] - before_trig_ts) / 1e9
    elif prev_ts is not None:
        idle = (tss[i] - prev_ts) / 1e9
    else:
        idle = None

    has_offset = rcv.has_last_ack
    if has_offset:
        offset = sdiff(seq, rcv.last_ack)
    at_fin = has_offset and offset == -1 and snd.has_fin_seq and seq == snd.fin_seq
    window = max(rcv.last_win << MAX_WSCALE, 65535)
    in_window = None if not has_offset else ((0 <= offset <= window) or at_fin)
    after_own_fin = has_ack and snd.has_fin_seq and seq == (snd.fin_seq + 1) % SEQ_MOD
    completes_handshake = (client >= 0 and d == client and has_ack and srv.has_isn
                           and ack == (srv.isn + 1) % SEQ_MOD
                           and (not cli.has_last_ack or sdiff(cli.last_ack, srv.isn) < 1))
    echoes = None
    if in_window is False:
        echoes = False
        for k in range(pos - 1, max(-1, pos - ECHO_LOOKBACK), -1):
            j = idx[k]
            fj = flags[j]
            if dirs[k] != d and fj & ACK and not fj & RST and acks[j] == seq:
                echoes = True
                break
    acked_after_write = None
    if has_ack and snd.has_ack_at_last_write:
        a = max(0, sdiff(ack, snd.ack_at_last_write))
        if (a and rcv.has_fin_seq and sdiff(rcv.fin_seq, snd.ack_at_last_write) >= 0
                and sdiff(ack, rcv.fin_seq) >= 1):
            a -= 1
        acked_after_write = a
    ttl_i = P["ttl"][i]
    ttl_delta = None
    if snd.ttl_kinds:
        best = snd.ttl_order[0]
        for k in range(1, snd.ttl_kinds):
            if snd.ttl_count[snd.ttl_order[k]] > snd.ttl_count[best]:
                best = snd.ttl_order[k]
        ttl_delta = abs(ttl_i - best)
    ipid = P["ipid"][i]
    # in connection.WALK_FEATURES order (RST_FEATURES, then the two after.* set by after_rst)
    values = [
        None if client < 0 else d == client,  # rst.from_client
        None if client < 0 else d != client,  # rst.from_server
        has_ack,  # rst.has_ack
        P["win"][i] == 0 and P["hlen"][i] == 20 and (ipid == 0 or ipid == -1),  # rst.stateless_shape
        plens[i] > 0,  # rst.has_payload
        (trigger_kind == "syn" and has_ack and ack == (seqs[trig] + 1) % SEQ_MOD
         and not snd.has_syn_frame),  # rst.answers_syn
        trigger_kind == "synack" and not has_ack and seq == t_ack,  # rst.answers_synack
        None if not has_trig or not (tf & ACK) else seq == t_ack,  # rst.seq_eq_trigger_ack
        offset if has_offset else None,  # rst.seq_offset
        in_window,  # rst.seq_in_window
        None if not has_offset else (offset == 0 or at_fin),  # rst.seq_exact
        echoes,  # rst.seq_echoes_receiver_ack
        at_fin,  # rst.seq_at_fin
        after_own_fin,  # rst.after_own_fin
        completes_handshake,  # rst.completes_handshake
        ttl_i,  # rst.ttl
        ttl_delta,  # rst.ttl_delta
        None if ttl_delta is None else ttl_delta >= 1,  # rst.ttl_mismatch
        index_in_conn,  # rst.index_in_conn
        None if prev_ts is None else (tss[i] - prev_ts) / 1e9,  # rst.gap_s
        trigger_kind,  # trigger.kind
        t_plen > 0,  # trigger.has_data
        None if (not snd.has_fin_seq or not has_trig or not tf & ACK)
        else sdiff(t_ack, snd.fin_seq) >= 1,  # trigger.acks_sender_fin
        idle,  # trigger.idle_before_s
        cli != NULL and cli.has_syn_frame,  # conn.syn_seen
        srv != NULL and srv.has_syn_frame,  # conn.synack_seen
        completes_handshake or (
            cli != NULL and srv.has_isn and cli.has_last_ack and cli.has_syn_frame
            and sdiff(cli.last_ack, srv.isn) >= 1),  # conn.handshake_complete
        not sides[0].has_syn_frame and not sides[1].has_syn_frame,  # conn.midstream
        None if cli == NULL else cli.data_bytes,  # conn.client_bytes
        None if srv == NULL else srv.data_bytes,  # conn.server_bytes
        None if (srv == NULL or not srv.has_sent_after_synack)
        else srv.sent_after_synack,  # conn.server_packets_after_synack
        conn.role_inferred,  # conn.role_inferred
        rtt_ns / 1e9 if has_rtt else None,  # conn.rtt_s
        snd.has_fin_seq,  # sender.fin_sent
        snd.fin_acked,  # sender.fin_acked
        snd.data_bytes,  # sender.bytes
        snd.probes,  # sender.keepalive_probes
        snd.zw_probes,  # sender.zero_window_probes
        snd.has_last_ack and snd.last_win == 0,  # sender.zero_window
        acked_after_write,  # sender.bytes_acked_after_last_write
        rcv.has_fin_seq,  # receiver.fin_sent
        rcv.data_bytes,  # receiver.bytes
        snd.peer_bytes_since_my_data,  # receiver.bytes_after_sender_data
        rcv.retrans,  # receiver.retransmissions
        rcv.zw_probes,  # receiver.zero_window_probes
        rcv.has_last_ack and rcv.last_win == 0,  # receiver.zero_window
        None, None,  # after.sender_packets, after.receiver_packets
    ]
    evidence = set()
    if cli != NULL and cli.has_syn_frame:
        evidence.add(cli.syn_frame)
    if srv != NULL and srv.has_syn_frame:
        evidence.add(srv.syn_frame)
    if snd.has_fin_frame:
        evidence.add(snd.fin_frame)
    if rcv.has_fin_frame:
        evidence.add(rcv.fin_frame)
    evidence.update(last_probes(snd.probes, snd.probe_frames, 3))
    evidence.update(last_probes(snd.zw_probes, snd.zw_frames, 2))
    evidence.update(last_probes(rcv.zw_probes, rcv.zw_frames, 2))
    if has_trig:
        evidence.add(frames[trig])
    evidence.add(frames[i])
    return ConnRst(pos=pos, frame=frames[i], sender=d, values=values, evidence=sorted(evidence))


cdef void after_rst(list flags, list idx, list dirs, list rsts):
    """connection._after_rst: what each side sent after each RST, in one backward pass."""
    if not rsts:
        return
    cdef long long later[2]
    later[0] = later[1] = 0
    cdef Py_ssize_t pos, k = 0
    ordered = sorted(rsts, key=_pos, reverse=True)
    cdef Py_ssize_t m = len(ordered)
    for pos in range(len(idx) - 1, -1, -1):
        while k < m and ordered[k].pos == pos:
            r = ordered[k]
            r.values[AFTER_SENDER] = later[r.sender]
            r.values[AFTER_RECEIVER] = later[1 - r.sender]
            k += 1
        if not (<int>flags[idx[pos]]) & RST:
            later[<int>dirs[pos]] += 1


def _pos(r):
    return r.pos


def split_connections(dict P, list idx):
    """connection.split_connections, compiled."""
    cdef list flags = P["flags"], seqs = P["seq"], tss = P["ts_ns"]
    cdef list conns = [], cur = []
    cdef bint cur_continues = False, has_syn_seq = False, has_rst = False, syn_only, fresh_syn, stale
    cdef long long syn_seq = 0, last_rst_ns = 0, ts
    cdef int f
    for i in idx:
        f = flags[i]
        ts = tss[i]
        syn_only = (f & SYN) != 0 and not (f & ACK)
        fresh_syn = syn_only and (has_rst or (has_syn_seq and seqs[i] != syn_seq))
        stale = has_rst and ts - last_rst_ns > RESET_DELAY_NS
        if cur and (stale or fresh_syn):
            conns.append((cur, cur_continues))
            cur, has_syn_seq, has_rst = [], False, False
            cur_continues = not syn_only
        cur.append(i)
        if syn_only and not has_syn_seq:
            has_syn_seq, syn_seq = True, seqs[i]
        if f & RST:
            has_rst, last_rst_ns = True, ts
    if cur:
        conns.append((cur, cur_continues))
    return conns


def walk_groups(dict P, list order, list bounds):
    """The connections holding a RST in each 4-tuple group order[bounds[g]:bounds[g + 1]], as
    tracker.rst_connections walks them (before sorting), each linked to the earlier piece it continues."""
    cdef list flags = P["flags"], conns = []
    cdef Py_ssize_t g
    cdef bint any_rst
    for g in range(len(bounds) - 1):
        prev = None
        for part, continues in split_connections(P, order[bounds[g]:bounds[g + 1]]):
            any_rst = False
            for i in part:
                if (<int>flags[i]) & RST:
                    any_rst = True
                    break
            if any_rst:
                conn = walk(P, part)
                conn.continues = prev if continues else None
                conns.append(conn)
                prev = conn
            elif not continues:
                prev = None
    return conns
