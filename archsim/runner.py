"""``archsim run``: attach the hardware, execute one configuration, write its result folder.

Attaching the hardware means: the device model becomes the weight store (every level change
programs devices), and the architecture engine (when the hardware describes a chip) observes
every batch and supplies the circuit's matrix products.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from archsim.config import RunConfig, to_yaml
from archsim.data.tasks import expected_train_images
from archsim.experiment import RunResult, StoreFactory, ideal_store, run_experiment
from archsim.errors import IncompleteRun, InterruptedRun, OutputError
from archsim.io import (
    atomic_write_json,
    atomic_write_npz,
    atomic_write_text,
    current_umask,
    staged_directory,
)
from archsim.learning.storage import WeightStore
from archsim.results import RunSummary
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
        n = expected_train_images(task, available)
        batches = max(1, n // config.learning.batch_size)
        total += task.epochs * batches * config.learning.batch_size
    return total


def execute(
    config: RunConfig, show_progress: bool = False, callbacks: Sequence[Any] = ()
) -> tuple[RunSummary, RunResult, HardwareAttachment]:
    """Run the experiment with its hardware and build the typed summary (no files written).

    ``callbacks``: objects with ``on_epoch_end(event)`` and/or ``on_task_end(event)``
    (:mod:`archsim.experiment`, :class:`~archsim.experiment.RunCallback`).
    """
    result, hardware = train(config, show_progress, callbacks)
    return summarize(config, result, hardware), result, hardware


def summarize(config: RunConfig, result: RunResult, hardware: HardwareAttachment) -> RunSummary:
    return build_summary(config, result, hardware.device_store, hardware.architecture)


def train(config: RunConfig, show_progress: bool = False,
          callbacks: Sequence[Any] = ()) -> tuple[RunResult, HardwareAttachment]:
    """Run the experiment with its hardware (the long part); nothing is summarised or written."""
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
            callbacks=callbacks,
        )
    finally:
        for bar in bars:
            bar.close()
    return result, hardware


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
    config: RunConfig, out_dir: Path, show_progress: bool = True, trace: Path | None = None,
    force: bool = False, callbacks: Sequence[Any] = (),
) -> RunSummary:
    """Run and write ``out_dir`` as a whole: it appears complete or not at all.

    Everything about ``out_dir`` and ``trace`` is checked, and the output locked, before
    training (:mod:`archsim.output`). A failure after training (full disk, read-only or
    replaced folder, a broken summary) keeps what the run learned in ``<out>.incomplete``
    and raises :class:`IncompleteRun`. ``trace`` (with hardware) also writes a
    Chrome/Perfetto trace of the first batches.
    """
    from archsim.limits import check_run_memory
    from archsim.output import check_run_target, output_lock

    check_run_memory(config)
    target = check_run_target(Path(out_dir), force, trace)
    what = f"--out {out_dir}"
    with output_lock(target.final, what):
        check_run_target(Path(out_dir), force, trace)  # again: it may have changed while we waited
        # callbacks only when given: wrappers of train() may take just (config, show_progress)
        result, hardware = train(config, show_progress, **({"callbacks": callbacks} if callbacks else {}))
        try:
            summary = save_run(config, result, hardware, target, force, what)
        except (KeyboardInterrupt, InterruptedRun):
            raise
        except Exception as exc:
            raise keep_incomplete(config, result, target.final, exc) from None
    if target.trace is not None and not target.trace_inside and hardware.architecture is not None:
        write_trace_atomically(hardware.architecture, target.trace, target.final)
    return summary


def save_run(config: RunConfig, result: RunResult, hardware: HardwareAttachment, target: Any,
             force: bool, what: str) -> RunSummary:
    """Summary (non-finite values recorded as null, with a warning) and the result folder
    (with the trace when it belongs inside it). summary.json is the typed summary's dump."""
    from archsim.output import check_replaceable, write_marker

    typed = summarize(config, result, hardware)
    summary, bad = finite_or_null(typed.model_dump(exclude_none=True))
    if bad:
        summary["warnings"] = [f"not finite, recorded as null: {', '.join(bad)}"]
        typed = typed.model_copy(update={"warnings": summary["warnings"]})
    arch = hardware.architecture
    trace_name: tuple[str, ...] = ()
    with staged_directory(target.final) as staging:
        write_results(staging, config, summary, result, hardware)
        if target.trace_inside and arch is not None:
            relative = target.trace.relative_to(target.final)
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            arch.write_trace(staging / relative)
            trace_name = (relative.parts[0],)
        write_marker(staging, "run", trace_name)
        # A user may have put files into the folder while the run trained.
        check_replaceable(target.final, what, force)
    return typed


