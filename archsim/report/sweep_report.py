"""Report of a sweep folder (``results.parquet``): Pareto fronts of cost against accuracy.

Accuracy of a point = mean over tasks of the final row of its accuracy matrix
(``accuracy.after:<last task>.<task>``). Each front plots one cost column (energy, latency,
writes) against it; a missing cost column skips that front with a note.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archsim.errors import DataError
from archsim.report.markdown import Document, eng, num, pct, staged_output

ACCURACY_PREFIX = "accuracy.after:"
META_COLUMNS = {"point_id", "status", "error", "wall_time_s", "finished_at", "config_json"}
SUMMARY_SECTIONS = {
    "archsim_version", "workload", "rule", "m_star", "accuracy", "validation_accuracy",
    "train_loss", "writes", "device", "memory_bits", "latency_cycles", "latency_s", "energy_j",
    "utilisation", "architecture", "baseline_accuracy", "summary",
}
"""First dotted part of metric columns (the run summary's sections); other columns are swept keys.
The summary's own ``seed`` is stored as ``summary.seed``: a ``seed`` column is the swept seed."""

FRONTS = [
    # (file stem, title, candidate columns (first present wins), axis label, unit)
    ("pareto_energy", "Energy vs accuracy", ["energy_j.total"], "energy of the run (J)", "J"),
    ("pareto_latency", "Latency vs accuracy", ["latency_s.train_step", "latency_s.total"],
     "latency (s)", "s"),
    ("pareto_writes", "Writes vs accuracy", ["writes.total"], "total writes", ""),
]
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
            if c not in META_COLUMNS and c.split(".")[0] not in SUMMARY_SECTIONS
            and not c.startswith(ACCURACY_PREFIX)]


def colour_key(frame: Any, keys: list[str]) -> str | None:
    """The first swept key with more than one value (the seed only if nothing else varies)."""
    varying = [k for k in keys if frame[k].astype(str).nunique() > 1]
    for key in varying:
        if key != "seed":
            return key
    return varying[0] if varying else (keys[0] if keys else None)


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


def write_sweep_report(sweep_dir: Path, out: Path, formats: Sequence[str]) -> Path:
    """Write ``out/report.md`` and the Pareto figures of the sweep folder ``sweep_dir``."""
    import pandas as pd

    from archsim.report.plots import pareto_scatter

    sweep_dir, out = Path(sweep_dir), Path(out)
    frame = load_results(sweep_dir)
    total = len(frame)
    if "status" in frame.columns:
        failed = int((frame["status"] != "ok").sum())
        frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    else:
        failed = 0
    keys = swept_keys(frame)
    colour = colour_key(frame, keys)
    accuracy, acc_columns, last = final_accuracy(frame)

    with staged_output(out, sweep_dir) as staging:
        doc = Document(staging, formats)
        doc.heading(1, f"archsim sweep report: {sweep_name(sweep_dir)}")
        doc.table(["sweep", ""], [
            ["points in results.parquet", num(total)],
            ["points ok", num(len(frame))],
            ["points failed (left out)", num(failed)],
            ["swept keys", ", ".join(f"`{k}`" for k in keys) or "–"],
            ["colour", f"`{colour}`" if colour else "–"],
        ], align=["l", "l"])
        if acc_columns:
            doc.para(f"Accuracy of a point = mean over tasks of the final row of its accuracy matrix "
                     f"(after:{last}): mean of " + ", ".join(f"`{c}`" for c in acc_columns) + ". "
                     "A point is Pareto-optimal when no other point has both higher (or equal) accuracy "
                     "and lower (or equal) cost, one of them strictly; each point is one seed.")
        for stem, title, candidates, label, unit in FRONTS:
            doc.heading(2, title)
            if frame.empty:
                doc.skip("no point finished with status ok")
                continue
            if not acc_columns:
                doc.skip(f"no {ACCURACY_PREFIX}<last task>.<task> columns in results.parquet")
                continue
            column = metric_column(frame, candidates)
            if column is None:
                doc.skip(f"no column {' / '.join(candidates)} in results.parquet (needs e.g. a sweep with hardware)")
                continue
            cost = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            usable = np.isfinite(cost) & np.isfinite(accuracy)
            if not usable.any():
                doc.skip(f"no point has both `{column}` and an accuracy")
                continue
            front = pareto_mask(np.column_stack([cost, accuracy]), maximize=[False, True])
            sub = np.flatnonzero(usable)
            values = frame[colour].tolist() if colour else None
            fig = pareto_scatter(cost[sub], accuracy[sub], front[sub],
                                 [values[i] for i in sub] if values else None, colour,
                                 f"{label} [{column}]", f"{title} ({int(front.sum())} Pareto-optimal of {len(sub)})")
            doc.figure(fig, stem, f"{title}: every ok point, Pareto-optimal ones ringed in red; colour: {colour or '–'}.")
            order = sorted(np.flatnonzero(front), key=lambda i: (cost[i], -accuracy[i]))
            headers = [*(f"`{k}`" for k in keys), "accuracy (%)", f"`{column}`", "point"]
            rows = [[*(cell(frame[k].iloc[i]) for k in keys), pct(accuracy[i]),
                     eng(cost[i], unit) if unit else num(cost[i]),
                     str(frame["point_id"].iloc[i])[:12] if "point_id" in frame.columns else i]
                    for i in order]
            doc.para(f"**Pareto-optimal points ({len(rows)})**, by increasing `{column}`:")
            doc.table(headers, rows, align=["l"] * len(keys) + ["r", "r", "l"])
        doc.write()
    return out / "report.md"
