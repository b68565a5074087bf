"""Follow one TCP connection segment by segment and describe each RST in it.

Only connections that hold a RST get here (the vectorised filter in flows.py dropped the
rest), so a plain Python walk is affordable and keeps the TCP logic readable.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..sources import framing
from ..sources.segments import ACK, FIN, RST, SYN
from ..features.registry import declare
from . import zeek

SEQ_MOD = 1 << 32
ECHO_LOOKBACK = 64                      # segments searched back for the ack a RST's seq echoes
RESET_DELAY_NS = 5 * 1_000_000_000     # Zeek's tcp_reset_delay: later packets start a new connection
MAX_WSCALE = 14


def sdiff(a: int, b: int) -> int:
    """a - b in sequence space, as a signed 32-bit distance."""
    return ((a - b + (1 << 31)) % SEQ_MOD) - (1 << 31)


@dataclass(slots=True)        # slots: ~2x faster attribute access in the walk
class Side:
    state: int = zeek.INACTIVE
    isn: int | None = None
    nxt: int | None = None                  # highest sequence end sent (SYN and FIN count one)
    last_ack: int | None = None
    last_win: int = 0
    data_bytes: int = 0
    size: int = 0
    peer_bytes_since_my_data: int = 0        # what the peer sent after my last data: unread if I abort
    ack_at_last_write: int | None = None     # the ack my last data or FIN segment carried
    sent_after_synack: int | None = None     # my segments after my first SYN-ACK (None: no SYN-ACK)
    syn_frame: int | None = None
    syn_ts_ns: int | None = None
    fin_seq: int | None = None
    fin_frame: int | None = None
    fin_acked: bool = False
    ttl: Counter = field(default_factory=Counter)
    probes: list[int] = field(default_factory=list)   # keepalive probes since the peer last spoke
    zw_probes: list[int] = field(default_factory=list)   # zero-window probes since the peer last spoke
    retrans: int = 0
    packets: int = 0
    # this side's last HTTP/1 message (the `app` framing of its first segment, sources/framing.py)
    msg_kind: int = 0                        # framing.HTTP_REQUEST, HTTP_REPLY, HTTP_ERROR_REPLY; 0 none
    msg_fresh: bool = False                  # it started after the peer's last data (a reply to it)
    msg_end: int | None = None               # the sequence number it ends at, when its length was in the snap
    msg_done: bool = False                   # all of it was sent (its length reached, or its last chunk)
    tls_record: int = 0                      # the last TLS record type a data segment of mine began with


@dataclass
class ConnRst:
    """One RST segment with everything the features need."""
    pos: int
    frame: int
    sender: int                # 0 = Zeek originator, 1 = responder
    values: list               # its features, in WALK_FEATURES order
    evidence: list[int]

    @property
    def features(self) -> dict:
        return dict(zip(WALK_FEATURES, self.values))


@dataclass
class Connection:
    idx: list[int]                       # row numbers into the segment columns
    flipped: bool                        # Zeek's '^': the originator is the first packet's receiver
    client_dir: int | None               # 0/1 = which direction is the client, None = unknown
    role_inferred: bool
    history: str = ""
    conn_state: str = ""
    rtt_ns: int | None = None            # client's SYN to its ACK of the SYN-ACK, at the capture point
    rsts: list[ConnRst] = field(default_factory=list)
    # The earlier piece of the same 4-tuple this one continues: split off more than 5 s after a
    # reset (as Zeek does) but with no new SYN, so it is that connection's leftovers.
    continues: "Connection | None" = None


def split_connections(P: dict[str, list], idx: list[int]) -> list[tuple[list[int], bool]]:
    """Split one 4-tuple's segments into connections: a SYN after a RST or with a new ISN,
    or any packet more than 5 s after a RST (Zeek's tcp_reset_delay), starts a new one.
    Each piece comes with whether it continues the previous one (split by time, no new SYN)."""
    conns: list[tuple[list[int], bool]] = []
    cur: list[int] = []
    cur_continues = False
    syn_seq = None
    last_rst_ns = None
    flags, seqs, ts = P["flags"], P["seq"], P["ts_ns"]
    for i in idx:
        f = flags[i]
        # A SYN after a RST, or one with a new ISN, opens a new connection (as in Zeek).
        syn_only = bool(f & SYN) and not (f & ACK)
        fresh_syn = syn_only and (last_rst_ns is not None or (syn_seq is not None and seqs[i] != syn_seq))
        stale = last_rst_ns is not None and ts[i] - last_rst_ns > RESET_DELAY_NS
        if cur and (stale or fresh_syn):
            conns.append((cur, cur_continues))
            cur, syn_seq, last_rst_ns = [], None, None
            cur_continues = not syn_only
        cur.append(i)
        if (f & SYN) and not (f & ACK) and syn_seq is None:
            syn_seq = seqs[i]
        if f & RST:
            last_rst_ns = ts[i]
    if cur:
        conns.append((cur, cur_continues))
    return conns


def _directions(P, idx: list[int]) -> list[int]:
    """Per segment: 0 when it travels like the first one, else 1."""
    sports, src_los, src_his = P["sport"], P["src_lo"], P["src_hi"]
    first = idx[0]
    a_port, a_lo, a_hi = sports[first], src_los[first], src_his[first]
    return [0 if (sports[i] == a_port and src_los[i] == a_lo and src_his[i] == a_hi) else 1 for i in idx]


def _roles(P, idx: list[int], dirs: list[int]) -> tuple[int | None, bool]:
    """Client direction relative to the first segment (0 = it came from the client), and
    whether that was inferred from the ports because no SYN or SYN-ACK was seen."""
    for i, d in zip(idx, dirs):
        f = P["flags"][i]
        if f & SYN:
            return (1 - d if f & ACK else d), False
    # Midstream: guess the server from the ports (well-known below ephemeral).
    first = idx[0]
    sp, dp = P["sport"][first], P["dport"][first]
    if dp < 1024 <= sp or (dp < sp and sp >= 32768 > dp):
        return 0, True
    if sp < 1024 <= dp or (sp < dp and dp >= 32768 > sp):
        return 1, True
    return None, True


def walk(P: dict[str, list], idx: list[int]) -> Connection:
    dirs = _directions(P, idx)
    client_dir, inferred = _roles(P, idx, dirs)
    f0 = P["flags"][idx[0]]
    flipped = bool(f0 & SYN and f0 & ACK)       # first packet a SYN-ACK: its receiver originated
    if flipped:
        dirs = [1 - d for d in dirs]
        client_dir = 0
    conn = Connection(idx=idx, flipped=flipped, client_dir=client_dir, role_inferred=inferred)
    sides = [Side(), Side()]
    hist = zeek.History(flipped)
    flags, seqs, acks, plens = P["flags"], P["seq"], P["ack"], P["plen"]
    ttls, wins, apps = P["ttl"], P["win"], P["app"]
    for pos, i in enumerate(idx):
        d = dirs[pos]
        me, peer = sides[d], sides[1 - d]
        f, seq, ack, plen = flags[i], seqs[i], acks[i], plens[i]
        syn, fin, rst, has_ack = bool(f & SYN), bool(f & FIN), bool(f & RST), bool(f & ACK)
        if rst:
            conn.rsts.append(_describe_rst(P, conn, idx, dirs, pos, sides))
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
        if plen > 0 and not rst and me.nxt is not None and sdiff(seq, me.nxt) < 0:
            me.retrans += 1
            hist.add("T", d == 0)
        if has_ack and not rst and peer.nxt is not None and peer.isn is not None and sdiff(ack, peer.nxt) > 0:
            hist.add("G" if d == 1 else "g", d == 1)       # peer's data acknowledged but never seen
            peer.nxt = ack
        if not syn and not rst and wins[i] == 0 and has_ack:
            hist.add("W", d == 0)
        # --- probes: a zero/one-byte segment one below what was already sent. Against a zero
        # window it is a zero-window probe (within a second or so); otherwise a keepalive probe.
        if (not (syn or fin or rst) and plen <= 1 and me.nxt is not None
                and sdiff(seq, me.nxt) == -1):
            (me.zw_probes if (peer.last_ack is not None and peer.last_win == 0) else me.probes).append(P["frame"][i])
        elif not rst and (plen > 0 or syn or fin):
            me.probes.clear()        # real traffic from us ends a run of probes
            me.zw_probes.clear()
        if not rst:
            peer.probes.clear()   # the peer heard from us: its keepalive probes are answered
            if plen > 0 or wins[i] != 0 or fin:
                peer.zw_probes.clear()    # a zero-window probe is answered only by an open window
        # --- sequence bookkeeping
        if syn and has_ack and not rst:
            if me.sent_after_synack is None:
                me.sent_after_synack = 0
        elif me.sent_after_synack is not None:
            me.sent_after_synack += 1
        end = (seq + plen + (1 if syn else 0) + (1 if fin else 0)) % SEQ_MOD
        if syn:
            me.isn = seq
            me.syn_frame = P["frame"][i]
            me.syn_ts_ns = P["ts_ns"][i]
        elif (conn.rtt_ns is None and has_ack and not rst and me.syn_ts_ns is not None and peer.isn is not None
              and sdiff(ack, peer.isn) >= 1):
            conn.rtt_ns = P["ts_ns"][i] - me.syn_ts_ns     # the client's first ACK of the SYN-ACK
        if not rst:
            if me.nxt is None or sdiff(end, me.nxt) > 0:
                me.nxt = end
            if plen > 0:
                me.data_bytes += plen
                me.size += plen
                me.peer_bytes_since_my_data = 0
                peer.peer_bytes_since_my_data += plen
                _note_message(me, peer, apps[i], seq, plen)
            if fin and me.fin_seq is None:
                me.fin_seq = (seq + plen) % SEQ_MOD
                me.fin_frame = P["frame"][i]
            if (plen > 0 or fin) and has_ack:
                me.ack_at_last_write = ack
            if has_ack:
                me.last_ack, me.last_win = ack, wins[i]
                if peer.fin_seq is not None and sdiff(ack, peer.fin_seq) >= 1:
                    peer.fin_acked = True
            me.ttl[ttls[i]] += 1
            me.packets += 1
        me.state, peer.state = zeek.next_state(me.state, peer.state, syn, has_ack, fin, rst, plen > 0)
    conn.history = hist.text
    conn.conn_state = zeek.conn_state(sides[0].state, sides[1].state, sides[0].size, sides[1].size, hist.text)
    _after_rst(P, conn, dirs)
    return conn


# receiver.reply_framing and receiver.request_framing: seen (length unknown), whole, cut short
REPLY_SEEN, REPLY_WHOLE, REPLY_CUT_SHORT = 1, 2, 3
# sender.tls_last_record and receiver.tls_last_record: handshake, application data, alert
TLS_HANDSHAKE, TLS_APP_DATA, TLS_ALERT = 1, 2, 3
TLS_RECORDS = {framing.TLS_HANDSHAKE: TLS_HANDSHAKE, framing.TLS_APP_DATA: TLS_APP_DATA, framing.TLS_ALERT: TLS_ALERT}


def _note_message(me: Side, peer: Side, app: int, seq: int, plen: int) -> None:
    """Follow the HTTP/1 messages a side sends, by the framing of each data segment."""
    kind = app & framing.KIND_MASK
    if kind in (framing.HTTP_REQUEST, framing.HTTP_REPLY, framing.HTTP_ERROR_REPLY):
        length = app >> framing.LENGTH_SHIFT
        me.msg_kind, me.msg_fresh, me.msg_done = kind, True, False
        me.msg_end = (seq + length) % SEQ_MOD if length else None
    if me.msg_kind and app & framing.LAST_CHUNK:
        me.msg_done = True
    if me.msg_end is not None and sdiff((seq + plen) % SEQ_MOD, me.msg_end) >= 0:
        me.msg_done = True
    peer.msg_fresh = False                   # the peer's message came before this data
    if kind in TLS_RECORDS:
        me.tls_record = TLS_RECORDS[kind]


RST_FEATURES = declare(
    ("rst.from_client", "bool", "", "the RST came from the side that opened the connection"),
    ("rst.from_server", "bool", "", "the RST came from the side that accepted the connection"),
    ("rst.has_ack", "bool", "", "RST|ACK rather than a bare RST (Linux active resets always carry ACK)"),
    ("rst.stateless_shape", "bool", "", "window 0, no TCP options, IPv4 ID 0: the kernel's reply without a socket"),
    ("rst.has_payload", "bool", "", "the RST carries bytes (diagnostic text from some stacks)"),
    ("rst.answers_syn", "bool", "", "RST|ACK acknowledging the client's SYN, no SYN-ACK from the sender"),
    ("rst.answers_synack", "bool", "", "bare RST whose seq is the SYN-ACK's ack: the client forgot the attempt"),
    ("rst.seq_eq_trigger_ack", "bool", "", "RST seq equals the ack of the segment it answers (stateless reply)"),
    ("rst.seq_offset", "int", "bytes", "RST seq minus what the receiver last acknowledged (0 = exact)"),
    ("rst.seq_in_window", "bool", "", "RST seq lies inside the receiver's advertised window"),
    ("rst.seq_exact", "bool", "", "RST seq equals the receiver's next expected sequence number"),
    ("rst.seq_echoes_receiver_ack", "bool", "", "a RST out of window whose seq equals the ack of one of the receiver's last 64 segments: whoever wrote it saw that segment (on the path) and the receiver has moved on since (unset for a RST in window)"),
    ("rst.seq_at_fin", "bool", "", "RST seq is the sender's own FIN seq (rcv_nxt - 1 after the receiver took in that FIN): Linux accepts it"),
    ("rst.after_own_fin", "bool", "", "RST|ACK whose seq is just past the sender's own FIN: it shut down, then aborted"),
    ("rst.completes_handshake", "bool", "", "the client's RST|ACK acknowledges the SYN-ACK with no ACK before it: the RST completes the handshake"),
    ("rst.ttl", "int", "hops", "IPv4 TTL / IPv6 hop limit of the RST"),
    ("rst.ttl_delta", "int", "hops", "difference from the usual TTL of the claimed sender's other packets"),
    ("rst.ttl_mismatch", "bool", "", "the RST's TTL differs from the claimed sender's other packets"),
    ("rst.index_in_conn", "int", "", "0 for the first RST of the connection, 1 for the next..."),
    ("rst.gap_s", "float", "s", "time since the previous packet of the connection"),
    ("trigger.kind", "str", "", "what the segment just before the RST (from the receiver) was: none, syn, synack, ack, data, fin, probe, rst"),
    ("trigger.has_data", "bool", "", "the segment the RST answers carries payload"),
    ("trigger.acks_sender_fin", "bool", "", "the segment the RST answers acknowledges the sender's FIN"),
    ("trigger.idle_before_s", "float", "s", "silence in the connection before the segment the RST answers"),
    ("conn.syn_seen", "bool", "", "the client's SYN is in the capture"),
    ("conn.synack_seen", "bool", "", "the server's SYN-ACK is in the capture"),
    ("conn.handshake_complete", "bool", "", "the client acknowledged the SYN-ACK"),
    ("conn.midstream", "bool", "", "neither SYN nor SYN-ACK seen: the capture started mid-connection"),
    ("conn.client_bytes", "int", "bytes", "payload the client sent before the RST"),
    ("conn.server_bytes", "int", "bytes", "payload the server sent before the RST"),
    ("conn.server_packets_after_synack", "int", "", "server segments between its SYN-ACK and the RST"),
    ("conn.role_inferred", "bool", "", "client and server were guessed from the ports (no handshake seen)"),
    ("conn.rtt_s", "float", "s", "round trip seen from the capture point: the client's SYN to its ACK of the SYN-ACK"),
    ("sender.fin_sent", "bool", "", "the RST's sender had sent a FIN before it"),
    ("sender.fin_acked", "bool", "", "the peer acknowledged the sender's FIN"),
    ("sender.bytes", "int", "bytes", "payload the RST's sender had sent"),
    ("sender.keepalive_probes", "int", "", "keepalive probes from the sender left unanswered just before the RST"),
    ("sender.zero_window_probes", "int", "", "zero-window probes the RST's sender sent while the peer advertised window 0, just before the RST"),
    ("sender.zero_window", "bool", "", "the RST's sender last advertised a zero window: its receive buffer was full (unread data)"),
    ("sender.bytes_acked_after_last_write", "int", "bytes", "peer payload the RST|ACK acknowledges beyond what the sender's last data or FIN acknowledged: its kernel took it in after the application last wrote, and it was still queued at the close (seen the same from either end of the path)"),
    ("receiver.fin_sent", "bool", "", "the RST's receiver had sent a FIN before it"),
    ("receiver.bytes", "int", "bytes", "payload the RST's receiver had sent"),
    ("receiver.bytes_after_sender_data", "int", "bytes", "payload the receiver sent after the sender's last data: likely unread"),
    ("receiver.retransmissions", "int", "", "retransmitted segments from the receiver before the RST"),
    ("receiver.zero_window_probes", "int", "", "zero-window probes the RST's receiver sent while the sender advertised window 0, just before the RST"),
    ("receiver.zero_window", "bool", "", "the RST's receiver last advertised a zero window (it stopped reading)"),
    ("rst.answers_challenge_ack", "bool", "", "bare RST from a side whose SYN got no SYN-ACK but a bare ACK that does not acknowledge it (an RFC 5961 challenge ACK: the peer still holds an older connection or attempt on this 4-tuple); seq = that ACK's ack"),
    # Application framing (sources/framing.py: from the payload bytes the capture kept, never content)
    ("receiver.reply_framing", "int", "", "what the receiver sent after the sender's last data, by its HTTP/1 framing: 0 no response framed there; 1 a response (status line seen, its length not within the snap length); 2 a whole response (its Content-Length reached or its last chunk seen): the sender had its answer before it reset; 3 a response cut short (its known length not reached)"),
    ("receiver.request_framing", "int", "", "the receiver's last HTTP/1 message, if a request, by its framing: 0 none framed; 1 a request (its length not within the snap length); 2 a whole request (header and Content-Length body all sent); 3 a request still arriving when the RST came (its body not all sent)"),
    ("sender.error_reply", "bool", "", "the sender's last HTTP/1 response had a status of 400 or more (unset: it sent no framed response)"),
    ("sender.tls_last_record", "int", "", "the TLS record type the sender's last data segment that began with a TLS record header began with: 0 none seen; 1 handshake (or change_cipher_spec); 2 application data (in TLS 1.3 also every alert and handshake message sent once keys are set: only the type is visible); 3 alert (TLS 1.2's every alert, close_notify included; TLS 1.3's before keys are set)"),
    ("receiver.tls_last_record", "int", "", "the same for the RST's receiver: 1 means its last TLS record was handshake, so the sender reset before that side got to application data"),
)


def _describe_rst(P, conn: Connection, idx: list[int], dirs: list[int], pos: int, sides: list[Side]) -> ConnRst:
    i = idx[pos]
    d = dirs[pos]
    snd, rcv = sides[d], sides[1 - d]
    f, seq, ack = P["flags"][i], P["seq"][i], P["ack"][i]
    client = conn.client_dir
    cli = None if client is None else sides[client]
    srv = None if client is None else sides[1 - client]
    has_ack = bool(f & ACK)

    # The segment this RST answers: the previous packet, if the receiver sent it. A bare RST is a
    # stateless reply with seq = the offending segment's ack: when a FIN crossed that segment, or
    # the receiver sent its FIN right after its data, other segments with the same ack sit between
    # them. Data is what draws the reply, so take the earliest data segment carrying that ack.
    tpos = pos - 1 if pos > 0 and dirs[pos - 1] != d else None
    if not (f & ACK):
        same_ack = data_ack = None
        for k in range(pos - 1, max(-1, pos - 9), -1):
            j = idx[k]
            fj = P["flags"][j]
            if dirs[k] != d and fj & ACK and not fj & RST and P["ack"][j] == seq:
                same_ack = k if same_ack is None else same_ack
                data_ack = k if P["plen"][j] > 0 else data_ack
        tpos = data_ack if data_ack is not None else same_ack if same_ack is not None else tpos
    trig = idx[tpos] if tpos is not None else None
    tf = P["flags"][trig] if trig is not None else 0
    t_plen = P["plen"][trig] if trig is not None else 0
    t_probe = (trig is not None and not (tf & (SYN | FIN | RST)) and t_plen <= 1 and rcv.nxt is not None
               and sdiff(P["seq"][trig], rcv.nxt) == -1)
    trigger_kind = ("none" if trig is None else "rst" if tf & RST else "synack" if (tf & SYN and tf & ACK)
                    else "syn" if tf & SYN else "fin" if tf & FIN else "probe" if t_probe
                    else "data" if t_plen > 0 else "ack")
    prev_ts = P["ts_ns"][idx[pos - 1]] if pos > 0 else None
    before_trig_ts = P["ts_ns"][idx[tpos - 1]] if tpos is not None and tpos > 0 else None
    if trig is not None and before_trig_ts is not None:
        idle = (P["ts_ns"][trig] - before_trig_ts) / 1e9
    elif prev_ts is not None:
        idle = (P["ts_ns"][i] - prev_ts) / 1e9
    else:
        idle = None

    offset = sdiff(seq, rcv.last_ack) if rcv.last_ack is not None else None
    # Linux accepts a RST at rcv_nxt - 1 once it has taken in the sender's FIN (CLOSE_WAIT,
    # LAST_ACK, CLOSING): a FIN that crossed the next request draws exactly that RST.
    at_fin = offset == -1 and snd.fin_seq is not None and seq == snd.fin_seq
    window = max(rcv.last_win << MAX_WSCALE, 65535)
    in_window = None if offset is None else (0 <= offset <= window or at_fin)
    after_own_fin = has_ack and snd.fin_seq is not None and seq == (snd.fin_seq + 1) % SEQ_MOD
    # The client's RST|ACK acknowledging the SYN-ACK with no bare ACK before it: the RST itself
    # completes the handshake (health checkers that turn off quick-ACK do this).
    completes_handshake = (client is not None and d == client and has_ack and srv is not None
                           and srv.isn is not None and ack == (srv.isn + 1) % SEQ_MOD
                           and (cli.last_ack is None or sdiff(cli.last_ack, srv.isn) < 1))
    # Only asked of a RST out of window (is it stale from a box that saw the flow?), so a RST
    # ping-pong does not pay for the search; bounded, so it stays linear anyway.
    echoes = None
    if in_window is False:
        echoes = False
        for k in range(pos - 1, max(-1, pos - ECHO_LOOKBACK), -1):
            j = idx[k]
            if dirs[k] != d and P["flags"][j] & ACK and not P["flags"][j] & RST and P["ack"][j] == seq:
                echoes = True
                break
    # Payload only: a FIN the RST acknowledges takes one sequence number but is nothing to read.
    acked_after_write = None
    if has_ack and snd.ack_at_last_write is not None:
        acked_after_write = max(0, sdiff(ack, snd.ack_at_last_write))
        if (acked_after_write and rcv.fin_seq is not None and sdiff(rcv.fin_seq, snd.ack_at_last_write) >= 0
                and sdiff(ack, rcv.fin_seq) >= 1):
            acked_after_write -= 1
    usual_ttl = snd.ttl.most_common(1)[0][0] if snd.ttl else None
    ttl_delta = None if usual_ttl is None else abs(P["ttl"][i] - usual_ttl)
    ipid = P["ipid"][i]
    t_ack = P["ack"][trig] if trig is not None else None
    features = {
        "rst.from_client": None if client is None else d == client,
        "rst.from_server": None if client is None else d != client,
        "rst.has_ack": has_ack,
        "rst.stateless_shape": P["win"][i] == 0 and P["hlen"][i] == 20 and ipid in (0, -1),
        "rst.has_payload": P["plen"][i] > 0,
        "rst.answers_syn": trigger_kind == "syn" and has_ack and ack == (P["seq"][trig] + 1) % SEQ_MOD
                           and not (snd.syn_frame is not None),
        "rst.answers_synack": trigger_kind == "synack" and not has_ack and seq == t_ack,
        "rst.seq_eq_trigger_ack": None if trig is None or not (tf & ACK) else seq == t_ack,
        "rst.seq_offset": offset,
        "rst.seq_in_window": in_window,
        "rst.seq_exact": None if offset is None else (offset == 0 or at_fin),
        "rst.seq_echoes_receiver_ack": echoes,
        "rst.seq_at_fin": at_fin,
        "rst.after_own_fin": after_own_fin,
        "rst.completes_handshake": completes_handshake,
        "rst.ttl": P["ttl"][i],
        "rst.ttl_delta": ttl_delta,
        "rst.ttl_mismatch": None if ttl_delta is None else ttl_delta >= 1,
        "rst.index_in_conn": len(conn.rsts),
        "rst.gap_s": None if prev_ts is None else (P["ts_ns"][i] - prev_ts) / 1e9,
        "trigger.kind": trigger_kind,
        "trigger.has_data": t_plen > 0,
        "trigger.acks_sender_fin": None if (snd.fin_seq is None or trig is None or not tf & ACK)
                                   else sdiff(t_ack, snd.fin_seq) >= 1,
        "trigger.idle_before_s": idle,
        "conn.syn_seen": (cli is not None and cli.syn_frame is not None),
        "conn.synack_seen": (srv is not None and srv.syn_frame is not None),
        "conn.handshake_complete": completes_handshake or (
            cli is not None and srv is not None and srv.isn is not None and cli.last_ack is not None
            and cli.syn_frame is not None and sdiff(cli.last_ack, srv.isn) >= 1),
        "conn.midstream": all(s.syn_frame is None for s in sides),
        "conn.client_bytes": None if cli is None else cli.data_bytes,
        "conn.server_bytes": None if srv is None else srv.data_bytes,
        "conn.server_packets_after_synack": None if srv is None else srv.sent_after_synack,
        "conn.role_inferred": conn.role_inferred,
        "conn.rtt_s": None if conn.rtt_ns is None else conn.rtt_ns / 1e9,
        "sender.fin_sent": snd.fin_seq is not None,
        "sender.fin_acked": snd.fin_acked,
        "sender.bytes": snd.data_bytes,
        "sender.keepalive_probes": len(snd.probes),
        "sender.zero_window_probes": len(snd.zw_probes),
        "sender.zero_window": snd.last_ack is not None and snd.last_win == 0,
        "sender.bytes_acked_after_last_write": acked_after_write,
        "receiver.fin_sent": rcv.fin_seq is not None,
        "receiver.bytes": rcv.data_bytes,
        "receiver.bytes_after_sender_data": snd.peer_bytes_since_my_data,
        "receiver.retransmissions": rcv.retrans,
        "receiver.zero_window_probes": len(rcv.zw_probes),
        "receiver.zero_window": rcv.last_ack is not None and rcv.last_win == 0,
        # RFC 5961 4.2: a SYN on a 4-tuple the peer still holds draws an ACK of the old state;
        # the SYN's side (SYN_SENT) answers that unacceptable ACK with a RST at its ack
        "rst.answers_challenge_ack": (not has_ack and trigger_kind == "ack" and snd.isn is not None
                                      and snd.syn_frame is not None and rcv.syn_frame is None
                                      and t_ack != (snd.isn + 1) % SEQ_MOD and seq == t_ack),
        "receiver.reply_framing": (0 if not (rcv.msg_fresh and rcv.msg_kind in (framing.HTTP_REPLY, framing.HTTP_ERROR_REPLY))
                                   else REPLY_WHOLE if rcv.msg_done else REPLY_CUT_SHORT if rcv.msg_end is not None
                                   else REPLY_SEEN),
        "receiver.request_framing": (0 if rcv.msg_kind != framing.HTTP_REQUEST else REPLY_WHOLE if rcv.msg_done
                                     else REPLY_CUT_SHORT if rcv.msg_end is not None else REPLY_SEEN),
        "sender.error_reply": None if snd.msg_kind in (0, framing.HTTP_REQUEST) else snd.msg_kind == framing.HTTP_ERROR_REPLY,
        "sender.tls_last_record": snd.tls_record,
        "receiver.tls_last_record": rcv.tls_record,
    }
    evidence = [x for x in (cli.syn_frame if cli else None, srv.syn_frame if srv else None,
                            snd.fin_frame, rcv.fin_frame, *snd.probes[-3:], *snd.zw_probes[-2:], *rcv.zw_probes[-2:],
                            P["frame"][trig] if trig is not None else None, P["frame"][i]) if x is not None]
    if len(features) != len(RST_FEATURES):
        raise RuntimeError(f"features computed but not declared: {sorted(set(features) - set(RST_FEATURES))}")
    values = [features[name] for name in RST_FEATURES] + [None] * len(AFTER_FEATURES)
    return ConnRst(pos=pos, frame=P["frame"][i], sender=d, values=values,
                   evidence=sorted(set(evidence)))


AFTER_FEATURES = declare(
    ("after.sender_packets", "int", "", "non-RST segments from the RST's claimed sender after it"),
    ("after.receiver_packets", "int", "", "non-RST segments from the RST's receiver after it"),
)


# Each RST's features travel as one list in this order, not a dict: the compiled walk builds the
# list in one step (a dict per RST was ~3 us), and the feature table turns the lists into columns
# with one zip (reading 100,000 dicts a feature at a time cost ~17 us a reset in cache misses).
WALK_FEATURES = RST_FEATURES + AFTER_FEATURES
AFTER_SENDER, AFTER_RECEIVER = (WALK_FEATURES.index(n) for n in AFTER_FEATURES)


def _after_rst(P, conn: Connection, dirs: list[int]) -> None:
    """Count what each side sent after each RST: traffic that continues undermines the RST.
    One backward pass (a connection with thousands of RSTs stays linear)."""
    if not conn.rsts:
        return
    flags, idx = P["flags"], conn.idx
    later = [0, 0]                        # non-RST segments per direction after the current position
    rsts = sorted(conn.rsts, key=lambda r: r.pos, reverse=True)
    k = 0
    for pos in range(len(idx) - 1, -1, -1):
        while k < len(rsts) and rsts[k].pos == pos:
            r = rsts[k]
            r.values[AFTER_SENDER] = later[r.sender]
            r.values[AFTER_RECEIVER] = later[1 - r.sender]
            k += 1
        if not flags[idx[pos]] & RST:
            later[dirs[pos]] += 1
