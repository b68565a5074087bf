"""The per-finding texts in C (rstwatch/rowtexts.pyx) are their Python references' values
exactly: addresses of both families (zero runs of every length and place, IPv4-mapped ones),
display filters, Community IDs of any text and port pair (equal ends, floods, text that is no
address, ports out of range) and ISO times of every int64 nanosecond."""
from __future__ import annotations

import ipaddress
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstwatch import columns, interop, rowtexts
from rstwatch.features import extract
from rstwatch.sources.segments import address_text

ODD_TEXT = ["", "x", "1.2.3", "1.2.3.4 ", " 1.2.3.4", "::g", "fe80::1%eth0", "1.2.3.4\x00", "0.0.0.0", "::",
            "::ffff:1.2.3.4", "many sources", "é", "01.2.3.4", "1.2.3.256"]


def address(draw_kind: str, value: int) -> str | None:
    if draw_kind == "v4":
        return str(ipaddress.IPv4Address(value % 2**32))
    if draw_kind == "v6":
        return str(ipaddress.IPv6Address(value))
    if draw_kind == "none":
        return None
    return ODD_TEXT[value % len(ODD_TEXT)]


ends = st.tuples(st.sampled_from(["v4", "v4", "v6", "v6", "odd", "none"]), st.integers(0, 2**128 - 1))
ports = st.one_of(st.sampled_from([0, 1, 80, 65535]), st.integers(0, 65535), st.integers(-5, 70000))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(ends, ends, ports, ports, st.sampled_from(["no", "addr", "both"])), max_size=40))
def test_community_ids_in_c_are_the_python_ones(rows):
    src, dst, sp, dp = [], [], [], []
    for (ka, va), (kb, vb), sport, dport, same in rows:
        a, b = address(ka, va), address(kb, vb)
        if same != "no":
            b = a
        if same == "both":
            dport = sport
        src.append(a), dst.append(b), sp.append(sport), dp.append(dport)
    want = interop.community_ids_python(src, dst, sp, dp)
    for own in (False, True):           # libcrypto's SHA-1 block function (when loaded), then ours
        with sha1(own):
            assert rowtexts.community_ids(src, dst, np.array(sp, np.int64), np.array(dp, np.int64), interop.TCP) == want


@contextmanager
def sha1(own: bool):
    before = rowtexts.sha1_backend() == "own"
    rowtexts.sha1_backend(own)
    try:
        yield
    finally:
        rowtexts.sha1_backend(before)


CIDS = st.one_of(st.none(), st.just(3), st.sampled_from(["1:nsF+CyuHj+gRdemh9jH9fNbMK+U=", "", "é"]),
                 st.text(max_size=40))
BASES = st.one_of(st.sampled_from(["a.pcap", "capture-of-a-long-incident-night.pcapng.gz", "é.pcap", ""]),
                  st.text(max_size=30))
FIRSTS = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, 2**63 - 1, -(2**63), True]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(CIDS, BASES, FIRSTS), max_size=30))
def test_connection_digests_in_c_are_the_python_ones(rows):
    """The digests behind EVE's flow_id and Zeek's uid: one block hashed in C, the rest (long
    names, odd values) by the Python fallback, the same bytes either way."""
    cids, bases, firsts = (list(c) for c in zip(*rows)) if rows else ([], [], [])

    def python(k):
        return interop._digest(cids[k], bases[k], firsts[k]) if isinstance(cids[k], str) else None
    want = [python(k) for k in range(len(rows))]
    for own in (False, True):
        with sha1(own):
            assert rowtexts.connection_digests(cids, bases, firsts, python) == want


@pytest.mark.parametrize("own", [False, True], ids=["libcrypto", "own"])
def test_community_id_in_c_is_the_reference_value(own):
    with sha1(own):
        ids = rowtexts.community_ids(["10.0.0.1", "10.0.0.2", "10.0.0.1"], ["10.0.0.2", "10.0.0.1", "many sources"],
                                     np.array([1, 2, 1], np.int64), np.array([2, 1, 2], np.int64), interop.TCP)
        assert rowtexts.sha1_backend() == ("own" if own else "libcrypto")
    assert ids == ["1:nsF+CyuHj+gRdemh9jH9fNbMK+U="] * 2 + [None]      # the communityid package's id


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1),
                          st.sampled_from([-(2**63), -(2**63) + 1, 2**63 - 1, 0, -1, 1, -86_400 * 10**9,
                                           951_782_400 * 10**9, 4_107_542_399_999_999_999])), max_size=60))
