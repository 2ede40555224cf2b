"""The public face of the engine: :func:`build_architecture` and :class:`Architecture`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archsim.config import RunConfig
from archsim.config.hardware import HardwareConfig
from archsim.engine.dataflow import ModelInfo
from archsim.engine.schedule import Engine
from archsim.errors import ConfigError, MappingError
from archsim.hw.area import chip_area
from archsim.hw.chip import Chip, build_chip
from archsim.hw.circuits import CrossbarMvm
from archsim.interconnect.network import Network
from archsim.interconnect.topology import build_graph, topology
from archsim.learning.storage import CommitReport, WeightStore
from archsim.learning.trainer import TrainingObserver
from archsim.mapping.mapper import NetworkMapping, map_network


class HardwareObserver(TrainingObserver):
    """Feeds every training and evaluation batch to the engine's schedule."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def on_train_batch(self, batch_size: int, commits: list[CommitReport]) -> None:
        self.engine.train_batch(batch_size, commits)

    def on_eval_batch(self, batch_size: int) -> None:
        self.engine.eval_batch(batch_size)


def model_levels(config: RunConfig) -> int:
    return 2 if config.learning.rule == "float32" else config.model.levels


def sram_bits_needed(config: RunConfig, hidden_bits: int) -> int:
    """Hidden weights + Adam moments + batch-norm parameters + one batch of activations
    (a convolution's outputs at every position, after pooling)."""
    plan = config.model.plan
    weights = sum(layer.weights for layer in plan)
    bn = sum(2 * layer.n_out for layer in plan)
    batch = max(config.learning.batch_size, config.eval_batch_size)
    activations = batch * sum(layer.n_out * layer.positions for layer in plan) * (32 + 1)
    return (weights + bn) * 3 * hidden_bits + activations


@dataclass
class Architecture:
    """The chip a run trains on, built once from the hardware and the mapping.

    What the learner plugs in: ``store_factory`` (the weight store: the device model that
    programs the tiles' devices), ``mvm`` (the tiles' matrix products with DAC/ADC effects,
    None without circuit effects) and ``observer`` (every batch through the schedule).
    ``now_s`` is the simulated time (the device clock follows it, so drift acts over
    simulated time).
    """

    config: RunConfig
    chip: Chip
    mapping: NetworkMapping
    engine: Engine
    mvm: CrossbarMvm | None
    observer: HardwareObserver
    sram_bits: int
    stores: list[WeightStore] = field(default_factory=list)

    # ---- hooks ----------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        """Simulated time in s since the run started."""
        return self.engine.now_s

    def store_factory(self, config: RunConfig, hidden: list[np.ndarray],
                      rng: np.random.Generator) -> WeightStore:
        """The device model of the hardware as the run's weight store (kept in ``stores``).
        ``archsim run`` moves its clock with ``now_s`` (archsim/devices/clock.py)."""
        from archsim.devices import make_device_store

        store = make_device_store(config, hidden, rng)
        self.stores.append(store)
        return store

    # ---- report ---------------------------------------------------------------------------
    def _seconds(self, ps: float) -> float:
        return ps * 1e-12

    def _cycles(self, ps: float) -> float:
        return ps / self.chip.period_ps["crossbar"]

    def summary(self) -> dict[str, Any]:
        eng = self.engine
        ledger = eng.ledger
        dynamic = ledger.energy_entries(self.chip.unit_energy)
        leakage = ledger.leakage_entries(self.leakage_w())
        entries = dict(dynamic)
        for key, e in leakage.items():
            entries[key] = entries.get(key, 0.0) + e
        by_component: dict[str, float] = defaultdict(float)
        by_phase: dict[str, float] = defaultdict(float)
        by_component_phase: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for (component, _action, phase), e in sorted(entries.items()):
            by_component[component] += e
            by_phase[phase] += e
            by_component_phase[component][phase] += e
        total = sum(by_component.values())
        train, ev = eng.stats["train"], eng.stats["eval"]
        single_ps = eng.probe_inference(1)
        train_step_ps = train.time_ps / train.batches if train.batches else 0.0
        inf_img_ps = ev.time_ps / ev.images if ev.images else 0.0
        lat_ps = {
            "inference_per_image": inf_img_ps,
            "inference_single_image": single_ps,
            "train_step": train_step_ps,
            "train_per_image": train.time_ps / train.images if train.images else 0.0,
            "train_total": train.time_ps,
            "eval_total": ev.time_ps,
            "total": eng.time_ps,
        }
        phase_ps = {p: t for p, t in sorted(ledger.phase_time_ps.items())}
        train_energy = sum(e for (c, a, p), e in entries.items() if p != "eval")
        eval_energy = by_phase.get("eval", 0.0)
        counts: dict[str, int] = defaultdict(int)
        for (component, action, _phase), n in ledger.counts.items():
            if n:
                counts[f"{component}.{action}"] += n
        busy: dict[str, int] = defaultdict(int)
        for (component, action, _phase), n in ledger.busy_cycles.items():
            busy[f"{component}.{action}"] += n
        utilisation = self.mapping.utilisation()
        total_cycles = self._cycles(eng.time_ps)
        tiles = self.mapping.tiles_used
        utilisation["busy_fraction"] = {
            "tile_read_stage": round(sum(v for k, v in busy.items() if k.startswith("crossbar.")) / (tiles * total_cycles), 6) if total_cycles else 0.0,
            "tile_convert_stage": round(sum(v for k, v in busy.items() if k.startswith("adc.")) / (tiles * total_cycles), 6) if total_cycles else 0.0,
            "dpu": round(sum(v for k, v in busy.items() if k.startswith("dpu.")) * self.chip.period_ps["dpu"] / eng.time_ps, 6) if eng.time_ps else 0.0,
        }
        return {
            "clock_hz": self.chip.clock_hz,
            "schedule": {"mode": eng.mode, "phases_simulated": eng.simulated_phases,
                         "phases_reused": eng.reused_phases},
            "batches": {"train": train.batches, "train_images": train.images,
                        "eval": ev.batches, "eval_images": ev.images},
            "latency_cycles": {k: round(self._cycles(v), 3) for k, v in lat_ps.items()}
            | {"by_phase": {p: round(self._cycles(t), 3) for p, t in phase_ps.items()}},
            "latency_s": {k: self._seconds(v) for k, v in lat_ps.items()}
            | {"by_phase": {p: self._seconds(t) for p, t in phase_ps.items()}},
            "energy_j": {
                "total": total,
                "dynamic": sum(dynamic.values()),
                "leakage": sum(leakage.values()),
                "by_component": dict(sorted(by_component.items())),
                "by_phase": dict(sorted(by_phase.items())),
                "by_component_phase": {c: dict(v) for c, v in sorted(by_component_phase.items())},
                "per_train_step": train_energy / train.batches if train.batches else 0.0,
                "per_inference_image": eval_energy / ev.images if ev.images else 0.0,
            },
            "unit_energy_j": {f"{c}.{a}": e for (c, a), e in sorted(self.chip.unit_energy.items())},
            "action_counts": dict(sorted(counts.items())),
            "busy_cycles": dict(sorted(busy.items())),
            "writes": {"level_changes": eng.writes_total, "pulses": eng.pulses_total},
            "utilisation": utilisation,
            "area_mm2": chip_area(self.chip, self.mapping.tiles_available, self.sram_bits).as_dict(),
            "memory_bits": {
                "memristor_cells": utilisation["cells_allocated"],
                "weight_cells": utilisation["weight_cells"],
                "dpu_sram": self.sram_bits,
            },
        }

    def leakage_w(self) -> dict[str, float]:
        lk = self.chip.leakage_w
        powered = self.mapping.tiles_used if self.chip.hw.tile.power_gate_unused else self.mapping.tiles_available
        return {
            "tile": lk["tile"] * powered,
            "dpu": lk["dpu"],
            "sram": lk["sram_per_bit"] * self.sram_bits,
            "global_buffer": lk["global_buffer"],
            "interconnect": lk["interconnect"],
        }

    def write_trace(self, path: str | Path) -> None:
        """Chrome/Perfetto trace JSON of the first ``hardware.trace_batches`` batches."""
        self.engine.trace().write(path)


