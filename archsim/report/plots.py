"""Figures of the run and sweep reports (matplotlib, Agg backend, deterministic files).

Every function returns a matplotlib ``Figure``; :func:`save_figure` writes it atomically in the
requested formats and closes it. The conductance figure is drawn by
:func:`archsim.devices.plots.plot_conductance_distributions` (see :func:`conductance_png`).
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402
import numpy as np  # noqa: E402

from archsim.io import atomic_write_bytes  # noqa: E402

# Fixed SVG element ids and no dates in the files: the same report twice gives the same bytes.
matplotlib.rcParams["svg.hashsalt"] = "archsim-report"
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
DPI = 120
LOG_SPREAD = 100.0
"""A value axis turns logarithmic when its largest positive value exceeds the smallest by this."""


def save_figure(fig: Any, folder: Path, stem: str, formats: Sequence[str]) -> list[str]:
    """Write ``fig`` as ``stem.<fmt>`` for each format (atomically) and close it; file names."""
    names = []
    try:
        for fmt in formats:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
            atomic_write_bytes(Path(folder) / f"{stem}.{fmt}", buffer.getvalue())
            names.append(f"{stem}.{fmt}")
    finally:
        plt.close(fig)
    return names


def wide_spread(values: Sequence[float]) -> bool:
    """True when the positive values span more than ``LOG_SPREAD`` (use a log axis)."""
    positive = [float(v) for v in values if v is not None and float(v) > 0 and math.isfinite(float(v))]
    return len(positive) >= 2 and max(positive) / min(positive) > LOG_SPREAD


# -- accuracy ---------------------------------------------------------------------------------
def accuracy_heatmaps(panels: Sequence[tuple[str, list[str], list[str], np.ndarray]]) -> Any:
    """One heatmap per (title, row labels, column labels, matrix of fractions; NaN = not tested)."""
    n_rows = max(len(p[1]) for p in panels)
    n_cols = max(len(p[2]) for p in panels)
    width = len(panels) * (1.6 + 1.1 * n_cols) + 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 1.8 + 0.6 * n_rows), dpi=DPI, squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.92")
    image = None
    for ax, (title, rows, cols, matrix) in zip(axes[0], panels):
        data = np.ma.masked_invalid(100.0 * np.asarray(matrix, dtype=float))
        image = ax.imshow(data, cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for i in range(len(rows)):
            for j in range(len(cols)):
                value = matrix[i][j]
                if np.isfinite(value):
                    ax.text(j, i, f"{100 * value:.1f}", ha="center", va="center", fontsize=9,
                            color="white" if value < 0.6 else "black")
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("evaluated task")
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), label="accuracy (%)", shrink=0.9)
    return fig


# -- bars ---------------------------------------------------------------------------------------
def _bars(ax: Any, labels: Sequence[str], values: Sequence[float], xlabel: str, unit: str,
          title: str, shares: bool) -> None:
    from archsim.report.markdown import eng

    y = np.arange(len(labels))
    vals = np.asarray(values, dtype=float)
    ax.barh(y, vals, color=plt.cm.tab10(np.arange(len(labels)) % 10))
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    total = float(np.nansum(vals))
    if wide_spread(vals):
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks cost much drawing time
        positive = vals[vals > 0]
        ax.set_xlim(positive.min() / 3, positive.max() * 30)
        xlabel += " (log scale)"
    else:
        ax.set_xlim(0, (vals.max() if vals.size and vals.max() > 0 else 1.0) * 1.45)
    for yi, v in zip(y, vals):
        if v > 0:
            share = ""
            if shares and total > 0:
                share = f" ({100 * v / total:.1f}%)" if v / total >= 0.001 else " (<0.1%)"
            ax.text(v, yi, f" {eng(v, unit, 3)}{share}", va="center", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)


def bar_panels(panels: Sequence[tuple[str, Mapping[str, float], str, str, bool]]) -> Any:
    """Horizontal bar charts side by side: (title, {label: value}, axis label, unit, label
    each bar with its share of the panel's sum)."""
    tallest = max(len(p[1]) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 1.6 + 0.38 * tallest),
                             dpi=DPI, squeeze=False, layout="constrained")
    for ax, (title, values, xlabel, unit, shares) in zip(axes[0], panels):
        _bars(ax, list(values), list(values.values()), xlabel, unit, title, shares)
    return fig


# -- writes against endurance ------------------------------------------------------------------
def count_edges(maximum: int) -> np.ndarray:
    """Histogram bin edges for non-negative integer counts: one bin per count up to 10 (or up
    to ``maximum`` when small), then logarithmic bins."""
    if maximum <= 60:
        return np.arange(-0.5, maximum + 1.5)
    return np.unique(np.concatenate([np.arange(-0.5, 11.0), np.geomspace(10.5, maximum + 1.0, 50)]))


