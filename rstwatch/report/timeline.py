"""The timeline of resets by cause: stacked bars in round time bins (matplotlib, SVG).

Axis and text colours become `currentColor`, so the plot follows the page's dark or light
theme when inlined; a standalone file carries its own prefers-color-scheme style."""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from .summary import reset_weights

# Round bin widths in seconds; the chosen one gives at most MAX_BINS bars over the span.
BIN_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
             900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800]
MAX_BINS = 80
TOP_CAUSES = 8              # more causes than this are stacked as "other"
SENTINEL = "#010203"        # drawn in this colour, then replaced by currentColor
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f",
           "#ff9da7", "#8cd17d", "#86bcb6", "#d37295", "#a0cbe8", "#ffbe7d", "#bab0ac", "#499894",
           "#d4a6c8", "#f1ce63"]
OTHER = "#8f8f8f"
_FLOOD_SECONDS = re.compile(r" in ([0-9.]+) s from ")


def pick_bin(span_s: float) -> float:
    for step in BIN_STEPS:
        if span_s / step <= MAX_BINS:
            return step
    return BIN_STEPS[-1]


def colours(causes: list[str]) -> dict[str, str]:
    """One colour per cause, in order of importance (the report's legend uses the same)."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(causes)}


def reset_times(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(times, causes) with one entry per reset: a flood finding's resets are spread evenly over
    the duration its summary states (it is one row for many resets)."""
    weights = reset_weights(df).to_numpy()
    times = df["time"].to_numpy(float)
    causes = df["cause"].astype(str).to_numpy()
    if (weights == 1).all():
        return times, causes
    t_parts, c_parts = [times[weights == 1]], [causes[weights == 1]]
    for i in np.flatnonzero(weights != 1):
        m = _FLOOD_SECONDS.search(str(df["summary"].iloc[i]))
        secs = float(m.group(1)) if m else 0.0
        n = int(weights[i])
        t_parts.append(times[i] + np.linspace(0.0, secs, n, endpoint=False) if secs else np.full(n, times[i]))
        c_parts.append(np.full(n, causes[i], dtype=object))
    return np.concatenate(t_parts), np.concatenate(c_parts).astype(str)


def timeline_svg(df: pd.DataFrame, order: list[str], palette: dict[str, str], standalone: bool = False) -> tuple[str, float]:
    """(SVG text, bin width in seconds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times, causes = reset_times(df)
    t0, t1 = float(times.min()), float(times.max())
    step = pick_bin(t1 - t0)
    start = np.floor(t0 / step) * step
    nbins = int((t1 - start) // step) + 1
    edges = start + step * np.arange(nbins + 1)
    shown = order[:TOP_CAUSES] if len(order) > TOP_CAUSES + 1 else order
    groups = [(c, causes == c, palette[c]) for c in shown]
    if len(shown) < len(order):
        groups.append((f"other ({len(order) - len(shown)} causes)", ~np.isin(causes, shown), OTHER))
    rc = {"svg.fonttype": "none", "svg.hashsalt": "rstwatch", "font.size": 9, "text.color": SENTINEL,
          "axes.edgecolor": SENTINEL, "axes.labelcolor": SENTINEL, "xtick.color": SENTINEL, "ytick.color": SENTINEL,
          "font.family": "sans-serif"}
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(9.6, 3.0), dpi=96)
        x = mdates.date2num(pd.to_datetime(edges[:-1], unit="s", utc=True).tz_localize(None).to_pydatetime())
        width = step / 86400.0
        bottom = np.zeros(nbins)
        for name, mask, colour in groups:
            counts, _ = np.histogram(times[mask], bins=edges)
            if counts.any():
                ax.bar(x, counts, width=width, bottom=bottom, align="edge", color=colour, label=name, linewidth=0)
                bottom += counts
        ax.xaxis_date()
        loc = mdates.AutoDateLocator(maxticks=8)
        # Without these, a span just over 7 ticks of the largest default step (3.5 min at 30 s,
        # 3.5 h at 30 min, 2 days at 6 h...) makes matplotlib warn on stderr and guess
        loc.intervald[mdates.SECONDLY] = [1, 2, 5, 10, 15, 30, 60]
        loc.intervald[mdates.MINUTELY] = [1, 2, 5, 10, 15, 30, 60]
        loc.intervald[mdates.HOURLY] = [1, 2, 3, 4, 6, 12, 24]
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
        ax.set_ylabel(f"resets per {_human(step)}")
        ax.set_xlabel("time (UTC)")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.grid(axis="y", color=SENTINEL, alpha=0.15, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", transparent=True, metadata={"Date": None})
        plt.close(fig)
    svg = buf.getvalue().replace(SENTINEL, "currentColor")
    svg = svg[svg.index("<svg"):]                        # drop the XML prologue and DOCTYPE when inlined
    svg = svg.replace("<svg ", '<svg class="timeline" role="img" aria-label="resets over time by cause" ', 1)
    if standalone:
        svg = svg.replace("<defs>", "<defs><style>svg{color:#1f2328} @media (prefers-color-scheme: dark)"
                          "{svg{color:#e6edf3}}</style>", 1)
        svg = '<?xml version="1.0" encoding="utf-8"?>\n' + svg
    return svg, step


def _human(step: float) -> str:
    if step < 1:
        return f"{step * 1000:g} ms"
    if step < 60:
        return f"{step:g} s"
    if step < 3600:
        return f"{step / 60:g} min"
    if step < 86400:
        return f"{step / 3600:g} h"
    return f"{step / 86400:g} d"
