"""Functional circuit effects on the matrix products: DAC input quantisation and per-tile
ADC clipping + quantisation of partial sums.

Forward ``x @ W`` of a layer mapped on tiles of R rows: x and W are cut into row blocks of R
(the tiles' word lines), one batched matmul gives every block's partial sums
``p_k = x_k @ W_k`` (blocks, batch, out), each is clipped and quantised by the ADC, then the
blocks are summed (the DPU's digital accumulation). Columns are independent, so the column
split over tiles needs no separate treatment.

* DAC: inputs in [0, 1] (layer 0 pixels) are rounded to 2^b - 1 uniform steps; inputs in
  [-1, 1] (tanh activations) to 2^(b-1) - 1 steps per sign; binary +-1 inputs are exact.
* ADC: signed mid-rise quantiser with 2^b codes over [-FS, +FS],
  ``FS = f * R * max|x| * max|w|`` where f = adc.full_scale_fraction or
  min(1, auto_sigmas / sqrt(R)); values beyond FS clip to the outermost code.
* Backward: 'digital' is exact; 'transposed' reads W^T through the same tiles: each
  sample's error vector is scaled by its max |delta| (digital scale factor), DAC-quantised to
  input_bits signed, cut into column blocks of the tile's weight columns, and every block's
  partial sums are ADC-quantised with R replaced by the block width.
"""

from __future__ import annotations

import numpy as np


def dac_quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """Quantise inputs to the DAC's resolution (exact for binary inputs)."""
    lo = float(x.min()) if x.size else 0.0
    if lo >= 0.0:
        levels = float(2**bits - 1)
        return np.round(np.clip(x, 0.0, 1.0) * levels) / np.float32(levels)
    # Signed: binary +-1 inputs pass unchanged (a sign input is one polarity-driven slice).
    if np.all(np.abs(x) == 1.0):
        return x
    levels = float(max(2 ** (bits - 1) - 1, 1))
    return np.round(np.clip(x, -1.0, 1.0) * levels) / np.float32(levels)


def adc_quantize(p: np.ndarray, bits: int, full_scale: float) -> np.ndarray:
    """Signed mid-rise quantiser of 2^bits codes over [-full_scale, full_scale], in place."""
    half = 2 ** (bits - 1)
    lsb = np.float32(full_scale / half)
    p /= lsb
    np.floor(p, out=p)
    np.clip(p, -half, half - 1, out=p)
    p += np.float32(0.5)
    p *= lsb
    return p


class CrossbarMvm:
    """:class:`archsim.learning.network.Mvm` with DAC/ADC effects of the mapped tiles."""

    def __init__(
        self,
        rows: int,
        weights_per_tile: int,
        input_bits: int,
        adc_bits: int,
        full_scale_fraction: float | None,
        auto_sigmas: float,
        weight_scale: float | None,
        backward: str = "digital",
    ) -> None:
        self.rows = rows
        self.weights_per_tile = weights_per_tile
        self.input_bits = input_bits
        self.adc_bits = adc_bits
        self.full_scale_fraction = full_scale_fraction
        self.auto_sigmas = auto_sigmas
        self.weight_scale = weight_scale
        self.backward_mode = backward
        self._pad_cache: dict[tuple[int, str], np.ndarray] = {}

    def fraction(self, lines: int) -> float:
        if self.full_scale_fraction is not None:
            return self.full_scale_fraction
        return min(1.0, self.auto_sigmas / np.sqrt(lines))

    def _w_max(self, weights: np.ndarray) -> float:
        if self.weight_scale is not None:
            return self.weight_scale
        return float(np.abs(weights).max()) or 1.0

    def _blocked(self, layer: int, kind: str, weights: np.ndarray, block: int) -> np.ndarray:
        """weights (n, m) as (ceil(n/block), block, m), zero-padded rows, buffer reused."""
        n, m = weights.shape
        nb = -(-n // block)
        key = (layer, kind)
        buf = self._pad_cache.get(key)
        if buf is None or buf.shape != (nb * block, m) or buf.dtype != weights.dtype:
            buf = self._pad_cache[key] = np.zeros((nb * block, m), dtype=weights.dtype)
        buf[:n] = weights
        return buf.reshape(nb, block, m)

    def _block_products(self, x: np.ndarray, w_blocks: np.ndarray, block: int) -> np.ndarray:
        batch, n = x.shape
        nb = w_blocks.shape[0]
        if nb * block != n:
            xp = np.zeros((batch, nb * block), dtype=x.dtype)
            xp[:, :n] = x
        else:
            xp = x
        # contiguous (nb, batch, block) so numpy's stacked matmul uses BLAS per block
        xb = np.ascontiguousarray(xp.reshape(batch, nb, block).transpose(1, 0, 2))
        return np.matmul(xb, w_blocks)  # (nb, batch, m)

    def forward(self, layer: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        xq = dac_quantize(x, self.input_bits).astype(weights.dtype, copy=False)
        x_max = 1.0
        w_blocks = self._blocked(layer, "fwd", weights, self.rows)
        partial = self._block_products(xq, w_blocks, self.rows)
        full_scale = self.fraction(self.rows) * self.rows * x_max * self._w_max(weights)
        adc_quantize(partial, self.adc_bits, full_scale)
        return partial.sum(axis=0)

    def backward(self, layer: int, delta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if self.backward_mode == "digital":
            return delta @ weights.T
        scale = np.abs(delta).max(axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        dq = dac_quantize(delta / scale, self.input_bits).astype(weights.dtype, copy=False)
        block = self.weights_per_tile
        wt_blocks = self._blocked(layer, "bwd", weights.T, block)  # (nb, block, n_in)
        partial = self._block_products(dq, wt_blocks, block)
        full_scale = self.fraction(block) * block * self._w_max(weights)
        adc_quantize(partial, self.adc_bits, full_scale)
        return partial.sum(axis=0) * scale
