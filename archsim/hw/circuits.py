"""Functional side of the mapped tiles: the matrix products as the chip computes them.

Forward ``x @ W`` of a layer: the tile's DAC quantises x (:meth:`Dac.quantize`); x and W are
cut into the mapping's row blocks (``LayerMapping.row_blocks`` blocks of ``NetworkMapping.rows``
word lines); one stacked matmul gives every block's partial sums ``p_k = x_k @ W_k``
(blocks, batch, out) in float32; the tile's ADC clips and quantises all of them at once
(:meth:`Adc.quantize` on the whole stack: one batched reshape, no loop over tiles); the
blocks are summed (the DPU's digital accumulation). Columns are independent, so the column
split over tiles needs no separate treatment.

Backward: 'digital' is exact; 'transposed' reads W^T through the same tiles: each sample's
error vector is scaled by its max |delta| (digital scale factor), DAC-quantised, cut into the
mapping's column blocks (``outputs_per_tile`` weight columns), and every block's partial
sums are ADC-quantised with the block width as the number of driven lines.

Geometry comes from the mapping and the converters from the chip's tile, so a change to
either reaches the cost model and this functional model alike.
"""

from __future__ import annotations

import numpy as np

from archsim.errors import MappingError
from archsim.hw.tile import Tile
from archsim.mapping.mapper import LayerMapping, NetworkMapping


class CrossbarMvm:
    """:class:`archsim.learning.network.Mvm` with the DAC/ADC effects of the mapped tiles."""

    def __init__(self, tile: Tile, mapping: NetworkMapping, weight_scale: float | None,
                 backward: str = "digital") -> None:
        self.tile = tile
        self.mapping = mapping
        self.weight_scale = weight_scale
        self.backward_mode = backward
        self._pad_cache: dict[tuple[int, str], np.ndarray] = {}

    def _layer(self, layer: int, weights: np.ndarray) -> LayerMapping:
        layer_map = self.mapping.layers[layer]
        if weights.shape != (layer_map.n_in, layer_map.n_out):
            raise MappingError(
                f"layer {layer} has weights {weights.shape} but the chip mapped "
                f"({layer_map.n_in}, {layer_map.n_out}); build the architecture for this network"
            )
        return layer_map

    def _w_max(self, weights: np.ndarray) -> float:
        if self.weight_scale is not None:
            return self.weight_scale
        return float(np.abs(weights).max()) or 1.0

    def _blocked(self, layer: int, kind: str, weights: np.ndarray, blocks: int, block: int) -> np.ndarray:
        """weights (n, m) as (blocks, block, m), zero-padded rows, buffer reused."""
        n, m = weights.shape
        key = (layer, kind)
        buf = self._pad_cache.get(key)
        if buf is None or buf.shape != (blocks * block, m) or buf.dtype != weights.dtype:
            buf = self._pad_cache[key] = np.zeros((blocks * block, m), dtype=weights.dtype)
        buf[:n] = weights
        return buf.reshape(blocks, block, m)

    @staticmethod
    def _block_products(x: np.ndarray, w_blocks: np.ndarray) -> np.ndarray:
        batch, n = x.shape
        nb, block, _ = w_blocks.shape
        if nb * block != n:
            xp = np.zeros((batch, nb * block), dtype=x.dtype)
            xp[:, :n] = x
        else:
            xp = x
        # contiguous (nb, batch, block) so numpy's stacked matmul uses BLAS per block
        xb = np.ascontiguousarray(xp.reshape(batch, nb, block).transpose(1, 0, 2))
        return np.matmul(xb, w_blocks)  # (nb, batch, m)

    def forward(self, layer: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        layer_map = self._layer(layer, weights)
        rows = self.mapping.rows
        xq = self.tile.dac.quantize(x).astype(weights.dtype, copy=False)
        w_blocks = self._blocked(layer, "fwd", weights, layer_map.row_blocks, rows)
        partial = self._block_products(xq, w_blocks)
        self.tile.adc.quantize(partial, rows, 1.0, self._w_max(weights))
        return partial.sum(axis=0)

    def backward(self, layer: int, delta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if self.backward_mode == "digital":
            return delta @ weights.T
        layer_map = self._layer(layer, weights)
        scale = np.abs(delta).max(axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        dq = self.tile.dac.quantize(delta / scale).astype(weights.dtype, copy=False)
        block = layer_map.outputs_per_tile
        wt_blocks = self._blocked(layer, "bwd", weights.T, layer_map.col_blocks, block)
        partial = self._block_products(dq, wt_blocks)
        self.tile.adc.quantize(partial, block, 1.0, self._w_max(weights))
        return partial.sum(axis=0) * scale
