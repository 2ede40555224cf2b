"""The run summary: one JSON document per run, extended section by section.

``summary.json`` is byte-reproducible for a given configuration and seed (sorted keys, no
wall-clock times); timings go to ``timing.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archsim import __version__
from archsim.config import RunConfig
from archsim.experiment import RunResult
from archsim.metrics.memory import memory_section


def rounded_matrix(matrix: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {after: {task: round(acc, 6) for task, acc in row.items()} for after, row in matrix.items()}


def write_statistics(counts: list[np.ndarray], pulses: list[np.ndarray] | None = None,
                     stuck: int = 0) -> dict[str, Any]:
    """The ``writes`` section without a device model: writes (level changes) per weight.

    The ideal multi-level store keeps each weight in one memory cell, so per device = per weight.
    """
    total = int(sum(int(c.sum(dtype=np.int64)) for c in counts))
    weights = int(sum(c.size for c in counts))
    maximum = int(max((int(c.max()) for c in counts if c.size), default=0))
    mean = round(total / weights, 6) if weights else 0.0
    pulses_total = total if pulses is None else int(sum(int(p.sum(dtype=np.int64)) for p in pulses))
    return {
        "total": total,
        "max_per_weight": maximum,
        "max_per_device": maximum,
        "mean_per_weight": mean,
        "mean_per_device": mean,
        "pulses_total": pulses_total,
        "stuck_devices": int(stuck),
        "stuck_skipped": 0,
        "weights": weights,
        "devices": weights,
    }


def device_write_statistics(stats: dict[str, Any]) -> dict[str, Any]:
    """The ``writes`` section from a device store's statistics: per weight (level changes that
    programmed a device) and per device (program operations, G+ and G- counted separately)."""
    return {
        "total": stats["writes_total"],
        "max_per_weight": stats["writes_max_per_weight"],
        "max_per_device": stats["device_programs_max"],
        "mean_per_weight": round(stats["writes_mean_per_weight"], 6),
        "mean_per_device": round(stats["device_programs_mean"], 6),
        "pulses_total": stats["pulses_total"],
        "stuck_devices": stats["stuck_devices"],
        "stuck_skipped": stats["stuck_skipped_writes"],
        "weights": stats["weights"],
        "devices": stats["devices"],
    }


def rounded(value: Any) -> Any:
    """Floats to 12 significant digits, so summaries are stable across BLAS builds' last bits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


ARCHITECTURE_TOP_LEVEL = ("latency_cycles", "latency_s", "energy_j", "utilisation", "area_mm2")


def build_summary(
    config: RunConfig,
    result: RunResult,
    device_store: Any | None = None,
    architecture: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run summary as a JSON-ready dict.

    Always: accuracy matrices, losses, writes and the memory footprint. With a device model:
    its statistics under ``device``. With an architecture: latency, energy and utilisation at
    the top level and the rest of the engine's report under ``architecture``.
    """
    summary: dict[str, Any] = {
        "archsim_version": __version__,
        "workload": config.name,
        "seed": config.seed,
        "rule": config.learning.rule,
        "m_star": config.learning.m_star,
        "accuracy": rounded_matrix(result.accuracy),
        "validation_accuracy": rounded_matrix(result.validation_accuracy),
        "train_loss": {task: [round(x, 6) for x in losses] for task, losses in result.train_loss.items()},
        "writes": write_statistics(result.write_counts),
    }
    if device_store is not None:
        stats = device_store.statistics()
        summary["writes"] = device_write_statistics(stats)
        summary["device"] = {"name": config.hardware.device.name, **rounded(stats)}
    summary["memory_bits"] = memory_section(config)
    if architecture is not None:
        for key in ARCHITECTURE_TOP_LEVEL:
            summary[key] = architecture[key]
        summary["architecture"] = {
            k: v for k, v in architecture.items() if k not in ARCHITECTURE_TOP_LEVEL
        }
    if result.baseline_accuracy is not None:
        summary["baseline_accuracy"] = rounded_matrix(result.baseline_accuracy)
    return summary
