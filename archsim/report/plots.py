"""Figures of the run and sweep reports (matplotlib, Agg backend, deterministic files).

Every function returns a matplotlib ``Figure``; :func:`save_figure` writes it atomically in the
requested formats and closes it. Axes in physical units carry SI prefixes
(:class:`matplotlib.ticker.EngFormatter`: µS, mJ, ms).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter, MaxNLocator, NullLocator  # noqa: E402
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


# -- energy and latency ------------------------------------------------------------------------
PHASE_COLOURS = {"forward": "tab:blue", "backward": "tab:orange", "update": "tab:green", "write": "tab:red",
                 "eval": "tab:purple"}
LEAKAGE_HATCH = "////"


def phase_colour(phase: str, index: int) -> Any:
    return PHASE_COLOURS.get(phase, plt.cm.tab10((index + 5) % 10))


def _label_bar_ends(ax: Any, totals: Sequence[float], grand_total: float, unit: str) -> None:
    from archsim.report.markdown import eng

    for y, v in enumerate(totals):
        share = ""
        if grand_total > 0:
            share = f" ({100 * v / grand_total:.1f} %)" if v / grand_total >= 0.001 else " (<0.1 %)"
        ax.text(v, y, f" {eng(v, unit, 3)}{share}", va="center", fontsize=7)


def energy_breakdown(ledger: Any) -> Any:
    """Two stacked horizontal bar charts of the energy ledger (a DataFrame with component,
    phase, kind, energy_j), on linear axes in J with SI prefixes: energy by component split by
    phase, and by phase split into dynamic and leakage. Leakage segments are hatched."""
    from archsim.results import ordered_phases

    from matplotlib.patches import Patch

    sums = ledger.groupby(["component", "phase", "kind"])["energy_j"].sum()
    by_phase = ledger.groupby(["phase", "kind"])["energy_j"].sum()
    components = list(ledger.groupby("component")["energy_j"].sum().sort_values(ascending=False).index)
    phases = list(ordered_phases({p: 0.0 for p in ledger["phase"].unique()}))
    total = float(ledger["energy_j"].sum())
    tall = max(len(components), len(phases))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 1.8 + 0.36 * tall), dpi=DPI, layout="constrained",
                                      gridspec_kw={"width_ratios": [1.6, 1.0]})
    for ax, rows, split in ((left, components, "component"), (right, phases, "phase")):
        left_edge = np.zeros(len(rows))
        for k, phase in enumerate(phases):
            for kind in ("dynamic", "leakage"):
                if split == "component":
                    values = np.array([sums.get((c, phase, kind), 0.0) for c in rows])
                else:
                    values = np.array([by_phase.get((phase, kind), 0.0) if p == phase else 0.0 for p in rows])
                if not values.any():
                    continue
                ax.barh(np.arange(len(rows)), values, left=left_edge, color=phase_colour(phase, k),
                        hatch=LEAKAGE_HATCH if kind == "leakage" else None, edgecolor="white" if kind == "leakage" else None,
                        linewidth=0)
                left_edge += values
        ax.set_yticks(np.arange(len(rows)), rows)
        ax.invert_yaxis()
        ax.set_xlim(0, max(float(left_edge.max()), 1e-30) * 1.5)
        ax.xaxis.set_major_locator(MaxNLocator(5 if ax is left else 3))
        ax.xaxis.set_major_formatter(EngFormatter(unit="J"))
        ax.set_xlabel("energy of the run")
        _label_bar_ends(ax, left_edge, total, "J")
        ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=phase_colour(p, k), label=p) for k, p in enumerate(phases)]
    handles.append(Patch(facecolor="0.6", hatch=LEAKAGE_HATCH, edgecolor="white", label="leakage (hatched)"))
    left.set_title("by component, split by phase", fontsize=10)
    right.set_title("by phase, dynamic and leakage", fontsize=10)
    right.legend(handles=handles, fontsize=7, loc="lower right")
    return fig


def area_bars(by_component_mm2: Mapping[str, float]) -> Any:
    """Horizontal bars of the chip area by component (mm², linear), labelled with shares."""
    labels = list(by_component_mm2)
    values = np.array([by_component_mm2[k] for k in labels], dtype=float)
    fig, ax = plt.subplots(figsize=(7.0, 1.4 + 0.34 * len(labels)), dpi=DPI, layout="constrained")
    ax.barh(np.arange(len(labels)), values, color=plt.cm.tab10(np.arange(len(labels)) % 10))
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(float(values.max()) if values.size else 0.0, 1e-30) * 1.4)
    total = float(values.sum())
    for y, v in enumerate(values):
        share = f" ({100 * v / total:.1f} %)" if total > 0 else ""
        ax.text(v, y, f" {v:.4g} mm²{share}", va="center", fontsize=7)
    ax.set_xlabel("area (mm²)")
    ax.set_title("chip area by component", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def latency_figure(seconds_by_phase: Mapping[str, float], cycles_by_phase: Mapping[str, float],
                   per_item_s: Mapping[str, float]) -> Any:
    """Run time by phase (linear, s with SI prefixes; labels: cycles and share) above the
    latency of one image / one training step (log axis: they span orders of magnitude)."""
    from archsim.report.markdown import num

    phases = list(seconds_by_phase)
    items = list(per_item_s)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 2.4 + 0.32 * (len(phases) + len(items))), dpi=DPI,
                                      layout="constrained", height_ratios=[max(len(phases), 1), max(len(items), 1)])
    values = np.array([seconds_by_phase[p] for p in phases], dtype=float)
    top.barh(np.arange(len(phases)), values, color=[phase_colour(p, k) for k, p in enumerate(phases)])
    top.set_yticks(np.arange(len(phases)), phases)
    top.invert_yaxis()
    top.set_xlim(0, max(float(values.max()) if values.size else 0.0, 1e-30) * 1.5)
    top.xaxis.set_major_formatter(EngFormatter(unit="s"))
    top.set_xlabel("time of the whole run")
    total = float(values.sum())
    for y, (p, v) in enumerate(zip(phases, values)):
        cycles = f"{num(cycles_by_phase[p])} cycles, " if p in cycles_by_phase else ""
        top.text(v, y, f" {cycles}{100 * v / total:.1f} %" if total > 0 else "", va="center", fontsize=7)
    top.set_title("whole run, by phase", fontsize=10)
    top.grid(axis="x", alpha=0.3)
    item_values = np.array([per_item_s[k] for k in items], dtype=float)
    bottom.barh(np.arange(len(items)), item_values, color="tab:gray")
    bottom.set_yticks(np.arange(len(items)), items)
    bottom.invert_yaxis()
    positive = item_values[item_values > 0]
    if positive.size:
        bottom.set_xscale("log")
        bottom.xaxis.set_minor_locator(NullLocator())
        bottom.set_xlim(positive.min() / 3, positive.max() * 30)
    bottom.xaxis.set_major_formatter(EngFormatter(unit="s"))
    bottom.set_xlabel("latency (log scale)")
    from archsim.report.markdown import eng

    for y, v in enumerate(item_values):
        if v > 0:
            bottom.text(v, y, f" {eng(v, 's', 3)}", va="center", fontsize=7)
    bottom.set_title("one image / one training step", fontsize=10)
    bottom.grid(axis="x", alpha=0.3)
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
    ax.set_title(f"{quantity.capitalize()} per {per} against endurance", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


# -- conductances -----------------------------------------------------------------------------
def conductance_histogram(g_s: np.ndarray, state: np.ndarray, stuck: np.ndarray, state_g_s: np.ndarray,
                          g_min_s: float, bins: int = 120) -> Any:
    """Histogram of the programmed conductance of every device (S, SI prefixes), one colour
    per target state, stuck devices in grey; values below the device's minimum conductance
    ``g_min_s`` (the physical floor) are drawn at it."""
    g = np.maximum(np.asarray(g_s, dtype=float), g_min_s)
    targets = np.asarray(state_g_s, dtype=float)
    hi = max(float(g.max()) if g.size else g_min_s, float(targets.max()) if targets.size else g_min_s)
    edges = np.linspace(g_min_s, hi + 0.03 * (hi - g_min_s), bins + 1)
    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=DPI)
    colours = plt.cm.viridis(np.linspace(0.05, 0.9, max(targets.size, 1)))
    from archsim.report.markdown import eng

    for s, colour in enumerate(colours[: targets.size]):
        sel = (state == s) & ~stuck
        if sel.any():
            ax.hist(g[sel], bins=edges, color=colour, alpha=0.75,
                    label=f"target {eng(targets[s], 'S', 3)} (n={int(sel.sum()):,d})")
        ax.axvline(targets[s], color=colour, linestyle="--", linewidth=0.8)
    if stuck.any():
        ax.hist(g[stuck], bins=edges, color="0.5", alpha=0.8, label=f"stuck (n={int(stuck.sum()):,d})")
    ax.axvline(g_min_s, color="k", linestyle=":", linewidth=1.0, label=f"G_min = {eng(g_min_s, 'S', 3)}")
    ax.set_xlim(g_min_s - 0.01 * (hi - g_min_s), edges[-1])
    ax.xaxis.set_major_formatter(EngFormatter(unit="S"))
    ax.set_yscale("log")
    ax.set_xlabel("programmed conductance")
    ax.set_ylabel("devices (log scale)")
    ax.set_title("Programmed conductance per target state", fontsize=10)
    ax.legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    return fig


# -- sweeps -----------------------------------------------------------------------------------
MARKERS = "osD^v<>pPX*h"
MAX_DISCRETE_COLOURS = 20


def value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _colour_map(values: Sequence[Any]) -> tuple[dict[str, Any], Any]:
    """Discrete colours for up to 20 distinct values (tab10 / tab20); a continuous map (and its
    normaliser, for a colour bar) for more numeric values (e.g. random sampling)."""
    from archsim.report.sweep_report import sort_values

    distinct = sort_values(values)
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in distinct)
    if len(distinct) > MAX_DISCRETE_COLOURS and numeric:
        norm = matplotlib.colors.Normalize(min(map(float, distinct)), max(map(float, distinct)))
        return {value_text(v): plt.cm.viridis(norm(float(v))) for v in distinct}, norm
    cmap = plt.cm.tab10 if len(distinct) <= 10 else plt.cm.tab20
    return {value_text(v): cmap(i % cmap.N) for i, v in enumerate(distinct)}, None


def sweep_figure(table: Any, front: np.ndarray | None, enc: Mapping[str, Any], objective: Any) -> Any:
    """Accuracy (y, %) against an objective (x) for every configuration of a sweep: mean ± sd
    over seeds as error bars, the colour, marker and panel of a point showing its swept keys
    (``enc``: colour key, marker key, facet keys), Pareto-optimal configurations (``front``)
    ringed in red. With ``objective.name == 'accuracy'`` the x axis is the colour key itself.
    Axes in physical units carry SI prefixes (EngFormatter)."""
    from archsim.report.sweep_report import sort_values

    colour_key, marker_key, facet_keys = enc.get("colour"), enc.get("marker"), list(enc.get("facets") or [])
    by_key = objective.name == "accuracy"
    n = len(table)
    colours, norm = _colour_map(list(table[colour_key])) if colour_key else ({}, None)
    markers = ({value_text(v): MARKERS[i % len(MARKERS)] for i, v in enumerate(sort_values(list(table[marker_key])))}
               if marker_key else {})
    facet_labels = [", ".join(f"{k}={value_text(table[k].iloc[i])}" for k in facet_keys) for i in range(n)]
    facets = list(dict.fromkeys(sorted(facet_labels))) if facet_keys else [""]
    ncols = min(3, len(facets))
    nrows = math.ceil(len(facets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols + 2.4, 3.8 * nrows), dpi=DPI, squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    if by_key:
        x_values = list(table[colour_key]) if colour_key else [0] * n
        categorical = not all(isinstance(v, (int, float, np.integer, np.floating)) for v in x_values)
        positions = {value_text(v): i for i, v in enumerate(sort_values(x_values))}
        x = np.array([positions[value_text(v)] if categorical else float(v) for v in x_values])
        x_sd = np.zeros(n)
        y, y_sd = 100 * table["accuracy_mean"].to_numpy(), 100 * table["accuracy_sd"].to_numpy()
    else:
        x, x_sd = table["cost_mean"].to_numpy(dtype=float), table["cost_sd"].to_numpy(dtype=float)
        y, y_sd = 100 * table["accuracy_mean"].to_numpy(), 100 * table["accuracy_sd"].to_numpy()
    for index, facet in enumerate(facets):
        ax = axes[index // ncols][index % ncols]
        members = [i for i in range(n) if not facet_keys or facet_labels[i] == facet]
        for i in members:
            colour = colours.get(value_text(table[colour_key].iloc[i]), "tab:blue") if colour_key else "tab:blue"
            marker = markers.get(value_text(table[marker_key].iloc[i]), "o") if marker_key else "o"
            ax.errorbar(x[i], y[i], xerr=x_sd[i] or None, yerr=y_sd[i] or None, fmt=marker, color=colour,
                        markersize=6, elinewidth=0.9, capsize=2, zorder=2)
        if front is not None:
            on = [i for i in members if front[i]]
            if on:
                order = sorted(on, key=lambda i: x[i])
                ax.step(x[order], y[order], where="post", color="tab:red", linewidth=0.9, zorder=1)
                ax.scatter(x[order], y[order], facecolors="none", edgecolors="tab:red", s=150, linewidths=1.3, zorder=3)
        if facet_keys:
            ax.set_title(facet, fontsize=9)
        ax.grid(alpha=0.3)
    for index in range(len(facets), nrows * ncols):
        axes[index // ncols][index % ncols].set_visible(False)
    for ax in axes[-1]:
        if by_key:
            ax.set_xlabel(colour_key or "configuration")
            if categorical:
                ax.set_xticks(list(positions.values()), list(positions), rotation=30, ha="right")
        else:
            if objective.unit is not None:
                ax.xaxis.set_major_formatter(EngFormatter(unit=objective.unit))
            ax.set_xlabel(objective.label)
    for row in axes:
        row[0].set_ylabel("final accuracy, mean over tasks (%)")
    if not by_key and wide_spread(x):
        for row in axes:
            for ax in row:
                ax.set_xscale("log")
                ax.xaxis.set_minor_locator(NullLocator())
                if objective.unit is not None:
                    ax.xaxis.set_major_formatter(EngFormatter(unit=objective.unit))
        for ax in axes[-1]:
            ax.set_xlabel(objective.label + " (log scale)")
    handles = []
    from matplotlib.lines import Line2D

    if colour_key and norm is None:
        handles += [Line2D([], [], marker="o", linestyle="", color=c, label=f"{colour_key}={v}") for v, c in colours.items()]
    if marker_key:
        handles += [Line2D([], [], marker=m, linestyle="", color="0.3", label=f"{marker_key}={v}") for v, m in markers.items()]
    if front is not None:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="tab:red",
                              markersize=11, label="Pareto-optimal"))
    if norm is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes.ravel().tolist(), label=colour_key)
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    title = objective.label if by_key else f"{objective.label} vs accuracy"
    fig.suptitle(title[0].upper() + title[1:], fontsize=11)
    return fig
