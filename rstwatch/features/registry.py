"""The closed vocabulary of features rules may use: name -> (type, unit, meaning).

Rule conditions are checked against this table at load time; adding a feature means adding a
line here and computing it in track/connection.py or features/extract.py.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str        # bool | int | float | str
    unit: str
    meaning: str


PANDAS_DTYPE = {"bool": "boolean", "int": "Int64", "float": "Float64", "str": "string"}

_F = [
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
    ("conn.server_rst_burst", "int", "", "connections to the same server endpoint reset by it within 1 s, this one included, none of which got server data"),
    ("sender.fin_sent", "bool", "", "the RST's sender had sent a FIN before it"),
    ("sender.fin_acked", "bool", "", "the peer acknowledged the sender's FIN"),
    ("sender.bytes", "int", "bytes", "payload the RST's sender had sent"),
    ("sender.keepalive_probes", "int", "", "keepalive probes from the sender left unanswered just before the RST"),
    ("receiver.fin_sent", "bool", "", "the RST's receiver had sent a FIN before it"),
    ("receiver.bytes", "int", "bytes", "payload the RST's receiver had sent"),
    ("receiver.bytes_after_sender_data", "int", "bytes", "payload the receiver sent after the sender's last data: likely unread"),
    ("receiver.retransmissions", "int", "", "retransmitted segments from the receiver before the RST"),
    ("after.sender_packets", "int", "", "non-RST segments from the RST's claimed sender after it"),
    ("after.receiver_packets", "int", "", "non-RST segments from the RST's receiver after it"),
]

FEATURES: dict[str, Feature] = {name: Feature(name, kind, unit, meaning) for name, kind, unit, meaning in _F}
