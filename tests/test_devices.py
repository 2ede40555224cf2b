"""Tests of the multi-level resistive memory model (archsim.devices, DeviceConfig, presets)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from archsim.config import DeviceConfig, RunConfig, load_run_config, validate
from archsim.devices import (
    DeviceModel,
    DevicePlane,
    DeviceStore,
    load_device_preset,
    make_device_store,
)
from archsim.devices.plots import plot_conductance_distributions
from archsim.errors import ConfigError
from archsim.experiment import run_experiment
from archsim.learning.quantizer import Quantizer
from archsim.learning.storage import FloatStore, QuantizedStore

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
DATA = Path(os.environ.get("ARCHSIM_DATA", SHARED))
needs_data = pytest.mark.skipif(
    not (DATA / "mnist").is_dir(), reason=f"offline datasets not present in {DATA} (set ARCHSIM_DATA)"
)


def run_tree(device: dict | None = None, **model) -> dict:
    """A tiny MNIST -> Fashion-MNIST run (hidden [64], 1000 images per task)."""
    tree = {
        "name": "tiny-devices",
        "tasks": [
            {"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": 1000, "test_limit": 500},
            {"name": "fashion", "dataset": "fashion-mnist", "epochs": 1, "train_limit": 1000,
             "test_limit": 500},
        ],
        "model": {"hidden": [64], "levels": 3, "init_width": 2.0, **model},
        "learning": {"rule": "qnn-meta", "m_star": 0.0, "batch_size": 100, "optimizer": {"lr": 0.02}},
        "data": {"validation_size": 500},
        "seed": 3,
    }
    if device is not None:
        tree["hardware"] = {"name": "test-hw", "device": device}
    return tree


def run_config(device: dict | None = None, **model) -> RunConfig:
    return validate(RunConfig, run_tree(device, **model), "test")


def make_store(levels: int = 5, shape=(60, 40), seed: int = 1, hidden_seed: int = 0, **device) -> tuple:
    rng = np.random.default_rng(hidden_seed)
    hidden = [rng.uniform(-1.2, 1.2, size=shape).astype(np.float32)]
    quantizer = Quantizer.from_config(levels)
    store = DeviceStore([h.copy() for h in hidden], quantizer, DeviceConfig(**device), np.random.default_rng(seed))
    return store, hidden, quantizer


NOISY = dict(c2c_sigma=0.03, max_pulses=30, tolerance=0.01, d2d_gain_sigma=0.2, read_noise_sigma=0.02)


# --------------------------------------------------------------------------- ideal equivalence
@needs_data
def test_ideal_device_run_equals_quantized_store_exactly():
    plain = run_experiment(run_config())
    ideal = run_experiment(run_config(device=load_device_preset("ideal").model_dump()),
                           store_factory=make_device_store)
    assert ideal.accuracy == plain.accuracy
    assert ideal.validation_accuracy == plain.validation_accuracy
    assert ideal.train_loss == plain.train_loss
    for a, b in zip(ideal.write_counts, plain.write_counts):
        assert a.dtype == np.uint32
        np.testing.assert_array_equal(a, b)
    assert sum(int(c.sum()) for c in plain.write_counts) > 0


@pytest.mark.parametrize("mapping", ["differential", "reference"])
@pytest.mark.parametrize("levels", [2, 3, 5, 8])
def test_ideal_device_reads_exact_level_values(mapping, levels):
    store, hidden, quantizer = make_store(levels=levels, mapping=mapping)
    reference = QuantizedStore([h.copy() for h in hidden], quantizer)
    rng = np.random.default_rng(5)
    h = hidden[0]
    for _ in range(6):
        h += rng.normal(0, 0.2, h.shape).astype(np.float32)
        ours, theirs = store.commit(0, h), reference.commit(0, h)
        np.testing.assert_array_equal(ours.changed, theirs.changed)
        w = store.read(0)
        assert w.dtype == np.float32
        np.testing.assert_array_equal(w, reference.read(0))
        np.testing.assert_array_equal(w, quantizer.dequantize(quantizer.level_index(h)))
        assert (ours.pulses >= 1).all()  # one pulse per programmed device, >= 1 per write
    np.testing.assert_array_equal(store.write_counts()[0], reference.write_counts()[0])


def test_factory_without_hardware_is_ideal_and_draws_nothing():
    config = run_config()
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    hidden = [np.random.default_rng(0).uniform(-1, 1, (20, 10)).astype(np.float32)]
    store = make_device_store(config, hidden, rng)
    assert isinstance(store, DeviceStore) and store.config.is_ideal
    store.read(0)
    store.commit(0, -hidden[0])
    assert rng.bit_generator.state == state  # the ideal device never touches its generator


def test_float32_rule_gets_float_store_or_clear_error_at_load():
    tree = run_tree(device={"name": "ideal"})
    tree["learning"]["rule"] = "float32"
    hidden = [np.zeros((4, 3), dtype=np.float32)]
    assert isinstance(make_device_store(validate(RunConfig, tree, "t"), hidden, np.random.default_rng()), FloatStore)
    tree["hardware"]["device"] = {"name": "noisy", "read_noise_sigma": 0.01}
    with pytest.raises(ConfigError, match="float32"):
        validate(RunConfig, tree, "t")  # rejected at load, before any store is built


# --------------------------------------------------------------------------- counting
def test_writes_equal_level_changes_and_pulses_counted_apart():
    store, hidden, quantizer = make_store(levels=5, **NOISY)
    h = hidden[0]
    previous = quantizer.level_index(h)
    expected = np.zeros(h.shape, dtype=np.int64)
    rng = np.random.default_rng(11)
    total_energy = 0.0
    for _ in range(15):
        h += rng.normal(0, 0.25, h.shape).astype(np.float32)
        report = store.commit(0, h)
        now = quantizer.level_index(h)
        changed = now != previous
        np.testing.assert_array_equal(report.changed, changed)
        expected += changed
        assert report.pulses.shape == (int(changed.sum()),)
        assert (report.pulses >= 1).all()  # no stuck devices here
        total_energy += report.energy_j
        previous = now
    writes = store.write_counts()[0]
    np.testing.assert_array_equal(writes, expected)
    pulses = store.pulse_counts()[0]
    assert (pulses >= writes).all()
    stats = store.statistics()
    assert stats["writes_total"] == int(expected.sum())
    assert stats["pulses_total"] == int(pulses.sum()) > stats["writes_total"]
    assert stats["writes_max_per_weight"] == int(expected.max())
    assert stats["program_energy_j"] == pytest.approx(total_energy)
    assert stats["program_time_s"] == pytest.approx(stats["pulses_total"] * (1e-8 + 1e-9))
    # Device-level counters: a differential pair moving across zero programs both devices.
    device_programs = sum(int(p.programs.sum()) for p in store.layers[0].planes)
    assert stats["writes_total"] <= device_programs <= 2 * stats["writes_total"]


def test_only_the_devices_whose_target_changed_are_programmed():
    # 5 levels -1, -0.5, 0, 0.5, 1: 0.5 -> 1 changes G+ only; 0.5 -> -0.5 changes both.
    q = Quantizer.from_config(5)
    store = DeviceStore([np.array([[0.5, 0.5, 0.5]], dtype=np.float32)], q, DeviceConfig(), np.random.default_rng(0))
    report = store.commit(0, np.array([[1.0, -0.5, 0.5]], dtype=np.float32))
    np.testing.assert_array_equal(report.changed, [[True, True, False]])
    np.testing.assert_array_equal(report.pulses, [1, 2])
    plus, minus = store.layers[0].planes
    np.testing.assert_array_equal(plus.pulses, [1, 1, 0])
    np.testing.assert_array_equal(minus.pulses, [0, 1, 0])
    np.testing.assert_array_equal(store.read(0), [[1.0, -0.5, 0.5]])


# --------------------------------------------------------------------------- write-verify
def test_write_verify_converges_within_tolerance():
    cfg = DeviceConfig(c2c_sigma=[0.01, 0.05, 0.03], d2d_gain_sigma=0.3, tolerance=0.01,
                       max_pulses=30, line_capacitance_f=2e-14)
    model = DeviceModel.build(cfg, Quantizer.from_config(5))
    n = 20000
    rng = np.random.default_rng(4)
    plane = DevicePlane.create(n, model, rng)
    state = rng.integers(0, model.states, n).astype(np.uint8)
    target = model.state_g[state].astype(np.float32)
    result = plane.program(np.arange(n), target, state, model, rng)
    pulses = result.pulses
    assert pulses.min() >= 1 and pulses.max() <= cfg.max_pulses
    error = np.abs(plane.g.astype(np.float64) - target)
    tol = cfg.tolerance * (cfg.g_max_s - cfg.g_min_s)
    inside = error <= tol * (1 + 1e-5)
    assert inside.sum() == n - result.verify_failures
    assert (pulses[~inside] == cfg.max_pulses).all()  # only devices that ran out of pulses miss
    assert (pulses[pulses < cfg.max_pulses] >= 1).all() and inside[pulses < cfg.max_pulses].all()
    assert 0 < result.verify_failures < n // 50
    # Every pulse costs at least its line charge and at most a pulse at G_max and above.
    e_min = model.energy_per_pulse(0.0, 0.0)
    assert e_min * pulses.sum() < result.energy_j < model.energy_per_pulse(2 * cfg.g_max_s, 2 * cfg.g_max_s) * pulses.sum()
    np.testing.assert_array_equal(plane.pulses, pulses)
    np.testing.assert_array_equal(plane.programs, np.ones(n))


# --------------------------------------------------------------------------- noise and seeds
def test_read_noise_makes_reads_differ_ideal_reads_equal():
    noisy, _, q = make_store(read_noise_sigma=0.02)
    a, b = noisy.read(0), noisy.read(0)
    assert a.dtype == np.float32 and not np.array_equal(a, b)
    clean = noisy.layers[0].weights
    rel = (a - clean).std() / np.abs(clean).mean()
    assert 0.005 < rel < 0.1
    ideal, _, _ = make_store()
    np.testing.assert_array_equal(ideal.read(0), ideal.read(0))


def test_same_seed_same_conductances_different_seed_different():
    def conductances(seed):
        store, hidden, _ = make_store(seed=seed, **NOISY, stuck_at_fault_rate=0.01,
                                      endurance_model="lognormal", endurance_sigma_ln=1.0)
        store.commit(0, -hidden[0])
        return store.conductance_snapshot()

    a, b, c = conductances(1), conductances(1), conductances(2)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["layer0.g0_s"], c["layer0.g0_s"])
    assert not np.array_equal(a["layer0.stuck0"], c["layer0.stuck0"])


# --------------------------------------------------------------------------- endurance, faults
def test_endurance_wears_devices_out_and_stuck_devices_are_not_reprogrammed():
    cfg = DeviceConfig(endurance_model="lognormal", endurance_median_cycles=2, stuck_state="g_min")
    h = np.zeros((30, 20), dtype=np.float32)  # level 0.0: both devices at G_min
    store = DeviceStore([h.copy()], Quantizer.from_config(3), cfg, np.random.default_rng(0))
    for step in range(6):
        h[:] = 1.0 if step % 2 == 0 else -1.0  # every weight flips: both devices programmed
        store.commit(0, h)
    stats = store.statistics()
    assert stats["stuck_devices"] == stats["stuck_worn_out"] == store.stuck_count() == 2 * h.size
    for plane in store.layers[0].planes:
        assert (plane.programs == 2).all()  # endurance 2: the third attempt wears it out
        np.testing.assert_array_equal(plane.g, np.float32(store.config.g_min_s))
    # G+ is programmed at steps 0 and 1, G- at steps 1 and 2: three writes. From step 3 on
    # both devices are stuck: three level changes that are not writes. Refused requests:
    # G+ at step 2, both at steps 3, 4 and 5 = 7 per weight.
    np.testing.assert_array_equal(store.write_counts()[0], 3)
    assert stats["writes_total"] == 3 * h.size and stats["stuck_skipped_writes"] == 3 * h.size
    assert stats["stuck_requests"] == 7 * h.size
    np.testing.assert_allclose(store.read(0), 0.0, atol=1e-6)  # both stuck at G_min: weight 0

    stuck, hidden, q = make_store(stuck_at_fault_rate=1.0, stuck_at_g_max_fraction=1.0)
    before = stuck.conductance_snapshot()
    report = stuck.commit(0, -hidden[0])
    assert report.changed.any() and report.writes == 0 and report.stuck.all()
    assert (report.pulses == 0).all() and report.energy_j == 0.0
    assert stuck.statistics()["writes_total"] == 0
    assert stuck.statistics()["stuck_skipped_writes"] == int(report.changed.sum())
    np.testing.assert_array_equal(stuck.conductance_snapshot()["layer0.g0_s"], before["layer0.g0_s"])
    assert stuck.statistics()["stuck_fabrication"] == stuck.stuck_count() == 2 * hidden[0].size


@needs_data
def test_tiny_endurance_costs_accuracy():
    worn = run_experiment(
        run_config(device={"name": "worn", "endurance_model": "lognormal",
                           "endurance_median_cycles": 1, "stuck_state": "last"}),
        store_factory=make_device_store,
    )
    ideal = run_experiment(run_config())
    loss = ideal.accuracy["after:fashion"]["fashion"] - worn.accuracy["after:fashion"]["fashion"]
    assert loss > 0.05, (ideal.accuracy, worn.accuracy)


def test_drift_shrinks_conductances_with_time():
    store, _, _ = make_store(drift_nu=0.1)
    before = np.abs(store.read(0)).sum()
    store.advance_time_s(1000.0)
    assert store.now_s == 1000.0
    assert np.abs(store.read(0)).sum() < before
    with pytest.raises(ValueError):
        store.advance_time_s(-1)
    store.advance_time(1.0)  # the alias
    assert store.now_s == 1001.0


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "device, message",
    [
        ({"g_min_s": 1e-4, "g_max_s": 1e-5}, "g_min_s"),
        ({"g_min_s": 1e-5, "g_max_s": 1e-5}, "must be below g_max_s"),
        ({"c2c_sigma": -0.1}, "sigma must be >= 0"),
        ({"relaxation_sigma": [0.01, -0.02]}, "sigma must be >= 0"),
        ({"read_noise_sigma": -0.01}, "read_noise_sigma"),
        ({"d2d_gain_sigma": -1}, "d2d_gain_sigma"),
        ({"tolerance": 0}, "tolerance"),
        ({"tolerance": -0.01}, "tolerance"),
        ({"max_pulses": 0}, "max_pulses"),
        ({"pulse_voltage_v": 0}, "pulse_voltage_v"),
        ({"endurance_model": "weibull"}, "endurance_model"),
        ({"stuck_at_fault_rate": 1.5}, "stuck_at_fault_rate"),
        ({"mapping": "single"}, "mapping"),
        ({"g_max": 1e-4}, "unknown key 'hardware.device.g_max'"),
    ],
)
def test_bad_device_parameters_raise_config_errors(device, message):
    with pytest.raises(ConfigError, match=message) as info:
        validate(RunConfig, run_tree(device={"name": "bad", **device}), "hw.yaml")
    assert "hardware.device" in str(info.value)


def test_presets_validate_and_hardware_files_match_them():
    ideal = load_device_preset("ideal")
    hfo2 = load_device_preset("hfo2-130nm")
    assert ideal.is_ideal and ideal == DeviceConfig(description=ideal.description)
    assert not hfo2.is_ideal
    for hw_file, preset in (("hfo2-device.yaml", hfo2), ("ideal-device.yaml", ideal)):
        config = load_run_config(REPO / "workloads" / "smoke.yaml", REPO / "hwconfigs" / hw_file)
        assert config.hardware.device == preset
    config = load_run_config("workloads/smoke.yaml", "hwconfigs/hfo2-device.yaml")
    assert config.hardware.device.name == "hfo2-130nm"
    raw = yaml.safe_load((REPO / "hwconfigs" / "devices" / "hfo2-130nm.yaml").read_text())
    assert set(raw) == set(DeviceConfig.model_fields)  # the preset states every field
    with pytest.raises(ConfigError, match="no such device preset"):
        load_device_preset("no-such-device")


def test_hfo2_preset_store_statistics_and_plot(tmp_path):
    store, hidden, q = make_store(levels=5, shape=(120, 80), **load_device_preset("hfo2-130nm").model_dump())
    store.commit(0, -hidden[0])
    stats = store.statistics()
    for key in ("writes_total", "writes_max_per_weight", "writes_mean_per_weight", "pulses_total",
                "stuck_devices", "program_energy_j", "program_time_s", "device_programs_max",
                "device_programs_mean"):
        assert key in stats
    assert stats["pulses_per_write_mean"] > 1.0
    snap = store.conductance_snapshot()
    assert snap["layer0.g0_s"].dtype == np.float32 and snap["layer0.levels"].dtype == np.uint8
    path = plot_conductance_distributions(store, tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # State arrays are dense numpy, never per-device objects.
    plane = store.layers[0].planes[0]
    assert plane.g.dtype == np.float32 and plane.programs.dtype == np.uint32
    assert plane.stuck.dtype == bool and plane.endurance.dtype == np.float32
    assert store.layers[0].levels.dtype == np.uint8 and store.layers[0].writes.dtype == np.uint32


def test_weight_read_back_formula():
    cfg = dict(c2c_sigma=0.05, max_pulses=3)
    for mapping in ("differential", "reference"):
        store, _, _ = make_store(mapping=mapping, **cfg)
        model = store.model
        planes = store.layers[0].planes
        g = [p.g.astype(np.float64).reshape(store.layers[0].shape) for p in planes]
        if mapping == "differential":
            expected = (g[0] - g[1]) / (model.config.g_max_s - model.config.g_min_s) * 1.0
        else:
            expected = (g[0] - (model.config.g_min_s + model.config.g_max_s) / 2) / (
                (model.config.g_max_s - model.config.g_min_s) / 2)
        np.testing.assert_allclose(store.read(0), expected, atol=2e-6)


def test_read_arrays_stay_valid():
    clean, hidden, _ = make_store()
    w = clean.read(0)
    kept = w.copy()
    clean.commit(0, -hidden[0])
    np.testing.assert_array_equal(w, kept)  # copy-on-write: a handed-out array never changes
    assert not np.array_equal(clean.read(0), kept)
    noisy, _, _ = make_store(read_noise_sigma=0.05)
    a = noisy.read(0)
    kept = a.copy()
    b = noisy.read(0)
    np.testing.assert_array_equal(a, kept)  # valid until the next-but-one read
    assert a is not b


@needs_data
def test_hfo2_preset_trains_through_run_experiment():
    stores = []

    def factory(config, hidden, rng):
        stores.append(make_device_store(config, hidden, rng))
        return stores[-1]

    config = validate(RunConfig, {**run_tree(), "hardware": yaml.safe_load(
        (REPO / "hwconfigs" / "hfo2-device.yaml").read_text())}, "hfo2")
    result = run_experiment(config, store_factory=factory)
    assert result.accuracy["after:mnist"]["mnist"] > 0.4
    stats = stores[0].statistics()
    assert stats["writes_total"] == sum(int(c.sum()) for c in result.write_counts) > 0
    assert stats["pulses_total"] > stats["writes_total"] and stats["program_energy_j"] > 0


# --------------------------------------------------------------------------- issue 15 device fixes
def test_pulse_energy_uses_conductance_before_and_after_the_pulse():
    # Ideal device, 3 levels -1/0/+1, differential: +1 -> 0 RESETs G+ from 40 uS to 1 uS.
    q = Quantizer.from_config(3)
    store = DeviceStore([np.array([[1.0]], dtype=np.float32)], q, DeviceConfig(), np.random.default_rng(0))
    report = store.commit(0, np.array([[0.0]], dtype=np.float32))
    # V^2 t (G_before + G_after)/2 + V_r^2 t_r G_after = 4 * 1e-8 * 20.5e-6 + 0.04 * 1e-9 * 1e-6
    assert report.energy_j == pytest.approx(8.2e-13 + 4e-17, rel=1e-6)
    # Priced at the target alone it would be 4 * 1e-8 * 1e-6 = 4e-14 J: 20x less.
    set_back = store.commit(0, np.array([[1.0]], dtype=np.float32))  # SET 1 -> 40 uS: same
    assert set_back.energy_j == pytest.approx(8.2e-13 + 0.04 * 1e-9 * 40e-6, rel=1e-6)
    upper = DeviceStore([np.array([[1.0]], dtype=np.float32)], q,
                        DeviceConfig(pulse_energy_conductance="max"), np.random.default_rng(0))
    # 'max': V^2 t max(G_before, G_after) = 4 * 1e-8 * 40e-6
    assert upper.commit(0, np.array([[0.0]], dtype=np.float32)).energy_j == pytest.approx(
        1.6e-12 + 4e-17, rel=1e-6)


def test_write_verify_energy_follows_each_pulse_of_the_trajectory():
    # A device with gain k = 0.5 halves its distance to the target at every pulse:
    # 1 -> 20.5 -> 30.25 -> 35.125 -> 37.5625 -> 38.78 -> 39.39 -> 39.695 uS; the tolerance
    # is 1 % of 39 uS = 0.39 uS, so it stops after 7 pulses (0.305 uS from 40 uS).
    cfg = DeviceConfig(max_pulses=20, tolerance=0.01, line_capacitance_f=1e-14)
    model = DeviceModel.build(cfg, Quantizer.from_config(3))
    plane = DevicePlane.create(1, model, np.random.default_rng(0))
    plane.gain = np.full(1, 0.5, dtype=np.float32)
    result = plane.program(np.array([0]), np.array([40e-6], dtype=np.float32), np.array([2], dtype=np.uint8),
                           model, np.random.default_rng(0))
    trajectory = [1e-6]
    for _ in range(7):
        trajectory.append(trajectory[-1] + 0.5 * (40e-6 - trajectory[-1]))
    assert result.pulses.tolist() == [7]
    expected = sum(4 * 1e-8 * (a + b) / 2 + 0.04 * 1e-9 * b + 1e-14 * (4 + 0.04)
                   for a, b in zip(trajectory, trajectory[1:]))
    assert result.energy_j == pytest.approx(expected, rel=1e-6)
    assert plane.g[0] == pytest.approx(trajectory[-1], rel=1e-6)


def test_stuck_devices_are_counted_apart_from_writes():
    # 3 levels, 4 weights at 0 (G+ = G- = G_min). Weight 0: both devices stuck. Weight 1: G+
    # stuck only. All go to -1 (G- programmed) then weights move to +1 (G+ and G-).
    q = Quantizer.from_config(3)
    store = DeviceStore([np.zeros((1, 4), dtype=np.float32)], q, DeviceConfig(), np.random.default_rng(0))
    plus, minus = store.layers[0].planes
    plus.stuck[[0, 1]] = True
    minus.stuck[0] = True
    report = store.commit(0, np.full((1, 4), -1.0, dtype=np.float32))
    np.testing.assert_array_equal(report.changed, [[True] * 4])
    np.testing.assert_array_equal(report.stuck, [True, False, False, False])  # weight 0: G- stuck
    np.testing.assert_array_equal(report.pulses, [0, 1, 1, 1])
    assert report.writes == 3
    report = store.commit(0, np.full((1, 4), 1.0, dtype=np.float32))
    np.testing.assert_array_equal(report.stuck, [True, False, False, False])
    np.testing.assert_array_equal(report.pulses, [0, 1, 2, 2])  # weight 1: its G+ is stuck
    np.testing.assert_array_equal(store.write_counts()[0], [[0, 2, 2, 2]])
    stats = store.statistics()
    assert stats["writes_total"] == 6 and stats["stuck_skipped_writes"] == 2
    assert stats["stuck_requests"] == 4  # G- of weight 0 twice, G+ of weights 0 and 1 once
    np.testing.assert_array_equal(plus.programs, [0, 0, 1, 1])
    np.testing.assert_array_equal(minus.programs, [0, 2, 2, 2])


def test_pulse_steps_take_the_max_over_the_pair_and_the_engine_uses_them():
    from archsim.config import HardwareConfig
    from archsim.engine.dataflow import ModelInfo
    from archsim.engine.schedule import Engine
    from archsim.hw.chip import build_chip
    from archsim.interconnect.network import Network
    from archsim.interconnect.topology import build_graph
    from archsim.mapping.mapper import map_network

    # Ideal device, +1 -> -1: G+ RESET and G- SET, one pulse each: 2 pulses, 1 step.
    q = Quantizer.from_config(3)
    hidden = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    store = DeviceStore([hidden.copy()], q, DeviceConfig(), np.random.default_rng(0))
    report = store.commit(0, np.array([[-1.0, 0.0, 1.0], [-1.0, 0.0, 0.0]], dtype=np.float32))
    np.testing.assert_array_equal(report.pulses, [2, 1, 1, 2])
    np.testing.assert_array_equal(report.pulse_steps, [1, 1, 1, 1])
    np.testing.assert_array_equal(report.index, np.flatnonzero(report.changed))  # [0, 1, 2, 3]
    hw = HardwareConfig.model_validate({"tile": {"rows": 8, "cols": 8}, "programming": {"row_parallel": True}})
    chip = build_chip(hw, 3)
    mapping = map_network((2, 3), 8, 8, "differential", None)
    net = Network(build_graph(mapping.tiles_available, hw.interconnect), False, 64, 1, 1000)
    engine = Engine(chip, mapping, net, ModelInfo((2, 3), True, True, False, 3))
    plan, _ = engine.write_plan([report])
    # One tile; rows 0 and 1 each take one pulse step (pair pulsed together), 6 pulses in all.
    assert (plan[0].changes, plan[0].pulses, plan[0].steps) == (4, 6, 2)


@needs_data
def test_summary_names_writes_per_weight_and_per_device(tmp_path):
    from archsim.runner import execute

    config = run_config(device={"name": "ideal"})
    summary, result, hardware = execute(config)
    store = hardware.device_store
    writes = summary["writes"]
    assert writes["max_per_weight"] == int(max(c.max() for c in result.write_counts))
    per_device = max(int(p.max()) for planes in store.device_write_counts() for p in planes)
    assert writes["max_per_device"] == per_device <= writes["max_per_weight"]
    assert writes["devices"] == 2 * writes["weights"] and writes["stuck_skipped"] == 0
    from archsim.runner import device_arrays

    saved = device_arrays(result, store)  # devices.npz: per weight and per device, compact
    np.testing.assert_array_equal(saved["layer0.programs1"], store.device_write_counts()[0][1])
    np.testing.assert_array_equal(saved["layer0.writes"], result.write_counts[0])
    assert saved["layer0.programs1"].dtype == np.uint8  # counts below 256
    software = execute(run_config())[0]["writes"]
    assert software["max_per_weight"] == software["max_per_device"] > 0  # one cell per weight


def test_per_device_writes_differ_from_per_weight_writes():
    # +1 -> 0 -> -1 -> 0 -> +1: four writes of the weight, each programs one device only,
    # so each device of the pair is written twice.
    q = Quantizer.from_config(3)
    store = DeviceStore([np.ones((1, 1), dtype=np.float32)], q, DeviceConfig(), np.random.default_rng(0))
    for value in (0.0, -1.0, 0.0, 1.0):
        store.commit(0, np.full((1, 1), value, dtype=np.float32))
    stats = store.statistics()
    assert stats["writes_max_per_weight"] == 4 and stats["device_programs_max"] == 2
    from archsim.summary import device_write_statistics

    section = device_write_statistics(stats)
    assert (section["max_per_weight"], section["max_per_device"]) == (4, 2)


def test_drift_read_follows_the_clock_from_each_devices_programming_time():
    store, hidden, _ = make_store(levels=3, shape=(4, 5), drift_nu=0.1, drift_t0_s=2.0)
    layer = store.layers[0]
    g0 = [p.g.astype(np.float64).copy() for p in layer.planes]
    wps = store.model.weight_per_siemens
    store.advance_time_s(6.0)  # factor (6 + 2)/2 = 4 -> 4^-0.1
    w = store.read(0)
    np.testing.assert_allclose(w.ravel(), (g0[0] - g0[1]) * 4.0**-0.1 * wps, rtol=1e-5, atol=1e-7)
    assert store.read(0) is w  # cached until the clock moves or a commit changes the layer
    target = hidden[0].copy()
    target[0, 0] = -target[0, 0] if abs(target[0, 0]) > 0.5 else 1.0
    store.commit(0, target)  # weight (0, 0) reprogrammed at t = 6 s
    store.advance_time_s(2.0)  # it is 2 s old (factor 2^-0.1), the others 8 s (5^-0.1)
    w = store.read(0)
    factor = {0: 5.0**-0.1, 1: 2.0**-0.1}  # programming event -> drift factor now
    g = [p.g.astype(np.float64) * [factor[e] for e in p.program_event] for p in layer.planes]
    assert {int(e) for p in layer.planes for e in p.program_event} == {0, 1}
    np.testing.assert_allclose(w.ravel(), (g[0] - g[1]) * wps, rtol=1e-5, atol=1e-7)


@needs_data
def test_drift_changes_read_conductances_over_simulated_time_in_a_run():
    from archsim.runner import execute

    device = {"name": "drifting", "drift_nu": 0.05, "drift_t0_s": 1e-6}
    summary, _, hardware = execute(run_config(device=device))
    store = hardware.device_store
    simulated = summary["latency_s"]["total"]
    assert simulated > 0 and store.now_s == pytest.approx(simulated, rel=1e-9)
    # The oldest devices (programmed at creation, never rewritten) have aged the whole run.
    layer = store.layers[0]
    plus, minus = layer.planes
    never = np.flatnonzero((plus.program_event == 0) & (minus.program_event == 0))
    assert never.size > 0
    factor = ((simulated + 1e-6) / 1e-6) ** -0.05
    read = store.read(0).ravel()[never]
    expected = (plus.g[never].astype(np.float64) - minus.g[never]) * factor * store.model.weight_per_siemens
    np.testing.assert_allclose(read, expected, rtol=1e-4, atol=1e-7)
    assert np.abs(read).sum() < 0.9 * np.abs(layer.weights.ravel()[never]).sum()
    # A fixed pace per batch instead of the engine's latency: 1 s per training/eval batch.
    paced = execute(run_config(device={**device, "seconds_per_batch": 1.0}))
    batches = paced[0]["architecture"]["batches"]
    assert paced[2].device_store.now_s == batches["train"] + batches["eval"]


def test_device_clock_without_an_engine_advances_by_programming_time():
    from archsim.devices.clock import DeviceClock

    store, hidden, _ = make_store(levels=3, shape=(3, 3), drift_nu=0.1)
    clock = DeviceClock(None, [store])
    report = store.commit(0, -hidden[0])
    clock.on_train_batch(10, [report])
    assert store.now_s == pytest.approx(int(report.pulses.sum()) * (1e-8 + 1e-9))
    before = store.now_s
    clock.on_eval_batch(10)
    assert store.now_s == before
    store.tick_batch(before + 7.0)  # the engine's clock after a batch: the store follows it
    assert store.now_s == pytest.approx(before + 7.0)
    paced, _, _ = make_store(levels=3, shape=(3, 3), drift_nu=0.1, seconds_per_batch=2.5)
    DeviceClock(None, [paced], elapsed_s=lambda: 100.0).on_eval_batch(10)
    paced.tick_batch(200.0)
    assert paced.now_s == 5.0  # a fixed pace wins over the engine's time


def test_report_histogram_uses_per_device_writes_when_saved():
    from archsim.report.run_report import per_device_counts

    arrays = {"layer0.writes": np.array([[4]]), "layer0.programs0": np.array([[2]]),
              "layer0.programs1": np.array([[2]]), "layer0.pulses0": np.array([[3]])}
    programs = per_device_counts(arrays, "programs")
    assert list(programs) == ["layer0 plane0", "layer0 plane1"] and int(programs["layer0 plane0"].max()) == 2
    assert list(per_device_counts(arrays, "writes")) == ["layer0"]
    assert list(per_device_counts(arrays, "pulses")) == ["layer0 plane0"]


def test_box_muller_read_noise_has_the_same_distribution():
    store, _, _ = make_store(shape=(301, 333), read_noise_sigma=0.05, read_noise_sampler="box-muller")
    state = store.layers[0]
    z = ((store.read(0) - state.weights) / state.read_std).ravel().astype(np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01  # 100 233 draws: se 0.003, 0.002
    # Two-sided tail fractions of N(0, 1) beyond 1, 2, 3 sigma: 0.3173, 0.0455, 0.0027.
    for k, p in ((1, 0.3173), (2, 0.0455), (3, 0.0027)):
        assert abs(np.mean(np.abs(z) > k) - p) < 5 * np.sqrt(p * (1 - p) / z.size) + 1e-4
    assert np.abs(z).max() < 5.8
    ziggurat, _, _ = make_store(shape=(301, 333), read_noise_sigma=0.05)
    assert not np.array_equal(ziggurat.read(0), store.read(0))  # a different stream of draws


def test_relaxation_spread_grows_with_simulated_time():
    # Spread 0.02 dG = 0.78 uS 1 s after the write; growth 0.2 per decade: at 1e4 s the spread
    # is 1.8x, so each device has moved by its amplitude x sqrt(1.8^2 - 1) = 1.4967 more.
    store, _, _ = make_store(levels=3, shape=(200, 100), relaxation_sigma=0.02,
                             relaxation_growth_per_decade=0.2)
    layer = store.layers[0]
    np.testing.assert_allclose(store.read(0), layer.weights, atol=2e-6)  # t = 0: 1-s spread only
    store.advance_time_s(1e4)
    g_eff = [p.g.astype(np.float64) + p.relax_amplitude * np.sqrt(1.8**2 - 1) for p in layer.planes]
    g_eff = [np.maximum(g, 0.0) for g in g_eff]
    np.testing.assert_allclose(store.read(0).ravel(), (g_eff[0] - g_eff[1]) * store.model.weight_per_siemens,
                               rtol=1e-5, atol=2e-6)
    amplitude = layer.planes[0].relax_amplitude / (0.02 * (store.config.g_max_s - store.config.g_min_s))
    assert abs(amplitude.std() - 1.0) < 0.03  # one unit draw per programmed device
    plain, _, _ = make_store(levels=3, shape=(200, 100), relaxation_sigma=0.02)
    assert plain.layers[0].planes[0].relax_amplitude is None  # off by default: no draws, no array


@pytest.mark.parametrize("name, levels, device, expected", [
    ("hfo2", 3, None, (0.04948688681005464, 0.04715250131659099, 59.82261432176165, 8520, 8357)),
    ("noisy", 5, dict(c2c_sigma=0.03, max_pulses=30, tolerance=0.01, d2d_gain_sigma=0.2,
                      read_noise_sigma=0.02, stuck_at_fault_rate=0.01, endurance_model="lognormal",
                      endurance_median_cycles=3, endurance_sigma_ln=1.0),
     (0.04936034959473545, None, 9.630144823204319, 18688, None)),
])
def test_same_seed_gives_the_draws_of_the_reference_implementation(name, levels, device, expected):
    """Conductances, pulses and reads pinned to the values the device store gave before its
    speed work (same seed, same draws in the same order): a change of draw order fails here."""
    device = load_device_preset("hfo2-130nm").model_dump() if device is None else device
    rng = np.random.default_rng(0)
    h = rng.uniform(-1.2, 1.2, (70, 50)).astype(np.float32)
    store = DeviceStore([h.copy()], Quantizer.from_config(levels), DeviceConfig(**device),
                        np.random.default_rng(1))
    for _ in range(8):
        h += rng.normal(0, 0.3, h.shape).astype(np.float32)
        store.commit(0, h)
        read = store.read(0)
        store.advance_time_s(10.0)
    planes = store.layers[0].planes
    g0, g1, read_sum, pulses0, pulses1 = expected
    assert float(planes[0].g.astype(np.float64).sum()) == g0
    assert g1 is None or float(planes[1].g.astype(np.float64).sum()) == g1
    assert float(read.astype(np.float64).sum()) == read_sum
    assert int(planes[0].pulses.sum()) == pulses0
    assert pulses1 is None or int(planes[1].pulses.sum()) == pulses1


# --------------------------------------------------------------------------- read-noise kernel
def _numpy_read_noise(rng: np.random.Generator, weights: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The reference: what DeviceStore.read computed with numpy before the compiled kernel."""
    out = np.empty(weights.shape, dtype=np.float32)
    rng.standard_normal(out.shape, dtype=np.float32, out=out)
    out *= std
    out += weights
    return out


