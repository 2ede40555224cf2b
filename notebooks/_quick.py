"""Shared helpers of the notebooks: quick mode, configurations, figure files.

Quick mode (``ARCHSIM_NOTEBOOK_QUICK=1``, set by ``tests/test_notebooks.py``) shrinks every run
to 10 000 training images, two epochs and a small network, so that all notebooks run in
a few minutes in CI. Without it the notebooks use the full settings a user would run (the
paper workload, every epoch, every sweep point).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from archsim.config import RunConfig, load_run_config, validate
from archsim.config.loader import apply_overrides, resolve_preset_path

QUICK = os.environ.get("ARCHSIM_NOTEBOOK_QUICK", "").strip() == "1"
"""True in CI: reduced settings (tiny subsets, small networks, few sweep points)."""

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent
FIGURES = NOTEBOOKS / "figures"
PAPER_WORKLOAD = REPO / "workloads" / "paper-mnist-fmnist.yaml"
SMOKE_WORKLOAD = REPO / "workloads" / "smoke.yaml"

QUICK_TASK = {"train_limit": 10000, "test_limit": 2000, "epochs": 2}
"""What every task becomes in quick mode."""

QUICK_SET = ["model.hidden=[128]", "data.validation_size=500", "software_baseline=false"]
"""--set overrides applied first in quick mode; a notebook's own overrides come after them."""


def paper_workload() -> Path:
    """``workloads/paper-mnist-fmnist.yaml``, or ``workloads/smoke.yaml`` (with a note) if absent."""
    if PAPER_WORKLOAD.is_file():
        return PAPER_WORKLOAD
    print(f"note: {PAPER_WORKLOAD.relative_to(REPO)} not found; using "
          f"{SMOKE_WORKLOAD.relative_to(REPO)} instead")
    return SMOKE_WORKLOAD


def make_config(
    workload: str | Path,
    hardware: str | Path | None = None,
    overrides: Iterable[str] = (),
    seed: int | None = None,
    quick: bool | None = None,
    quick_task: Mapping[str, Any] | None = None,
) -> RunConfig:
    """A validated run configuration, as ``archsim run WORKLOAD --hw HW --set ... --seed N``.

    Full mode is :func:`archsim.config.load_run_config`. Quick mode reads the workload YAML,
    replaces every task's ``train_limit`` / ``test_limit`` / ``epochs`` by ``quick_task``
    (default :data:`QUICK_TASK`), applies :data:`QUICK_SET` and then ``overrides``, and
    validates the tree with :func:`archsim.config.validate`.
    """
    quick = QUICK if quick is None else quick
    overrides = list(overrides)
    if not quick:
        return load_run_config(workload, hardware, overrides, seed)
    path = resolve_preset_path(workload, "workloads")
    tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    for task in tree["tasks"]:
        task.update(QUICK_TASK if quick_task is None else quick_task)
    if hardware is not None:
        hw_path = resolve_preset_path(hardware, "hwconfigs")
        tree["hardware"] = yaml.safe_load(hw_path.read_text(encoding="utf-8"))
    tree = apply_overrides(tree, [*QUICK_SET, *overrides])
    if seed is not None:
        tree["seed"] = seed
    return validate(RunConfig, tree, f"{path.name} (quick mode)")


def describe(config: RunConfig) -> str:
    """One line: network, levels, rule, m*, tasks and hardware of a configuration."""
    sizes = "-".join(str(n) for n in (784, *config.model.hidden, 10))
    tasks = ", ".join(
        f"{t.name} ({t.epochs} ep" + (f", {t.train_limit} img" if t.train_limit else "") + ")"
        for t in config.tasks
    )
    hw = config.hardware.name if config.hardware is not None else "software (no --hw)"
    return (f"{config.name}: {sizes}, L = {config.model.levels}, {config.learning.rule}, "
            f"m* = {config.learning.m_star:g}; tasks: {tasks}; hardware: {hw}")


def save_and_show(fig: Any, name: str) -> None:
    """Write ``fig`` to ``notebooks/figures/<name>.png``, show that PNG inline, close ``fig``.

    Showing the saved file works with any matplotlib backend (inline, or Agg in CI).
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    display(Image(filename=str(path)))
