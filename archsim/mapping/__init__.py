"""Mapping of weight matrices onto crossbar tiles (see :mod:`archsim.mapping.mapper`)."""

from archsim.mapping.mapper import (
    LayerMapping,
    NetworkMapping,
    TileAssignment,
    check_network_fits,
    map_network,
    tiles_needed,
    weights_per_tile_row,
)

__all__ = [
    "LayerMapping",
    "NetworkMapping",
    "TileAssignment",
    "check_network_fits",
    "map_network",
    "tiles_needed",
    "weights_per_tile_row",
]
