"""The schedule's per-batch write accounting: the compiled pass (archsim/engine/kernels.py)
gives exactly the per-tile columns of the numpy code it replaced, kept here as the reference."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.engine import build_architecture
from archsim.engine.dataflow import WritePlan
from archsim.engine.schedule import Engine
from archsim.learning.storage import CommitReport
from archsim.mapping.mapper import MatrixSpec, map_network
from tests.test_hw_engine import hil_config


def _reference_compact_pulses(changed, index, pulses):
    if pulses is None:
        return np.ones(index.size, dtype=np.int64)
    pulses = np.asarray(pulses, dtype=np.int64)
    if pulses.shape == changed.shape:
        return pulses.ravel()[index]
    if pulses.size != index.size:
        raise ValueError(f"CommitReport.pulses has {pulses.size} entries for {index.size} changed weights")
    return pulses.ravel()


def _reference_write_columns(engine: Engine, commits: list[CommitReport]):
    """Engine.write_columns as it was written with numpy (divmod, bincount, maximum.at);
    returns the plan, the device energy, and the writes and pulses it adds to the totals."""
    rows = engine.mapping.rows
    parts = []
    energy = 0.0
    writes = pulses_total = 0
    row_parallel = engine.chip.write.row_parallel
    for layer_map, report in zip(engine.mapping.layers, commits):
        energy += float(report.energy_j) * layer_map.replicas
        changed = np.asarray(report.changed, dtype=bool)
        index = np.flatnonzero(changed) if report.index is None else report.index
        if index.size == 0:
            continue
        pulses = _reference_compact_pulses(changed, index, report.pulses)
        i, j = np.divmod(index, layer_map.n_out)
        cb_count, per = layer_map.col_blocks, layer_map.outputs_per_tile
        cb = j // per
        tile_local = (i // rows) * cb_count + cb
        n_local = layer_map.row_blocks * cb_count
        changes = np.bincount(tile_local, minlength=n_local)
        totals = np.bincount(tile_local, weights=pulses, minlength=n_local).astype(np.int64)
        if row_parallel:
            steps_w = pulses if report.pulse_steps is None else _reference_compact_pulses(
                changed, index, report.pulse_steps)
            row_max = np.zeros(layer_map.n_in * cb_count, dtype=np.int64)
            np.maximum.at(row_max, i * cb_count + cb, steps_w)
            rmax = row_max.reshape(layer_map.n_in, cb_count)
            r_idx, c_idx = np.nonzero(rmax)
            steps = np.bincount((r_idx // rows) * cb_count + c_idx, weights=rmax[r_idx, c_idx],
                                minlength=n_local).astype(np.int64)
        else:
            steps = totals
        local = np.flatnonzero(changes)
        ids = engine._tile_ids(layer_map)
        for replica in range(layer_map.replicas):
            parts.append((ids[replica * n_local + local], changes[local].astype(np.int64),
                          totals[local], steps[local]))
        writes += int(index.size) * layer_map.replicas
        pulses_total += int(pulses.sum()) * layer_map.replicas
    if not parts:
        return WritePlan.empty(), energy, writes, pulses_total
    return WritePlan(*(np.concatenate(c) for c in zip(*parts))), energy, writes, pulses_total


def _engine(row_parallel: bool, specs: list[MatrixSpec], rows: int = 64, cols: int = 64) -> Engine:
    arch = build_architecture(hil_config("fast", programming={"row_parallel": row_parallel}))
    e = arch.engine
    mapping = map_network(specs, rows, cols, e.mapping.encoding, None)
    return Engine(e.chip, mapping, e.network, e.model)


def _assert_same(engine: Engine, commits: list[CommitReport]) -> WritePlan:
    plan, energy, writes, pulses = _reference_write_columns(engine, commits)
    before = engine.writes_total, engine.pulses_total
    got, got_energy = engine.write_columns(commits)
    for name in ("tile_id", "changes", "pulses", "steps"):
        a, b = getattr(got, name), getattr(plan, name)
        assert a.dtype == np.int64 and np.array_equal(a, b), name
    assert got_energy == energy
    assert (engine.writes_total - before[0], engine.pulses_total - before[1]) == (writes, pulses)
    return got


def _random_report(rng, n_in, n_out, density, layout, steps_too, with_index=True, energy=0.0):
    changed = rng.random((n_in, n_out)) < density
    index = np.flatnonzero(changed)
    full = np.where(changed, rng.integers(1, 40, size=changed.shape), 0).astype(np.uint32)
    steps_full = np.minimum(full, rng.integers(1, 40, size=changed.shape)).astype(np.uint32)
    if layout == "none":
        pulses = steps = None
    elif layout == "full":
        pulses, steps = full, steps_full
    else:  # compact, as the device store reports
        pulses, steps = full.ravel()[index], steps_full.ravel()[index]
    return CommitReport(changed, pulses, energy, steps if steps_too else None, None,
                        index if with_index else None)


# ragged blocks (100 rows of 64; 50 outputs of 32 per tile row), several layers, replicas
SPECS = [MatrixSpec(100, 50, 4, 3, "conv2d"), MatrixSpec(200, 70), MatrixSpec(70, 10, 1, 2)]


@pytest.mark.parametrize("row_parallel", [True, False])
@pytest.mark.parametrize("layout", ["none", "compact", "full"])
def test_write_columns_equal_the_numpy_reference_on_random_reports(row_parallel, layout):
    engine = _engine(row_parallel, SPECS)
    rng = np.random.default_rng(7)
    for trial in range(12):
        density = [0.0, 0.002, 0.05, 0.5, 1.0][trial % 5]
        commits = [_random_report(rng, s.n_in, s.n_out, density, layout, steps_too=trial % 2 == 0,
                                  with_index=trial % 3 != 0, energy=float(rng.random()) * 1e-9)
                   for s in SPECS]
        _assert_same(engine, commits)


@pytest.mark.parametrize("row_parallel", [True, False])
def test_write_columns_edge_cases(row_parallel):
    engine = _engine(row_parallel, SPECS)
    shapes = [(s.n_in, s.n_out) for s in SPECS]
    none = [CommitReport(np.zeros(shape, dtype=bool), index=np.zeros(0, dtype=np.int64)) for shape in shapes]
    plan = _assert_same(engine, none)
    assert len(plan) == 0
    assert len(_assert_same(engine, [])) == 0  # no commit reports at all
    for flat in (0, 99 * 50 + 49, 64 * 50 + 32, 63 * 50 + 31):  # corners of tiles, the last weight
        changed = np.zeros(shapes[0], dtype=bool)
        changed.flat[flat] = True
        one = [CommitReport(changed, np.array([5], dtype=np.uint32), 1e-12, np.array([3], dtype=np.uint32),
                            None, np.array([flat]))] + none[1:]
        plan = _assert_same(engine, one)
        assert len(plan) == 3 and set(plan.changes) == {1}  # one tile in each of 3 replicas
        assert set(plan.steps) == ({3} if row_parallel else {5})
    # one row with changes in every column block, then a long gap, then the last row
    changed = np.zeros(shapes[1], dtype=bool)
    changed[0, :] = True
    changed[-1, ::7] = True
    report = CommitReport(changed, np.arange(1, changed.sum() + 1, dtype=np.int64))
    _assert_same(engine, [none[0], report, none[2]])


def test_an_index_out_of_order_gives_the_same_columns_as_sorted():
    """A report built by hand may list its changed weights in any order (np.argwhere of a
    transposed mask, say): the numpy code summed them in any order, so must the kernel."""
    engine = _engine(True, SPECS)
    rng = np.random.default_rng(11)
    commits = []
    for s in SPECS:
        report = _random_report(rng, s.n_in, s.n_out, 0.1, "compact", steps_too=True)
        order = rng.permutation(report.index.size)
        commits.append(CommitReport(report.changed, report.pulses[order], 0.0, report.pulse_steps[order],
                                    None, report.index[order]))
    _assert_same(engine, commits)


def test_bad_reports_give_one_clear_error():
    engine = _engine(True, SPECS)
    shape = (SPECS[0].n_in, SPECS[0].n_out)
    changed = np.zeros(shape, dtype=bool)
    changed.flat[:3] = True
    with pytest.raises(ValueError, match="CommitReport.pulses has 2 entries for 3 changed weights"):
        engine.write_columns([CommitReport(changed, np.ones(2, dtype=np.uint32))])
    with pytest.raises(ValueError, match="CommitReport.pulse_steps has 4 entries"):
        engine.write_columns([CommitReport(changed, None, 0.0, np.ones(4, dtype=np.uint32))])
    with pytest.raises(ValueError, match="points outside its 100 x 50 weights"):
        engine.write_columns([CommitReport(changed, index=np.array([0, 1, 100 * 50]))])


def test_fast_schedule_of_real_commits_equals_the_reference_engine():
    """A few batches of the device store's own commit reports through Engine.train_batch: the
    ledger (values and key order), time and totals equal those of the reference write plan
    fed through the same _run."""
    from archsim.experiment import run_experiment

    config = hil_config("fast", device={"preset": "hfo2-130nm"})
    arch = build_architecture(config)
    captured = []
    inner = arch.observer.on_train_batch

    def capture(batch, commits):
        captured.append((batch, commits))
        inner(batch, commits)

    arch.observer.on_train_batch = capture
    run_experiment(config, store_factory=arch.store_factory, observer=arch.observer, mvm=arch.mvm)
    assert len(captured) > 2 and all(c.index is not None and c.pulse_steps is not None
                                     for _, cs in captured for c in cs)
    assert any(c.index.size for _, cs in captured for c in cs)
    e = arch.engine
    new, ref = (Engine(e.chip, e.mapping, e.network, e.model) for _ in range(2))
    for batch, commits in captured:
        new.train_batch(batch, commits)
        plan, energy, writes, pulses = _reference_write_columns(ref, commits)
        ref.writes_total += writes
        ref.pulses_total += pulses
        ref._run("train", batch, ("forward", "backward", "update", "write"), plan, energy)
    for name in ("counts", "busy_cycles", "extra_energy", "phase_time_ps"):
        assert list(getattr(new.ledger, name).items()) == list(getattr(ref.ledger, name).items()), name
    assert (new.time_ps, new.writes_total, new.pulses_total) == (ref.time_ps, ref.writes_total, ref.pulses_total)
