"""The dashboard's pictures, drawn by matplotlib (Agg) at report time and inlined as SVG, so
every page stays self-contained: a cell's timeline from its evidence, the bench's figures."""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # the backend is chosen first
from matplotlib.figure import Figure

plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: small, and set in the page's own font
        "svg.hashsalt": "gauntlet",  # the same evidence draws the same file
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
FAULT = "#ef6c00"
HEAL = "#2e7d32"


def svg(figure: Figure, tight: bool = True) -> str:
    """The figure as an inline <svg> element (no XML prolog, no external references);
    `tight` crops it to what is drawn (a second layout pass: the bench's few figures only)."""
    out = io.StringIO()
    blank = {"Creator": None, "Date": None, "Format": None, "Type": None}  # no <metadata>: nothing to say
    figure.savefig(out, format="svg", bbox_inches="tight" if tight else None, metadata=blank)
    plt.close(figure)
    text = out.getvalue()
    text = text[text.index("<svg") :]
    head, _, body = text.partition(">")
    return re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", head) + ">" + body  # inline in HTML the namespaces are implied


def timeline(evidence: dict[str, Any], recovery_s: float | None) -> str:
    """Completions per second and enqueue→start latency over the run; each fault window
    shaded and named, its heal marked, and the recovery (first success after the last heal)."""
    series = evidence["series"]
    width = series["bin_s"]
    x = [i * width for i in range(len(series["completions_per_s"]))]
    figure, (rate, wait) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True)
    rate.step(x, series["completions_per_s"], where="post", color="#1565c0", linewidth=1.2)
    rate.set_ylabel("completions / s")
    p50 = [float("nan") if v is None else v for v in series["latency_p50_s"]]
    worst = [float("nan") if v is None else v for v in series["latency_max_s"]]
    wait.plot(x, worst, color="#c62828", linewidth=1, label="max")
    wait.plot(x, p50, color="#6a1b9a", linewidth=1.2, label="p50")
    wait.set_ylabel("enqueue → start (s)")
    wait.set_xlabel(f"seconds since the first enqueue (bins of {width:g} s)")
    wait.legend(loc="upper left", frameon=False, ncols=2)
    t0 = evidence["t0"]
    for n, fault in enumerate(evidence.get("faults", [])):
        start, end = fault["applied"] - t0, fault["healed"] - t0
        for axis in (rate, wait):
            axis.axvspan(start, end, color=FAULT, alpha=0.18, linewidth=0)
            axis.axvline(end, color=HEAL, linewidth=0.8, linestyle="--")
        rate.annotate(
            f"{n + 1}: {fault.get('fault', 'fault')}",
            (start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, 2),
            textcoords="offset points",
            color=FAULT,
            fontsize=8,
            va="bottom",
        )
    faults = evidence.get("faults", [])
    if faults:  # the recovery, or its absence, from the last heal
        healed = faults[-1]["healed"] - t0
        recovered = healed + (recovery_s or 0.0)
        if recovery_s is not None:
            for axis in (rate, wait):
                axis.axvline(recovered, color=HEAL, linewidth=1.4)
        rate.annotate(
            f"recovered +{recovery_s:g} s" if recovery_s is not None else "no success after the heal",
            (recovered, 0.85),
            xycoords=("data", "axes fraction"),
            xytext=(4, 0),
            textcoords="offset points",
            color=HEAL if recovery_s is not None else "#c62828",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1},
        )
    rate.set_ylim(bottom=0)
    wait.set_ylim(bottom=0)
    figure.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.12, hspace=0.12)  # fixed: one layout pass
    return svg(figure, tight=False)


def drawn(plot: Callable[..., str], *args: Any) -> str:
    """The plot, or a line saying why it could not be drawn: figures a plot did not expect
    (an empty or malformed evidence or bench file) cost that picture, never the report."""
    try:
        return plot(*args)
    except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError) as exc:
        plt.close("all")
        return f"<div class=sub>not drawn: {html.escape(f'{type(exc).__name__}: {exc}')}</div>"


def _median(figure: Any) -> float | None:
    return figure.get("median") if isinstance(figure, dict) else None


def _log_if_positive(axis: Any, label: str) -> None:
    """A log y axis where the data has a positive value (figures span orders of magnitude); a
    linear one otherwise (a tiny or failed bench), which matplotlib can always draw."""
    data = [y for line in axis.get_lines() for y in line.get_ydata()]
    data += [patch.get_height() for patch in axis.patches]
    if any(math.isfinite(y) and y > 0 for y in data):
        axis.set_yscale("log")
        label += " (log)"
    axis.set_ylabel(label)


def bench_throughput(bench: dict[str, Any]) -> str:
    """Jobs/s against concurrency per SDK, the raw-SQL limit as a dashed line."""
    levels = list(bench["settings"]["concurrency"])
    figure, axis = plt.subplots(figsize=(9, 4.5))
    limit = [_median(bench.get("limit", {}).get(f"c{c}_batch1")) or float("nan") for c in levels]
    axis.plot(levels, limit, color="black", linestyle="--", linewidth=2, label="raw SQL (the limit)")
    for name, figures in sorted(bench.get("sdks", {}).items()):
        process = figures.get("process") or {}
        values = [_median(process.get(str(c))) for c in levels]
        if any(v is not None for v in values):
            axis.plot(levels, [float("nan") if v is None else v for v in values], marker="o", label=name)
    axis.set_xscale("log", base=2)
    axis.set_xticks(levels, [str(c) for c in levels])
    _log_if_positive(axis, "jobs processed / s")
    axis.set_xlabel("worker concurrency")
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    axis.grid(True, which="major", alpha=0.3)
    figure.tight_layout()
    return svg(figure)


def bench_latency(bench: dict[str, Any]) -> str:
    """Enqueue→start latency percentiles per SDK (log scale: p99 can be 100× p50)."""
    names = [n for n, f in sorted(bench.get("sdks", {}).items()) if (f.get("latency") or {}).get("p50_ms") is not None]
    figure, axis = plt.subplots(figsize=(9, 3.6))
    step = 0.27
    for k, (key, colour) in enumerate((("p50_ms", "#1565c0"), ("p95_ms", "#ef6c00"), ("p99_ms", "#c62828"))):
        values = [bench["sdks"][n]["latency"].get(key) or float("nan") for n in names]
        axis.bar([i + (k - 1) * step for i in range(len(names))], values, step, label=key[:3], color=colour)
    axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
    _log_if_positive(axis, "latency (ms)")
    axis.legend(frameon=False, ncols=3)
    axis.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    return svg(figure)


def bench_cost(bench: dict[str, Any]) -> str:
    """The harness's own cost: recording on vs off, % of the run without (median and range)."""
    rows = []
    for name, figures in sorted(bench.get("sdks", {}).items()):
        spread = (figures.get("recording") or {}).get("on_off_pct")
        median = figures.get("history_overhead_pct")
        if median is not None:
            low = spread.get("min", median) if isinstance(spread, dict) else median
            high = spread.get("max", median) if isinstance(spread, dict) else median
            rows.append((name, median, median - low, high - median))
    figure, axis = plt.subplots(figsize=(9, 3.2))
    axis.bar(
        [r[0] for r in rows],
        [r[1] for r in rows],
        yerr=[[r[2] for r in rows], [r[3] for r in rows]],
        color="#78909c",
        capsize=3,
    )
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel("recording cost (% of the run without)")
    axis.tick_params(axis="x", rotation=30)
    for label in axis.get_xticklabels():
        label.set_horizontalalignment("right")
    axis.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    return svg(figure)
