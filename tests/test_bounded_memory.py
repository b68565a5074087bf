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

    def spy(seg):
        out = real(seg)
        sizes.append((len(seg), len(out)))
        return out
    monkeypatch.setattr(analyze, "forget_closed", spy)
    bounded = analyze_file(path, builtin_rules).findings
    assert len(sizes) > 5 and sum(a - b for a, b in sizes) > 30_000, sizes   # really forgot
    assert len(whole) > 100
    cols = ["frame", "cause", "sender", "conn_state", "history", "evidence"]
    pd.testing.assert_frame_equal(whole[cols], bounded[cols])