@pytest.mark.parametrize("shape, buffered", [((784, 4096), False), ((784, 4096), True), ((1,), True),
                                             ((2,), False), ((3, 5), True), ((1001,), False)])
def test_read_noise_kernel_gives_numpys_draws_and_generator_state(shape, buffered):
    """Every float32 draw bit for bit, and the generator state after (the buffered half-word
    included), over 3.2 M draws: ~1 % of them take the wedge branch, ~900 the tail."""
    from archsim.devices.normal import fast_path_ok, scaled_normal_into

    assert fast_path_ok()
    init = np.random.default_rng(11)
    weights = init.uniform(-1, 1, shape).astype(np.float32)
    std = (init.random(shape, dtype=np.float32) * np.float32(0.05)).astype(np.float32)
    std.ravel()[::7] = 0.0  # stuck-at-zero conductances: std 0 (and -0.0 draws)
    ours, theirs = np.random.default_rng(5), np.random.default_rng(5)
    for trial in range(2):
        if buffered:  # a half-word left in the generator's buffer by an odd number of words
            ours.random(1, dtype=np.float32), theirs.random(1, dtype=np.float32)
        got = np.empty(shape, dtype=np.float32)
        scaled_normal_into(ours, weights, std, got)
        want = _numpy_read_noise(theirs, weights, std)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
        assert ours.bit_generator.state == theirs.bit_generator.state
        assert ours.random() == theirs.random()  # the streams go on together
    if weights.size > 10**6:
        z = (want - weights)[std > 0] / std[std > 0]
        assert np.count_nonzero(np.abs(z) > 3.6541528853610088) > 300  # the tail branch ran


