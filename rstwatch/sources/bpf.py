"""Capture filters in libpcap's own language, applied while reading a file (`read --bpf`), and
compiled for the kernel for `live`'s own capture ring.

libpcap compiles the expression (pcap_compile on a "dead" handle of the packet's link type)
and runs the program (bpf_filter), both through ctypes: the exact rules of tcpdump and
dumpcap, no grammar of our own. libpcap ships with tshark/tcpdump (Debian: libpcap0.8).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

from ..errors import RstwatchError

NETMASK_UNKNOWN = 0xFFFFFFFF
SNAPLEN = 262144
# A few link types are numbered differently in files (LINKTYPE_*) and in libpcap's API (DLT_*);
# from 104 up they are the same number.
LINKTYPE_TO_DLT = {100: 11, 101: 12, 102: 15, 103: 16}


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


@lru_cache(maxsize=1)
def libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    for candidate in ([name] if name else []) + ["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"]:
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError:
            continue
    else:
        raise RstwatchError("--bpf", "libpcap is not installed (Debian: apt-get install libpcap0.8)")
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    lib.bpf_filter.restype = ctypes.c_uint
    lib.bpf_filter.argtypes = [ctypes.POINTER(_Insn), ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    # a live handle, for `live`'s own capture ring (live/ringcap.py): compiled on it, a filter
    # tests 802.1Q tags where the kernel keeps them
    lib.pcap_create.restype = ctypes.c_void_p
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.pcap_set_snaplen.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_activate.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    return lib


class BpfProgram:
    """One compiled expression for one link type. The program's instructions live in memory
    libpcap allocated; it is kept for the life of the process (a few hundred bytes)."""

    def __init__(self, expr: str, linktype: int) -> None:
        lib = libpcap()
        handle = lib.pcap_open_dead(LINKTYPE_TO_DLT.get(linktype, linktype), SNAPLEN)
        if not handle:
            raise RstwatchError("--bpf", f"libpcap cannot open a handle for link type {linktype}")
        self.program = _Program()
        try:
            if lib.pcap_compile(handle, ctypes.byref(self.program), expr.encode(), 1, NETMASK_UNKNOWN) != 0:
                reason = (lib.pcap_geterr(handle) or b"invalid filter").decode(errors="replace")
                raise RstwatchError("--bpf", f"{expr!r}: {reason}")
        finally:
            lib.pcap_close(handle)
        self._run = lib.bpf_filter

    def matches(self, buf: np.ndarray, data: np.ndarray, caplen: np.ndarray) -> np.ndarray:
        """Which packets (at `data` offsets into `buf`, `caplen` bytes each) the filter accepts.
        The wire length is taken as the captured length (`len`/`greater`/`less` see it)."""
        base = buf.ctypes.data
        run, insns = self._run, self.program.bf_insns
        return np.fromiter((run(insns, base + o, n, n) != 0 for o, n in zip(data.tolist(), caplen.tolist())),
                           dtype=bool, count=len(data))


def kernel_program(expr: str, interface: str, snaplen: int) -> bytes:
    """`expr` compiled for the interface, as packed classic BPF instructions for SO_ATTACH_FILTER
    (its accept returns `snaplen`: the kernel keeps that much of each packet). On a live libpcap
    handle of the interface where one opens (a dead handle's `vlan 100` looks for the tag inside
    the frame, where a received tag no longer is), else on a dead Ethernet one."""
    lib = libpcap()
    errbuf = ctypes.create_string_buffer(256)
    handle = lib.pcap_create(interface.encode(), errbuf)
    if handle:
        lib.pcap_set_snaplen(handle, snaplen)
        if lib.pcap_activate(handle) < 0:           # no such device, no right: compile as dead
            lib.pcap_close(handle)
            handle = None
    if not handle:
        handle = lib.pcap_open_dead(1, snaplen)
    program = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), expr.encode(), 1, NETMASK_UNKNOWN) != 0:
            reason = (lib.pcap_geterr(handle) or b"invalid filter").decode(errors="replace")
            raise RstwatchError(interface, f"invalid capture filter \"{expr}\": {reason}")
        return ctypes.string_at(program.bf_insns, program.bf_len * ctypes.sizeof(_Insn))
    finally:
        if program.bf_insns:
            lib.pcap_freecode(ctypes.byref(program))
        lib.pcap_close(handle)


def check_expression(expr: str) -> None:
    """Fail early (before any file is read) on an expression libpcap refuses for Ethernet."""
    BpfProgram(expr, 1)
