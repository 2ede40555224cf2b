"""Circuit effects reach the accuracy: too few ADC bits for the array size cost accuracy."""

from __future__ import annotations

import numpy as np

from archsim.config import RunConfig, validate
from archsim.engine import build_architecture
from archsim.experiment import run_experiment
from archsim.config.hardware import HardwareConfig
from archsim.hw.chip import build_chip
from archsim.hw.circuits import CrossbarMvm
from archsim.hw.converters import adc_quantize, dac_quantize
from archsim.mapping import map_network


def crossbar(sizes, rows, cols, input_bits, adc_bits, fraction, backward="digital") -> CrossbarMvm:
    """The functional model of ``sizes`` mapped on rows x cols differential tiles."""
    hw = HardwareConfig.model_validate({
        "tile": {"rows": rows, "cols": cols, "weight_encoding": "differential"},
        "dac": {"input_bits": input_bits},
        "adc": {"bits": adc_bits, "full_scale_fraction": fraction, "auto_sigmas": 4.0},
    })
    mapping = map_network(sizes, rows, cols, "differential", None)
    return CrossbarMvm(build_chip(hw, 3).tile, mapping, 1.0, backward)


def config(adc_bits: int, effects: bool = True) -> RunConfig:
    tree = {
        "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": 3000, "test_limit": 1000}],
        "model": {"hidden": [128], "levels": 3, "init_width": 2.0},
        "learning": {"rule": "qnn-meta", "m_star": 0.0, "batch_size": 100, "optimizer": {"lr": 0.02}},
        "data": {"validation_size": 0},
        "eval_batch_size": 500,
        "hardware": {"tile": {"rows": 128, "cols": 128}, "adc": {"bits": adc_bits},
                     "crossbar": {"circuit_effects": effects}},
    }
    return validate(RunConfig, tree, "adc-test")


def accuracy(cfg: RunConfig) -> float:
    arch = build_architecture(cfg)
    result = run_experiment(cfg, mvm=arch.mvm)
    return result.accuracy["after:mnist"]["mnist"]


def test_accuracy_falls_when_adc_bits_fall_below_what_128_rows_need():
    ideal = accuracy(config(8, effects=False))
    eight = accuracy(config(8))
    two = accuracy(config(2))
    assert abs(eight - ideal) < 0.03      # 8 bits resolve a 128-row partial sum
    assert two < eight - 0.05             # 2 bits do not


def test_mvm_with_enough_bits_is_exact_on_integer_partial_sums():
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], size=(5, 300)).astype(np.float32)
    w = rng.choice([-1.0, 0.0, 1.0], size=(300, 20)).astype(np.float32)
    # full scale = 128 rows: a 16-bit ADC's lsb is 2*128/2^16, far below the unit step
    mvm = crossbar((300, 20), 128, 128, 8, 16, 1.0)
    assert np.allclose(mvm.forward(0, x, w), x @ w, atol=0.05)
    coarse = crossbar((300, 20), 128, 128, 8, 2, 1.0)
    assert not np.allclose(coarse.forward(0, x, w), x @ w, atol=1.0)


def test_dac_and_adc_quantisers():
    x = np.array([[0.0, 0.5, 1.0, 0.26]], dtype=np.float32)
    assert np.allclose(dac_quantize(x, 2), [[0.0, 2 / 3, 1.0, 1 / 3]])
    s = np.array([[-1.0, 1.0]], dtype=np.float32)
    assert dac_quantize(s, 1) is s                   # binary inputs pass unchanged
    p = np.array([-10.0, -0.1, 0.1, 10.0], dtype=np.float32)
    q = adc_quantize(p.copy(), 2, 4.0)               # 4 codes over [-4, 4]: -3, -1, 1, 3
    assert np.allclose(q, [-3.0, -1.0, 1.0, 3.0])


def test_transposed_backward_matches_digital_with_many_bits():
    rng = np.random.default_rng(1)
    delta = rng.normal(size=(4, 30)).astype(np.float32)
    w = rng.choice([-1.0, 0.0, 1.0], size=(50, 30)).astype(np.float32)
    mvm = crossbar((7, 50, 30), 16, 16, 16, 16, 1.0, backward="transposed")
    assert np.allclose(mvm.backward(1, delta, w), delta @ w.T, atol=1e-2)
    digital = crossbar((7, 50, 30), 16, 16, 4, 2, None, backward="digital")
    assert np.array_equal(digital.backward(1, delta, w), delta @ w.T)