def test_iso_times_in_c_are_numpys(times):
    ts = np.array(times, np.int64)
    assert rowtexts.iso_ns_texts(ts) == interop.iso_ns_numpy(ts)


def test_the_table_functions_use_the_compiled_twin_when_built():
    """bin/setup builds it (as the packet loops); RSTWATCH_PURE_PYTHON=1 alone turns it off."""
    import os
    if os.environ.get("RSTWATCH_PURE_PYTHON", "") in ("", "0"):
        assert interop._compiled is rowtexts and extract._compiled is rowtexts
    else:
        assert interop._compiled is None and extract._compiled is None


# 128-bit addresses made of groups that are zero or not, so every zero-run shape comes up
groups = st.lists(st.one_of(st.just(0), st.just(0), st.integers(1, 0xFFFF)), min_size=8, max_size=8)
addresses = st.one_of(
    groups.map(lambda g: (True, sum(x << (16 * (7 - i)) for i, x in enumerate(g)))),
    st.integers(0, 2**32 - 1).map(lambda a: (True, (0xFFFF << 32) | a)),       # IPv4-mapped
    st.integers(0, 2**32 - 1).map(lambda a: (False, a)),
    st.integers(0, 2**128 - 1).map(lambda a: (True, a)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(addresses, addresses, st.integers(0, 65535), st.integers(0, 65535),
                          st.integers(1, 2**40), st.integers(0, 2**40)), max_size=40))
def test_addresses_and_display_filters_in_c_are_the_python_ones(rows):
    v6 = np.array([a[0] for (a, b, *_rest) in rows], bool)
    for k, (a, b, *_rest) in enumerate(rows):       # one family per row, as a packet has
        if not v6[k]:
            rows[k] = ((False, a[1] % 2**32), (False, b[1] % 2**32), *_rest)
    P = {"v6": v6,
         "src_hi": np.array([a[1] >> 64 for a, *_ in rows], np.uint64),
         "src_lo": np.array([a[1] & (2**64 - 1) for a, *_ in rows], np.uint64),
         "dst_hi": np.array([b[1] >> 64 for _, b, *_ in rows], np.uint64),
         "dst_lo": np.array([b[1] & (2**64 - 1) for _, b, *_ in rows], np.uint64),
         "sport": np.array([r[2] for r in rows], np.uint16), "dport": np.array([r[3] for r in rows], np.uint16)}
    at = np.arange(len(rows))
    srcs, dsts = extract._addresses(P, at, "src"), extract._addresses(P, at, "dst")
    assert srcs == [address_text(bool(v), int(h), int(lo)) for v, h, lo in zip(v6, P["src_hi"], P["src_lo"])]
    assert dsts == [address_text(bool(v), int(h), int(lo)) for v, h, lo in zip(v6, P["dst_hi"], P["dst_lo"])]
    firsts, lasts = [r[4] for r in rows], [r[4] + r[5] for r in rows]
    assert columns.tolist(extract._display_filters(P, at, srcs, dsts, firsts, lasts)) == [
        extract._display_filter(bool(v), a, b, int(pa), int(pb), f, la)
        for v, a, b, pa, pb, f, la in zip(v6, srcs, dsts, P["sport"], P["dport"], firsts, lasts)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(addresses, st.integers(1, 4), st.booleans()), max_size=20))
def test_runs_of_one_address_give_each_row_its_text(runs):
    """The C texts reuse the previous row's text for the same address: runs of one address,
    and neighbours that differ only in the family (IPv4 5 against IPv6 ::5), stay exact."""
    rows = []
    for (v6, value), repeat, other_family in runs:
        value = value if v6 else value % 2**32
        rows += [(v6, value)] * repeat
        if other_family:
            rows.append((not v6, value % 2**32))
    P = {"v6": np.array([v for v, _ in rows], bool),
         "src_hi": np.array([x >> 64 for _, x in rows], np.uint64),
         "src_lo": np.array([x & (2**64 - 1) for _, x in rows], np.uint64)}
    got = extract._addresses(P, np.arange(len(rows)), "src")
    assert got == [address_text(bool(v), int(h), int(lo)) for v, h, lo in zip(P["v6"], P["src_hi"], P["src_lo"])]


