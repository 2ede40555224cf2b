"""CrossbarMvm's faster paths (one stacked product and one conversion pass over many row
blocks; input blocks read in place; the compiled binary-input check) against the block loop
they replaced, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.config.hardware import HardwareConfig
from archsim.hw import circuits
from archsim.hw.chip import build_chip
from archsim.hw.circuits import CrossbarMvm
from archsim.hw.converters import Adc, dac_quantize
from archsim.mapping import map_network


def crossbar(sizes, rows, cols, input_bits, adc_bits, fraction, backward, mode="bit_serial") -> CrossbarMvm:
    hw = HardwareConfig.model_validate({
        "tile": {"rows": rows, "cols": cols, "weight_encoding": "differential"},
        "dac": {"input_bits": input_bits, "mode": mode},
        "adc": {"bits": adc_bits, "full_scale_fraction": fraction, "auto_sigmas": 4.0},
    })
    mapping = map_network(sizes, rows, cols, "differential", None)
    return CrossbarMvm(build_chip(hw, 3).tile, mapping, None, backward)


# ---- the pre-change model, verbatim but for the names --------------------------------------
def old_blocked(weights, blocks, block):
    n, m = weights.shape
    full = n // block if weights.flags.c_contiguous else 0
    views = [weights[k * block:(k + 1) * block] for k in range(full)]
    if full == blocks:
        return views
    rest = blocks - full
    buf = np.zeros((rest * block, m), dtype=weights.dtype)
    buf[:n - full * block] = weights[full * block:]
    return views + list(buf.reshape(rest, block, m))


def old_input_blocks(x, blocks, block):
    batch, n = x.shape
    if blocks * block != n:
        xp = np.zeros((batch, blocks * block), dtype=x.dtype)
        xp[:, :n] = x
    else:
        xp = x
    return np.ascontiguousarray(xp.reshape(batch, blocks, block).transpose(1, 0, 2))


def old_converted_sum(adc, x, w_blocks, lines, w_max):
    blocks = len(w_blocks)
    xb = old_input_blocks(x, blocks, w_blocks[0].shape[0])
    total = np.matmul(xb[0], w_blocks[0])
    adc.quantize_into(total, total, False, lines, 1.0, w_max)
    if blocks > 1:
        partial = np.empty_like(total)
        for k in range(1, blocks):
            np.matmul(xb[k], w_blocks[k], out=partial)
            adc.quantize_into(partial, total, True, lines, 1.0, w_max)
    return total


def old_dac(x, bits):
    lo = float(x.min()) if x.size else 0.0
    if lo >= 0.0:
        levels = float(2**bits - 1)
        return np.round(np.clip(x, 0.0, 1.0) * levels) / np.float32(levels)
    if np.all(np.abs(x) == 1.0):
        return x
    levels = float(max(2 ** (bits - 1) - 1, 1))
    return np.round(np.clip(x, -1.0, 1.0) * levels) / np.float32(levels)


def old_forward(mvm, layer, x, w):
    rows = mvm.mapping.rows
    xq = old_dac(x, mvm.tile.dac.input_bits).astype(w.dtype, copy=False)
    blocks = old_blocked(w, mvm.mapping.layers[layer].row_blocks, rows)
    return old_converted_sum(mvm.tile.adc, xq, blocks, rows, mvm._w_max(w))


def old_backward(mvm, layer, delta, w):
    if mvm.backward_mode == "digital":
        return delta @ w.T
    layer_map = mvm.mapping.layers[layer]
    scale = np.abs(delta).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    dq = old_dac(delta / scale, mvm.tile.dac.input_bits).astype(w.dtype, copy=False)
    block = layer_map.outputs_per_tile
    blocks = old_blocked(w.T, layer_map.col_blocks, block)
    return old_converted_sum(mvm.tile.adc, dq, blocks, block, mvm._w_max(w)) * scale


class HalvedAdc(Adc):
    """A model with its own transform: conversions go through its quantize, not the kernel."""

    def quantize(self, partial, lines, x_max, w_max):
        super().quantize(partial, lines, x_max, w_max)
        partial *= np.float32(0.5)
        return partial


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.array_equal(
        a.view(np.uint32), b.view(np.uint32))


@pytest.fixture(params=["stacked", "block by block", "stacked split", "block by block in halves"])
def path(request, monkeypatch):
    """Every product through one stacked product and conversion pass (in the calling thread or
    split over the kernels' threads in uneven chunks), or through the per-block loop (each
    block's conversion in the calling thread, or in halves with the helper thread)."""
    if request.param.startswith("block by block"):
        monkeypatch.setattr(circuits, "STACKED_PARTIALS_MAX", 0)
    else:
        monkeypatch.setattr(circuits, "STACKED_PARTIALS_MAX", 1 << 40)
    from archsim.learning import kernels

    if request.param == "stacked split":
        monkeypatch.setattr(kernels, "SCAN_PARTS", 5)
        monkeypatch.setitem(kernels.SCAN_GRAIN, "stream", 7)
    if request.param == "block by block in halves":
        monkeypatch.setattr(kernels, "THREADS", 2)
        monkeypatch.setattr(kernels, "HALVES_MIN", 16)
    return request.param


# (sizes, rows, cols, batches): a padded last block, one block, many blocks, exact multiples
# (inputs read in place), the paper's 4096 x 10 output layer
GEOMETRIES = [((300, 70, 5), 128, 128, (1, 100)), ((256, 128, 10), 128, 128, (3, 100)),
              ((100, 40, 3), 32, 16, (1, 7)), ((33, 17, 9), 16, 8, (2,)),
              ((10, 20, 4), 128, 128, (5,)), ((784, 512, 10), 128, 128, (100,)),
              ((4096, 10, 3), 128, 128, (100,))]
CONVERTERS = [(8, 8, None, "bit_serial"), (4, 3, 0.5, "bit_serial"), (1, 2, None, "bit_serial"),
              (6, 12, 1.0, "multi_bit")]


@pytest.mark.parametrize("backward", ["digital", "transposed"])
@pytest.mark.parametrize("adc_model", [Adc, HalvedAdc], ids=["fused", "own quantize"])
def test_forward_and_backward_are_bit_identical_to_the_block_loop(path, backward, adc_model):
    if adc_model is not Adc and path == "stacked split":
        pytest.skip("a model with its own quantize does not run the kernel")
    rng = np.random.default_rng(11)
    for sizes, rows, cols, batches in GEOMETRIES:
        big = sizes[0] * sizes[1] > 100_000
        for input_bits, adc_bits, fraction, mode in CONVERTERS[:1] if big else CONVERTERS:
            mvm = crossbar(sizes, rows, cols, input_bits, adc_bits, fraction, backward, mode)
            if adc_model is not Adc:
                mvm.tile.adc.__class__ = adc_model
            for batch in batches:
                for layer in (0, 1):
                    n, m = sizes[layer], sizes[layer + 1]
                    w = rng.normal(0.0, 0.3, size=(n, m)).astype(np.float32)
                    delta = rng.normal(size=(batch, m)).astype(np.float32)
                    delta[0] = 0.0
                    inputs = [rng.random((batch, n), dtype=np.float32),                 # pixels
                              np.sign(rng.normal(size=(batch, n))).astype(np.float32),  # binary
                              np.tanh(rng.normal(size=(batch, n))).astype(np.float32)]  # signed
                    for x in inputs:
                        for _ in range(2):   # the second call reuses the cached buffers
                            assert same_bits(mvm.forward(layer, x, w), old_forward(mvm, layer, x, w))
                    for _ in range(2):
                        assert same_bits(mvm.backward(layer, delta, w), old_backward(mvm, layer, delta, w))
                    assert same_bits(mvm.forward(layer, np.asfortranarray(inputs[0]), np.asfortranarray(w)),
                                     old_forward(mvm, layer, inputs[0], np.asfortranarray(w)))


def test_the_binary_input_check_matches_numpy():
    rng = np.random.default_rng(2)
    binary = np.sign(rng.normal(size=(7, 9000))).astype(np.float32)
    assert dac_quantize(binary, 4) is binary
    for value in (0.5, -0.999, np.nan, -np.inf, 0.0, np.float32(np.nextafter(np.float32(1), 2))):
        for where in (0, 4095, 4096, binary.size - 1):
            x = binary.copy()
            x.reshape(-1)[where] = value
            expected = old_dac(x, 4)
            got = dac_quantize(x, 4)
            assert got is not x or np.all(np.abs(x) == 1.0)
            assert np.array_equal(got, expected, equal_nan=True)
            assert np.array_equal(np.signbit(got), np.signbit(expected))
    strided = binary[:, ::2]
    assert dac_quantize(strided, 4) is strided
    as64 = binary.astype(np.float64)
    assert dac_quantize(as64, 4) is as64