def build_architecture(config: RunConfig) -> Architecture:
    """The architecture of ``config.hardware`` for ``config``'s network."""
    hw: HardwareConfig | None = config.hardware
    if hw is None:
        raise ConfigError("build_architecture needs config.hardware; give a --hw description")
    plan = config.model.plan
    levels = model_levels(config)
    chip = build_chip(hw, levels)
    tile = chip.tile  # the mapping places weights on the chip's own tile geometry
    mapping = map_network(plan, tile.rows, tile.cols, tile.encoding.name, hw.tile.count)
    needed_sram = sram_bits_needed(config, chip.dpu.hidden_bits)
    if hw.dpu.sram_bits is not None and hw.dpu.sram_bits < needed_sram:
        raise MappingError(
            f"the DPU SRAM holds {hw.dpu.sram_bits} bits but the network needs {needed_sram} "
            "(hidden weights, Adam moments, batch-norm, one batch of activations); raise "
            "hardware.dpu.sram_bits or lower the hidden precision"
        )
    graph = build_graph(mapping.tiles_available, hw.interconnect)
    network = Network(graph, topology(hw.interconnect).shared_medium, hw.interconnect.link_width_bits,
                      hw.interconnect.hop_latency_cycles, chip.period_ps["interconnect"])
    model = ModelInfo(
        sizes=(plan[0].n_in, *(layer.n_out for layer in plan)),
        sign_hidden=config.model.activation == "sign",
        quantized=config.learning.rule != "float32",
        meta=config.learning.rule != "float32" and config.learning.m_star > 0,
        levels=levels,
        positions=tuple(layer.positions for layer in plan),
        pools=tuple(layer.pools for layer in plan),
        out_hw=tuple(layer.out_hw for layer in plan),
    )
    engine = Engine(chip, mapping, network, model, hw.schedule, hw.trace_batches)
    mvm = None
    if hw.crossbar.circuit_effects:
        if config.learning.rule == "float32":
            weight_scale = None
        elif config.model.level_values is not None:
            weight_scale = max(abs(v) for v in config.model.level_values)
        else:
            weight_scale = 1.0
        mvm = CrossbarMvm(chip.tile, mapping, weight_scale, hw.crossbar.backward)
    arch = Architecture(config, chip, mapping, engine, mvm, HardwareObserver(engine),
                        hw.dpu.sram_bits or needed_sram)
    return arch
