"""Topology for the connection-limit lab (lab/make_limits_captures.py): its own namespaces, links and
addresses (lm*, 10.86/16), so it runs beside the other labs (rw* 10.77, rs* 10.78, ho* 10.79, mh* 10.81).

    client lmc (lc0 10.86.1.2) -- wire lmw (lab/wire.py) -- router lmr (10.86.1.1 | 10.86.2.1) -- server lms (ls0 10.86.2.2)
"""
from __future__ import annotations

from lab.topology import Topology, nsx  # noqa: F401 - scenarios run namespace commands through L.nsx

NET = Topology(client="lmc", wire="lmw", router="lmr", server="lms", net="10.86", c_if="lc0", s_if="ls0",
               r_c_if="lr0", r_s_if="lr1", w_c_if="lwc", w_r_if="lwr")
CLIENT, WIRE, ROUTER, SERVER = NET.namespaces()
C_ADDR, S_ADDR = NET.c_addr, NET.s_addr
C_IF, S_IF = NET.c_if, NET.s_if
setup, teardown, nft, flush_firewalls = NET.setup, NET.teardown, NET.nft, NET.flush_firewalls
