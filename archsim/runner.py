"""``archsim run``: execute one configuration and write its result folder atomically."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from archsim.config import RunConfig, to_yaml
from archsim.experiment import RunResult, run_experiment
from archsim.io import atomic_write_json, atomic_write_npz, atomic_write_text, staged_directory
from archsim.summary import build_summary

TRAIN_IMAGES_PER_DATASET = 60_000


def total_training_images(config: RunConfig) -> int:
    """Images the run will train on (for the progress bar)."""
    available = TRAIN_IMAGES_PER_DATASET - config.data.validation_size
    total = 0
    for task in config.tasks:
        n = available if task.train_limit is None else min(available, task.train_limit)
        batches = max(1, n // config.learning.batch_size)
        total += task.epochs * batches * config.learning.batch_size
    return total


def execute(config: RunConfig, show_progress: bool = False) -> tuple[dict[str, Any], RunResult]:
    """Run the experiment and build its summary (no files written)."""
    bars: list[tqdm] = []

    def progress(task: str, images: int) -> None:
        # Created on the first batch, so errors while loading data print no empty bar.
        if not bars:
            bars.append(tqdm(total=total_training_images(config), unit="img", unit_scale=True,
                             disable=not show_progress, dynamic_ncols=True))
        bars[0].set_description(task, refresh=False)
        bars[0].update(images)

    try:
        result = run_experiment(config, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    return build_summary(config, result), result


def write_results(out_dir: Path, config: RunConfig, summary: dict[str, Any], result: RunResult) -> None:
    """Every result file of a run, each written atomically into ``out_dir``."""
    atomic_write_text(out_dir / "config.yaml", to_yaml(config))
    atomic_write_npz(
        out_dir / "write_counts.npz",
        {f"layer{i}": counts for i, counts in enumerate(result.write_counts)},
    )
    atomic_write_json(
        out_dir / "timing.json",
        {"wall_time_s": {k: round(v, 3) for k, v in result.wall_time_s.items()},
         "python": platform.python_version(), "numpy": np.__version__},
    )
    # summary.json last: its presence marks a complete result folder.
    atomic_write_json(out_dir / "summary.json", summary)


def execute_run(config: RunConfig, out_dir: Path, show_progress: bool = True) -> dict[str, Any]:
    """Run and write ``out_dir`` as a whole: it appears complete or not at all."""
    summary, result = execute(config, show_progress)
    with staged_directory(out_dir) as staging:
        write_results(staging, config, summary, result)
    return summary


def load_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text())
