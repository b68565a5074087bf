"""Warnings and counters gathered while reading one file; never silently drop a frame."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Diagnostics:
    file: str
    warnings: list[str] = field(default_factory=list)
    packets: int = 0            # every frame in the file
    tcp_segments: int = 0
    skipped: Counter = field(default_factory=Counter)   # reason -> frames not decoded as TCP/IP
    truncated: bool = False
    engine: str = "fast"

    def warn(self, reason: str) -> None:
        if reason not in self.warnings:
            self.warnings.append(reason)

    def skip(self, reason: str, count: int) -> None:
        if count:
            self.skipped[reason] += int(count)
