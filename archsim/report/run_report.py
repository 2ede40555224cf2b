"""Report of one run folder (``summary.json``, ``config.yaml``, ``devices.npz``): figures and
``report.md``. Sections whose data the run does not hold are skipped with a one-line note.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archsim.errors import DataError
from archsim.io import read_json
from archsim.report.markdown import Document, eng, num, pct, staged_output

PHASE_ORDER = ["forward", "backward", "update", "write", "eval"]
LATENCY_KEYS = [
    ("inference_per_image", "inference, per image (batched)"),
    ("inference_single_image", "inference, one image alone"),
    ("train_per_image", "training, per image"),
    ("train_step", "training step (one batch)"),
    ("train_total", "all training"),
    ("eval_total", "all evaluation"),
    ("total", "whole run"),
]
ENERGY_KEYS = [
    ("total", "whole run"),
    ("dynamic", "dynamic"),
    ("leakage", "leakage"),
    ("per_inference_image", "per inference image"),
    ("per_train_step", "per training step (one batch)"),
]
MEMORY_ROWS = [
    ("weights", "weights", "count"),
    ("rram_cells", "memristor cells holding the weights", "count"),
    ("rram", "memristor content: weights x log2(L)", "bits"),
    ("dpu", "hidden weights in the DPU SRAM", "bits"),
    ("batchnorm", "batch-norm parameters", "bits"),
    ("buffers", "activation buffers", "bits"),
    ("total", "total", "bits"),
    ("bnn_equivalent", "BNN design (network and source: bnn_network, bnn_source)", "bits"),
    ("optimizer_state", "optimizer (Adam) state, not in total", "bits"),
    ("total_with_optimizer", "total with optimizer state", "bits"),
    ("bnn_equivalent_with_optimizer", "BNN design with optimizer state", "bits"),
    ("paper_formula", "paper's formula: weights x (device bits + hidden bits)", "bits"),
    ("paper_formula_bnn", "paper's formula for the BNN design", "bits"),
]
_LAYER_KEY = re.compile(r"^layer(\d+)\.(writes|pulses(\d+)|g(\d+)_s|programs(\d+))$")


# -- inputs -------------------------------------------------------------------------------------
def load_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    try:
        data = read_json(path)  # bounded size and nesting
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: corrupt JSON (line {exc.lineno}: {exc.msg}); rerun 'archsim run' to rewrite it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise DataError(f"{path}: cannot be read ({reason})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a run summary (a JSON object is expected); rerun 'archsim run'")
    return data


def load_config(run_dir: Path, notes: list[str]) -> dict[str, Any] | None:
    """The resolved configuration as a plain tree, or None (with a note) when absent/unreadable."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        notes.append("config.yaml is missing: task order, epochs and endurance are unknown")
        return None
    from archsim.config.loader import InputTooLarge, load_yaml_text
    from archsim.limits import MAX_CONFIG_BYTES

    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InputTooLarge(f"larger than {MAX_CONFIG_BYTES} bytes")
        tree = load_yaml_text(path.read_text())  # bounded depth and aliases
    except (OSError, UnicodeDecodeError, yaml.YAMLError, InputTooLarge) as exc:
        notes.append(f"config.yaml cannot be read ({type(exc).__name__}): epochs and endurance are unknown")
        return None
    if not isinstance(tree, dict):
        notes.append("config.yaml holds no configuration: epochs and endurance are unknown")
        return None
    return tree


def load_devices(run_dir: Path, notes: list[str]) -> dict[str, np.ndarray] | None:
    path = Path(run_dir) / "devices.npz"
    if not path.is_file():
        notes.append("devices.npz is missing: no write counts or conductances")
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as exc:  # a truncated or foreign file: report the rest of the run
        notes.append(f"devices.npz cannot be read ({type(exc).__name__}): no write counts or conductances")
        return None


def numeric_map(section: Any) -> dict[str, float]:
    """``{key: number}`` entries of a summary section (others ignored)."""
    if not isinstance(section, Mapping):
        return {}
    out = {}
    for key, value in section.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[str(key)] = float(value)
    return out


def ordered_phases(values: Mapping[str, float]) -> dict[str, float]:
    known = [p for p in PHASE_ORDER if p in values]
    return {p: values[p] for p in known + sorted(p for p in values if p not in PHASE_ORDER)}


