"""``archsim run``: attach the hardware, execute one configuration, write its result folder.

Attaching the hardware means: the device model becomes the weight store (every level change
programs devices), and the architecture engine (when the hardware describes a chip) observes
every batch and supplies the circuit's matrix products.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from archsim.config import RunConfig, to_yaml
from archsim.experiment import RunResult, StoreFactory, ideal_store, run_experiment
from archsim.io import atomic_write_json, atomic_write_npz, atomic_write_text, staged_directory
from archsim.learning.storage import WeightStore
from archsim.summary import build_summary

TRAIN_IMAGES_PER_DATASET = 60_000


@dataclass
class HardwareAttachment:
    """The hardware hooks of one run and what they recorded."""

    store_factory: StoreFactory = ideal_store
    stores: list[WeightStore] = field(default_factory=list)
    architecture: Any | None = None
    observer: Any | None = None  # the engine's observer, wrapped by the device clock

    @classmethod
    def for_config(cls, config: RunConfig) -> "HardwareAttachment":
        attachment = cls()
        if config.hardware is not None:
            from archsim.engine import build_architecture

            arch = attachment.architecture = build_architecture(config)
            attachment.store_factory = arch.store_factory
            attachment.stores = arch.stores
            from archsim.devices.clock import DeviceClock

            # The device clock follows the engine's simulated time (drift ages devices).
            attachment.observer = DeviceClock(
                arch.observer, attachment.stores, lambda: arch.now_s
            )
        return attachment

    @property
    def device_store(self) -> Any | None:
        """The device store of the run (None without hardware)."""
        return self.stores[0] if self.stores else None


def total_training_images(config: RunConfig) -> int:
    """Images the run will train on (for the progress bar)."""
    available = TRAIN_IMAGES_PER_DATASET - config.data.validation_size
    total = 0
    for task in config.tasks:
        n = available if task.train_limit is None else min(available, task.train_limit)
        batches = max(1, n // config.learning.batch_size)
        total += task.epochs * batches * config.learning.batch_size
    return total


def execute(
    config: RunConfig, show_progress: bool = False
) -> tuple[dict[str, Any], RunResult, HardwareAttachment]:
    """Run the experiment with its hardware and build the summary (no files written)."""
    bars: list[tqdm] = []

    def progress(task: str, images: int) -> None:
        # Created on the first batch, so errors while loading data print no empty bar.
        if not bars:
            bars.append(tqdm(total=total_training_images(config), unit="img", unit_scale=True,
                             disable=not show_progress, dynamic_ncols=True))
        bars[0].set_description(task, refresh=False)
        bars[0].update(images)

    hardware = HardwareAttachment.for_config(config)
    arch = hardware.architecture
    try:
        result = run_experiment(
            config,
            progress=progress,
            store_factory=hardware.store_factory,
            observer=hardware.observer,
            mvm=arch.mvm if arch is not None else None,
        )
    finally:
        for bar in bars:
            bar.close()
    summary = build_summary(
        config, result, hardware.device_store, arch.summary() if arch is not None else None
    )
    return summary, result, hardware


def device_arrays(result: RunResult, store: Any | None) -> dict[str, np.ndarray]:
    """Per-device arrays saved with a run: write counts, and pulses / stuck masks of devices."""
    from archsim.devices.arrays import smallest_unsigned

    arrays = {f"layer{i}.writes": smallest_unsigned(counts) for i, counts in enumerate(result.write_counts)}
    if store is not None:
        for i, planes in enumerate(store.device_pulse_counts()):
            for j, pulses in enumerate(planes):
                arrays[f"layer{i}.pulses{j}"] = smallest_unsigned(pulses)
        for i, planes in enumerate(store.device_write_counts()):
            for j, programs in enumerate(planes):
                arrays[f"layer{i}.programs{j}"] = smallest_unsigned(programs)
        snapshot = store.conductance_snapshot()
        arrays.update({k: v for k, v in snapshot.items() if ".stuck" in k or ".g" in k or ".state" in k})
        arrays["state_g_s"] = snapshot["state_g_s"]
        arrays["level_values"] = snapshot["level_values"]
    return arrays


def write_results(
    out_dir: Path, config: RunConfig, summary: dict[str, Any], result: RunResult,
    hardware: HardwareAttachment,
) -> None:
    """Every result file of a run, each written atomically into ``out_dir``."""
    atomic_write_text(out_dir / "config.yaml", to_yaml(config))
    atomic_write_npz(out_dir / "devices.npz", device_arrays(result, hardware.device_store))
    atomic_write_json(
        out_dir / "timing.json",
        {"wall_time_s": {k: round(v, 3) for k, v in result.wall_time_s.items()},
         "python": platform.python_version(), "numpy": np.__version__},
    )
    # summary.json last: its presence marks a complete result folder.
    atomic_write_json(out_dir / "summary.json", summary)


def execute_run(
    config: RunConfig, out_dir: Path, show_progress: bool = True, trace: Path | None = None
) -> dict[str, Any]:
    """Run and write ``out_dir`` as a whole: it appears complete or not at all.

    ``trace`` (with hardware) also writes a Chrome/Perfetto trace of the first batches.
    """
    summary, result, hardware = execute(config, show_progress)
    with staged_directory(out_dir) as staging:
        write_results(staging, config, summary, result, hardware)
    if trace is not None and hardware.architecture is not None:
        hardware.architecture.write_trace(trace)
    return summary


def load_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text())
