"""The Python API: :func:`run` one configuration, :func:`sweep` a design space.

Both take what the command line takes (``archsim run`` / ``archsim sweep``) and return typed
results: a :class:`~archsim.results.RunSummary` and a pandas DataFrame of the sweep's points.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from archsim.errors import OutputError
from archsim.results import RunSummary

Overrides = Mapping[str, Any] | Iterable[str] | None


def override_strings(overrides: Overrides) -> list[str]:
    """``{"learning.m_star": 2}`` or ``["learning.m_star=2"]`` -> ``--set`` strings."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if isinstance(overrides, Mapping):
        # JSON is YAML: the value reaches the configuration with its type (lists, null, ...).
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def run(
    workload: str | Path,
    hw: str | Path | None = None,
    overrides: Overrides = None,
    seed: int | None = 0,
    callbacks: Sequence[Any] = (),
    out: str | Path | None = None,
    force: bool = False,
    progress: bool = False,
) -> RunSummary:
    """Train and evaluate one configuration, as ``archsim run WORKLOAD --hw HW --set k=v --seed N``.

    ``workload`` / ``hw``: YAML files or shipped preset names (``archsim presets``).
    ``overrides``: ``{"dotted.key": value}`` or ``["dotted.key=value", ...]``.
    ``seed``: seed of every random draw (``None`` keeps the workload's).
    ``callbacks``: objects with ``on_epoch_end(event)`` and/or ``on_task_end(event)``
    (:class:`archsim.experiment.EpochEnd`, :class:`archsim.experiment.TaskEnd`).
    ``out``: also write the result folder (``summary.json``, ``config.yaml``, ``devices.npz``)
    as ``archsim run --out`` does; an existing non-empty folder needs ``force=True``.
    """
    from archsim.config import load_run_config
    from archsim.runner import execute, execute_run

    config = load_run_config(workload, hw, override_strings(overrides), seed)
    if out is None:
        return execute(config, progress, callbacks)[0]
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise OutputError(f"out={out}: already exists; choose a new folder or pass force=True to replace it")
    return execute_run(config, out, show_progress=progress, callbacks=callbacks)


def sweep(
    spec: str | Path,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    serial: bool = False,
    progress: bool = False,
):
    """Run a sweep, as ``archsim sweep SPEC`` (resumable: finished points are skipped), and
    return its ``results.parquet`` as a DataFrame (one row per point: ``status``, the swept
    keys, and the summary's fields as dotted columns, :meth:`RunSummary.flat`)."""
    import pandas as pd

    from archsim.sweep.execute import run_sweep

    report = run_sweep(spec, Path(out) if out is not None else None, workers=0 if serial else workers,
                       scheduler=scheduler, serial=serial, quiet=not progress)
    return pd.read_parquet(report.results)


__all__ = ["run", "sweep", "override_strings"]
