"""Circuit effects reach the accuracy: too few ADC bits for the array size cost accuracy."""

from __future__ import annotations

import numpy as np
import pytest

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


# ---- the block-by-block product against the stacked one it replaced ---------------------
def stacked_converted_sum(mvm: CrossbarMvm, x, w, lines: int, block: int, w_max: float):
    """The pre-change model: every row block's partial sums stacked (blocks, batch, m), all
    ADC-quantised at once, then summed over the block axis."""
    n, m = w.shape
    blocks = -(-n // block)
    wp = np.zeros((blocks * block, m), dtype=w.dtype)
    wp[:n] = w
    xp = np.zeros((x.shape[0], blocks * block), dtype=x.dtype)
    xp[:, :n] = x
    xb = np.ascontiguousarray(xp.reshape(x.shape[0], blocks, block).transpose(1, 0, 2))
    partial = np.matmul(xb, wp.reshape(blocks, block, m))
    mvm.tile.adc.quantize(partial, lines, 1.0, w_max)
    return partial.sum(axis=0)


def stacked_forward(mvm: CrossbarMvm, x, w):
    rows = mvm.mapping.rows
    xq = mvm.tile.dac.quantize(x).astype(w.dtype, copy=False)
    return stacked_converted_sum(mvm, xq, w, rows, rows, mvm._w_max(w))


def stacked_backward(mvm: CrossbarMvm, layer: int, delta, w):
    scale = np.abs(delta).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    dq = mvm.tile.dac.quantize(delta / scale).astype(w.dtype, copy=False)
    block = mvm.mapping.layers[layer].outputs_per_tile
    return stacked_converted_sum(mvm, dq, w.T, block, block, mvm._w_max(w)) * scale


def test_block_by_block_products_are_bit_identical_to_the_stacked_products():
    rng = np.random.default_rng(7)
    geometries = [((300, 70, 5), 128, 128), ((784, 200, 10), 128, 128), ((100, 40, 3), 32, 16),
                  ((64, 128, 12), 64, 64), ((33, 17, 9), 16, 8), ((10, 20, 4), 128, 128)]
    converters = [(8, 8, None, None), (4, 3, 0.5, 1.0), (1, 2, None, 1.0), (8, 12, 1.0, None)]
    for sizes, rows, cols in geometries:
        for input_bits, adc_bits, fraction, weight_scale in converters:
            mvm = crossbar(sizes, rows, cols, input_bits, adc_bits, fraction, "transposed")
            mvm.weight_scale = weight_scale
            for batch in (1, 3, 100):
                for layer in (0, 1):
                    n, m = sizes[layer], sizes[layer + 1]
                    x = rng.random((batch, n), dtype=np.float32)
                    w = rng.normal(0.0, 0.3, size=(n, m)).astype(np.float32)
                    delta = rng.normal(size=(batch, m)).astype(np.float32)
                    delta[0] = 0.0                  # an all-zero error row (scale 1)
                    forward = mvm.forward(layer, x, w)
                    backward = mvm.backward(layer, delta, w)
                    assert forward.dtype == backward.dtype == np.float32
                    assert np.array_equal(forward, stacked_forward(mvm, x, w))
                    assert np.array_equal(backward, stacked_backward(mvm, layer, delta, w))


@pytest.fixture(params=["one loop", "split"])
def adc_chunks(request, monkeypatch):
    """The fused conversion as one loop in the calling thread (small partial sums), or in
    halves on this and the helper thread (a large layer's: kernels.in_halves; the stacked
    pass's uneven chunks over the kernels' threads too)."""
    if request.param == "split":
        from archsim.learning import kernels

        monkeypatch.setattr(kernels, "SCAN_PARTS", 7)
        monkeypatch.setitem(kernels.SCAN_GRAIN, "stream", 5)
        monkeypatch.setattr(kernels, "THREADS", 2)
        monkeypatch.setattr(kernels, "HALVES_MIN", 16)
    return request.param


def test_fused_adc_conversion_matches_the_numpy_quantiser_bit_for_bit(adc_chunks):
    adc = crossbar((16, 8), 16, 16, 8, 4, 0.5).tile.adc
    rng = np.random.default_rng(3)
    full_scale = adc.full_scale(16, 1.0, 1.0)
    lsb = np.float32(full_scale / 2 ** (adc.bits - 1))
    codes = np.arange(-12, 12, dtype=np.float32) * lsb           # on and next to every code edge
    edges = np.concatenate([codes, np.nextafter(codes, np.float32(np.inf)),
                            np.nextafter(codes, np.float32(-np.inf)),
                            np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30], np.float32)])
    partial = np.concatenate([edges, rng.normal(0.0, full_scale, 4000).astype(np.float32)])
    reference = adc.quantize(partial.copy(), 16, 1.0, 1.0)
    converted = partial.copy()
    adc.quantize_into(converted, converted, False, 16, 1.0, 1.0)
    assert np.array_equal(converted, reference, equal_nan=True)
    total = rng.normal(size=partial.size).astype(np.float32)
    expected = total + reference
    adc.quantize_into(partial.copy(), total, True, 16, 1.0, 1.0)
    assert np.array_equal(total, expected, equal_nan=True)
    wide = partial.astype(np.float64)                            # not float32: the model's quantize
    into = np.ones_like(wide)
    adc.quantize_into(wide.copy(), into, True, 16, 1.0, 1.0)
    assert np.array_equal(into, 1.0 + adc.quantize(wide.copy(), 16, 1.0, 1.0), equal_nan=True)