def test_read_noise_kernel_both_modes_and_falls_back_for_other_generators():
    from archsim.devices.normal import _fill, scaled_normal_into

    weights = np.linspace(-1, 1, 20_000, dtype=np.float32)
    std = np.full(20_000, 0.1, dtype=np.float32)
    big_w, big_std = np.resize(weights, 300_000), np.resize(std, 300_000)
    for mode in ("sequential", "split"):  # one pass, or split over two threads
        ours, theirs = np.random.default_rng(8), np.random.default_rng(8)
        for k in range(4):
            if k % 2:  # a buffered half-word first, or none
                ours.random(1, dtype=np.float32), theirs.random(1, dtype=np.float32)
            got = np.empty_like(big_w)
            _fill(ours, big_w, big_std, got, mode=mode)
            assert np.array_equal(got, _numpy_read_noise(theirs, big_w, big_std))
            assert ours.bit_generator.state == theirs.bit_generator.state
        assert ours.random() == theirs.random()
    philox, reference = np.random.Generator(np.random.Philox(3)), np.random.Generator(np.random.Philox(3))
    got = np.empty_like(weights)
    scaled_normal_into(philox, weights, std, got)  # not a PCG64: numpy's own draws
    assert np.array_equal(got, _numpy_read_noise(reference, weights, std))
    with pytest.raises(ValueError, match="fill mode"):
        _fill(np.random.default_rng(0), weights, std, got, mode="pipeline")


