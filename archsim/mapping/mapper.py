"""Mapping of the network's weight matrices onto crossbar tiles.

A layer's weight matrix (n_in, n_out) is cut into ``ceil(n_in / R)`` row blocks (inputs on the
word lines) and ``ceil(n_out / w)`` column blocks, where ``w`` weight columns fit a tile
(the weight encoding says how many: :mod:`archsim.hw.encoding`; differential C/2,
reference C - 1). Every block is one tile; the partial sums of the row
blocks of a column block are accumulated digitally in the DPU. Tiles are numbered layer by
layer, row block major. Utilisation counts the cells that hold weights (differential: two per
weight) against the cells of the allocated tiles and of the whole chip.

A convolution is the same: its im2col matrix (C_in*k*k rows x C_out columns;
:mod:`archsim.config.layers`) is cut the same way, and its ``windows`` input vectors per image
are streamed through those tiles. With ``replicas`` r > 1 the layer's tiles are allocated r
times (replica major), each copy taking 1/r of the windows: r times the area and the
programming for about 1/r of the streaming time (ISAAC, Shafiee et al., ISCA 2016, replicates
the weights of early layers to balance its pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archsim.errors import MappingError
from archsim.hw.base import ceil_div
from archsim.hw.encoding import weight_encoding


@dataclass(frozen=True)
class TileAssignment:
    """One tile's share of one layer."""

    tile_id: int
    layer: int
    row_block: int
    col_block: int
    row_start: int
    rows_used: int
    out_start: int
    outputs: int
    physical_cols: int
    replica: int = 0


@dataclass
class LayerMapping:
    layer: int
    n_in: int
    n_out: int
    row_blocks: int
    col_blocks: int
    outputs_per_tile: int
    tiles: list[TileAssignment] = field(default_factory=list)
    windows: int = 1
    """Input vectors per image: output positions of a convolution, 1 for a dense layer."""
    replicas: int = 1
    """Copies of the matrix; ``tiles`` holds replica 0's tiles first, then replica 1's..."""
    kind: str = "dense"

    @property
    def tiles_per_replica(self) -> int:
        return self.row_blocks * self.col_blocks

    def replica_tiles(self, replica: int) -> list[TileAssignment]:
        per = self.tiles_per_replica
        return self.tiles[replica * per:(replica + 1) * per]


@dataclass
class NetworkMapping:
    """Where every weight lives; ``tiles_available`` is the chip's tile count."""

    rows: int
    cols: int
    encoding: str
    layers: list[LayerMapping]
    tiles_available: int

    @property
    def tiles_used(self) -> int:
        return sum(len(layer.tiles) for layer in self.layers)

    def all_tiles(self) -> list[TileAssignment]:
        return [t for layer in self.layers for t in layer.tiles]

    def weight_cells(self) -> int:
        return sum(t.rows_used * t.physical_cols for t in self.all_tiles())

    def utilisation(self) -> dict:
        cells_per_tile = self.rows * self.cols
        used_cells = self.weight_cells()
        cpw = weight_encoding(self.encoding).cols_per_weight
        weights = sum(layer.n_in * layer.n_out for layer in self.layers)
        stored = sum(layer.n_in * layer.n_out * layer.replicas for layer in self.layers)
        return {
            "tiles_used": self.tiles_used,
            "tiles_available": self.tiles_available,
            "tile_rows": self.rows,
            "tile_cols": self.cols,
            "weight_encoding": self.encoding,
            "weights": weights,
            "weight_copies": stored,
            "weight_cells": stored * cpw,
            "reference_cells": used_cells - stored * cpw,
            "cells_allocated": self.tiles_used * cells_per_tile,
            "cells_chip": self.tiles_available * cells_per_tile,
            "cell_utilisation_allocated": round(stored * cpw / (self.tiles_used * cells_per_tile), 6),
            "cell_utilisation_chip": round(stored * cpw / (self.tiles_available * cells_per_tile), 6),
            "tile_utilisation_chip": round(self.tiles_used / self.tiles_available, 6),
            "layers": [
                {
                    "layer": layer.layer,
                    "kind": layer.kind,
                    "shape": [layer.n_in, layer.n_out],
                    "windows_per_image": layer.windows,
                    "replicas": layer.replicas,
                    "row_blocks": layer.row_blocks,
                    "col_blocks": layer.col_blocks,
                    "tiles": len(layer.tiles),
                    "cell_utilisation": round(
                        layer.n_in * layer.n_out * layer.replicas * cpw / (len(layer.tiles) * cells_per_tile), 6
                    ),
                }
                for layer in self.layers
            ],
        }


