"""The timeline of resets by cause: stacked bars in round time bins (matplotlib, SVG).

Resets that come in bursts far apart (a folder of captures from different days or years) get one
panel per burst, the quiet time between them cut out and marked, so no bar is too thin to see and
the plot never holds more than MAX_BINS bars per cause (a 30-year span in one-week bins was
1,565 bars a cause and half a minute of matplotlib).

Axis and text colours become `currentColor`, so the plot follows the page's dark or light
theme when inlined; a standalone file carries its own prefers-color-scheme style."""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from .summary import reset_weights

# Round bin widths in seconds; the chosen one gives at most MAX_BINS bars over the span.
DAY = 86400
BIN_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
             900, 1800, 3600, 7200, 10800, 21600, 43200, DAY, 7 * DAY, 30 * DAY, 91 * DAY, 365 * DAY]
MAX_BINS = 80
MAX_PERIODS = 6             # panels at most; closer bursts share one
MIN_BINS_PER_PERIOD = 12
CUT_MIN_S = 3600            # a quiet gap shorter than this is never cut out
CUT_KEEP = 0.5              # cuts are made only when what they leave is less than this share of the span
TOP_CAUSES = 8              # more causes than this are stacked as "other"
SENTINEL = "#010203"        # drawn in this colour, then replaced by currentColor
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f",
           "#ff9da7", "#8cd17d", "#86bcb6", "#d37295", "#a0cbe8", "#ffbe7d", "#bab0ac", "#499894",
           "#d4a6c8", "#f1ce63"]
OTHER = "#8f8f8f"
_FLOOD_SECONDS = re.compile(r" in ([0-9.]+) s from ")