def write_trace_atomically(arch: Any, trace: Path, saved: Path) -> None:
    """The trace file (written atomically by the tracer); the results are already saved."""
    try:
        arch.write_trace(trace)
    except OSError as exc:
        raise OutputError(
            f"--trace {trace}: cannot write ({exc.strerror or exc}); the results are saved in {saved}"
        ) from None


def finite_or_null(tree: Any, where: str = "") -> tuple[Any, list[str]]:
    """``tree`` with every NaN/inf float replaced by None, and the dotted keys replaced."""
    if isinstance(tree, dict):
        bad: list[str] = []
        clean = {}
        for key, value in tree.items():
            clean[key], more = finite_or_null(value, f"{where}.{key}" if where else str(key))
            bad += more
        return clean, bad
    if isinstance(tree, (list, tuple)):
        bad = []
        items = []
        for i, value in enumerate(tree):
            item, more = finite_or_null(value, f"{where}.{i}")
            items.append(item)
            bad += more
        return items, bad
    if isinstance(tree, (float, np.floating)) and not math.isfinite(float(tree)):
        return None, [where]
    return tree, []


def keep_incomplete(config: RunConfig, result: RunResult, final: Path, exc: BaseException) -> IncompleteRun:
    """Write what the run learned to ``<out>.incomplete`` (else to the temp folder) and return
    the one-line error saying why and where it is."""
    import tempfile

    reason = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError):
        reason = f"{exc.strerror or type(exc).__name__}" + (f": {exc.filename}" if exc.filename else "")
    reason = reason.removeprefix("archsim: error: ")
    code = 4 if isinstance(exc, (OSError, OutputError)) else getattr(exc, "exit_code", 1)
    learned, _ = finite_or_null({"accuracy": result.accuracy, "validation_accuracy": result.validation_accuracy,
                                 "train_loss": result.train_loss, "baseline_accuracy": result.baseline_accuracy})
    places = [final.parent, Path(tempfile.gettempdir())]
    problems = []
    for place in places:
        try:
            kept = _write_incomplete(place, final.name, config, learned, reason)
        except OSError as write_exc:
            problems.append(f"{place}: {write_exc.strerror or write_exc}")
            continue
        return IncompleteRun(
            f"training finished but the results could not be saved ({reason}); what it learned "
            f"(accuracy matrix, configuration) is kept in {kept}", code, result.accuracy)
    return IncompleteRun(
        f"training finished but the results could not be saved ({reason}), nor kept "
        f"({'; '.join(problems)}); the accuracy matrix is printed above", code, result.accuracy)


def _write_incomplete(place: Path, name: str, config: RunConfig, learned: dict[str, Any], reason: str) -> Path:
    import tempfile

    from archsim.output import write_marker

    folder = place / f"{name}.incomplete"
    if folder.exists():  # never overwrite an earlier one
        folder = Path(tempfile.mkdtemp(prefix=f"{name}.", suffix=".incomplete", dir=place))
        os.chmod(folder, 0o777 & ~current_umask())
    else:
        folder.mkdir(parents=True)
    try:
        atomic_write_json(folder / "accuracy.json", learned)
        atomic_write_text(folder / "incomplete.txt", f"results not saved: {reason}\n")
        atomic_write_text(folder / "config.yaml", to_yaml(config))
        write_marker(folder, "incomplete")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def load_summary(run_dir: Path) -> RunSummary:
    """The typed summary of a run folder."""
    return RunSummary.load(Path(run_dir) / "summary.json")
