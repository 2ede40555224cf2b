"""Component models of the chip (Accelergy style): parameters, actions, energy and latency.

:func:`archsim.hw.chip.build_chip` turns a :class:`~archsim.config.HardwareConfig` into the
component instances, with every CMOS energy scaled to the chip's technology node.
:class:`archsim.hw.circuits.CrossbarMvm` is the functional side: DAC and per-tile ADC effects
on the matrix products of the learning code.
"""

from archsim.hw.base import Component, ceil_div, cycles
from archsim.hw.converters import Adc, Dac
from archsim.hw.dpu import Dpu, Sram
from archsim.hw.programming import WriteVerify
from archsim.hw.tile import Tile, TileOp

__all__ = ["Adc", "Component", "Dac", "Dpu", "Sram", "Tile", "TileOp", "WriteVerify", "ceil_div", "cycles"]
