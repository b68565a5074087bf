"""Forgetting cleanly closed flows bounds memory and must not change a single verdict."""
from __future__ import annotations

import sys

import pandas as pd

from conftest import ROOT
from rstwatch import analyze
from rstwatch.analyze import analyze_file

sys.path.insert(0, str(ROOT / "benchmarks"))
import synth  # noqa: E402


def test_forgetting_changes_no_verdict(tmp_path, builtin_rules, monkeypatch):
    path = tmp_path / "s.pcap"
    synth.write(path, synth.build(60_000, 0.05))
    whole = analyze_file(path, builtin_rules).findings
    monkeypatch.setattr(analyze, "FORGET_ROWS", 2_000)           # forget after every chunk
    monkeypatch.setattr("rstwatch.sources.stream.CHUNK_BYTES", 256 * 1024)
    monkeypatch.setattr("rstwatch.track.flows.FORGET_AFTER_NS", 50_000_000)   # 50 ms
    sizes = []
    real = analyze.forget_closed

    def spy(parts):
        rows = sum(len(p) for p in parts)
        out = real(parts)
        sizes.append((rows, len(out)))
        return out
    monkeypatch.setattr(analyze, "forget_closed", spy)
    bounded = analyze_file(path, builtin_rules).findings
    assert len(sizes) > 5 and sum(a - b for a, b in sizes) > 30_000, sizes   # really forgot
    assert len(whole) > 100
    cols = ["frame", "cause", "sender", "conn_state", "history", "evidence"]
    pd.testing.assert_frame_equal(whole[cols], bounded[cols])


def test_a_file_table_is_freed_once_cut_into_pieces(tmp_path, builtin_rules, monkeypatch):
    """A file with more resets than a batch takes is cut into pieces: its segment table is freed
    before the first piece is classified (it lived until the last one: 60 MB more at the peak
    with 100,000 resets), and the pieces give the findings of the table classified whole."""
    import weakref
    path = tmp_path / "r.pcap"
    # clients that abort (each its own sender, so each reset its own component: many pieces)
    client_abort = [(synth.C2S, synth.SYN, 0, 0), (synth.S2C, synth.SYN | synth.ACK, 0, 1),
                    (synth.C2S, synth.ACK, 0, 2), (synth.C2S, synth.RST | synth.ACK, 0, 5)]
    synth.write(path, synth.build(30_000, 0.3, templates=[synth.NORMAL, client_abort]))
    whole = analyze_file(path, builtin_rules, batch=analyze.VerdictBatch(builtin_rules, max_resets=10**9)).findings

    table = []
    real_read = analyze._read_bounded

    def keep_a_column(*args, **kwargs):
        seg = real_read(*args, **kwargs)
        table.append(weakref.ref(seg.cols["seq"]))
        return seg
    monkeypatch.setattr(analyze, "_read_bounded", keep_a_column)
    batch = analyze.VerdictBatch(builtin_rules, max_resets=200)
    alive_at_each_piece = []
    real_add = batch._add

    def add(owner, label, seg):
        alive_at_each_piece.append(table[0]() is not None)
        real_add(owner, label, seg)
    batch._add = add
    cut = analyze_file(path, builtin_rules, batch=batch).findings
    assert len(alive_at_each_piece) > 3 and not any(alive_at_each_piece), alive_at_each_piece
    assert len(whole) > 500
    cols = ["frame", "cause", "sender", "conn_state", "history", "evidence", "summary"]
    pd.testing.assert_frame_equal(whole[cols], cut[cols])