def pick_bin(span_s: float, max_bins: int = MAX_BINS) -> float:
    for step in BIN_STEPS:
        if span_s / step <= max_bins:
            return step
    years = -(-span_s // (max_bins * BIN_STEPS[-1]))        # whole years, past a century of span
    return BIN_STEPS[-1] * years


def periods(times: np.ndarray) -> list[tuple[float, float]]:
    """(first, last) reset time of each panel: the longest quiet gaps (at least CUT_MIN_S, at most
    MAX_PERIODS - 1 of them) are cut out when that leaves less than CUT_KEEP of the span; else one
    panel (resets spread over the span, one burst a day for a month, read better on one axis)."""
    t = np.unique(times)
    t0, t1 = float(t[0]), float(t[-1])
    gaps = np.diff(t)
    longest = np.argsort(gaps, kind="stable")[::-1][:MAX_PERIODS - 1]
    cuts = np.sort(longest[gaps[longest] >= CUT_MIN_S])
    if not len(cuts) or (t1 - t0) - gaps[cuts].sum() > CUT_KEEP * (t1 - t0):
        return [(t0, t1)]
    starts, ends = np.r_[0, cuts + 1], np.r_[cuts, len(t) - 1]
    return [(float(t[a]), float(t[b])) for a, b in zip(starts, ends)]


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


def timeline_svg(df: pd.DataFrame, order: list[str], palette: dict[str, str],
                 standalone: bool = False) -> tuple[str, list[float], float]:
    """(SVG text, bin width in seconds of each panel, quiet time cut out in seconds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, causes = reset_times(df)
    spans = periods(times)
    per_panel = max(MIN_BINS_PER_PERIOD, MAX_BINS // len(spans))
    steps = [pick_bin(b - a, per_panel) for a, b in spans]
    bins = [int((b - np.floor(a / st) * st) // st) + 1 for (a, b), st in zip(spans, steps)]
    shown = order[:TOP_CAUSES] if len(order) > TOP_CAUSES + 1 else order
    groups = [(c, causes == c, palette[c]) for c in shown]
    if len(shown) < len(order):
        groups.append((f"other ({len(order) - len(shown)} causes)", ~np.isin(causes, shown), OTHER))
    rc = {"svg.fonttype": "none", "svg.hashsalt": "rstwatch", "font.size": 9, "text.color": SENTINEL,
          "axes.edgecolor": SENTINEL, "axes.labelcolor": SENTINEL, "xtick.color": SENTINEL, "ytick.color": SENTINEL,
          "font.family": "sans-serif"}
    with plt.rc_context(rc):
        fig, axes = plt.subplots(1, len(spans), figsize=(9.6, 3.0), dpi=96, sharey=True, squeeze=False,
                                 gridspec_kw={"width_ratios": bins})
        axes = list(axes[0])
        for k, (ax, (a, b), step) in enumerate(zip(axes, spans, steps)):
            _panel(ax, times, groups, a, b, step, legend=k == 0, fit=len(spans) > 1)
            if k:                                   # the cut: no spine, a // mark
                ax.spines["left"].set_visible(False)
                ax.tick_params(axis="y", left=False)
                ax.text(0, 0, "//", transform=ax.transAxes, ha="center", va="center", fontsize=9,
                        color=SENTINEL, clip_on=False)
        axes[0].set_ylabel("resets per bin" if len(set(steps)) > 1 else f"resets per {_human(steps[0])}")
        if len(spans) == 1:
            axes[0].set_xlabel("time (UTC)")
        else:
            fig.supxlabel("time (UTC), quiet gaps cut out (//)", fontsize=9, y=0.01)
        handles, labels = axes[0].get_legend_handles_labels()
        if len(spans) == 1:
            axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
            fig.tight_layout()
        else:                           # the legend beside the last panel, room kept for it
            fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.8, 0.97), frameon=False, fontsize=8)
            # fixed margins: tight_layout refuses (and warns about) panels this narrow
            fig.subplots_adjust(left=0.08, right=0.8, bottom=0.2, top=0.95, wspace=0.06)
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
    cut = (spans[-1][1] - spans[0][0]) - sum(b - a for a, b in spans)
    return svg, steps, cut


def _panel(ax, times: np.ndarray, groups: list, a: float, b: float, step: float, legend: bool, fit: bool) -> None:
    """One period's stacked bars, dates on its axis (`fit`: the axis ends at the bars, as panels meet)."""
    import matplotlib.dates as mdates
    start = np.floor(a / step) * step
    nbins = int((b - start) // step) + 1
    edges = start + step * np.arange(nbins + 1)
    inside = (times >= a) & (times <= b)
    x = mdates.date2num(pd.to_datetime(edges[:-1], unit="s", utc=True).tz_localize(None).to_pydatetime())
    bottom = np.zeros(nbins)
    for name, mask, colour in groups:
        counts, _ = np.histogram(times[mask & inside], bins=edges)
        if counts.any():
            ax.bar(x, counts, width=step / DAY, bottom=bottom, align="edge", color=colour,
                   label=name if legend else None, linewidth=0)
            bottom += counts
        elif legend:                    # in the legend even when its resets are in another panel
            ax.bar(x[:1], [0], width=0, color=colour, label=name, linewidth=0)
    ax.xaxis_date()
    if fit:                             # a panel among others: its first day (and hour) only
        ax.set_xlim(x[0], x[0] + nbins * step / DAY)
        ax.set_xticks([mdates.date2num(pd.Timestamp(a, unit="s"))])
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d" if step >= DAY else "%Y-%m-%d\n%H:%M"))
        ax.tick_params(axis="x", labelsize=8)
    else:
        _date_ticks(ax)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color=SENTINEL, alpha=0.15, linewidth=0.6)
    ax.set_axisbelow(True)


def _date_ticks(ax) -> None:
    import matplotlib.dates as mdates
    loc = mdates.AutoDateLocator(maxticks=8)
    # Without these, a span just over 7 ticks of the largest default step (3.5 min at 30 s,
    # 3.5 h at 30 min, 2 days at 6 h...) makes matplotlib warn on stderr and guess
    loc.intervald[mdates.SECONDLY] = [1, 2, 5, 10, 15, 30, 60]
    loc.intervald[mdates.MINUTELY] = [1, 2, 5, 10, 15, 30, 60]
    loc.intervald[mdates.HOURLY] = [1, 2, 3, 4, 6, 12, 24]
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _human(step: float) -> str:
    if step < 1:
        return f"{step * 1000:g} ms"
    if step < 60:
        return f"{step:g} s"
    if step < 3600:
        return f"{step / 60:g} min"
    if step < DAY:
        return f"{step / 3600:g} h"
    if step < 365 * DAY:
        return f"{step / DAY:g} d"
    return f"{step / (365 * DAY):g} y"