def task_names(config: dict[str, Any] | None) -> list[str]:
    tasks = (config or {}).get("tasks") or []
    return [str(t["name"]) for t in tasks if isinstance(t, Mapping) and "name" in t]


def epochs_trained(config: dict[str, Any] | None) -> int | None:
    tasks = (config or {}).get("tasks")
    if not tasks:
        return None
    try:
        return int(sum(int(t.get("epochs", 1)) for t in tasks))
    except (TypeError, ValueError, AttributeError):
        return None


def device_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    hardware = (config or {}).get("hardware")
    if not isinstance(hardware, Mapping):
        return None
    device = hardware.get("device")
    return dict(device) if isinstance(device, Mapping) else None


# -- accuracy -----------------------------------------------------------------------------------
def matrix_layout(matrix: Mapping[str, Mapping[str, float]], order: Sequence[str]) -> tuple[list[str], list[str]]:
    """Rows ``after:<task>`` and columns ``<task>`` in training order.

    The order comes from config.yaml; without it, rows are sorted by how many tasks they hold
    (after the k-th task, k tasks are evaluated).
    """
    rows = [f"after:{t}" for t in order if f"after:{t}" in matrix]
    rest = sorted((r for r in matrix if r not in rows), key=lambda r: (len(matrix[r] or {}), r))
    rows += rest
    cols = [t for t in order]
    for row in rows:
        for task in (matrix[row] or {}):
            if task not in cols:
                cols.append(task)
    # Tasks never evaluated (e.g. config lists more tasks than the summary) are dropped.
    evaluated = {t for row in rows for t in (matrix[row] or {})}
    return rows, [c for c in cols if c in evaluated]


def as_array(matrix: Mapping[str, Mapping[str, float]], rows: list[str], cols: list[str]) -> np.ndarray:
    out = np.full((len(rows), len(cols)), np.nan)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            value = (matrix.get(row) or {}).get(col)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[i, j] = float(value)
    return out


def valid_matrix(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(r, Mapping) for r in value.values())


def accuracy_section(doc: Document, summary: dict[str, Any], order: list[str]) -> None:
    from archsim.report.plots import accuracy_heatmaps

    doc.heading(2, "1. Accuracy on every task after every task")
    matrix = summary.get("accuracy")
    if not valid_matrix(matrix):
        doc.skip("summary.json has no accuracy matrix")
        return
    rows, cols = matrix_layout(matrix, order)
    panels = [("test accuracy", rows, cols, as_array(matrix, rows, cols))]
    baseline = summary.get("baseline_accuracy")
    if valid_matrix(baseline):
        b_rows, b_cols = matrix_layout(baseline, order)
        panels.append(("software baseline (ideal weights)", b_rows, b_cols, as_array(baseline, b_rows, b_cols)))
    doc.figure(accuracy_heatmaps(panels), "accuracy",
               "Accuracy (%) on each task (columns) after training each task (rows, in training order).")
    named = [("Test accuracy (%)", matrix)]
    if valid_matrix(summary.get("validation_accuracy")):
        named.append(("Validation accuracy (%)", summary["validation_accuracy"]))
    if valid_matrix(baseline):
        named.append(("Software baseline, test accuracy (%)", baseline))
    for title, m in named:
        r, c = matrix_layout(m, order)
        values = as_array(m, r, c)
        doc.para(f"**{title}**")
        doc.table(["", *c, "mean"], [
            [row, *(pct(v) for v in values[i]), pct(np.nanmean(values[i]) if np.isfinite(values[i]).any() else None)]
            for i, row in enumerate(r)
        ])
    final = as_array(matrix, rows, cols)[-1]
    if np.isfinite(final).any():
        doc.para(f"Final accuracy ({rows[-1]}), mean over {int(np.isfinite(final).sum())} tasks: "
                 f"**{pct(np.nanmean(final))} %**.")


