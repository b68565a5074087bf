"""Where live verdicts go. The writers themselves live in the one output layer
(rstwatch/report/formats.py); this picks the streaming one for --format."""
from __future__ import annotations

from typing import TextIO

from ..report.formats import FORMATS
from ..report.jsonl import JsonlSink
from ..report.summary import CauseTally, reset_weights

__all__ = ["CauseTally", "JsonlSink", "TableSink", "make_sink", "reset_weights", "STREAMING"]

STREAMING = [name for name, f in FORMATS.items() if f.stream]


def make_sink(fmt: str, out: TextIO):
    """The streaming writer registered for `fmt` (table, jsonl, csv, ...)."""
    return FORMATS[fmt].sink(out)


def __getattr__(name: str):
    if name == "TableSink":                 # rich is imported only when a table is shown
        from ..report.table import TableSink
        return TableSink
    raise AttributeError(name)
