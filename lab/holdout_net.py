"""Topology for the holdout lab (lab/make_holdout_captures.py): its own namespaces, links and
addresses, so it never collides with the scripted lab (rw*, 10.77/16), the real-software lab
(rs*, 10.78/16) or anyone else running those at the same time.

    client hoc (hc0 10.79.1.2) -- wire how (lab/wire.py) -- router hor (10.79.1.1 | 10.79.2.1) -- server hos (hs0 10.79.2.2)

Link names carry the `h` prefix too, in case a kernel ever creates a veth in the root namespace first.
"""
from __future__ import annotations

from lab.topology import Topology, nsx  # noqa: F401 - scenarios run namespace commands through H.nsx

NET = Topology(client="hoc", wire="how", router="hor", server="hos", net="10.79", c_if="hc0", s_if="hs0",
               r_c_if="hr0", r_s_if="hr1", w_c_if="hwc", w_r_if="hwr")
CLIENT, WIRE, ROUTER, SERVER = NET.namespaces()
C_ADDR, S_ADDR, R_CLIENT_SIDE, R_SERVER_SIDE = NET.c_addr, NET.s_addr, NET.r_client_side, NET.r_server_side
C_IF, S_IF = NET.c_if, NET.s_if
setup, teardown, nft, flush_firewalls, crash_server = NET.setup, NET.teardown, NET.nft, NET.flush_firewalls, NET.crash_server
