"""A crossbar tile: R x C 1T1R array, input DACs, shared column ADCs, shift-and-add.

One matrix-vector product (MVM) of one input vector on one tile is two pipeline stages:

* read stage (array + DACs): ``S x (t_dac + t_read)`` -- S input slices (bit-serial inputs:
  S = input bits; binary inputs or multi-bit DACs: S = 1), all rows driven in parallel;
* convert stage (ADCs + shift-and-add): ``S x rounds x t_adc`` -- each slice's analog
  outputs are held (sample-and-hold, as in ISAAC) and converted by the ADCs, each hard-wired
  to ``columns_per_adc`` lines; ``rounds`` is the busiest ADC's count of sensed outputs
  (:meth:`archsim.hw.converters.Adc.conversion_rounds`), so a half-used tile with an 8:1
  multiplexer still needs 4 rounds for its differential outputs.

The stages are separate SimPy resources, so the read of the next vector overlaps the
conversion of the previous one. Each stage's time is rounded up to whole tile-clock cycles.

Energies per action (the ledger's units):
* ``dac.convert``: one row driven for one slice;
* ``crossbar.read_cell``: one cell read for one slice: V_read^2 * G_mean * t_read (Ohmic
  dissipation of a cell at the read voltage over the read pulse);
* ``sample_hold.sample``: one column output sampled (and integrated) for one slice;
* ``adc.convert``: one conversion; ``shift_add.add``: accumulate one ADC result. With
  ``adc.conversion = 'per_vector'`` (NeuRRAM) the slices are integrated in the analog domain
  and each output is converted once per vector instead of once per slice.

Signed weights: the tile's :class:`~archsim.hw.encoding.WeightEncoding` says how many device
columns a weight takes and which column is sensed (one conversion per weight column either way).
The transposed read (backward pass) drives the columns and senses the rows through row-side
ADCs of the same resolution and sharing.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsim.hw.base import cycles
from archsim.hw.converters import Adc, Dac
from archsim.hw.encoding import WeightEncoding


@dataclass(frozen=True)
class TileOp:
    """Cost of one MVM of one vector on one tile."""

    read_cycles: int
    convert_cycles: int
    counts: tuple[tuple[str, str, int], ...]

    @property
    def cycles(self) -> int:
        return self.read_cycles + self.convert_cycles


@dataclass
class Tile:
    """Geometry and periphery shared by every tile of the chip (the one place that says how
    many rows and weight columns a tile has: the mapping and the functional model ask it)."""

    rows: int
    cols: int
    encoding: WeightEncoding
    dac: Dac
    adc: Adc
    clock_hz: float
    read_time_s: float
    cell_read_energy_j: float
    shift_add_energy_j: float
    leakage_w: float = 0.0

    @property
    def cols_per_weight(self) -> int:
        return self.encoding.cols_per_weight

    @property
    def weights_per_row(self) -> int:
        """Logical weight columns (outputs) a tile holds."""
        return self.encoding.weights_per_tile(self.cols)

    def physical_cols(self, outputs: int) -> int:
        """Device columns used by ``outputs`` weight columns (with the reference column)."""
        return self.encoding.physical_cols(outputs)

    def read_stage_cycles(self, slices: int) -> int:
        return cycles(slices * (self.dac.latency_s + self.read_time_s), self.clock_hz)

    def mvm(self, rows_used: int, outputs: int, slices: int) -> TileOp:
        """Forward read: inputs on ``rows_used`` rows, ``outputs`` weight columns sensed."""
        phys = self.physical_cols(outputs)
        rounds = self.adc.conversion_rounds(outputs, self.encoding.sensed_line_step)
        conv = self.adc.conversions(slices)
        counts = (
            ("dac", "convert", slices * rows_used),
            ("crossbar", "read_cell", slices * rows_used * phys),
            ("sample_hold", "sample", slices * outputs),
            ("adc", "convert", conv * outputs),
            ("shift_add", "add", conv * outputs),
        )
        return TileOp(self.read_stage_cycles(slices), self.adc.stage_cycles(rounds, conv), counts)

    def mvm_transposed(self, rows_used: int, outputs: int, slices: int) -> TileOp:
        """Transposed read: errors on the ``outputs`` weight columns, ``rows_used`` rows sensed
        by row-side ADCs behind the same multiplexer (``columns_per_adc`` rows each)."""
        phys = self.physical_cols(outputs)
        rounds = self.adc.conversion_rounds(rows_used, 1)
        conv = self.adc.conversions(slices)
        counts = (
            ("dac", "convert", slices * phys),
            ("crossbar", "read_cell", slices * rows_used * phys),
            ("sample_hold", "sample", slices * rows_used),
            ("adc", "convert", conv * rows_used),
            ("shift_add", "add", conv * rows_used),
        )
        return TileOp(self.read_stage_cycles(slices), self.adc.stage_cycles(rounds, conv), counts)
