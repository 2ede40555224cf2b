"""Runs the batches: the schedule cache (fast mode) and the exact mode.

Phases are separated by barriers (see :mod:`archsim.engine.dataflow`), so a phase's
schedule depends only on its kind and the batch size -- except the write phase, which
depends on which devices changed. FAST mode simulates each (phase, batch size) once and then
reuses its duration and ledger counts; the write phase of every batch is computed from its
commit reports without SimPy (the DPU sends the change lists one after another, so nothing
contends: :func:`archsim.engine.dataflow.write_time_ps`). EXACT mode simulates every phase of
every batch, the write phase included. Time is kept in integer picoseconds and counts in integers, so both modes give
identical totals (tests/test_hw_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archsim.engine.dataflow import (
    ModelInfo, Sim, TileWrite, WriteColumns, WritePlan, account_write, write_time_ps,
)
from archsim.engine.ledger import Ledger
from archsim.engine.trace import Tracer
from archsim.hw.chip import Chip
from archsim.interconnect.network import Network
from archsim.learning.storage import CommitReport
from archsim.mapping.mapper import NetworkMapping

TRAIN_PHASES = ("forward", "backward", "update", "write")


def compact_pulses(changed: np.ndarray, index: np.ndarray, pulses: np.ndarray | None) -> np.ndarray:
    """Pulses of the changed weights, in the order of ``index = np.flatnonzero(changed)``.

    A report may give pulses per weight (same shape as ``changed``) or only for the changed
    weights in that order (the device store does); None means one pulse each.
    """
    if pulses is None:
        return np.ones(index.size, dtype=np.int64)
    pulses = np.asarray(pulses, dtype=np.int64)
    if pulses.shape == changed.shape:
        return pulses.ravel()[index]
    if pulses.size != index.size:
        raise ValueError(
            f"CommitReport.pulses has {pulses.size} entries for {index.size} changed weights"
        )
    return pulses.ravel()


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    time_ps: int = 0


@dataclass(frozen=True)
class TracedBatch:
    """What it takes to simulate a batch again for the trace."""

    kind: str
    index: int
    batch: int
    phases: tuple[str, ...]
    plan: list[TileWrite]
    device_energy: float
    start_ps: int


@dataclass
class Engine:
    chip: Chip
    mapping: NetworkMapping
    network: Network
    model: ModelInfo
    mode: str = "fast"
    trace_batches: int = 3
    ledger: Ledger = field(default_factory=Ledger)
    trace_log: list["TracedBatch"] = field(default_factory=list)
    time_ps: int = 0
    stats: dict[str, BatchStats] = field(default_factory=lambda: {"train": BatchStats(), "eval": BatchStats()})
    cache: dict[tuple[str, int], Ledger] = field(default_factory=dict)
    simulated_phases: int = 0
    reused_phases: int = 0
    traced: int = 0
    writes_total: int = 0
    pulses_total: int = 0
    group_tiles: bool = True  # one pair of stage processes per tile shape (identical totals)
    _layer_tile_ids: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def now_s(self) -> float:
        """Simulated time in s: the sum of every batch's schedule so far."""
        return self.time_ps * 1e-12

    # ---- data-dependent write plan --------------------------------------------------------
    def write_plan(self, commits: list[CommitReport]) -> tuple[list[TileWrite], float]:
        """Per tile: changes, pulses and sequential pulse steps, from the commit reports."""
        plan, energy = self.write_columns(commits)
        return plan.tiles(), energy

    def write_columns(self, commits: list[CommitReport]) -> tuple[WritePlan, float]:
        """:meth:`write_plan` as int64 columns, and the device energy of the commits.
        A replicated kernel's copies get the same writes, pulses and device energy (the
        device model simulates one copy: docs/architecture.md).

        Works on the changed weights only (np.flatnonzero), with bincount / maximum.at per
        tile and per (row, column block), so its cost follows the number of changes.
        """
        rows = self.mapping.rows
        parts: list[tuple[np.ndarray, ...]] = []
        energy = 0.0
        row_parallel = self.chip.write.row_parallel
        for layer_map, report in zip(self.mapping.layers, commits):
            energy += float(report.energy_j) * layer_map.replicas
            changed = np.asarray(report.changed, dtype=bool)
            index = np.flatnonzero(changed) if report.index is None else report.index
            if index.size == 0:
                continue
            pulses = compact_pulses(changed, index, report.pulses)
            i, j = np.divmod(index, layer_map.n_out)
            cb_count, per = layer_map.col_blocks, layer_map.outputs_per_tile
            cb = j // per
            tile_local = (i // rows) * cb_count + cb
            n_local = layer_map.row_blocks * cb_count
            changes = np.bincount(tile_local, minlength=n_local)
            totals = np.bincount(tile_local, weights=pulses, minlength=n_local).astype(np.int64)
            if row_parallel:  # a pair's devices are pulsed in the same step: their max
                steps_w = pulses if report.pulse_steps is None else compact_pulses(changed, index, report.pulse_steps)
                row_max = np.zeros(layer_map.n_in * cb_count, dtype=np.int64)
                np.maximum.at(row_max, i * cb_count + cb, steps_w)
                rmax = row_max.reshape(layer_map.n_in, cb_count)
                r_idx, c_idx = np.nonzero(rmax)
                steps = np.bincount((r_idx // rows) * cb_count + c_idx, weights=rmax[r_idx, c_idx],
                                    minlength=n_local).astype(np.int64)
            else:
                steps = totals
            local = np.flatnonzero(changes)
            ids = self._tile_ids(layer_map)
            for replica in range(layer_map.replicas):  # every copy of a kernel is programmed
                parts.append((ids[replica * n_local + local], changes[local].astype(np.int64),
                              totals[local], steps[local]))
            self.writes_total += int(index.size) * layer_map.replicas
            self.pulses_total += int(pulses.sum()) * layer_map.replicas
        if not parts:
            return WritePlan.empty(), energy
        return WritePlan(*(np.concatenate(column) for column in zip(*parts))), energy

    def _tile_ids(self, layer_map) -> np.ndarray:
        """Chip tile id of every tile of a layer (replica major, then the local (row block,
        column block) order)."""
        ids = self._layer_tile_ids.get(layer_map.layer)
        if ids is None:
            ids = self._layer_tile_ids[layer_map.layer] = np.array(
                [tile.tile_id for tile in layer_map.tiles], dtype=np.int64)
        return ids

    # ---- batches -------------------------------------------------------------------------
    def train_batch(self, batch: int, commits: list[CommitReport]) -> None:
        plan, energy = self.write_columns(commits)
        self._run("train", batch, TRAIN_PHASES, plan, energy)

    def eval_batch(self, batch: int) -> None:
        self._run("eval", batch, ("eval",), WritePlan.empty(), 0.0)

    def _simulate(self, phases: list[str], batch: int, plan: list[TileWrite], device_energy: float,
                  ledger: Ledger, tracer: Tracer | None) -> dict[str, int]:
        """Run ``phases`` of one batch through SimPy into ``ledger``; their durations in ps."""
        sim = Sim(self.chip, self.mapping, self.network, self.model, ledger, tracer, self.group_tiles)
        durations: dict[str, int] = {}

        def run_phases():
            for phase in phases:
                start = sim.env.now
                if phase == "write":
                    yield from sim.write(plan, device_energy)
                elif phase == "forward" or phase == "eval":
                    yield from sim.forward(batch, phase)
                elif phase == "backward":
                    yield from sim.backward(batch)
                else:
                    yield from sim.update(batch)
                durations[phase] = sim.env.now - start

        sim.env.process(run_phases())
        sim.env.run()
        return durations

    def _run(self, kind: str, batch: int, phases: tuple[str, ...], plan: WritePlan,
             device_energy: float) -> None:
        if self.traced < self.trace_batches:
            # replayed with a tracer only when a trace is written (see trace())
            self.trace_log.append(TracedBatch(kind, self.stats[kind].batches, batch, phases, plan.tiles(),
                                              device_energy, self.time_ps))
            self.traced += 1
        if self.mode == "exact":
            to_sim = list(phases)
        else:
            to_sim = [p for p in phases if p != "write" and (p, batch) not in self.cache]
        batch_ledger = Ledger()
        if "write" in phases and "write" not in to_sim:
            # fast mode: the write phase from the commit reports, without SimPy
            columns = WriteColumns.of(self.chip, self.network, plan)
            account_write(batch_ledger, self.chip, self.network, columns, device_energy)
            batch_ledger.phase_time_ps["write"] += write_time_ps(self.chip, self.network, columns)
        if to_sim:
            durations = self._simulate(to_sim, batch, plan.tiles(), device_energy, batch_ledger, None)
            for phase in to_sim:
                batch_ledger.phase_time_ps[phase] += durations[phase]
                if phase != "write" and (phase, batch) not in self.cache:
                    self.cache[(phase, batch)] = batch_ledger.only(phase)
            self.simulated_phases += len(to_sim)
        for phase in phases:
            if phase not in to_sim and phase != "write":
                batch_ledger.merge(self.cache[(phase, batch)])
                self.reused_phases += 1
        elapsed = sum(batch_ledger.phase_time_ps.values())
        self.ledger.merge(batch_ledger)
        self.time_ps += elapsed
        stats = self.stats[kind]
        stats.batches += 1
        stats.images += batch
        stats.time_ps += elapsed

    def trace(self) -> Tracer:
        """Chrome/Perfetto trace of the first ``trace_batches`` batches: each is simulated
        again, every phase through SimPy, with a tracer attached (the schedule depends only on
        the batch size and the write plan, both kept), so a run that writes no trace pays
        nothing for it."""
        tracer = Tracer()
        for traced in self.trace_log:
            tracer.offset_ps = traced.start_ps
            self._simulate(list(traced.phases), traced.batch, traced.plan, traced.device_energy,
                           Ledger(), tracer)
            tracer.marker(f"{traced.kind} batch {traced.index} (B={traced.batch})", 0)
        return tracer

    def probe_inference(self, batch: int = 1) -> int:
        """Latency in ps of one inference batch on an idle chip (not added to the totals)."""
        sim = Sim(self.chip, self.mapping, self.network, self.model, Ledger(), None, self.group_tiles)
        sim.env.process(sim.forward(batch, "eval"))
        sim.env.run()
        return int(sim.env.now)