# -- energy -------------------------------------------------------------------------------------
def energy_section(doc: Document, summary: dict[str, Any]) -> None:
    from archsim.report.plots import bar_panels

    doc.heading(2, "2. Energy by component and by phase")
    energy = summary.get("energy_j")
    if not isinstance(energy, Mapping):
        doc.skip("no energy_j in summary.json (a run without --hw has no architecture model)")
        return
    by_component = dict(sorted(numeric_map(energy.get("by_component")).items(), key=lambda kv: (-kv[1], kv[0])))
    by_phase = ordered_phases(numeric_map(energy.get("by_phase")))
    panels = [(title, values, "energy (J)", "J", True) for title, values in
              (("by component", by_component), ("by phase", by_phase)) if values]
    if not panels:
        doc.skip("energy_j holds no by_component or by_phase breakdown")
    else:
        doc.figure(bar_panels(panels), "energy",
                   "Energy (J) of the whole run by chip component and by phase; labels give the share of the total.")
    totals = numeric_map(energy)
    rows = [[label, f"`{key}`", eng(totals[key], "J"), num(totals[key], 6)] for key, label in ENERGY_KEYS if key in totals]
    if rows:
        doc.table(["quantity", "key", "energy", "J"], rows)
    for title, values in (("component", by_component), ("phase", by_phase)):
        if values:
            total = sum(values.values())
            doc.table([title, "energy", "J", "share (%)"], [
                [k, eng(v, "J"), num(v, 6), f"{100 * v / total:.2f}" if total > 0 else "–"] for k, v in values.items()
            ])
    cross = energy.get("by_component_phase")
    if isinstance(cross, Mapping) and cross:
        grid = {c: numeric_map(v) for c, v in cross.items()}
        phases = list(ordered_phases({p: 0.0 for v in grid.values() for p in v}))
        doc.para("**Energy by component and phase (J)**")
        doc.table(["component", *phases], [
            [c, *(eng(grid[c][p], "J", 3) if p in grid[c] else "–" for p in phases)] for c in sorted(grid)
        ])


def area_section(doc: Document, summary: dict[str, Any]) -> None:
    """Chip area by component (summary ``area_mm2``, archsim/hw/area.py)."""
    from archsim.report.plots import bar_panels

    area = summary.get("area_mm2")
    if not isinstance(area, Mapping):
        return
    by_component = dict(sorted(numeric_map(area.get("by_component")).items(), key=lambda kv: (-kv[1], kv[0])))
    if not by_component:
        return
    doc.heading(3, "Chip area")
    doc.figure(bar_panels([("area by component", by_component, "area (mm^2)", "", True)]), "area",
               "Silicon area (mm^2) by component; labels give the share of the total.")
    total = sum(by_component.values())
    doc.table(["component", "mm^2", "share (%)"], [
        [k, f"{v:.4g}", f"{100 * v / total:.2f}" if total > 0 else "–"] for k, v in by_component.items()
    ] + [["total", f"{total:.4g}", "100.00"]])


# -- latency ------------------------------------------------------------------------------------
def latency_section(doc: Document, summary: dict[str, Any]) -> None:
    from archsim.report.plots import bar_panels

    doc.heading(2, "3. Latency by phase, per image and per training step")
    cycles, seconds = summary.get("latency_cycles"), summary.get("latency_s")
    if not isinstance(cycles, Mapping) and not isinstance(seconds, Mapping):
        doc.skip("no latency_cycles / latency_s in summary.json (a run without --hw has no architecture model)")
        return
    cycles = cycles if isinstance(cycles, Mapping) else {}
    seconds = seconds if isinstance(seconds, Mapping) else {}
    c_phase = ordered_phases(numeric_map(cycles.get("by_phase")))
    s_phase = ordered_phases(numeric_map(seconds.get("by_phase")))
    s_keys = numeric_map(seconds)
    c_keys = numeric_map(cycles)
    per_item = {label.split(" (")[0]: s_keys[k] for k, label in LATENCY_KEYS[:4] if k in s_keys}
    panels = []
    if c_phase:
        panels.append(("by phase (cycles)", c_phase, "clock cycles", "", True))
    if s_phase:
        panels.append(("by phase (seconds)", s_phase, "time (s)", "s", True))
    if per_item:
        panels.append(("per image / per step", per_item, "time (s)", "s", False))
    if panels:
        doc.figure(bar_panels(panels), "latency",
                   "Latency of the whole run by phase (cycles and seconds), and per inference image / training step.")
    phases = list(dict.fromkeys([*c_phase, *s_phase]))
    if phases:
        total_s = sum(s_phase.values())
        doc.table(["phase", "cycles", "time", "share of time (%)"], [
            [p, num(c_phase[p]) if p in c_phase else "–", eng(s_phase[p], "s") if p in s_phase else "–",
             f"{100 * s_phase[p] / total_s:.2f}" if p in s_phase and total_s > 0 else "–"]
            for p in phases
        ])
    rows = [[label, f"`{key}`", num(c_keys[key]) if key in c_keys else "–", eng(s_keys[key], "s") if key in s_keys else "–"]
            for key, label in LATENCY_KEYS if key in c_keys or key in s_keys]
    if rows:
        doc.table(["quantity", "key", "cycles", "time"], rows)


