"""Report of a sweep folder (``results.parquet``): every objective against accuracy, with every
swept key visible.

* **Accuracy of a point** = mean over tasks of the final row of its accuracy matrix
  (``accuracy.after:<last task>.<task>``).
* **Objectives** (``archsim report SWEEP --objective NAME``, repeatable): energy per inference
  image, training energy, latency, area, writes, accuracy, or any numeric column. Each
  objective gets a figure of accuracy against it with the Pareto-optimal configurations ringed.
* **Every swept key is visible**: the first varying key is the colour (discrete colours for
  discrete values), the second the marker, the others facets (one panel per combination).
* **Seeds** are aggregated: one configuration = the points differing only in ``seed``; they
  are drawn as mean ± sd (error bars) and the front is computed on the means.
* Axes in physical units carry SI prefixes (``matplotlib.ticker.EngFormatter``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archsim.errors import ConfigError, DataError
from archsim.report.markdown import Document, eng, num, pct, staged_output
from archsim.results import RunSummary, section_fields

ACCURACY_PREFIX = "accuracy.after:"
META_COLUMNS = {"point_id", "status", "error", "wall_time_s", "finished_at", "config_json", "code_commit"}
SUMMARY_SECTIONS = section_fields() | {"summary"}
"""First dotted part of metric columns (the mapping fields of the run summary)."""
SUMMARY_SCALARS = set(RunSummary.model_fields) - section_fields() - {"seed"}
"""Metric columns named by a summary field alone (``workload``, ``tasks``, ...). The summary's own
``seed`` is stored as ``summary.seed``: a ``seed`` column is the swept seed, and ``tasks.0.epochs``
is a swept key."""


@dataclass(frozen=True)
class Objective:
    """A quantity of a sweep point drawn against accuracy."""

    name: str
    columns: tuple[str, ...]
    """Candidate columns of results.parquet (first present wins); summary field paths."""
    label: str
    unit: str | None
    """SI unit for EngFormatter ('' = a count with prefixes); None = plain numbers (label has the unit)."""
    maximize: bool = False


OBJECTIVES = {o.name: o for o in [
    Objective("inference-energy", ("energy_j.per_inference_image",), "energy per inference image", "J"),
    Objective("training-energy", ("energy_j.train_total",), "training energy (every phase but eval)", "J"),
    Objective("energy", ("energy_j.total",), "energy of the whole run", "J"),
    Objective("latency", ("latency_s.inference_per_image",), "latency per inference image (batched)", "s"),
    Objective("train-latency", ("latency_s.train_step",), "latency of one training step", "s"),
    Objective("run-time", ("latency_s.total",), "simulated time of the whole run", "s"),
    Objective("area", ("area_mm2.total",), "chip area (mm²)", None),
    Objective("writes", ("writes.total",), "device writes of the run", ""),
    Objective("max-writes", ("writes.max_per_device",), "most writes of one device", ""),
    Objective("accuracy", (), "final accuracy, mean over tasks (%)", None, maximize=True),
]}
DEFAULT_OBJECTIVES = ("inference-energy", "training-energy", "latency", "area", "writes")
"""Drawn when no --objective is given (area only when the sweep measured it)."""
_CHUNK = 1024


def pareto_mask(objectives: Any, maximize: Sequence[bool] | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``objectives`` (n points x d objectives).

    Every objective is minimised unless ``maximize`` marks it. A point is dominated when
    another is at least as good in every objective and strictly better in one; equal points do
    not dominate each other (both are kept). Rows holding NaN/inf are never on the front.
    Vectorised: O(n^2 d) comparisons in chunks of ``_CHUNK`` rows.
    """
    points = np.asarray(objectives, dtype=float)
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2:
        raise ValueError("objectives must be a 2-D array (points x objectives)")
    if maximize is not None:
        flags = np.asarray(maximize, dtype=bool)
        if flags.shape != (points.shape[1],):
            raise ValueError("maximize needs one flag per objective")
        points = np.where(flags, -points, points)
    mask = np.zeros(points.shape[0], dtype=bool)
    valid = np.flatnonzero(np.all(np.isfinite(points), axis=1))
    p = points[valid]
    dominated = np.zeros(len(p), dtype=bool)
    for start in range(0, len(p), _CHUNK):
        block = p[start:start + _CHUNK, None, :]  # candidates x 1 x d
        no_worse = np.all(p[None, :, :] <= block, axis=2)
        better = np.any(p[None, :, :] < block, axis=2)
        dominated[start:start + _CHUNK] = np.any(no_worse & better, axis=1)
    mask[valid] = ~dominated
    return mask


