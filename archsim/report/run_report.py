"""Report of one run folder (``summary.json``, ``config.yaml``, ``devices.npz``): figures and
``report.md``. The summary is read through the typed model (:class:`archsim.results.RunSummary`):
a summary that does not match it is a one-line error, never a silently skipped section. Sections
whose data the run did not measure (no ``--hw``: no energy or latency) are skipped with a note.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archsim.report.markdown import Document, eng, num, pct, staged_output
from archsim.results import RunSummary, ordered_phases

LATENCY_KEYS = [
    ("inference_per_image", "inference, per image (batched)"),
    ("inference_single_image", "inference, one image alone"),
    ("train_per_image", "training, per image"),
    ("train_step", "training step (one batch)"),
    ("train_total", "all training"),
    ("eval_total", "all evaluation"),
    ("total", "whole run"),
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
def load_summary(run_dir: Path) -> RunSummary:
    return RunSummary.load(Path(run_dir) / "summary.json")


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
def ordered_matrix(summary: RunSummary, which: str, order: list[str]) -> tuple[list[str], list[str], np.ndarray]:
    """Rows ``after:<task>`` and columns in training order (config.yaml's, else the summary's)."""
    frame = summary.accuracy_frame(which)  # type: ignore[arg-type]
    if order:
        rows = [f"after:{t}" for t in order if f"after:{t}" in frame.index]
        rows += [r for r in frame.index if r not in rows]
        cols = [t for t in order if t in frame.columns] + [c for c in frame.columns if c not in order]
        frame = frame.loc[rows, cols]
    return list(frame.index), list(frame.columns), frame.to_numpy(dtype=float)


def accuracy_section(doc: Document, summary: RunSummary, order: list[str]) -> None:
    from archsim.report.plots import accuracy_heatmaps

    doc.heading(2, "1. Accuracy on every task after every task")
    named = [("test accuracy", "Test accuracy (%)", "test")] if summary.accuracy else []
    if summary.validation_accuracy:
        # Drawn only when the test set was not scored (data.evaluate_test false).
        named.append(("" if named else "validation accuracy", "Validation accuracy (%)", "validation"))
    if not named:
        doc.skip("the run evaluated no task (empty accuracy matrices)")
        return
    if summary.baseline_accuracy:
        named.append(("software baseline (ideal weights)", "Software baseline, test accuracy (%)", "baseline"))
    matrices = {which: ordered_matrix(summary, which, order) for _, _, which in named}
    panels = [(panel, *matrices[which]) for panel, _, which in named if panel]
    doc.figure(accuracy_heatmaps(panels), "accuracy",
               "Accuracy (%) on each task (columns) after training each task (rows, in training order).")
    for _, title, which in named:
        rows, cols, values = matrices[which]
        doc.para(f"**{title}**")
        doc.table(["", *cols, "mean"], [
            [row, *(pct(v) for v in values[i]), pct(np.nanmean(values[i]) if np.isfinite(values[i]).any() else None)]
            for i, row in enumerate(rows)
        ])
    rows, _, values = matrices[named[0][2]]
    final = values[-1]
    if np.isfinite(final).any():
        doc.para(f"Final accuracy ({rows[-1]}), mean over {int(np.isfinite(final).sum())} tasks: "
                 f"**{pct(np.nanmean(final))} %**.")


# -- energy -------------------------------------------------------------------------------------
def energy_section(doc: Document, summary: RunSummary) -> None:
    from archsim.report.plots import energy_breakdown

    doc.heading(2, "2. Energy by component and by phase")
    energy = summary.energy_j
    if energy is None:
        doc.skip("no energy_j in summary.json (a run without --hw has no architecture model)")
        return
    ledger = summary.energy_frame()
    doc.figure(energy_breakdown(ledger), "energy",
               "Energy of the whole run (linear axis): left, by component, each bar split by phase; right, "
               "by phase. Solid: dynamic energy (actions); hatched: leakage (static power x phase time). "
               "Labels: energy and share of the total.")
    totals = [("whole run", "total", energy.total), ("dynamic", "dynamic", energy.dynamic),
              ("leakage", "leakage", energy.leakage)]
    if energy.train_total is not None:
        totals.append(("all training (every phase but eval)", "train_total", energy.train_total))
    if energy.eval_total is not None:
        totals.append(("all evaluation", "eval_total", energy.eval_total))
    totals += [("per training step (one batch)", "per_train_step", energy.per_train_step),
               ("per inference image", "per_inference_image", energy.per_inference_image)]
    doc.table(["quantity", "key", "energy", "J"], [[label, f"`{key}`", eng(v, "J"), num(v, 6)] for label, key, v in totals])
    by_component = dict(sorted(energy.by_component.items(), key=lambda kv: (-kv[1], kv[0])))
    for title, values in (("component", by_component), ("phase", ordered_phases(energy.by_phase))):
        kinds = ledger.groupby([title, "kind"])["energy_j"].sum() if not ledger.empty else None
        total = sum(values.values())

        def part(key: str, kind: str) -> str:
            return eng(kinds.get((key, kind), 0.0), "J") if kinds is not None else "–"

        doc.table([title, "energy", "dynamic", "leakage", "share (%)"], [
            [k, eng(v, "J"), part(k, "dynamic"), part(k, "leakage"), f"{100 * v / total:.2f}" if total > 0 else "–"]
            for k, v in values.items()
        ])
    grid = energy.by_component_phase
    if grid:
        phases = list(ordered_phases({p: 0.0 for v in grid.values() for p in v}))
        doc.para("**Energy by component and phase**")
        doc.table(["component", *phases], [
            [c, *(eng(grid[c][p], "J", 3) if p in grid[c] else "–" for p in phases)] for c in sorted(grid)
        ])


def area_section(doc: Document, summary: RunSummary) -> None:
    """Chip area by component (summary ``area_mm2``, archsim/hw/area.py); absent without a chip."""
    from archsim.report.plots import area_bars

    area = summary.area_mm2
    if area is None or not area.by_component:
        return
    by_component = dict(sorted(area.by_component.items(), key=lambda kv: (-kv[1], kv[0])))
    doc.heading(3, "Chip area")
    doc.figure(area_bars(by_component), "area", "Silicon area (mm²) by component; labels give the share of the total.")
    total = sum(by_component.values())
    doc.table(["component", "mm²", "share (%)"], [
        [k, f"{v:.4g}", f"{100 * v / total:.2f}" if total > 0 else "–"] for k, v in by_component.items()
    ] + [["total", f"{total:.4g}", "100.00"]])


# -- latency ------------------------------------------------------------------------------------
LATENCY_LABELS = dict(LATENCY_KEYS)


def latency_section(doc: Document, summary: RunSummary) -> None:
    from archsim.report.plots import latency_figure

    doc.heading(2, "3. Latency by phase, per image and per training step")
    cycles, seconds = summary.latency_cycles, summary.latency_s
    if cycles is None or seconds is None:
        doc.skip("no latency_cycles / latency_s in summary.json (a run without --hw has no architecture model)")
        return
    c_phase, s_phase = ordered_phases(cycles.by_phase), ordered_phases(seconds.by_phase)
    per_item = {LATENCY_LABELS[k]: getattr(seconds, k) for k, _ in LATENCY_KEYS[:4]}
    doc.figure(latency_figure(s_phase, c_phase, per_item), "latency",
               "Top: time of the whole run by phase (linear; labels give cycles and share). Bottom: latency "
               "of one inference image (batched and alone), one training image and one training step (log axis).")
    total_s = sum(s_phase.values())
    doc.table(["phase", "cycles", "time", "share of time (%)"], [
        [p, num(c_phase[p]) if p in c_phase else "–", eng(s_phase[p], "s") if p in s_phase else "–",
         f"{100 * s_phase[p] / total_s:.2f}" if p in s_phase and total_s > 0 else "–"]
        for p in dict.fromkeys([*c_phase, *s_phase])
    ])
    doc.table(["quantity", "key", "cycles", "time"], [
        [label, f"`{key}`", num(getattr(cycles, key)), eng(getattr(seconds, key), "s")] for key, label in LATENCY_KEYS
    ])


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


def writes_section(doc: Document, summary: RunSummary, config: dict[str, Any] | None,
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
    writes = summary.writes.model_dump(exclude_none=True)
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
    """The conductance, state and stuck arrays of every plane, or None if incomplete."""
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


def conductance_section(doc: Document, devices: Mapping[str, np.ndarray] | None,
                        config: dict[str, Any] | None) -> None:
    from archsim.report.plots import conductance_histogram

    doc.heading(2, "5. Programmed conductance per level")
    snap = conductance_snapshot(devices)
    if snap is None:
        doc.skip("devices.npz holds no conductances (run without --hw, or an ideal store)")
        return
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
    device = device_config(config) or {}
    g_min = float(device.get("g_min_s", state_g.min()))
    below = int((g < g_min).sum())
    doc.figure(conductance_histogram(g, state, stuck, state_g, g_min), "conductance",
               "Programmed conductance of every device, one colour per target state (log y); dashed: targets; "
               f"grey: stuck devices; dotted: the device's minimum conductance G_min = {eng(g_min, 'S')}, the physical "
               "floor: values the programming spread put below it are drawn at G_min.")
    if below:
        doc.para(f"{num(below)} of {num(g.size)} devices ({100 * below / g.size:.2f} %) hold a modelled conductance "
                 f"below G_min = {eng(g_min, 'S')} (the post-programming spread of the device model is not "
                 "truncated at the floor); the figure draws them at G_min, the table uses the modelled values.")
    rows = []
    for s_, target in enumerate(state_g):
        sel = (state == s_) & ~stuck
        n = int(sel.sum())
        rows.append([s_, eng(target, "S"), num(n), eng(float(g[sel].mean()), "S") if n else "–",
                     eng(float(g[sel].std()), "S", 3) if n else "–", num(int(((state == s_) & stuck).sum()))])
    doc.table(["state", "target G", "devices", "mean G", "std G", "stuck"], rows)
    if "level_values" in devices:
        levels = ", ".join(f"{v:g}" for v in np.asarray(devices["level_values"]).ravel())
        doc.para(f"Weight levels: {levels}.")


# -- memory ---------------------------------------------------------------------------------------
def memory_section(doc: Document, summary: RunSummary) -> None:
    doc.heading(2, "6. Memory footprint against the BNN design")
    memory = summary.memory_bits
    values = {k: v for k, v in memory.model_dump(exclude_none=True).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}
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
    facts = [f"saving vs BNN = bnn_equivalent / total = **{memory.saving_vs_bnn:.4g}x**"]
    if memory.saving_vs_bnn_with_optimizer is not None:
        facts.append(f"with optimizer state on both sides: {memory.saving_vs_bnn_with_optimizer:.4g}x")
    if memory.paper_formula_saving is not None:
        facts.append(f"with the paper's formula: {memory.paper_formula_saving:.4g}x")
    if memory.bnn_source is not None:
        facts.append(f"BNN design {memory.bnn_network or ''}: {memory.bnn_source}")
    if memory.hidden_bits is not None:
        facts.append(f"hidden-weight precision: {num(memory.hidden_bits)} bits")
    facts.append(f"formula: {memory.formula}")
    doc.bullets(facts)


# -- the report -----------------------------------------------------------------------------------
def header(doc: Document, run_dir: Path, summary: RunSummary, config: dict[str, Any] | None) -> None:
    doc.heading(1, f"archsim run report: {summary.workload}")
    hardware = (config or {}).get("hardware")
    epochs = epochs_trained(config)
    facts = [
        ("run folder", f"`{Path(run_dir).name}`"),
        ("workload", summary.workload),
        ("learning rule", f"{summary.rule} (m* = {summary.m_star:g})"),
        ("seed", summary.seed),
        ("hardware", hardware.get("name", "?") if isinstance(hardware, Mapping) else "none (software run)"),
        ("device", summary.device.name if summary.device is not None else "–"),
        ("epochs trained", epochs if epochs is not None else "?"),
        ("archsim version", summary.archsim_version),
    ]
    doc.table(["run", ""], [[k, v] for k, v in facts], align=["l", "l"])


def write_run_report(run_dir: Path, out: Path, formats: Sequence[str]) -> Path:
    """Write ``out/report.md`` and its figures for the run folder ``run_dir``."""
    run_dir, out = Path(run_dir), Path(out)
    from archsim.report.markdown import check_output

    check_output(out, run_dir)  # an unusable --out is refused before the summary is read
    summary = load_summary(run_dir)
    notes: list[str] = []
    config = load_config(run_dir, notes)
    devices = load_devices(run_dir, notes)
    with staged_output(out, run_dir) as staging:
        doc = Document(staging, formats)
        header(doc, run_dir, summary, config)
        if notes:
            doc.bullets([f"Note: {n}." for n in notes])
        accuracy_section(doc, summary, task_names(config) or summary.task_order())
        energy_section(doc, summary)
        area_section(doc, summary)
        latency_section(doc, summary)
        writes_section(doc, summary, config, devices)
        conductance_section(doc, devices, config)
        memory_section(doc, summary)
        doc.write()
    return out / "report.md"
