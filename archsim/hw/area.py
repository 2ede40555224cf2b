"""Silicon area of the chip, per component and in total.

Every component's area comes from a cited figure in its hardware-config section (``area_um2``
fields at ``area_reference_node_nm``, or a cell area in F^2) and one scaling rule:

* CMOS circuits: ``A = A_ref * (node / area_reference_node)^2`` (area scales with the square
  of the feature size, the rule Accelergy's hwcomponents applies for ``tech_node_area``);
* converters: x ``2^(bits - reference_bits)`` (Accelergy's ADC/DAC resolution rule; Murmann's
  ADC survey shows SAR area roughly doubling per bit);
* memory cells given in F^2 (1T1R cells, 6T SRAM cells): ``A = cells * cell_F2 * node^2``;
* routers: x ``link_width_bits / 256`` (linear in port width, hwcomponents-library
  ``IsaacRouter``); links: ``edges * link_width_bits * link_area_um2_per_bit``.

Instance counts come from the built :class:`~archsim.hw.chip.Chip`: per tile ``rows * cols``
cells, one driver per row, ``ceil(cols / columns_per_adc)`` ADCs with one shift-and-add each,
one sample-and-hold per column, and with transposed reads the same periphery on the row side.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from archsim.hw.chip import Chip

UM2_PER_MM2 = 1e6
# 32-bit adder and multiplier of the Aladdin 40 nm library (Shao et al., ISCA 2014;
# hwcomponents-library aladdin.py): how a lane's area splits between its adder and multiplier.
ALADDIN_ADD32_UM2 = 278.0
ALADDIN_MULT32_UM2 = 6350.0


def node_scale(node_nm: float, reference_nm: float) -> float:
    """Area factor from ``reference_nm`` to ``node_nm``: (node / reference)^2."""
    return (node_nm / reference_nm) ** 2


def reference_node(section) -> float:
    """The node of a config section's area figures (its area node, else its energy node)."""
    node = getattr(section, "area_reference_node_nm", None)
    return node if node is not None else section.reference_node_nm


def f2_um2(node_nm: float) -> float:
    """Area of one F^2 at ``node_nm`` in um^2."""
    return (node_nm * 1e-3) ** 2


@dataclass(frozen=True)
class TileArea:
    """Area of one tile's parts in um^2 and the instance counts behind them."""

    um2: dict[str, float]
    instances: dict[str, int]

    @property
    def total_um2(self) -> float:
        return sum(self.um2.values())


@dataclass(frozen=True)
class AreaReport:
    """Chip area by component in mm^2 (``total`` is their sum)."""

    by_component_mm2: dict[str, float]
    tile: TileArea
    tiles: int

    @property
    def total_mm2(self) -> float:
        return sum(self.by_component_mm2.values())

    def as_dict(self) -> dict:
        """The ``area_mm2`` section of summary.json."""
        return {
            "total": self.total_mm2,
            "by_component": dict(sorted(self.by_component_mm2.items())),
            "tiles": self.tiles,
            "per_tile": self.tile.total_um2 / UM2_PER_MM2,
        }


def tile_area(chip: Chip) -> TileArea:
    """Area of one tile: cells, drivers, ADCs, sample-and-holds, shift-and-adds, periphery."""
    hw = chip.hw
    node = hw.technology.node_nm
    tile = chip.tile
    adc, dac = tile.adc, tile.dac
    transposed = hw.crossbar.backward == "transposed"
    drivers = tile.rows + (tile.cols if transposed else 0)
    adcs = adc.adcs_for(tile.cols) + (adc.adcs_for(tile.rows) if transposed else 0)
    samples = tile.cols + (tile.rows if transposed else 0)
    instances = {"cells": tile.rows * tile.cols, "dac": drivers, "adc": adcs,
                 "sample_hold": samples, "shift_add": adcs}
    dac_um2 = hw.dac.area_um2 * 2.0 ** (dac.bits - hw.dac.reference_bits)
    adc_um2 = hw.adc.area_um2 * 2.0 ** (adc.bits - hw.adc.reference_bits)
    dac_scale = node_scale(node, reference_node(hw.dac))
    adc_scale = node_scale(node, reference_node(hw.adc))
    tile_scale = node_scale(node, reference_node(hw.tile))
    um2 = {
        "crossbar": instances["cells"] * hw.tile.cell_area_f2 * f2_um2(node),
        "dac": drivers * dac_um2 * dac_scale,
        "adc": adcs * adc_um2 * adc_scale,
        "sample_hold": samples * hw.adc.sample_area_um2 * adc_scale,
        "shift_add": adcs * hw.tile.shift_add_area_um2 * tile_scale,
        "tile_periphery": hw.tile.periphery_area_um2 * tile_scale,
    }
    return TileArea(um2, instances)


def dpu_lane_um2(chip: Chip) -> float:
    """One arithmetic lane at the reference node; fixed-point lanes scale like their energies."""
    dpu = chip.hw.dpu
    if dpu.hidden_precision == "float32":
        return dpu.mac_area_um2
    bits = dpu.hidden_bits
    share_add = ALADDIN_ADD32_UM2 / (ALADDIN_ADD32_UM2 + ALADDIN_MULT32_UM2)
    return dpu.mac_area_um2 * (share_add * bits / 32 + (1 - share_add) * (bits / 32) ** 2)


def interconnect_um2(chip: Chip, graph: nx.Graph) -> float:
    """Routers (by kind of node) and link wiring of the network ``graph``."""
    net = chip.hw.interconnect
    scale = node_scale(chip.hw.technology.node_nm, reference_node(net))
    width = net.link_width_bits
    if net.topology == "mesh":
        routers = sum(1 for _, kind in graph.nodes(data="kind") if kind == "endpoint")
    else:
        routers = sum(1 for n, kind in graph.nodes(data="kind")
                      if kind == "router" or (kind is None and not _is_endpoint(n)))
    router = routers * net.router_area_um2 * width / 256
    links = graph.number_of_edges() * width * net.link_area_um2_per_bit
    return (router + links) * scale


def _is_endpoint(node: str) -> bool:
    return node in ("dpu", "gbuf", "bus") or node.startswith("tile")


def chip_area(chip: Chip, tiles: int, sram_bits: int, graph: nx.Graph | None = None) -> AreaReport:
    """Area of ``tiles`` tiles, the DPU with ``sram_bits`` of SRAM, the global buffer and the
    interconnect (``graph`` from :func:`archsim.interconnect.topology.build_graph`; built
    here when not given)."""
    hw = chip.hw
    node = hw.technology.node_nm
    per_tile = tile_area(chip)
    if graph is None:
        from archsim.interconnect.topology import build_graph

        graph = build_graph(tiles, hw.interconnect)
    by_component = {name: tiles * um2 for name, um2 in per_tile.um2.items()}
    by_component["dpu"] = hw.dpu.mac_units * dpu_lane_um2(chip) * node_scale(node, reference_node(hw.dpu))
    by_component["sram"] = sram_bits * hw.dpu.sram_cell_area_f2 * f2_um2(node)
    by_component["global_buffer"] = hw.global_buffer.area_um2 * node_scale(
        node, reference_node(hw.global_buffer))
    by_component["interconnect"] = interconnect_um2(chip, graph)
    return AreaReport({k: v / UM2_PER_MM2 for k, v in by_component.items()}, per_tile, tiles)


__all__ = ["AreaReport", "TileArea", "chip_area", "node_scale", "tile_area"]