# -- reading results.parquet ----------------------------------------------------------------------
def load_results(sweep_dir: Path) -> Any:
    import pandas as pd

    path = Path(sweep_dir) / "results.parquet"
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a truncated / foreign file
        text = " ".join(str(exc).split())[:120]
        raise DataError(f"{path}: cannot be read as Parquet ({type(exc).__name__}: {text}); "
                        f"rebuild it with 'archsim sweep SPEC --collect'") from None


def task_order(frame: Any) -> list[str]:
    """Task names in training order: from config_json when present, else from the columns."""
    if "config_json" in frame.columns:
        for text in frame["config_json"]:
            try:
                tasks = [str(t["name"]) for t in json.loads(text)["tasks"]]
            except Exception:
                continue
            if tasks:
                return tasks
    # The diagonal 'accuracy.after:<t>.<t>' names every task unambiguously (names may hold dots).
    rests = [c[len(ACCURACY_PREFIX):] for c in frame.columns if c.startswith(ACCURACY_PREFIX)]
    names = []
    for rest in rests:
        half = (len(rest) - 1) // 2
        if len(rest) % 2 == 1 and rest[half] == "." and rest[:half] == rest[half + 1:]:
            names.append(rest[:half])
    # The row after the last task evaluates every task: order by how many tasks each row holds.
    count = {t: sum(1 for r in rests for u in names if r == f"{t}.{u}") for t in names}
    return sorted(names, key=lambda t: (count[t], t))


def final_accuracy(frame: Any) -> tuple[np.ndarray, list[str], str | None]:
    """Per-point mean accuracy over the tasks of the final row; the columns used; last task."""
    tasks = task_order(frame)
    if not tasks:
        return np.full(len(frame), np.nan), [], None
    last = tasks[-1]
    columns = [f"{ACCURACY_PREFIX}{last}.{t}" for t in tasks if f"{ACCURACY_PREFIX}{last}.{t}" in frame.columns]
    if not columns:
        return np.full(len(frame), np.nan), [], last
    import pandas as pd

    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        acc = values.mean(axis=1)  # NaN when a task is missing for a point: left off the fronts
    return acc, columns, last


def swept_keys(frame: Any) -> list[str]:
    return [c for c in frame.columns
            if c not in META_COLUMNS and c not in SUMMARY_SCALARS and c.split(".")[0] not in SUMMARY_SECTIONS]


def varying(frame: Any, keys: list[str]) -> list[str]:
    return [k for k in keys if frame[k].astype(str).nunique() > 1]