def weights_per_tile_row(cols: int, encoding: str) -> int:
    """Weight columns (outputs) one tile holds."""
    return weight_encoding(encoding).weights_per_tile(cols)


@dataclass(frozen=True)
class MatrixSpec:
    """What the mapping needs of one weighted layer."""

    n_in: int
    n_out: int
    windows: int = 1
    replicas: int = 1
    kind: str = "dense"


def matrix_specs(network) -> list[MatrixSpec]:
    """``network`` as matrices: MLP layer sizes (784, 1024, 10) or the weighted layers of a
    plan (:class:`archsim.config.layers.WeightedLayer`)."""
    items = list(network)
    if all(isinstance(n, int) for n in items):
        return [MatrixSpec(a, b) for a, b in zip(items[:-1], items[1:])]
    return [MatrixSpec(layer.n_in, layer.n_out, layer.windows, layer.replicas, layer.kind) for layer in items]


def tiles_needed(network, rows: int, cols: int, encoding: str) -> int:
    """Tiles of ``network`` (sizes or plan, see :func:`matrix_specs`), replicas included."""
    per = weights_per_tile_row(cols, encoding)
    return sum(ceil_div(m.n_in, rows) * ceil_div(m.n_out, per) * m.replicas for m in matrix_specs(network))


def describe_network(network) -> str:
    items = list(network)
    if all(isinstance(n, int) for n in items):
        return "-".join(str(s) for s in items)
    from archsim.config.layers import describe_plan

    return describe_plan(tuple(items))


def map_network(
    network,
    rows: int,
    cols: int,
    encoding: str,
    tiles_available: int | None,
) -> NetworkMapping:
    """Split every layer over tiles (``network``: MLP sizes or a plan, see
    :func:`matrix_specs`); raise MappingError when the chip has too few tiles."""
    if rows < 1 or cols < 2:
        raise MappingError(f"tiles of {rows}x{cols} cells cannot hold a signed weight; use at least 1x2")
    layout = weight_encoding(encoding)
    per = layout.weights_per_tile(cols)
    needed = tiles_needed(network, rows, cols, encoding)
    if tiles_available is not None and needed > tiles_available:
        raise MappingError(
            f"network {describe_network(network)} needs {needed} tiles of {rows}x{cols} ({encoding}) "
            f"but the chip has {tiles_available}; raise hardware.tile.count to {needed}, use larger "
            "tiles or fewer conv2d replicas"
        )
    layers = []
    next_id = 0
    for index, spec in enumerate(matrix_specs(network)):
        n_in, n_out = spec.n_in, spec.n_out
        rb, cb = ceil_div(n_in, rows), ceil_div(n_out, per)
        layer = LayerMapping(index, n_in, n_out, rb, cb, per, windows=spec.windows,
                             replicas=spec.replicas, kind=spec.kind)
        for replica in range(spec.replicas):
            for r in range(rb):
                for c in range(cb):
                    rows_used = min(rows, n_in - r * rows)
                    outputs = min(per, n_out - c * per)
                    layer.tiles.append(TileAssignment(
                        next_id, index, r, c, r * rows, rows_used, c * per, outputs,
                        layout.physical_cols(outputs), replica))
                    next_id += 1
        layers.append(layer)
    return NetworkMapping(rows, cols, encoding, layers, tiles_available or needed)


def check_network_fits(config) -> NetworkMapping | None:
    """Map ``config``'s network on ``config.hardware`` (a RunConfig); MappingError if it does
    not fit. None without hardware. Call it where configurations are validated."""
    hw = config.hardware
    if hw is None:
        return None
    return map_network(config.model.plan, hw.tile.rows, hw.tile.cols, hw.weight_encoding, hw.tile.count)
