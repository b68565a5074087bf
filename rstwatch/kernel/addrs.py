"""The watched interfaces' own addresses: the tracepoint sees every network namespace on the host,
so only resets sent from these addresses (or from a listener of this namespace) are ours."""
from __future__ import annotations

import ipaddress
import time

import numpy as np

REFRESH_S = 10.0           # addresses change (DHCP, failover): look again this often


def interface_addresses(interfaces: list[str]) -> set[str]:
    import psutil
    found = set()
    for name, addrs in psutil.net_if_addrs().items():
        if "any" not in interfaces and name not in interfaces:
            continue
        for a in addrs:
            try:
                ip = ipaddress.ip_address(a.address.split("%", 1)[0])
            except ValueError:
                continue                       # link-layer (AF_PACKET) entries
            found.add(str(ip))
    return found


def listening_ports() -> set[int]:
    """TCP ports with a listener in this network namespace (/proc/net/tcp* is per namespace)."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as fh:
                next(fh, None)
                for line in fh:
                    f = line.split()
                    if len(f) > 3 and f[3] == "0A":            # TCP_LISTEN
                        ports.add(int(f[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


class LocalAddresses:
    def __init__(self, interfaces: list[str], fixed: set[str] | None = None) -> None:
        self.interfaces = interfaces
        self.fixed = fixed
        self.text: set[str] = set()
        self._v4 = np.zeros(0, np.uint64)
        self._v6: list[tuple[int, int]] = []
        self._at = -REFRESH_S
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._at < REFRESH_S:
            return
        self._at = now
        self.text = set(self.fixed) if self.fixed is not None else interface_addresses(self.interfaces)
        ips = [ipaddress.ip_address(t) for t in self.text]
        self._v4 = np.array([int(ip) for ip in ips if ip.version == 4], np.uint64)
        self._v6 = [(int(ip) >> 64, int(ip) & (2**64 - 1)) for ip in ips if ip.version == 6]

    def mask(self, v6: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Rows whose (v6, hi, lo) address column pair is one of ours."""
        out = ~v6 & np.isin(lo & np.uint64(0xFFFFFFFF), self._v4)
        for h, l in self._v6:
            out |= v6 & (hi == np.uint64(h)) & (lo == np.uint64(l))
        return out