def metric_column(frame: Any, candidates: list[str]) -> str | None:
    import pandas as pd

    for column in candidates:
        if column in frame.columns and pd.to_numeric(frame[column], errors="coerce").notna().any():
            return column
    return None


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def sort_values(values: Sequence[Any]) -> list[Any]:
    """Distinct values, numbers in numeric order, others after them by their text."""
    distinct = list(dict.fromkeys(values))
    numbers = sorted((v for v in distinct if _is_number(v)), key=float)
    return numbers + sorted((v for v in distinct if not _is_number(v)), key=str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


# -- objectives and seeds -------------------------------------------------------------------------
def choose_objectives(requested: Sequence[str] | None, frame: Any) -> list[Objective]:
    """The objectives asked for (names of OBJECTIVES or numeric columns); the defaults otherwise."""
    if not requested:
        return [OBJECTIVES[n] for n in DEFAULT_OBJECTIVES
                if n != "area" or metric_column(frame, list(OBJECTIVES[n].columns)) is not None]
    chosen = []
    for name in requested:
        if name in OBJECTIVES:
            chosen.append(OBJECTIVES[name])
        elif name in frame.columns:
            chosen.append(Objective(name, (name,), name, None))
        else:
            raise ConfigError(f"--objective {name!r}: not an objective; choose one of "
                              f"{', '.join(OBJECTIVES)} or a numeric column of results.parquet")
    return list(dict.fromkeys(chosen))


def aggregate_seeds(frame: Any, keys: list[str], values: dict[str, np.ndarray]) -> Any:
    """One row per configuration (the swept keys but ``seed``): the keys, then ``<name>_mean``,
    ``<name>_sd`` (sample sd, 0 for one seed) of every array in ``values``, ``n_seeds`` and
    ``points`` (row positions in ``frame``). Rows where a value is not finite are left out."""
    import pandas as pd

    config_keys = [k for k in keys if k != "seed"]
    usable = np.logical_and.reduce([np.isfinite(v) for v in values.values()]) if values else np.ones(len(frame), bool)
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for i in np.flatnonzero(usable):
        label = tuple(str(frame[k].iloc[i]) for k in config_keys)
        entry = rows.setdefault(label, {**{k: frame[k].iloc[i] for k in config_keys}, "points": []})
        entry["points"].append(int(i))
    out = []
    for entry in rows.values():
        idx = entry["points"]
        row = dict(entry)
        for name, v in values.items():
            row[f"{name}_mean"] = float(np.mean(v[idx]))
            row[f"{name}_sd"] = float(np.std(v[idx], ddof=1)) if len(idx) > 1 else 0.0
        row["n_seeds"] = len(idx)
        out.append(row)
    return pd.DataFrame(out, columns=[*config_keys, *(f"{n}_{s}" for n in values for s in ("mean", "sd")),
                                      "n_seeds", "points"])


def mean_sd(mean: float, sd: float, n: int, fmt: Any) -> str:
    return fmt(mean) if n < 2 else f"{fmt(mean)} ± {fmt(sd)}"


# -- the report -----------------------------------------------------------------------------------
def sweep_name(sweep_dir: Path) -> str:
    import yaml

    try:
        spec = yaml.safe_load((Path(sweep_dir) / "sweep.yaml").read_text())
        if isinstance(spec, dict) and spec.get("name"):
            return str(spec["name"])
    except Exception:
        pass
    return Path(sweep_dir).resolve().name


def encoding(keys: list[str]) -> dict[str, Any]:
    """Which swept key is drawn how: colour, marker, facets (the rest)."""
    return {"colour": keys[0] if keys else None, "marker": keys[1] if len(keys) > 1 else None,
            "facets": keys[2:]}


def write_sweep_report(sweep_dir: Path, out: Path, formats: Sequence[str],
                       objectives: Sequence[str] | None = None) -> Path:
    """Write ``out/report.md`` and one figure per objective for the sweep folder ``sweep_dir``."""
    import pandas as pd

    sweep_dir, out = Path(sweep_dir), Path(out)
    frame = load_results(sweep_dir)
    total = len(frame)
    if "status" in frame.columns:
        failed = int((frame["status"] != "ok").sum())
        frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    else:
        failed = 0
    chosen = choose_objectives(objectives, frame)
    keys = swept_keys(frame)
    shown = [k for k in varying(frame, keys) if k != "seed"]
    enc = encoding(shown)
    accuracy, acc_columns, last = final_accuracy(frame)
    seeds = frame["seed"].nunique() if "seed" in frame.columns else 1

    with staged_output(out, sweep_dir) as staging:
        doc = Document(staging, formats)
        doc.heading(1, f"archsim sweep report: {sweep_name(sweep_dir)}")
        fixed = [k for k in keys if k not in shown and k != "seed"]
        doc.table(["sweep", ""], [
            ["points in results.parquet", num(total)],
            ["points ok", num(len(frame))],
            ["points failed (left out)", num(failed)],
            ["swept keys", ", ".join(f"`{k}`" for k in keys) or "–"],
            ["colour", f"`{enc['colour']}`" if enc["colour"] else "–"],
            ["marker", f"`{enc['marker']}`" if enc["marker"] else "–"],
            ["facets (one panel per value)", ", ".join(f"`{k}`" for k in enc["facets"]) or "–"],
            ["same in every point", ", ".join(f"`{k}` = {cell(frame[k].iloc[0])}" for k in fixed) or "–"],
            ["seeds per configuration", f"{seeds} (drawn as mean ± sd)" if seeds > 1 else "1"],
            ["objectives", ", ".join(f"`{o.name}`" for o in chosen)],
        ], align=["l", "l"])
        if acc_columns:
            doc.para(f"Accuracy of a point = mean over tasks of the final row of its accuracy matrix "
                     f"(after:{last}): mean of " + ", ".join(f"`{c}`" for c in acc_columns) + ". "
                     "A configuration is Pareto-optimal when no other has both higher (or equal) mean accuracy "
                     "and lower (or equal) mean cost, one of them strictly.")
        for objective in chosen:
            objective_section(doc, frame, objective, accuracy, bool(acc_columns), shown, enc)
        doc.write()
    return out / "report.md"


def objective_section(doc: Document, frame: Any, objective: Objective, accuracy: np.ndarray,
                      has_accuracy: bool, shown: list[str], enc: dict[str, Any]) -> None:
    import pandas as pd

    from archsim.report.plots import sweep_figure

    title = "Accuracy of every configuration" if objective.name == "accuracy" else \
        f"{objective.label[0].upper()}{objective.label[1:]} vs accuracy"
    doc.heading(2, title)
    if frame.empty:
        doc.skip("no point finished with status ok")
        return
    if not has_accuracy:
        doc.skip(f"no {ACCURACY_PREFIX}<last task>.<task> columns in results.parquet")
        return
    keys_all = swept_keys(frame)
    stem = f"sweep_{objective.name}"
    if objective.name == "accuracy":
        table = aggregate_seeds(frame, keys_all, {"accuracy": accuracy})
        if table.empty:
            doc.skip("no point has an accuracy")
            return
        fig = sweep_figure(table, None, enc, objective)
        doc.figure(fig, stem, "Final accuracy (mean ± sd over seeds) of every configuration against "
                   f"`{enc['colour'] or '–'}`; marker: `{enc['marker'] or '–'}`; panels: "
                   f"{', '.join(f'`{k}`' for k in enc['facets']) or '–'}.")
        order = np.argsort(-table["accuracy_mean"].to_numpy(), kind="stable")
        doc.table([*(f"`{k}`" for k in shown), "accuracy (%)", "seeds"], [
            [*(cell(table[k].iloc[i]) for k in shown),
             mean_sd(table["accuracy_mean"].iloc[i], table["accuracy_sd"].iloc[i], table["n_seeds"].iloc[i], pct),
             table["n_seeds"].iloc[i]] for i in order])
        return
    column = metric_column(frame, list(objective.columns))
    if column is None:
        doc.skip(f"no column {' / '.join(objective.columns)} in results.parquet "
                 "(needs e.g. a sweep with hardware, or a hardware model that reports it)")
        return
    cost = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    table = aggregate_seeds(frame, keys_all, {"cost": cost, "accuracy": accuracy})
    if table.empty:
        doc.skip(f"no point has both `{column}` and an accuracy")
        return
    front = pareto_mask(table[["cost_mean", "accuracy_mean"]].to_numpy(), maximize=[objective.maximize, True])
    fig = sweep_figure(table, front, enc, objective)
    doc.figure(fig, stem, f"{title} (`{column}`): every configuration (mean ± sd over seeds), Pareto-optimal "
               f"ones ringed in red; colour: `{enc['colour'] or '–'}`; marker: `{enc['marker'] or '–'}`; panels: "
               f"{', '.join(f'`{k}`' for k in enc['facets']) or '–'}.")

    def fmt(v: float) -> str:
        return eng(v, objective.unit) if objective.unit is not None else f"{v:.4g}"

    order = sorted(np.flatnonzero(front), key=lambda i: (table["cost_mean"].iloc[i], -table["accuracy_mean"].iloc[i]))
    rows = []
    for i in order:
        first = table["points"].iloc[i][0]
        rows.append([*(cell(table[k].iloc[i]) for k in shown),
                     mean_sd(table["accuracy_mean"].iloc[i], table["accuracy_sd"].iloc[i], table["n_seeds"].iloc[i], pct),
                     mean_sd(table["cost_mean"].iloc[i], table["cost_sd"].iloc[i], table["n_seeds"].iloc[i], fmt),
                     table["n_seeds"].iloc[i],
                     str(frame["point_id"].iloc[first])[:12] if "point_id" in frame.columns else first])
    doc.para(f"**Pareto-optimal configurations ({len(rows)} of {len(table)})**, by increasing `{column}`:")
    doc.table([*(f"`{k}`" for k in shown), "accuracy (%)", f"`{column}`", "seeds", "point"], rows,
              align=["l"] * len(shown) + ["r", "r", "r", "l"])
