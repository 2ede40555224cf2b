"""Build the run summary (:class:`archsim.results.RunSummary`) from what a run measured.

``summary.json`` is that model as JSON, byte-reproducible for a given configuration and seed
(sorted keys, no wall-clock times); timings go to ``timing.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archsim import __version__
from archsim.config import RunConfig
from archsim.experiment import RunResult
from archsim.metrics.continual import continual_section
from archsim.metrics.memory import memory_section
from archsim.results import Energy, LedgerRow, RunSummary


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


def energy_ledger(architecture: Any) -> list[LedgerRow]:
    """Every (component, action, phase) entry of the engine's ledger with its count, busy
    cycles and energy (J); leakage (static power x phase time) as rows of action ``leakage``."""
    ledger = architecture.engine.ledger
    dynamic = ledger.energy_entries(architecture.chip.unit_energy)
    keys = sorted(set(dynamic) | {k for k, n in ledger.counts.items() if n}
                  | {k for k, n in ledger.busy_cycles.items() if n})
    rows = [LedgerRow(component=c, action=a, phase=p, kind="dynamic", count=int(ledger.counts.get((c, a, p), 0)),
                      busy_cycles=int(ledger.busy_cycles.get((c, a, p), 0)), energy_j=float(dynamic.get((c, a, p), 0.0)))
            for c, a, p in keys]
    rows += [LedgerRow(component=c, action=a, phase=p, kind="leakage", count=0, busy_cycles=0, energy_j=float(e))
             for (c, a, p), e in sorted(ledger.leakage_entries(architecture.leakage_w()).items())]
    return rows


def energy_section(engine_energy: dict[str, Any], ledger: list[LedgerRow] | None) -> Energy:
    """The engine's energy breakdown, with the training / evaluation totals and the ledger."""
    eval_total = float(engine_energy["by_phase"].get("eval", 0.0))
    return Energy(**engine_energy, train_total=max(engine_energy["total"] - eval_total, 0.0),
                  eval_total=eval_total, ledger=ledger)


def build_summary(
    config: RunConfig,
    result: RunResult,
    device_store: Any | None = None,
    architecture: Any | None = None,
) -> RunSummary:
    """The typed run summary (:class:`archsim.results.RunSummary`).

    Always: accuracy matrices, losses, writes and the memory footprint. With a device model:
    its statistics under ``device``. With an architecture (the engine of
    :func:`archsim.engine.build_architecture`): latency, energy (with its ledger) and
    utilisation at the top level and the rest of the engine's report under ``architecture``.
    """
    fields: dict[str, Any] = {
        "archsim_version": __version__,
        "workload": config.name,
        "seed": config.seed,
        "rule": config.learning.rule,
        "m_star": config.learning.m_star,
        "tasks": [task.name for task in config.tasks],
        "accuracy": rounded_matrix(result.accuracy),
        "validation_accuracy": rounded_matrix(result.validation_accuracy),
        "train_loss": {task: [round(x, 6) for x in losses] for task, losses in result.train_loss.items()},
        "writes": write_statistics(result.write_counts),
        "memory_bits": memory_section(config),
        "continual": continual_section(
            result.accuracy, result.validation_accuracy, [t.name for t in config.tasks]
        ),
    }
    if device_store is not None:
        stats = device_store.statistics()
        fields["writes"] = device_write_statistics(stats)
        fields["device"] = {"name": config.hardware.device.name, **rounded(stats)}
    if architecture is not None:
        report = architecture.summary()
        fields["latency_cycles"] = report["latency_cycles"]
        fields["latency_s"] = report["latency_s"]
        fields["utilisation"] = report["utilisation"]
        if "area_mm2" in report:
            fields["area_mm2"] = report["area_mm2"]
        fields["energy_j"] = energy_section(report["energy_j"], energy_ledger(architecture))
        fields["architecture"] = {k: v for k, v in report.items() if k not in ARCHITECTURE_TOP_LEVEL}
    if result.baseline_accuracy is not None:
        fields["baseline_accuracy"] = rounded_matrix(result.baseline_accuracy)
    return RunSummary.model_validate(fields)
