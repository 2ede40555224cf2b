"""Predict a design's headline figures through the same chip model as ``archsim run``.

The chip is built by :func:`archsim.hw.chip.build_chip`; one MVM's action counts and stage
cycles come from the tile (``Tile.mvm``, what the engine charges per image), priced with the
chip's ``unit_energy`` table (what the ledger multiplies); areas come from
:mod:`archsim.hw.area`. Nothing here re-derives a cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsim.hw.area import UM2_PER_MM2, tile_area
from archsim.hw.chip import Chip, build_chip
from archsim.validate.design import UNIT_SCALE, Design, Figure


@dataclass(frozen=True)
class Prediction:
    """Simulated figures of one design (SI units)."""

    metrics: dict[str, float]
    energy_by_component_j: dict[str, float]  # one crossbar MVM


def mvm_energy(chip: Chip, counts) -> dict[str, float]:
    """Energy of one MVM by component, from the tile's action counts and the ledger's prices."""
    energy: dict[str, float] = {}
    for component, action, units in counts:
        energy[component] = energy.get(component, 0.0) + units * chip.unit_energy[(component, action)]
    return energy


def predict(design: Design) -> Prediction:
    op_point = design.operating_point
    chip = build_chip(design.hardware, levels=2)
    tile = chip.tile
    slices = tile.dac.slices(op_point.binary_inputs)
    op = tile.mvm(op_point.rows_used, op_point.outputs, slices)
    period_s = 1.0 / chip.clock_hz["crossbar"]
    latency_s = op.cycles * period_s
    interval_s = (max(op.read_cycles, op.convert_cycles) if op_point.streaming else op.cycles) * period_s
    by_component = mvm_energy(chip, op.counts)
    e_mvm = sum(by_component.values())
    n = op_point.crossbars_per_unit
    unit_ops_per_s = n * op_point.ops_per_mvm / interval_s
    # tile leakage (hardware.tile.leakage_w) is static power of the modelled periphery, as the
    # engine charges it per powered tile
    unit_power = n * (e_mvm / interval_s + chip.leakage_w["tile"]) + op_point.unit_extra_power_w
    unit_area = n * tile_area(chip).total_um2 / UM2_PER_MM2 + op_point.unit_extra_area_mm2
    chip_ops = unit_ops_per_s * op_point.units
    chip_area = unit_area * op_point.units + op_point.chip_extra_area_mm2
    metrics = {
        "unit_power_w": unit_power,
        "unit_area_mm2": unit_area,
        "energy_per_op_j": unit_power / unit_ops_per_s,
        "tops_per_w": unit_ops_per_s / unit_power / 1e12,
        "mvm_latency_s": latency_s,
        "chip_tops": chip_ops / 1e12,
        "chip_gops_per_mm2": chip_ops / 1e9 / chip_area,
        "chip_area_mm2": chip_area,
    }
    return Prediction(metrics, by_component)


@dataclass(frozen=True)
class Check:
    """One figure compared: published, simulated, their ratio and the verdict."""

    design: str
    figure: Figure
    simulated: float

    @property
    def simulated_shown(self) -> float:
        """The simulated value in the figure's display unit."""
        return self.simulated * UNIT_SCALE[self.figure.unit]

    @property
    def ratio(self) -> float:
        return self.simulated_shown / self.figure.published

    @property
    def within_tolerance(self) -> bool:
        return abs(self.ratio - 1.0) <= self.figure.tolerance

    @property
    def passed(self) -> bool:
        """Within tolerance, or a documented deviation still inside its known band."""
        if self.within_tolerance:
            return True
        band = self.figure.known_ratio
        return band is not None and band[0] <= self.ratio <= band[1]

    @property
    def status(self) -> str:
        if self.within_tolerance:
            return "ok"
        return "documented" if self.passed else "FAIL"


def check_design(design: Design) -> list[Check]:
    return checks_of(design, predict(design))


def checks_of(design: Design, prediction: Prediction) -> list[Check]:
    return [Check(design.name, f, prediction.metrics[f.metric]) for f in design.figures]
