"""Functional side of the mapped tiles: the matrix products as the chip computes them.

Forward ``x @ W`` of a layer: the tile's DAC quantises x (:meth:`Dac.quantize`); x and W are
cut into the mapping's row blocks (``LayerMapping.row_blocks`` blocks of ``NetworkMapping.rows``
word lines); each block's partial sums ``p_k = x_k @ W_k`` (batch, out), float32, are one
BLAS product covering every column tile of that block row at once, are clipped and
quantised in place by the tile's ADC (:meth:`Adc.quantize`) and added to the running sum
(the DPU's digital accumulation): a loop over the few row blocks, never over tiles.
Columns are independent, so the column split over tiles needs no separate treatment.

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

# Largest stack of partial sums (blocks x batch x outputs, elements) computed and converted in
# one go (4 MB of float32, about the L2 of the machines measured); a wider layer is done block
# by block so that each block's partial sums are converted while still in cache.
STACKED_PARTIALS_MAX = 1 << 20


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

    @staticmethod
    def _full_views(weights: np.ndarray, block: int) -> int:
        """Leading row blocks of ``weights`` usable in place: all full ones of C-contiguous
        weights, none of others (W^T)."""
        return weights.shape[0] // block if weights.flags.c_contiguous else 0

    def _padded_blocks(self, layer: int, kind: str, weights: np.ndarray, blocks: int, block: int,
                       full: int) -> np.ndarray:
        """Row blocks ``full`` to ``blocks`` of weights (n, m) as contiguous (blocks - full,
        block, m), the last zero-padded, written into a buffer reused across calls."""
        n, m = weights.shape
        key = (layer, kind)
        buf = self._pad_cache.get(key)
        rest = blocks - full
        if buf is None or buf.shape != (rest * block, m) or buf.dtype != weights.dtype:
            buf = self._pad_cache[key] = np.zeros((rest * block, m), dtype=weights.dtype)
        buf[:n - full * block] = weights[full * block:]
        return buf.reshape(rest, block, m)

    def _blocked(self, layer: int, kind: str, weights: np.ndarray, blocks: int, block: int) -> list[np.ndarray]:
        """weights (n, m) as ``blocks`` contiguous (block, m) row blocks, the last zero-padded.
        Full blocks of C-contiguous weights are views (no copy of the layer per call); the
        padded last block, or every block of non-contiguous weights (W^T), is written into a
        buffer reused across calls."""
        full = self._full_views(weights, block)
        views = [weights[k * block:(k + 1) * block] for k in range(full)]
        if full == blocks:
            return views
        return views + list(self._padded_blocks(layer, kind, weights, blocks, block, full))

    @staticmethod
    def _input_blocks(x: np.ndarray, blocks: int, block: int) -> np.ndarray:
        """x (batch, n) as (blocks, batch, block): a view of C-contiguous x when the blocks
        cover it exactly (each block is a BLAS operand with leading dimension n, read in
        place), else a contiguous copy with zero-padded columns."""
        batch, n = x.shape
        if blocks * block == n and x.flags.c_contiguous:
            return x.reshape(batch, blocks, block).transpose(1, 0, 2)
        xp = np.zeros((batch, blocks * block), dtype=x.dtype)
        xp[:, :n] = x
        return np.ascontiguousarray(xp.reshape(batch, blocks, block).transpose(1, 0, 2))

    def _stacked_partials(self, layer: int, kind: str, xb: np.ndarray, weights: np.ndarray,
                          block: int) -> np.ndarray:
        """Every row block's partial sums ``x_k @ W_k`` as one stacked (blocks, batch, m)
        product in a buffer reused across calls: numpy runs the same BLAS product on each
        (batch, block) @ (block, m) slice as it does on the block alone, without a Python
        call per block. Full blocks of C-contiguous weights are a view; the rest (the
        zero-padded last block, or every block of W^T) comes from :meth:`_blocked`'s buffer."""
        blocks, batch, _ = xb.shape
        n, m = weights.shape
        key = (layer, kind + "-partials")
        partials = self._pad_cache.get(key)
        if partials is None or partials.shape != (blocks, batch, m) or partials.dtype != weights.dtype:
            partials = self._pad_cache[key] = np.empty((blocks, batch, m), dtype=weights.dtype)
        full = self._full_views(weights, block)
        if full:
            np.matmul(xb[:full], weights[:full * block].reshape(full, block, m), out=partials[:full])
        if full < blocks:
            np.matmul(xb[full:], self._padded_blocks(layer, kind, weights, blocks, block, full),
                      out=partials[full:])
        return partials

    def _converted_sum(self, layer: int, kind: str, x: np.ndarray, weights: np.ndarray,
                       blocks: int, block: int, lines: int, w_max: float) -> np.ndarray:
        """sum_k ADC(x_k @ W_k) over the ``blocks`` row blocks k of ``block`` rows of
        ``weights``. Per element the float32 operations and their order are those of
        quantising the stacked partial sums and summing them over the block axis (numpy adds
        the blocks in order, 0 + 1 + 2 ...): tests/test_hw_accuracy.py checks bit-identity
        against that reference.

        Small stacks (a narrow layer's many row blocks, e.g. the paper's 4096 x 10 output
        layer: 32 blocks of 100 x 10 a batch) are computed as one stacked product and
        converted and summed in one pass (:meth:`Adc.quantize_sum`): per block, a Python-level
        product and conversion would cost more than the arithmetic. A wide layer's blocks are
        done one at a time: each block's partial sums (batch, m) are computed, ADC-quantised
        in place and added to the accumulator while still in cache, instead of materialising
        all blocks' partial sums (blocks times the output) and passing over them twice."""
        xb = self._input_blocks(x, blocks, block)
        adc = self.tile.adc
        batch, m = x.shape[0], weights.shape[1]
        if blocks > 1 and blocks * batch * m <= STACKED_PARTIALS_MAX:
            partials = self._stacked_partials(layer, kind, xb, weights, block)
            total = np.empty((batch, m), dtype=partials.dtype)
            adc.quantize_sum(partials, total, lines, 1.0, w_max)
            return total
        w_blocks = self._blocked(layer, kind, weights, blocks, block)
        total = np.matmul(xb[0], w_blocks[0])
        adc.quantize_into(total, total, False, lines, 1.0, w_max)
        if blocks > 1:
            partial = np.empty_like(total)
            for k in range(1, blocks):
                np.matmul(xb[k], w_blocks[k], out=partial)
                adc.quantize_into(partial, total, True, lines, 1.0, w_max)
        return total

    def forward(self, layer: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        layer_map = self._layer(layer, weights)
        rows = self.mapping.rows
        xq = self.tile.dac.quantize(x).astype(weights.dtype, copy=False)
        return self._converted_sum(layer, "fwd", xq, weights, layer_map.row_blocks, rows, rows,
                                   self._w_max(weights))

    def backward(self, layer: int, delta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if self.backward_mode == "digital":
            return delta @ weights.T
        layer_map = self._layer(layer, weights)
        scale = np.abs(delta).max(axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        dq = self.tile.dac.quantize(delta / scale).astype(weights.dtype, copy=False)
        block = layer_map.outputs_per_tile
        return self._converted_sum(layer, "bwd", dq, weights.T, layer_map.col_blocks, block, block,
                                   self._w_max(weights)) * scale