# -- writes and endurance -----------------------------------------------------------------------
def per_device_counts(devices: Mapping[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """``layer<i>`` -> writes per weight (kind 'writes') or ``layer<i> plane <j>`` -> pulses
    ('pulses') or writes (program operations, 'programs') per device."""
    found = []
    for key in devices:
        match = _LAYER_KEY.match(key)
        if not match:
            continue
        layer, what, plane = int(match.group(1)), match.group(2), match.group(3)
        if kind == "writes" and what == "writes":
            found.append(((layer, 0), f"layer{layer}", key))
        elif kind == "pulses" and plane is not None:
            found.append(((layer, int(plane)), f"layer{layer} plane{plane}", key))
        elif kind == "programs" and match.group(5) is not None:
            found.append(((layer, int(match.group(5))), f"layer{layer} plane{match.group(5)}", key))
    return {label: np.asarray(devices[key]) for _, label, key in sorted(found)}


def lifetime_epochs(endurance_median: float, max_count: int, epochs: int) -> float:
    """Epochs until the most-written device reaches the median endurance:
    ``endurance_median / (max_count / epochs)``; infinite when nothing was written."""
    if max_count <= 0:
        return math.inf
    return endurance_median / (max_count / epochs)


def writes_section(doc: Document, summary: dict[str, Any], config: dict[str, Any] | None,
                   devices: Mapping[str, np.ndarray] | None) -> None:
    from archsim.report.plots import write_histogram

    doc.heading(2, "4. Writes per device against endurance")
    device = device_config(config)
    unit = str((device or {}).get("endurance_unit", "writes"))
    counts = per_device_counts(devices, "pulses") if devices and unit == "pulses" else {}
    per = "device"
    if counts:
        quantity = "programming pulses"
    else:
        quantity = "writes"
        counts = per_device_counts(devices, "programs") if devices else {}
        if not counts:  # runs without a device model (or older folders): writes per weight
            counts = per_device_counts(devices, "writes") if devices else {}
            per = "weight"
        if unit == "pulses":
            doc.para("The device wears per pulse but devices.npz holds no pulse counts; writes are shown.")
    if not counts:
        doc.skip("devices.npz holds no per-device write counts (layer*.writes)")
        return
    finite = device is not None and device.get("endurance_model") == "lognormal"
    median = float(device.get("endurance_median_cycles", 1e6)) if finite else None
    sigma = float(device.get("endurance_sigma_ln", 0.0)) if finite else 0.0
    doc.figure(write_histogram(counts, quantity, per, median, sigma), "writes",
               f"Histogram of {quantity} per {per} (log y), stacked by layer; dotted: the most-written "
               f"{per}; dashed: median endurance (shaded: 16th-84th percentile), when finite.")
    if per == "weight" and device is not None and device.get("mapping", "differential") == "differential":
        doc.para("A write is one level change of a weight (`layer*.writes` in devices.npz); with the "
                 "differential mapping each weight is a pair of devices and each of them is programmed at "
                 "most once per write, so these counts bound each device's writes from above.")
    rows, maximum = [], 0
    for label, array in counts.items():
        a = np.asarray(array).ravel()
        top = int(a.max()) if a.size else 0
        maximum = max(maximum, top)
        rows.append([label, num(int(a.size)), num(int(a.sum(dtype=np.int64))), num(top),
                     f"{float(a.mean()) if a.size else 0.0:.4g}", num(int((a == 0).sum()))])
    doc.table(["layer", f"{per}s", f"total {quantity}", "max", "mean", "never written"], rows)
    writes = numeric_map(summary.get("writes"))
    if writes:
        doc.para("Summary `writes` section: " + ", ".join(f"{k} = {num(v)}" for k, v in writes.items()) + ".")

    doc.para("**Projected lifetime.** Epochs until the most-written device reaches the median endurance:")
    doc.para("`lifetime_epochs = endurance_median / (max_per_device / epochs_trained)`")
    epochs = epochs_trained(config)
    if device is None:
        doc.skip("no hardware device in config.yaml (run without --hw): endurance is not modelled, no lifetime")
    elif not finite:
        doc.para(f"Device `{device.get('name', '?')}` has endurance_model = "
                 f"`{device.get('endurance_model', 'none')}` (infinite endurance): no wear-out, lifetime unbounded.")
    elif epochs is None or epochs <= 0:
        doc.skip("config.yaml gives no task epochs: lifetime not projected")
    else:
        life = lifetime_epochs(median, maximum, epochs)
        lines = [
            f"endurance median = {median:.4g} {unit} (device `{device.get('name', '?')}`, "
            f"lognormal, sigma of ln = {sigma:g})",
            f"max {quantity} per device = {maximum:,d} over epochs_trained = {epochs} "
            f"(sum of the task epochs in config.yaml) = {maximum / epochs:.4g} per epoch",
        ]
        if math.isinf(life):
            lines.append("no device was written: lifetime unbounded")
        else:
            lines.append(f"lifetime = {median:.4g} / ({maximum:,d} / {epochs}) = **{life:.4g} epochs**")
            if sigma > 0:
                weak = median * math.exp(-2.326 * sigma)
                lines.append(f"with the endurance spread, a device at the 1st percentile of endurance "
                             f"({weak:.4g} {unit}) written as often would last {lifetime_epochs(weak, maximum, epochs):.4g} epochs")
        doc.bullets(lines)
        doc.para("This extrapolates the write rate of this run; training-time writes only (the initial "
                 "programming of the chip is not counted).")


# -- conductances -------------------------------------------------------------------------------
def conductance_snapshot(devices: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    """The arrays plot_conductance_distributions needs, or None if incomplete."""
    if not devices or "state_g_s" not in devices:
        return None
    snap = {"state_g_s": devices["state_g_s"]}
    for key in devices:
        match = _LAYER_KEY.match(key)
        if not match or match.group(4) is None:
            continue
        layer, plane = match.group(1), match.group(4)
        state, stuck = f"layer{layer}.state{plane}", f"layer{layer}.stuck{plane}"
        if state not in devices or stuck not in devices:
            return None
        snap[key], snap[state], snap[stuck] = devices[key], devices[state], devices[stuck]
    return snap if len(snap) > 1 else None


def conductance_section(doc: Document, devices: Mapping[str, np.ndarray] | None) -> None:
    from archsim.report.plots import conductance_png

    doc.heading(2, "5. Programmed conductance per level")
    snap = conductance_snapshot(devices)
    if snap is None:
        doc.skip("devices.npz holds no conductances (run without --hw, or an ideal store)")
        return
    name = conductance_png(snap, doc.folder, "conductance")
    caption = ("Programmed conductance of every device, one colour per target state (log y); "
               "dashed: targets; grey: stuck devices.")
    if "png" not in doc.formats:
        caption += " PNG only: drawn by archsim.devices.plots."
    doc.embed([name], caption)
    state_g = np.asarray(snap["state_g_s"], dtype=float)
    g_all, s_all, k_all = [], [], []
    for key in snap:
        match = _LAYER_KEY.match(key)
        if match and match.group(4) is not None:
            layer, plane = match.group(1), match.group(4)
            g_all.append(np.asarray(snap[key], dtype=float).ravel())
            s_all.append(np.asarray(snap[f"layer{layer}.state{plane}"]).ravel())
            k_all.append(np.asarray(snap[f"layer{layer}.stuck{plane}"]).ravel().astype(bool))
    g, state, stuck = np.concatenate(g_all), np.concatenate(s_all), np.concatenate(k_all)
    rows = []
    for s, target in enumerate(state_g):
        sel = (state == s) & ~stuck
        n = int(sel.sum())
        mean = float(g[sel].mean()) if n else math.nan
        std = float(g[sel].std()) if n else math.nan
        rows.append([s, f"{target * 1e6:.4g}", num(n), f"{mean * 1e6:.4g}" if n else "–",
                     f"{std * 1e6:.3g}" if n else "–", num(int(((state == s) & stuck).sum()))])
    doc.table(["state", "target G (µS)", "devices", "mean G (µS)", "std G (µS)", "stuck"], rows)
    if "level_values" in devices:
        levels = ", ".join(f"{v:g}" for v in np.asarray(devices["level_values"]).ravel())
        doc.para(f"Weight levels: {levels}.")


# -- memory ---------------------------------------------------------------------------------------
def memory_section(doc: Document, summary: dict[str, Any]) -> None:
    doc.heading(2, "6. Memory footprint against the BNN design")
    memory = summary.get("memory_bits")
    values = numeric_map(memory)
    if not values:
        doc.skip("no memory_bits in summary.json")
        return
    rows, shown = [], set()
    for key, label, kind in MEMORY_ROWS:
        if key in values:
            shown.add(key)
            v = values[key]
            rows.append([label, f"`{key}`", num(v), kind, "" if kind == "count" else f"{v / 8 / 2**20:.3f}"])
    for key in sorted(values):
        if key not in shown and "saving" not in key and key != "hidden_bits":
            rows.append([key, f"`{key}`", num(values[key]), "", ""])
    doc.table(["part", "key", "value", "unit", "MiB"], rows)
    facts = []
    if "saving_vs_bnn" in values:
        facts.append(f"saving vs BNN = bnn_equivalent / total = **{values['saving_vs_bnn']:.4g}x**")
    if "saving_vs_bnn_with_optimizer" in values:
        facts.append(f"with optimizer state on both sides: {values['saving_vs_bnn_with_optimizer']:.4g}x")
    if "paper_formula_saving" in values:
        facts.append(f"with the paper's formula: {values['paper_formula_saving']:.4g}x")
    if isinstance(memory, Mapping) and isinstance(memory.get("bnn_source"), str):
        facts.append(f"BNN design {memory.get('bnn_network', '')}: {memory['bnn_source']}")
    if "hidden_bits" in values:
        facts.append(f"hidden-weight precision: {num(values['hidden_bits'])} bits")
    if isinstance(memory, Mapping) and isinstance(memory.get("formula"), str):
        facts.append(f"formula: {memory['formula']}")
    if facts:
        doc.bullets(facts)


# -- the report -----------------------------------------------------------------------------------
def header(doc: Document, run_dir: Path, summary: dict[str, Any], config: dict[str, Any] | None) -> None:
    doc.heading(1, f"archsim run report: {summary.get('workload', Path(run_dir).name)}")
    hardware = (config or {}).get("hardware")
    facts = [
        ("run folder", f"`{Path(run_dir).name}`"),
        ("workload", summary.get("workload", "?")),
        ("learning rule", f"{summary.get('rule', '?')} (m* = {summary.get('m_star', '?')})"),
        ("seed", summary.get("seed", "?")),
        ("hardware", hardware.get("name", "?") if isinstance(hardware, Mapping) else "none (software run)"),
        ("device", (summary.get("device") or {}).get("name", "–") if isinstance(summary.get("device"), Mapping) else "–"),
        ("epochs trained", epochs_trained(config) if epochs_trained(config) is not None else "?"),
        ("archsim version", summary.get("archsim_version", "?")),
    ]
    doc.table(["run", ""], [[k, v] for k, v in facts], align=["l", "l"])


def write_run_report(run_dir: Path, out: Path, formats: Sequence[str]) -> Path:
    """Write ``out/report.md`` and its figures for the run folder ``run_dir``."""
    run_dir, out = Path(run_dir), Path(out)
    summary = load_summary(run_dir)
    notes: list[str] = []
    config = load_config(run_dir, notes)
    devices = load_devices(run_dir, notes)
    with staged_output(out, run_dir) as staging:
        doc = Document(staging, formats)
        header(doc, run_dir, summary, config)
        if notes:
            doc.bullets([f"Note: {n}." for n in notes])
        accuracy_section(doc, summary, task_names(config))
        energy_section(doc, summary)
        area_section(doc, summary)
        latency_section(doc, summary)
        writes_section(doc, summary, config, devices)
        conductance_section(doc, devices)
        memory_section(doc, summary)
        doc.write()
    return out / "report.md"
