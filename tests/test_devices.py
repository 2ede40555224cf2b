"""Tests of the multi-level resistive memory model (archsim.devices, DeviceConfig, presets)."""

from __future__ import annotations

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
needs_data = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir(), reason=f"offline datasets not present in {SHARED}"
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
def test_write_verify_converges_within_tolerance_and_energy_is_pulses_times_pulse_energy():
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
    per_pulse = model.energy_per_pulse(model.state_g[state])
    assert result.energy_j == pytest.approx(float(np.sum(pulses * per_pulse)), rel=1e-12)
    v, c = cfg.pulse_voltage_v, cfg.line_capacitance_f
    g = model.state_g[0]
    assert model.energy_per_pulse(g) == pytest.approx(
        v * v * g * cfg.pulse_width_s + c * v * v + 0.2**2 * g * 1e-9 + c * 0.2**2)
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
    np.testing.assert_array_equal(store.write_counts()[0], 6)  # writes still count level changes
    np.testing.assert_allclose(store.read(0), 0.0, atol=1e-6)  # both stuck at G_min: weight 0

    stuck, hidden, q = make_store(stuck_at_fault_rate=1.0, stuck_at_g_max_fraction=1.0)
    before = stuck.conductance_snapshot()
    report = stuck.commit(0, -hidden[0])
    assert report.writes > 0 and (report.pulses == 0).all() and report.energy_j == 0.0
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
    store.advance_time(1000.0)
    assert np.abs(store.read(0)).sum() < before
    with pytest.raises(ValueError):
        store.advance_time(-1)


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
