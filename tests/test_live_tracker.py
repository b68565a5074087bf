"""The live tracker decides each RST once its hold is over, batch by batch. Features that compare
connections must see the same connections they would in `read`, however the packets were batched."""
from __future__ import annotations

import numpy as np

from conftest import CAPTURES
from rstwatch.live.tracker import LiveTracker
from rstwatch.sources.capture import read_segments
from rstwatch.sources.diagnostics import Diagnostics
from rstwatch.sources.segments import RST


def test_a_listener_burst_split_across_batches_is_one_burst(builtin_rules):
    """captures/listener-closed.pcap: a listener closes with three connections queued, three RSTs
    within 60 us. When the first RST came in one batch and the other two in the next (as dumpcap's
    blocks fell in a CI run), the first was decided alone: one reset is no burst, and it read as
    unread-data-close. Its verdict must take the others (pending, not yet due) into account."""
    seg = read_segments(CAPTURES / "listener-closed.pcap", Diagnostics(file="listener-closed.pcap"))
    rsts = np.flatnonzero((seg["flags"] & RST) != 0)
    assert len(rsts) == 3
    cut = int(rsts[1])
    tracker = LiveTracker("live:test", builtin_rules, 500)
    tracker.ingest(seg.take(np.arange(cut)), arrived=0.0)
    tracker.ingest(seg.take(np.arange(cut, len(seg))), arrived=0.5)
    first = tracker.poll(now=1.2)             # only the first RST's hold is over
    rest = tracker.poll(now=2.0)
    assert first["frame"].tolist() == [int(seg["frame"][rsts[0]])]
    assert rest["frame"].tolist() == [int(seg["frame"][k]) for k in rsts[1:]]
    assert first["cause"].tolist() + rest["cause"].tolist() == ["listener-closed"] * 3
