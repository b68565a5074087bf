"""The per-packet loops: compiled (rstwatch.hotloops, built by Cython) when the installed
package has them, else the numpy/Python twin (rstwatch.hotloops_py) with one warning.

Readers import these names from here, never from either module, so an install without a C
compiler (a platform with no binary wheel) still works, only slower. RSTWATCH_PURE_PYTHON=1
picks the twin on purpose (tests, benchmarks, a user who accepts the cost): no warning then.
"""
from __future__ import annotations

import os
import sys

# Measured on benchmarks/synth.py's 1 M-packet pcap, one core, best of 5 (docs/deploy.md).
SPEED_COST = "about 0.8 s more per million packets (1 M-packet pcap: 1.1 s compiled, 1.9 s fallback)"

if os.environ.get("RSTWATCH_PURE_PYTHON", "") not in ("", "0"):
    from .hotloops_py import (CORRUPT, NEED_MORE, SHB, SKIP_NAMES, decode_tcp, factorize_keys, flow_hash_columns,
                              group_order, walk_pcap, walk_pcapng)
    COMPILED = False
else:
    try:
        from .hotloops import (CORRUPT, NEED_MORE, SHB, SKIP_NAMES, decode_tcp, factorize_keys, flow_hash_columns,
                              group_order, walk_pcap, walk_pcapng)
        COMPILED = True
    except ImportError:
        from .hotloops_py import (CORRUPT, NEED_MORE, SHB, SKIP_NAMES, decode_tcp, factorize_keys, flow_hash_columns,
                              group_order, walk_pcap, walk_pcapng)
        COMPILED = False
        print(f"rstwatch: warning: compiled loops not installed (no binary wheel for this platform and no C compiler "
              f"at install); using the numpy fallback: {SPEED_COST}", file=sys.stderr)

__all__ = ["COMPILED", "CORRUPT", "NEED_MORE", "SHB", "SKIP_NAMES", "decode_tcp", "factorize_keys", "flow_hash_columns", "group_order",
           "walk_pcap", "walk_pcapng"]