def test_compiled_pcg64_steps_as_numpys():
    """The fill's own PCG64 step (128-bit LCG, XSL-RR output) gives numpy's outputs, from any
    word position, with the buffered half-word numpy would hold."""
    from archsim.devices import normal, pcg64

    bitgen = np.random.PCG64(11)
    bitgen.random_raw(5)
    state = bitgen.state
    outputs = np.random.PCG64(11)
    outputs.state = state
    raw = outputs.random_raw(8)
    words = raw.view(np.uint32)  # little-endian: low half first
    for pos in range(6):
        gen = pcg64.generator_at(state, pos)
        z = np.empty(1, dtype=np.float32)
        starts = np.empty(1, dtype=np.int32)
        _, after = normal._ziggurat_into(gen, pos, z, normal._NO_SCALE, normal._NO_SCALE, 0, 1,
                                         normal._NO_STOP, starts)
        walker = np.random.PCG64()
        walker.state = state
        walker.advance((after + 1) // 2)
        assert (int(gen[0]) << 64 | int(gen[1])) == walker.state["state"]["state"]
        assert int(gen[5]) == after % 2
        assert int(gen[4]) == int(words[after if after % 2 else after - 1])


def test_split_read_noise_fill_gives_numpys_draws_whichever_way_the_halves_meet():
    """The split fill's two passes meet where the true draws cross the cut, or the worker
    stops short, or (rarely) they never meet and one thread goes on: on thousands of small
    fills, and on each way forced, the fill ends with numpy's draws and generator state."""
    from archsim.devices import normal, pcg64

    normal.SPLIT_OUTCOMES.clear()
    for n in (1, 3, 200, 1000, 5000):
        weights = np.linspace(-1, 1, n, dtype=np.float32)
        std = np.full(n, 0.25, dtype=np.float32)
        for seed in range(1000):
            ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
            if seed % 2:  # a buffered half-word first
                ours.random(1, dtype=np.float32), theirs.random(1, dtype=np.float32)
            got = np.empty_like(weights)
            normal._fill(ours, weights, std, got, mode="split")
            assert np.array_equal(got.view(np.uint32), _numpy_read_noise(theirs, weights, std).view(np.uint32))
            assert ours.bit_generator.state == theirs.bit_generator.state
    assert normal.SPLIT_OUTCOMES["met"] > 1000
    n, cut = 50_000, 25_000
    weights, std = np.linspace(-1, 1, n, dtype=np.float32), np.full(n, 0.25, dtype=np.float32)
    reference = np.random.default_rng(3)
    want = _numpy_read_noise(reference, weights, std)
    state = np.random.default_rng(3).bit_generator.state
    z, starts = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.int32)
    drawn, ahead_end = normal._ziggurat_into(pcg64.generator_at(state, cut), cut, z, normal._NO_SCALE,
                                             normal._NO_SCALE, 0, n, normal._NO_STOP, starts)
    for case in ("met", "never met", "met, worker stopped early"):
        got = np.empty(n, dtype=np.float32)
        gen = pcg64.generator_at(state, 0)
        i, pos = normal._ziggurat_into(gen, 0, got, std, weights, 0, n, cut, normal._NO_STARTS)
        their_starts, their_drawn, their_end = starts, drawn, ahead_end
        if case == "never met":
            their_starts = starts + 1_000_000
        elif case != "met":
            their_drawn = int(np.searchsorted(starts, pos)) + 3
            their_end = int(starts[their_drawn])
        normal.SPLIT_OUTCOMES.clear()
        gen = normal._join_halves(state, gen, i, pos, z, their_starts, their_drawn, their_end, got, std, weights)
        assert normal.SPLIT_OUTCOMES == {case: 1}
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), case
        bitgen = np.random.PCG64()
        pcg64.set_generator(bitgen, state, gen)
        assert bitgen.state == reference.bit_generator.state, case