def write_histogram(counts: Mapping[str, np.ndarray], quantity: str, per: str,
                    endurance_median: float | None = None, endurance_sigma_ln: float = 0.0) -> Any:
    """Stacked histogram (one colour per layer, log y) of per-device counts against endurance.

    ``endurance_median`` draws the median endurance (dashed) and, with a spread, the band
    between the 16th and 84th percentile of the lognormal endurance.
    """
    arrays = [np.asarray(a).ravel() for a in counts.values()]
    maximum = int(max((int(a.max()) for a in arrays if a.size), default=0))
    edges = count_edges(maximum)
    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=DPI)
    ax.hist(arrays, bins=edges, stacked=True, label=list(counts), log=True,
            color=plt.cm.tab10(np.arange(len(arrays)) % 10))
    ax.axvline(maximum, color="0.25", linestyle=":", linewidth=1.0, label=f"most-written: {maximum:,d}")
    if endurance_median is not None:
        if endurance_sigma_ln > 0:
            lo, hi = endurance_median * math.exp(-endurance_sigma_ln), endurance_median * math.exp(endurance_sigma_ln)
            ax.axvspan(lo, hi, color="tab:red", alpha=0.12, label="endurance 16-84 %")
        ax.axvline(endurance_median, color="tab:red", linestyle="--", linewidth=1.4,
                   label=f"endurance median: {endurance_median:.3g}")
        right = endurance_median * (math.exp(endurance_sigma_ln) if endurance_sigma_ln > 0 else 1.0) * 2.0
        ax.set_xlim(-0.5, max(right, maximum + 1.5))
    if (endurance_median is not None and endurance_median > 20 * max(maximum, 1)) or maximum > 60:
        ax.set_xscale("symlog", linthresh=10, linscale=1.0)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(f"{quantity} per {per} (symmetric log scale, linear below 10)")
    else:
        ax.set_xlabel(f"{quantity} per {per}")
    ax.set_ylabel(f"{per}s (log scale)")
    ax.set_title(f"{quantity.capitalize()} per device against endurance", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


# -- conductances (shared device figure) --------------------------------------------------------
def conductance_png(snapshot: Mapping[str, np.ndarray], folder: Path, stem: str) -> str:
    """Draw with :func:`archsim.devices.plots.plot_conductance_distributions` (PNG only) and
    copy the file atomically into ``folder``; returns its name."""
    from archsim.devices.plots import plot_conductance_distributions

    with tempfile.TemporaryDirectory(prefix="archsim-report-") as tmp:
        path = plot_conductance_distributions(dict(snapshot), Path(tmp) / f"{stem}.png")
        atomic_write_bytes(Path(folder) / f"{stem}.png", Path(path).read_bytes())
    return f"{stem}.png"


# -- Pareto fronts ------------------------------------------------------------------------------
def pareto_scatter(cost: np.ndarray, accuracy: np.ndarray, front: np.ndarray, colour: Sequence[Any] | None,
                   colour_label: str | None, xlabel: str, title: str) -> Any:
    """Every point (accuracy % vs cost), the non-dominated ones ringed and joined by a step line."""
    cost = np.asarray(cost, dtype=float)
    acc = 100.0 * np.asarray(accuracy, dtype=float)
    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=DPI)
    if colour is not None:
        values = list(colour)
        numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                      for v in values)
        if numeric and len(set(values)) > 1:
            points = ax.scatter(cost, acc, c=np.asarray(values, dtype=float), cmap="viridis", s=28, zorder=2)
            fig.colorbar(points, ax=ax, label=colour_label)
        else:
            categories = sorted({str(v) for v in values})
            colours = plt.cm.tab10(np.arange(len(categories)) % 10)
            for category, c in zip(categories, colours):
                sel = np.array([str(v) == category for v in values])
                ax.scatter(cost[sel], acc[sel], color=c, s=28, zorder=2, label=f"{colour_label}={category}")
            ax.legend(fontsize=7, loc="lower right")
    else:
        ax.scatter(cost, acc, color="tab:blue", s=28, zorder=2)
    order = np.argsort(cost[front], kind="stable")
    fx, fy = cost[front][order], acc[front][order]
    ax.step(fx, fy, where="post", color="tab:red", linewidth=1.0, zorder=1)
    ax.scatter(fx, fy, facecolors="none", edgecolors="tab:red", s=110, linewidths=1.4, zorder=3,
               label="Pareto-optimal")
    if wide_spread(cost):
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        xlabel += " (log scale)"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final accuracy, mean over tasks (%)")
    ax.set_title(title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