field_values = st.one_of(st.text(max_size=12), st.integers(-2**70, 2**70), st.none(), st.booleans(),
                         st.floats(allow_nan=True), st.sampled_from(["caf\u00e9", "\U0001F600", "{0}", "%s"]))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12).flatmap(lambda n: st.tuples(
    st.lists(st.tuples(st.lists(st.text(max_size=8), min_size=1, max_size=4), st.integers(0, 2)), min_size=1, max_size=3),
    st.lists(st.lists(field_values, min_size=n, max_size=n), min_size=3, max_size=3),
    st.lists(st.integers(-1, 2), min_size=n, max_size=n),
    st.lists(st.text(max_size=10), min_size=n, max_size=n))))
def test_summaries_filled_in_c_are_the_python_ones(case):
    """explain's sentences (textcolumns.filled): each row's template filled from its columns as
    format(value, "") writes them, or the text given for it; the C filler writes them into an
    Arrow column, byte for byte the Python twin's texts."""
    from rstwatch import textcolumns
    raw, fields, codes, given = case
    templates = [(literals, [(k + shift) % 3 for k in range(len(literals) - 1)]) for literals, shift in raw]
    codes = np.array([c if c < len(templates) else -1 for c in codes], np.int64)
    want = textcolumns.filled_python(codes, templates, fields, given)
    got = textcolumns.filled(codes, templates, fields, given)
    assert list(got) == want
    if len(codes):
        assert type(got).__name__ == "ArrowStringArray"


def test_address_texts_at_every_digit_boundary():
    # the C writers print octets and hex groups by hand: every width change of a digit count
    octets = [0, 1, 9, 10, 11, 99, 100, 101, 199, 200, 249, 250, 255]
    hexes = [0, 1, 0xF, 0x10, 0xFF, 0x100, 0xFFF, 0x1000, 0xABCD, 0xFFFF]
    v4 = [(o << 24) | (octets[(k + 3) % len(octets)] << 16) | (octets[(k + 7) % len(octets)] << 8) | octets[-1 - k]
          for k, o in enumerate(octets)]
    v6 = [sum(hexes[(k + i) % len(hexes)] << (16 * (7 - i)) for i in range(8)) for k in range(len(hexes))]
    rows = [(False, a) for a in v4] + [(True, a) for a in v6]
    flags = np.array([f for f, _ in rows], np.uint8)
    hi = np.array([a >> 64 for _, a in rows], np.uint64)
    lo = np.array([a & (2**64 - 1) for _, a in rows], np.uint64)
    got = rowtexts.address_texts(flags, hi, lo, address_text)
    assert got == [address_text(f, a >> 64, a & (2**64 - 1)) for f, a in rows]
    assert got[0] == "0.10.101.255"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=30))
def test_text_columns_made_in_c_are_the_ones_pandas_makes(values):
    import pandas as pd
    from rstwatch import textcolumns
    want = pd.Series(np.array(values, dtype=object))
    got = pd.Series(textcolumns.from_texts(values))
    assert got.dtype == want.dtype and type(got.array) is type(want.array)
    assert got.tolist() == want.tolist()
    objects = np.empty(len(values), dtype=object)
    objects[:] = values
    assert pd.Series(textcolumns.from_texts(objects)).tolist() == values


def test_columns_that_are_not_all_texts_are_left_to_pandas():
    from rstwatch import textcolumns
    for values in ([], ["a", None], ["a", 1], ["a", b"b"], ["\ud800"]):
        assert textcolumns.from_texts(values) is None, values


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=8).flatmap(
    lambda texts: st.tuples(st.just(texts), st.lists(st.integers(0, len(texts) - 1), min_size=1, max_size=40))))
def test_coded_text_columns_made_in_c_are_the_ones_pandas_makes(case):
    import pandas as pd
    from rstwatch import textcolumns
    texts, codes = case
    got = pd.Series(textcolumns.by_code(texts, np.array(codes)))
    want = pd.Series(np.array([texts[c] for c in codes], dtype=object))
    assert got.dtype == want.dtype and got.tolist() == want.tolist()
    for bad in ([len(texts)], [-1]):
        with pytest.raises(IndexError):
            rowtexts.code_buffers(texts, np.array(bad, np.int64))


def test_summaries_write_every_int_as_format_does():
    from rstwatch import textcolumns
    values = [0, -1, 7, -(2**63), 2**63 - 1, 2**63, -(2**63) - 1, True, False, 10**30, np.int64(5), 2.0]
    templates = [(["a ", " b"], [0])]
    got = textcolumns.filled(np.zeros(len(values), np.int64), templates, [values], [None] * len(values))
    assert list(got) == [f"a {v} b" for v in values]