def test_ziggurat_tables_match_the_installed_numpy():
    """The tables reproduce numpy's thresholds exactly: a magnitude just below ki[idx] is
    accepted on one 32-bit word, ki[idx] itself is not (probed with crafted PCG64 states),
    and a magnitude of 1 returns wi[idx] itself."""
    from archsim.devices.normal import ziggurat_tables

    ki, wi, _ = ziggurat_tables()
    mult = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier (O'Neill 2014)
    inverse, mask = pow(mult, -1, 1 << 128), (1 << 128) - 1
    bitgen = np.random.PCG64(0)
    gen = np.random.Generator(bitgen)

    def draw(word: int) -> tuple[float, int]:
        """One float32 normal whose first word is ``word``; (value, words consumed)."""
        state = bitgen.state
        start = ((word - state["state"]["inc"]) * inverse) & mask  # next output (rotation 0) = word
        state["state"]["state"], state["has_uint32"] = start, 0
        bitgen.state = state
        value = float(gen.standard_normal(1, dtype=np.float32)[0])
        after, steps, s = bitgen.state, 0, start
        while s != after["state"]["state"]:
            s, steps = (s * mult + after["state"]["inc"]) & mask, steps + 1
        return value, 2 * steps - after["has_uint32"]

    for idx in range(256):
        value, used = draw((1 << 9) | idx)
        assert value == wi[idx] or idx == 1  # strip 1 has ki = 0: every draw enters the wedge
        k = int(ki[idx])
        if k > 0:
            assert draw(((k - 1) << 9) | idx)[1] == 1
        assert draw((k << 9) | idx)[1] > 1



def test_read_noise_signs_and_zero_magnitudes_on_crafted_words():
    """The sign (bit 8 of a word) on every strip and magnitudes 0, 1 and ki - 1: each output
    crafted so that its two words reach the kernel's fast lane together, the draws equal
    numpy's bit for bit (a zero magnitude with the sign set is -0.0) and the words used too."""
    from archsim.devices.normal import fast_path_ok, scaled_normal_into, ziggurat_tables

    assert fast_path_ok()
    ki, _, _ = ziggurat_tables()
    mult = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier (O'Neill 2014)
    inverse, mask = pow(mult, -1, 1 << 128), (1 << 128) - 1
    ours, theirs = np.random.Generator(np.random.PCG64(0)), np.random.Generator(np.random.PCG64(0))
    # weights -0.0 and std 1: out = z * 1 + -0.0 is z itself, its sign on a zero included
    zero, one = np.full(3, -0.0, dtype=np.float32), np.ones(3, dtype=np.float32)
    negative_zeros = 0
    for idx in range(256):
        for rabs in sorted({0, 1, max(int(ki[idx]) - 1, 0)}):
            for sign in (0, 1):
                low = (rabs << 9) | (sign << 8) | idx
                high = (rabs << 9) | ((1 - sign) << 8) | (255 - idx)
                state = theirs.bit_generator.state
                word = (high << 32) | low  # the next output: state high half 0, no rotation
                state["state"]["state"] = ((word - state["state"]["inc"]) * inverse) & mask
                state["has_uint32"] = 0
                ours.bit_generator.state = theirs.bit_generator.state = state
                got = np.empty(3, dtype=np.float32)
                scaled_normal_into(ours, zero, one, got)
                want = theirs.standard_normal(3, dtype=np.float32)
                assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (idx, rabs, sign)
                assert ours.bit_generator.state == theirs.bit_generator.state
                negative_zeros += int(want.view(np.uint32)[0] == 0x80000000)
    assert negative_zeros == 256  # strip 1 (ki = 0) through the wedge, which takes z = 0 always


# --------------------------------------------------------------------------- float64 normals
@pytest.mark.parametrize("n, buffered", [(3_000_000, False), (3_000_000, True), (1, True), (2, False),
                                         (3, True), (1001, False), (65_537, True)])
def test_float64_kernel_gives_numpys_draws_and_generator_state(n, buffered):
    """Every float64 draw bit for bit and the generator state after, the buffered half-word
    of a float32 draw included (float64 draws leave it alone): over 3 M draws ~1 % take the
    wedge branch and ~800 the tail."""
    from archsim.devices.normal import fast_path64_ok, standard_normal_into

    assert fast_path64_ok()
    ours, theirs = np.random.default_rng(21), np.random.default_rng(21)
    for _ in range(2):
        if buffered:  # an odd number of 32-bit words so far: the upper half-word is buffered
            ours.random(1, dtype=np.float32), theirs.random(1, dtype=np.float32)
        got = np.full(n, np.nan)
        standard_normal_into(ours, got)
        want = theirs.standard_normal(n)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
        assert ours.bit_generator.state == theirs.bit_generator.state
        assert ours.random(dtype=np.float32) == theirs.random(dtype=np.float32)  # on together
    if n > 10**6:
        assert np.count_nonzero(np.abs(want) > 3.6541528853610088) > 400  # the tail branch ran


def test_normal_stream_of_many_fills_equals_numpys_draws_in_a_row():
    """The write-verify's stream: fills of many sizes in a row (as its pulse rounds make)
    give numpy's draws and, on leaving, numpy's generator state, buffered half-word kept;
    another bit generator gets numpy's own draws."""
    from archsim.devices.normal import NormalStream

    for make in (np.random.PCG64, np.random.Philox):
        ours, theirs = np.random.Generator(make(9)), np.random.Generator(make(9))
        ours.random(1, dtype=np.float32), theirs.random(1, dtype=np.float32)
        sizes = [5000, 1200, 300, 17, 1, 0, 2]
        with NormalStream(ours) as stream:
            got = [np.empty(k) for k in sizes]
            for out in got:
                stream.fill(out)
        for out in got:
            assert np.array_equal(out.view(np.uint64), theirs.standard_normal(out.size).view(np.uint64))
        if make is np.random.PCG64:  # (Philox's state holds arrays)
            assert ours.bit_generator.state == theirs.bit_generator.state
        assert ours.random(dtype=np.float32) == theirs.random(dtype=np.float32)
        assert ours.random() == theirs.random()


def test_float64_normals_fall_back_to_numpy_for_other_generators_and_a_failed_check(monkeypatch):
    from archsim.devices import normal

    philox, reference = np.random.Generator(np.random.Philox(3)), np.random.Generator(np.random.Philox(3))
    got = normal.standard_normal(philox, 10_000)  # not a PCG64: numpy's own draws
    assert np.array_equal(got, reference.standard_normal(10_000))
    assert philox.random() == reference.random()  # the streams go on together
    for bad in (np.empty(10, dtype=np.float32), np.empty(20)[::2]):  # would not be filled in place
        with pytest.raises(ValueError, match="C-contiguous float64"):
            normal.standard_normal_into(np.random.default_rng(0), bad)
    monkeypatch.setitem(normal._CHECKED, "float64", False)  # as if this numpy drew differently
    ours, theirs = np.random.default_rng(4), np.random.default_rng(4)
    assert np.array_equal(normal.standard_normal(ours, 5000), theirs.standard_normal(5000))
    assert ours.bit_generator.state == theirs.bit_generator.state


def test_float64_kernel_on_crafted_first_words_hits_every_branch():
    """numpy's float64 thresholds, probed with crafted PCG64 states whose next output is a
    chosen word: a magnitude of 1 returns wi[idx], ki[idx] - 1 is accepted on one word, ki[idx]
    takes the wedge (or, in strip 0, the tail), and the kernel's values and words consumed
    equal numpy's in every case, also when a single draw has to fetch words one at a time."""
    from archsim.devices.normal import fast_path64_ok, standard_normal
    from archsim.devices.ziggurat_double import KI_DOUBLE, WI_DOUBLE

    assert fast_path64_ok()  # else standard_normal is numpy's own
    mult = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier (O'Neill 2014)
    inverse, mask = pow(mult, -1, 1 << 128), (1 << 128) - 1
    ours, theirs = np.random.PCG64(0), np.random.PCG64(0)

    def craft(word: int, n: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``n`` float64 normals from the state whose next output is ``word``, ours and
        numpy's; the third value is how many 64-bit outputs numpy used."""
        state = theirs.state
        start = ((word - state["state"]["inc"]) * inverse) & mask  # next output (rotation 0) = word
        state["state"]["state"], state["has_uint32"], state["uinteger"] = start, 1, 0xDEADBEEF
        ours.state = theirs.state = state
        want = np.random.Generator(theirs).standard_normal(n)
        got = standard_normal(np.random.Generator(ours), n)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
        assert ours.state == theirs.state  # the buffered half-word kept
        after, steps, s = theirs.state, 0, start
        while s != after["state"]["state"]:
            s, steps = (s * mult + after["state"]["inc"]) & mask, steps + 1
        return got, want, steps

    branches = {"one word": 0, "wedge": 0, "tail": 0}
    for idx in range(256):
        for sign in (0, 1):
            got, _, used = craft((1 << 9) | (sign << 8) | idx, 1)
            if idx != 1:  # strip 1 has ki = 0: every draw there enters the wedge
                assert got[0] == (-1) ** sign * WI_DOUBLE[idx] and used == 1
            k = int(KI_DOUBLE[idx])
            if k > 0:
                assert craft(((k - 1) << 9) | (sign << 8) | idx, 1)[2] == 1
                branches["one word"] += 1
            for n in (1, 4):
                _, want, used = craft((k << 9) | (sign << 8) | idx, n)
                assert used > n
            branches["tail" if idx == 0 else "wedge"] += 1
            if idx == 0:  # the farthest magnitude: deep in the tail
                _, want, used = craft((0x000FFFFFFFFFFFFF << 9) | (sign << 8), 1)
                assert abs(want[0]) > 3.6541528853610088 and used >= 3
    assert branches == {"one word": 2 * 255, "wedge": 2 * 255, "tail": 2}


def test_float64_kernel_pairs_on_crafted_words_in_either_slot():
    """The float64 kernel takes two outputs at a time, the second computed from the same state
    as the first (two LCG steps at once): a word that is not accepted at once (the wedge's and
    the tail's thresholds, every strip and sign) as the first or the second of a pair, or as a
    last draw left alone, gives numpy's draws and generator state; and the two-step outputs
    and states are numpy's."""
    from archsim.devices import pcg64
    from archsim.devices.normal import fast_path64_ok, standard_normal
    from archsim.devices.ziggurat_double import KI_DOUBLE

    assert fast_path64_ok()  # else standard_normal is numpy's own
    mult = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier (O'Neill 2014)
    inverse, mask = pow(mult, -1, 1 << 128), (1 << 128) - 1
    ours, theirs = np.random.PCG64(5), np.random.PCG64(5)
    for _ in range(20):  # the two-step outputs and states, from random states
        theirs.random_raw(int(theirs.random_raw()) % 7)
        state = theirs.state["state"]
        s, inc = state["state"], state["inc"]
        inc2 = pcg64.two_step_increment(np.uint64(inc >> 64), np.uint64(inc & 0xFFFFFFFFFFFFFFFF))
        hi1, lo1, out1, hi2, lo2, out2 = pcg64.pcg64_next_two(
            np.uint64(s >> 64), np.uint64(s & 0xFFFFFFFFFFFFFFFF), np.uint64(inc >> 64),
            np.uint64(inc & 0xFFFFFFFFFFFFFFFF), *map(np.uint64, inc2))  # (Python ints back from numba)
        want = theirs.random_raw(2)
        assert (int(out1), int(out2)) == (int(want[0]), int(want[1]))
        assert (int(hi2) << 64 | int(lo2)) == theirs.state["state"]["state"]
        assert (int(hi1) << 64 | int(lo1)) == (s * mult + inc) & mask

    def craft(word: int, back: int, n: int) -> None:
        """``n`` float64 normals from the state whose output ``back`` steps on is ``word``."""
        state = theirs.state
        inc = state["state"]["inc"]
        start = ((word - inc) * inverse) & mask  # its next output (rotation 0) is word
        for _ in range(back):
            start = ((start - inc) * inverse) & mask
        state["state"]["state"] = start
        ours.state = theirs.state = state
        want = np.random.Generator(theirs).standard_normal(n)
        got = standard_normal(np.random.Generator(ours), n)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), (hex(word), back, n)
        assert ours.state == theirs.state

    for idx in range(256):
        for sign in (0, 1):
            word = (int(KI_DOUBLE[idx]) << 9) | (sign << 8) | idx  # the wedge (strip 0: the tail)
            for back, n in ((0, 2), (0, 5), (1, 2), (1, 4), (2, 3), (3, 4)):  # first, second, left alone
                craft(word, back, n)


def test_device_store_programs_the_same_with_numpys_float64_draws(monkeypatch):
    """Every float64 draw of programming (cycle-to-cycle spread per pulse round, relaxation,
    the slow-relaxation direction) through the kernel gives the same store as numpy's own
    draws: conductances, relaxation amplitudes, reads and the generator state."""
    from archsim.devices import normal

    device = dict(NOISY, relaxation_sigma=0.02, relaxation_growth_per_decade=0.01)

    def run() -> tuple:
        store, hidden, _ = make_store(shape=(90, 70), **device)
        moved = hidden[0] + np.random.default_rng(2).normal(0, 0.4, hidden[0].shape).astype(np.float32)
        store.commit(0, moved)
        store.commit(0, hidden[0])
        planes = store.layers[0].planes
        return ([p.g.copy() for p in planes], [p.relax_amplitude.copy() for p in planes],
                [int(p.pulses.sum()) for p in planes], store.read(0), store.rng.bit_generator.state)

    fast = run()
    monkeypatch.setitem(normal._CHECKED, "float64", False)  # numpy's standard_normal everywhere
    slow = run()
    for a, b in zip(fast[:2], slow[:2]):
        assert all(np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(a, b))
    assert fast[2] == slow[2] and sum(fast[2]) > 2 * 6300  # extra pulses: the spread was drawn
    assert np.array_equal(fast[3], slow[3]) and fast[4] == slow[4]
    assert np.any(fast[1][0] != 0)


# --------------------------------------------------------------------------- compiled loops
def _reference_write_verify(plane, dev, target, state, model, rng):
    """DevicePlane._write_verify as numpy code (before the compiled pulse loop): the reference."""
    cfg = model.config
    n = dev.size
    g = plane.g[dev].astype(np.float64)
    tgt = target.astype(np.float64)
    gain = None if plane.gain is None else plane.gain[dev].astype(np.float64)
    sigma = model.state_c2c[state] if model.state_c2c.any() else None
    pulses = np.zeros(n, dtype=np.uint32)
    tol = model.tolerance_s
    pulse_g = verify_g = 0.0
    pulse_count = 0
    trapezoid = cfg.pulse_energy_conductance == "trapezoid"
    pos = None
    for _ in range(cfg.max_pulses):
        if pos is None:
            g_a, t_a = g, tgt
            new = tgt.copy() if gain is None else g + gain * (tgt - g)
            if sigma is not None:
                new += sigma * rng.standard_normal(n)
        else:
            if pos.size == 0:
                break
            g_a, t_a = g[pos], tgt[pos]
            new = t_a.copy() if gain is None else g_a + gain[pos] * (t_a - g_a)
            if sigma is not None:
                new += sigma[pos] * rng.standard_normal(pos.size)
        np.maximum(new, 0.0, out=new)
        total_new = float(new.sum())
        pulse_g += 0.5 * (float(g_a.sum()) + total_new) if trapezoid else float(np.maximum(g_a, new).sum())
        verify_g += total_new
        outside = np.abs(new - t_a) > tol
        if pos is None:
            pulse_count += n
            g[:] = new
            pulses += np.uint32(1)
            pos = np.flatnonzero(outside)
        else:
            pulse_count += int(pos.size)
            g[pos] = new
            pulses[pos] += np.uint32(1)
            pos = pos[outside]
    failures = int(pos.size)
    if model.state_relax.any():
        g += model.state_relax[state] * rng.standard_normal(n)
        np.maximum(g, 0.0, out=g)
    plane.g[dev] = g
    return pulses, failures, float(model.program_energy_j(pulse_g, verify_g, pulse_count))


def _reference_program(plane, index, target_g, target_state, model, rng, event=0, count=True):
    """DevicePlane.program as numpy code (before the compiled gathers and scatters): the
    reference. Returns (pulses, energy_j, verify_failures, newly_stuck, stuck)."""
    n = index.size
    pulses_out = np.zeros(n, dtype=np.uint32)
    skip = plane.stuck[index]
    newly_stuck = 0
    if plane.endurance is not None and count:
        source = plane.pulses if model.config.endurance_unit == "pulses" else plane.programs
        worn = ~skip & (source[index] >= plane.endurance[index])
        worn_idx = index[worn]
        plane.stuck[worn_idx] = True
        if model.config.stuck_state == "g_min":
            plane.g[worn_idx] = np.float32(model.config.g_min_s)
        elif model.config.stuck_state == "g_max":
            plane.g[worn_idx] = np.float32(model.config.g_max_s)
        skip |= worn
        plane.worn_out += int(worn_idx.size)
        newly_stuck = int(worn_idx.size)
    stuck = None
    positions = np.arange(n)
    if skip.any():
        stuck = skip
        if count:
            plane.stuck_requests += int(np.count_nonzero(skip))
        positions = np.flatnonzero(~skip)
        if positions.size == 0:
            return pulses_out, 0.0, 0, newly_stuck, stuck
    dev, state = index[positions], target_state[positions]
    pulses, failures, energy = _reference_write_verify(plane, dev, target_g[positions], state, model, rng)
    pulses_out[positions] = pulses
    if count:
        plane.programs[dev] += np.uint32(1)
        plane.pulses[dev] += pulses
    if plane.program_event is not None:
        plane.program_event[dev] = event
    if plane.relax_amplitude is not None:
        plane.relax_amplitude[dev] = model.state_relax[state] * rng.standard_normal(dev.size)
    return pulses_out, energy, failures, newly_stuck, stuck


def _reference_commit(store, layer, hidden):
    """DeviceStore.commit as numpy code (before the compiled gathers and scatters); returns
    (changed, pulses, energy_j, pulse_steps, stuck, index)."""
    model, state = store.model, store.layers[layer]
    store.commits += 1
    new_levels = store.quantizer.level_index(hidden)
    changed = new_levels != state.levels
    index = np.flatnonzero(changed)
    lv_old, lv_new = state.levels.ravel()[index], new_levels.ravel()[index]
    state.levels = new_levels
    pulses = np.zeros(index.size, dtype=np.uint32)
    steps = np.zeros(index.size, dtype=np.uint32)
    requested = np.zeros(index.size, dtype=bool)
    energy = 0.0
    event = store._program_event()
    for p, plane in enumerate(state.planes):
        new_target = model.targets[p][lv_new]
        need = new_target != model.targets[p][lv_old]
        if not need.any():
            continue
        res = _reference_program(plane, index[need], new_target[need], model.state_of[p][lv_new[need]],
                                 model, store.rng, event)
        pulses[need] += res[0]
        steps[need] = np.maximum(steps[need], res[0])
        requested[need] = True
        energy += res[1]
        store.verify_failures += res[2]
    stuck = requested & (pulses == 0)
    state.writes.ravel()[index[~stuck]] += np.uint32(1)
    store.stuck_skipped_writes += int(np.count_nonzero(stuck))
    state.version += 1
    store._decode(state, index)
    store.energy_j += energy
    return changed, pulses, energy, steps, stuck, index


def _same_planes(ours, theirs) -> None:
    """Every per-device array and counter of two lists of planes, bit for bit."""
    for a, b in zip(ours, theirs, strict=True):
        for name in ("g", "programs", "pulses", "stuck", "program_event", "relax_amplitude"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            if x is not None:
                assert x.dtype == y.dtype and np.array_equal(x.view(np.uint8), y.view(np.uint8)), name
        assert (a.worn_out, a.stuck_requests) == (b.worn_out, b.stuck_requests)


# every branch: stuck faults, wear-out (writes and pulses, each stuck state), gain, c2c,
# relaxation with and without its slow growth, drift (program events), verify failures,
# two planes (differential) and one (reference)
WEARING = dict(NOISY, stuck_at_fault_rate=0.02, endurance_model="lognormal", endurance_median_cycles=3,
               endurance_sigma_ln=1.0)
PROGRAMMING_CASES = [
    dict(WEARING),
    dict(WEARING, mapping="reference", endurance_unit="pulses", endurance_median_cycles=12,
         stuck_state="g_min", relaxation_sigma=[0.01, 0.03, 0.02], relaxation_growth_per_decade=0.1,
         drift_nu=0.05),
    dict(WEARING, stuck_state="g_max", d2d_gain_sigma=0.0, pulse_energy_conductance="max",
         relaxation_sigma=0.02, drift_nu=0.02, endurance_sigma_ln=0.0,
         endurance_median_cycles=2),  # integer endurance: worn out when wear == endurance
    dict(c2c_sigma=0.0, max_pulses=3, stuck_at_fault_rate=0.05, relaxation_sigma=0.0,
         relaxation_growth_per_decade=0.1, drift_nu=0.01),  # amplitudes drawn though all zero
    dict(WEARING, c2c_sigma=0.2, tolerance=0.001, max_pulses=5),  # many verify failures
    dict(NOISY, relaxation_sigma=0.02, max_pulses=1),  # one pulse: most devices fail verify
]


@pytest.fixture(params=["one pass", "split"])
def split(request, monkeypatch):
    """The kernels run as one loop, or split into uneven chunks of a few elements (the
    two-pass scans that the kernels' threads share on a large layer)."""
    if request.param == "split":
        from archsim.learning import kernels

        monkeypatch.setattr(kernels, "SCAN_PARTS", 7)
        monkeypatch.setitem(kernels.SCAN_GRAIN, "stream", 5)
        monkeypatch.setitem(kernels.SCAN_GRAIN, "gather", 3)
    return request.param


@pytest.mark.parametrize("device", PROGRAMMING_CASES)
def test_compiled_program_equals_the_numpy_code(device, split):
    """DevicePlane.program through its compiled kernels, initial (count=False) and counted,
    against the numpy code it replaced: pulses, energy, failures, stuck flags, every
    per-device array and the generator state after, bit for bit."""
    import copy

    store, _, _ = make_store(shape=(80, 70), **device)
    model = store.model
    for p, plane in enumerate(store.layers[0].planes):
        ours, theirs = copy.deepcopy(plane), copy.deepcopy(plane)
        rng_ours, rng_theirs = np.random.default_rng(9), np.random.default_rng(9)
        pick = np.random.default_rng(4)
        for attempt, count in enumerate([False, True, True, True, True]):
            dev = np.sort(pick.choice(plane.size, 3000, replace=False))
            lv = pick.integers(0, model.levels, dev.size)
            target, state = model.targets[p][lv], model.state_of[p][lv]
            got = ours.program(dev, target, state, model, rng_ours, attempt, count)
            want = _reference_program(theirs, dev, target, state, model, rng_theirs, attempt, count)
            assert np.array_equal(got.pulses, want[0])
            assert (got.energy_j, got.verify_failures, got.newly_stuck) == want[1:4]
            assert (got.stuck is None) == (want[4] is None)
            assert got.stuck is None or np.array_equal(got.stuck, want[4])
            _same_planes([ours], [theirs])
            assert rng_ours.bit_generator.state == rng_theirs.bit_generator.state


@pytest.mark.parametrize("device", PROGRAMMING_CASES)
def test_compiled_commit_equals_the_numpy_code(device, split):
    """DeviceStore.commit against the numpy code it replaced over several commits (large and
    small moves, the clock advancing): the CommitReport, every device array and counter, the
    writes, energy, decoded weights and the generator state, bit for bit."""
    import copy

    ours, hidden, _ = make_store(shape=(90, 70), **device)
    theirs = copy.deepcopy(ours)
    move = np.random.default_rng(5)
    h = hidden[0].copy()
    for step in range(8):
        h += move.normal(0, 0.5 if step % 3 == 0 else 0.05, h.shape).astype(np.float32)
        got = ours.commit(0, h)
        want = _reference_commit(theirs, 0, h)
        for name, value in zip(("changed", "pulses", "energy_j", "pulse_steps", "stuck", "index"), want):
            assert np.array_equal(getattr(got, name), value), name
            assert np.asarray(getattr(got, name)).dtype == np.asarray(value).dtype, name
        _same_planes(ours.layers[0].planes, theirs.layers[0].planes)
        assert ours.statistics() == theirs.statistics()
        assert np.array_equal(ours.layers[0].writes, theirs.layers[0].writes)
        assert np.array_equal(ours.layers[0].weights.view(np.uint32), theirs.layers[0].weights.view(np.uint32))
        assert ours.rng.bit_generator.state == theirs.rng.bit_generator.state
        ours.advance_time_s(10.0)
        theirs.advance_time_s(10.0)
    stats = ours.statistics()
    assert stats["writes_total"] > 0
    if device.get("endurance_model") == "lognormal":
        assert stats["stuck_worn_out"] > 0 and stats["stuck_requests"] > 0
    if device.get("stuck_at_fault_rate"):
        assert stats["stuck_skipped_writes"] > 0 or stats["stuck_requests"] > 0


# the write-verify's pulse rounds in one compiled call against one call per round: spread with
# and without gain, gain alone (no draws), one ideal round, trapezoid and max pulse energy,
# the pulse budget reached, stuck and worn-out devices with both relaxation draws after
ROUND_CASES = [
    dict(NOISY),
    dict(NOISY, pulse_energy_conductance="max"),
    dict(NOISY, d2d_gain_sigma=0.0),
    dict(c2c_sigma=0.0, d2d_gain_sigma=0.3, max_pulses=30, tolerance=0.01),
    dict(c2c_sigma=0.0, max_pulses=1),
    dict(NOISY, c2c_sigma=0.2, tolerance=0.001, max_pulses=4, pulse_energy_conductance="max"),
    dict(WEARING, relaxation_sigma=0.02, relaxation_growth_per_decade=0.01),
]


def _program_rounds(device: dict, n: int, one_call: bool, monkeypatch) -> tuple:
    """Three programmings (initial, then counted) of the same ``n`` devices of a fresh plane,
    the pulse rounds in one call or one call per round; returns the results, the plane, the
    generator and how many single calls ran."""
    from archsim.devices import arrays

    calls = []

    def counted(*args):
        calls.append(args[0].size)
        return write_verify_rounds(*args)

    write_verify_rounds = arrays.write_verify_rounds
    monkeypatch.setattr(arrays, "ROUNDS_IN_ONE_CALL", one_call)
    monkeypatch.setattr(arrays, "write_verify_rounds", counted)
    model = DeviceModel.build(DeviceConfig(**device), Quantizer.from_config(5))
    plane = DevicePlane.create(n + 40, model, np.random.default_rng(1))
    rng, pick = np.random.default_rng(2), np.random.default_rng(3)
    dev = np.sort(pick.choice(plane.size, n, replace=False))
    results = []
    for attempt, count in enumerate([False, True, True]):
        lv = pick.integers(0, model.levels, n)
        results.append(plane.program(dev, model.targets[0][lv], model.state_of[0][lv], model, rng, attempt,
                                     count))
    monkeypatch.undo()
    return results, plane, rng, calls


@pytest.mark.parametrize("n", [1, 2, 7, 9, 129, 3000, 70_000])
@pytest.mark.parametrize("device", ROUND_CASES)
def test_pulse_rounds_in_one_call_equal_one_call_per_round(device, n, monkeypatch):
    """The write-verify's rounds in one compiled call (pulses, numpy's draws, numpy's
    pairwise sums of the energy) against the call per round: pulses, conductances and every
    per-device array, verify failures, stuck devices, energy (==) and the generator after."""
    fused, plane, rng, calls = _program_rounds(device, n, True, monkeypatch)
    per_round, plane_ref, rng_ref, no_calls = _program_rounds(device, n, False, monkeypatch)
    assert calls and not no_calls  # each way taken
    for got, want in zip(fused, per_round, strict=True):
        assert np.array_equal(got.pulses, want.pulses)
        assert (got.energy_j, got.verify_failures, got.newly_stuck) == (want.energy_j, want.verify_failures,
                                                                        want.newly_stuck)
        assert (got.stuck is None) == (want.stuck is None)
        assert got.stuck is None or np.array_equal(got.stuck, want.stuck)
    _same_planes([plane], [plane_ref])
    assert rng.bit_generator.state == rng_ref.bit_generator.state
    assert sum(r.energy_j for r in fused) > 0
    if device.get("tolerance") == 0.001 and n > 9:
        assert all(r.verify_failures > 0 for r in fused)  # the budget was reached
    if device is ROUND_CASES[-1] and n >= 3000:
        assert plane.stuck_count() > 0 and fused[-1].stuck is not None


@pytest.mark.parametrize("device", [ROUND_CASES[0], ROUND_CASES[1], ROUND_CASES[3]])
def test_pulse_rounds_of_no_device(device):
    """No device to program: no round, no draw, no energy, either way."""
    from archsim.devices.arrays import _WriteVerify
    from archsim.devices.normal import NormalStream

    model = DeviceModel.build(DeviceConfig(**device), Quantizer.from_config(5))
    plane = DevicePlane.create(10, model, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    before = rng.bit_generator.state
    work = _WriteVerify.allocate(0, np.dtype(np.uint8), plane.gain is not None, bool(model.state_c2c.any()))
    with NormalStream(rng) as stream:
        assert plane._write_verify(work, model, stream) == (0, 0.0)
        assert plane._pulse_rounds(work, model, stream) == (0, 0.0, 0.0, 0)
    assert rng.bit_generator.state == before


def test_pulse_rounds_fall_back_to_one_call_per_round(monkeypatch):
    """The single call only where it gives the same results: not when a round is split over
    threads, when the spread's generator is not a PCG64 (no spread: any generator), or when
    numpy sums in another order than :func:`numpy_sum`."""
    from archsim.devices import arrays, normal
    from archsim.devices.arrays import _rounds_in_one_call, _WriteVerify
    from archsim.devices.normal import NormalStream
    from archsim.learning import kernels

    spread, none = _WriteVerify.allocate(100, np.dtype(np.uint8), False, True), _WriteVerify.allocate(
        100, np.dtype(np.uint8), False, False)
    pcg, mt = np.random.default_rng(1), np.random.Generator(np.random.MT19937(1))
    with NormalStream(pcg) as on_pcg, NormalStream(mt) as on_mt:
        assert _rounds_in_one_call(100, spread, on_pcg) and _rounds_in_one_call(100, none, on_mt)
        assert not _rounds_in_one_call(100, spread, on_mt)
        assert not _rounds_in_one_call(2 * kernels.SCAN_GRAIN["stream"], spread, on_pcg) or kernels.SCAN_PARTS == 1
        monkeypatch.setitem(kernels.SCAN_GRAIN, "stream", 5)
        monkeypatch.setattr(kernels, "SCAN_PARTS", 7)
        assert not _rounds_in_one_call(100, spread, on_pcg)
        monkeypatch.undo()
        monkeypatch.setitem(normal._CHECKED, "float64 sum", False)
        assert not _rounds_in_one_call(100, spread, on_pcg)
        monkeypatch.undo()
        monkeypatch.setattr(arrays, "ROUNDS_IN_ONE_CALL", False)
        assert not _rounds_in_one_call(100, none, on_pcg)


def test_numpy_sum_adds_as_numpy_does():
    """:func:`numpy_sum` is ``ndarray.sum()`` of float64, bit for bit: the once-per-process
    check passes here, and sums where another order of additions would show are equal."""
    from archsim.devices.kernels import numpy_sum, numpy_sum_ok

    assert numpy_sum_ok()
    values = np.random.default_rng(11)
    for n in (0, 1, 7, 8, 9, 127, 128, 129, 136, 255, 256, 257, 1000, 8191, 8192, 8193, 58_240, 131_073):
        a = values.standard_normal(n) * 10.0 ** values.uniform(-10, 10, n)
        assert numpy_sum(a).hex() == float(a.sum()).hex(), n
    cancel = np.array([1e16, 1.0, -1e16] + [1.0] * 200)  # the order decides: 200, 201, 199...
    assert numpy_sum(cancel) == float(cancel.sum())
    assert np.isnan(numpy_sum(np.array([1.0, np.nan] * 100)))
    assert numpy_sum(np.zeros(0)) == 0.0 and numpy_sum(np.full(9, -0.0)).hex() == float(np.full(9, -0.0).sum()).hex()


def _reference_decode(store, layer, index):
    """DeviceStore._decode as numpy code (before the compiled loop): weights and read std."""
    model = store.model
    lv = layer.levels.ravel() if index is None else layer.levels.ravel()[index]
    deviation = np.zeros(lv.shape, dtype=np.float64)
    for p, plane in enumerate(layer.planes):
        g = plane.g if index is None else plane.g[index]
        d = g.astype(np.float64) - model.targets[p][lv]
        if p == 0:
            deviation += d
        else:
            deviation -= d
    w = (model.level_values32[lv] + deviation * model.weight_per_siemens).astype(np.float32)
    sq = np.zeros(lv.shape, dtype=np.float64)
    for plane in layer.planes:
        g = (plane.g if index is None else plane.g[index]).astype(np.float64)
        sq += g * g
    std = (np.sqrt(sq) * (store.config.read_noise_sigma * model.weight_per_siemens)).astype(np.float32)
    return w, std


@pytest.mark.parametrize("device", [dict(NOISY), dict(NOISY, mapping="reference"), dict(c2c_sigma=0.05)])
def test_compiled_decode_equals_the_numpy_formula(device, split):
    store, hidden, _ = make_store(shape=(90, 50), **device)
    layer = store.layers[0]
    w, std = _reference_decode(store, layer, None)
    assert np.array_equal(layer.weights.ravel().view(np.uint32), w.view(np.uint32))
    if layer.read_std is not None:
        assert np.array_equal(layer.read_std.ravel().view(np.uint32), std.view(np.uint32))
    moved = hidden[0] + np.random.default_rng(2).normal(0, 0.4, hidden[0].shape).astype(np.float32)
    index = store.commit(0, moved).index
    assert index.size > 100
    w, std = _reference_decode(store, layer, index)
    assert np.array_equal(layer.weights.ravel()[index].view(np.uint32), w.view(np.uint32))
    if layer.read_std is not None:
        assert np.array_equal(layer.read_std.ravel()[index].view(np.uint32), std.view(np.uint32))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_split_read_noise_works_in_a_forked_child():
    """The split worker thread of a parent does not exist in a forked child: the child must
    make its own instead of waiting forever on the parent's."""
    import multiprocessing

    from archsim.devices.normal import _fill

    w, std = np.zeros(200_000, dtype=np.float32), np.ones(200_000, dtype=np.float32)
    _fill(np.random.default_rng(1), w, std, np.empty_like(w), mode="split")  # parent's worker
    child = multiprocessing.get_context("fork").Process(target=_fill_in_child)
    child.start()
    child.join(60)
    assert child.exitcode == 0


def _fill_in_child() -> None:
    from archsim.devices.normal import _fill

    w, std = np.zeros(200_000, dtype=np.float32), np.ones(200_000, dtype=np.float32)
    ours, theirs = np.random.default_rng(2), np.random.default_rng(2)
    got = np.empty_like(w)
    _fill(ours, w, std, got, mode="split")
    os._exit(0 if np.array_equal(got, _numpy_read_noise(theirs, w, std)) else 1)


@pytest.mark.parametrize("device", [
    "hfo2-130nm",
    dict(NOISY, drift_nu=0.05, relaxation_growth_per_decade=0.3, seconds_per_batch=10.0),
    dict(NOISY, endurance_model="lognormal", endurance_median_cycles=3, stuck_state="g_max",
         stuck_at_fault_rate=0.01),
])
def test_planes_programmed_as_a_pipeline_equal_one_after_the_other(monkeypatch, device):
    """archsim.devices.arrays.program_planes: the next plane's prepare and the previous
    plane's store on the helper thread while this one draws give the same reports, device
    arrays, counters and generator state as programming the planes in turn."""
    from archsim.devices import arrays
    from archsim.learning import kernels

    cfg = load_device_preset(device) if isinstance(device, str) else DeviceConfig(**device)
    monkeypatch.setattr(kernels, "THREADS", 2)
    rng = np.random.default_rng(4)
    steps = [rng.uniform(-1.2, 1.2, size=(120, 90)).astype(np.float32) for _ in range(5)]
    outcomes = []
    for threshold in (1, 1 << 40):  # pipelined, then one plane after the other
        monkeypatch.setattr(arrays, "PIPELINE_MIN_DEVICES", threshold)
        store = DeviceStore([steps[0].copy()], Quantizer.from_config(4), cfg, np.random.default_rng(9))
        reports = []
        for hidden in steps[1:]:
            store.tick_batch()
            reports.append(store.commit(0, hidden))
        outcomes.append((reports, store))
    (got, pipelined), (want, sequential) = outcomes
    for a, b in zip(got, want):
        assert a.energy_j == b.energy_j
        for name in ("changed", "pulses", "pulse_steps", "stuck", "index"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name, array in sequential.conductance_snapshot().items():
        np.testing.assert_array_equal(pipelined.conductance_snapshot()[name], array, err_msg=name)
    for a, b in zip(pipelined.layers[0].planes, sequential.layers[0].planes):
        for name in ("g", "programs", "pulses", "stuck", "program_event", "relax_amplitude"):
            if getattr(b, name) is not None:
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert pipelined.statistics() == sequential.statistics()
    assert pipelined.rng.bit_generator.state == sequential.rng.bit_generator.state
    np.testing.assert_array_equal(pipelined.read(0), sequential.read(0))


def test_a_deferred_decode_gives_the_reads_and_snapshots_of_a_decode_in_place(monkeypatch):
    """A large commit's decode runs on the helper thread (archsim.devices.store
    DEFERRED_DECODE_MIN); the next read, commit, snapshot and ``layers`` wait for it and see
    exactly what a decode in place gives."""
    from archsim.devices import store as store_module
    from archsim.learning import kernels

    monkeypatch.setattr(kernels, "THREADS", 2)
    cfg = load_device_preset("hfo2-130nm")
    rng = np.random.default_rng(11)
    steps = [rng.uniform(-1.2, 1.2, size=(70, 50)).astype(np.float32) for _ in range(4)]
    runs = []
    for threshold in (1, 1 << 40):  # deferred, then in place
        monkeypatch.setattr(store_module, "DEFERRED_DECODE_MIN", threshold)
        store = DeviceStore([steps[0].copy(), steps[0][:20].copy()], Quantizer.from_config(4), cfg,
                            np.random.default_rng(5))
        seen = []
        for hidden in steps[1:]:
            store.commit(0, hidden)
            assert bool(store._pending) == (threshold == 1)
            store.commit(1, hidden[:20])  # another layer's commit does not wait for it
            seen.append(store.read(0).copy())
            store.commit(0, -hidden)
            seen.append(store.conductance_snapshot()["layer0.weights"])
            seen.append(store.layers[0].weights.copy())
        runs.append(seen)
    for got, want in zip(*runs):
        np.testing.assert_array_equal(got, want)


def test_split_read_noise_scales_the_helpers_draws_in_halves(monkeypatch):
    """The split fill's second half is scaled in halves on two threads
    (archsim.learning.kernels.in_halves): numpy's draws and generator state still."""
    from archsim.devices import normal
    from archsim.learning import kernels

    monkeypatch.setattr(kernels, "THREADS", 2)
    monkeypatch.setattr(kernels, "HALVES_MIN", 64)
    n = 40_000
    weights, std = np.linspace(-1, 1, n, dtype=np.float32), np.full(n, 0.25, dtype=np.float32)
    for seed in range(6):
        ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        got = np.empty_like(weights)
        normal._fill(ours, weights, std, got, mode="split")
        assert np.array_equal(got.view(np.uint32), _numpy_read_noise(theirs, weights, std).view(np.uint32))
        assert ours.bit_generator.state == theirs.bit_generator.state
