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

import functools
from dataclasses import dataclass, field

import numpy as np

from archsim.engine import kernels
from archsim.engine.dataflow import (
    ModelInfo, Sim, TileWrite, WriteColumns, WritePlan, account_write, write_time_ps,
)
from archsim.engine.ledger import Ledger
from archsim.engine.trace import Tracer
from archsim.hw.chip import Chip
from archsim.interconnect.network import Network
from archsim.learning.storage import CommitReport
from archsim.mapping.mapper import LayerMapping, NetworkMapping

TRAIN_PHASES = ("forward", "backward", "update", "write")


def pulse_layout(changed_shape: tuple[int, ...], n_changed: int, values: np.ndarray | None,
                 name: str) -> tuple[np.ndarray, int]:
    """A report's pulse array as :func:`~archsim.engine.kernels.tile_write_counts` reads it,
    and its layout.

    A report may give pulses per weight (same shape as ``changed``) or only for the changed
    weights in index order (the device store does); None means one pulse each.
    """
    if values is None:
        return np.zeros(0, dtype=np.int64), kernels.NONE
    values = np.asarray(values)
    if values.dtype.kind not in "iu":  # integers are read as they are; anything else truncated
        values = values.astype(np.int64)
    if values.shape == changed_shape:
        return values.reshape(-1), kernels.PER_WEIGHT
    if values.size != n_changed:
        raise ValueError(f"CommitReport.{name} has {values.size} entries for {n_changed} changed weights")
    return values.reshape(-1), kernels.COMPACT


@functools.lru_cache(maxsize=64)
def column_blocks(n_out: int, outputs_per_tile: int, col_blocks: int) -> np.ndarray:
    """Column block of each of a layer's ``n_out`` columns (int64, read-only)."""
    blocks = np.arange(n_out, dtype=np.int64) // outputs_per_tile
    if n_out and blocks[-1] >= col_blocks:
        raise ValueError(f"{n_out} columns do not fit {col_blocks} column blocks of {outputs_per_tile}")
    blocks.flags.writeable = False
    return blocks


def layer_tile_writes(layer_map: LayerMapping, rows: int, report: CommitReport,
                      row_parallel: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Per local tile of one layer (row block major, then column block; int64): level changes,
    pulses and sequential pulse steps, from its commit report; and the layer's changed weights
    and pulses. Its cost follows the number of changed weights (one compiled pass over them)."""
    if report.index is None:
        index = np.flatnonzero(np.asarray(report.changed, dtype=bool))
    else:
        index = np.asarray(report.index)
    n_local = layer_map.row_blocks * layer_map.col_blocks
    changes = np.zeros(n_local, dtype=np.int64)
    totals = np.zeros(n_local, dtype=np.int64)
    steps = np.zeros(n_local, dtype=np.int64)
    if index.size == 0:
        return changes, totals, steps, 0, 0
    shape = np.shape(report.changed)
    pulses, pulses_layout = pulse_layout(shape, index.size, report.pulses, "pulses")
    if report.pulse_steps is None:  # as many steps as pulses
        step_values, steps_layout = pulses, kernels.NONE
    else:
        step_values, steps_layout = pulse_layout(shape, index.size, report.pulse_steps, "pulse_steps")
    n_weights = layer_map.n_in * layer_map.n_out
    blocks = column_blocks(layer_map.n_out, layer_map.outputs_per_tile, layer_map.col_blocks)
    if layer_map.n_in > rows * layer_map.row_blocks:
        raise ValueError(f"layer {layer_map.layer}: {layer_map.n_in} rows do not fit its "
                         f"{layer_map.row_blocks} row blocks of {rows}")
    for _ in range(2):  # as given, then sorted if it was not
        status, pulse_sum = kernels.tile_write_counts(
            index, pulses, pulses_layout, step_values, steps_layout, n_weights, layer_map.n_out,
            rows, blocks, layer_map.col_blocks, row_parallel, changes, totals, steps)
        if status == kernels.OK:
            return changes, totals, steps, int(index.size), int(pulse_sum)
        if status == kernels.OUT_OF_RANGE:
            raise ValueError(f"CommitReport.index of layer {layer_map.layer} points outside its "
                             f"{layer_map.n_in} x {layer_map.n_out} weights")
        # an index out of order (a report built by hand): the same totals from it sorted
        order = np.argsort(index, kind="stable")
        index = index[order]
        if pulses_layout == kernels.COMPACT:
            pulses = pulses[order]
        if steps_layout == kernels.COMPACT:
            step_values = step_values[order]
        for column in (changes, totals, steps):
            column[:] = 0
    raise AssertionError("a sorted index is in order")


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

        Works on the changed weights only (:func:`layer_tile_writes`), so its cost follows
        the number of changes.
        """
        rows = self.mapping.rows
        parts: list[tuple[np.ndarray, ...]] = []
        energy = 0.0
        row_parallel = self.chip.write.row_parallel
        for layer_map, report in zip(self.mapping.layers, commits):
            energy += float(report.energy_j) * layer_map.replicas
            changes, totals, steps, writes, pulses = layer_tile_writes(layer_map, rows, report, row_parallel)
            if writes == 0:
                continue
            local = np.flatnonzero(changes)
            changes, totals, steps = changes[local], totals[local], steps[local]
            ids = self._tile_ids(layer_map)
            n_local = layer_map.row_blocks * layer_map.col_blocks
            for replica in range(layer_map.replicas):  # every copy of a kernel is programmed
                parts.append((ids[replica * n_local + local], changes, totals, steps))
            self.writes_total += writes * layer_map.replicas
            self.pulses_total += pulses * layer_map.replicas
        if not parts:
            return WritePlan.empty(), energy
        if len(parts) == 1:
            return WritePlan(*parts[0]), energy
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
