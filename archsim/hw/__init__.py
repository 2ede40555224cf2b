"""Component models of the chip (Accelergy style): each owns its transform and its costs.

:func:`archsim.hw.chip.build_chip` turns a :class:`~archsim.config.HardwareConfig` into the
component instances, with every CMOS energy scaled to the chip's technology node.
:class:`archsim.hw.circuits.CrossbarMvm` computes the learner's matrix products through the
same tile's DAC and ADC objects. Variants are chosen by name through registries
(:data:`ADC_MODELS`, :data:`WEIGHT_ENCODINGS`).
"""

from archsim.hw.base import Component, ceil_div, cycles
from archsim.hw.converters import ADC_MODELS, Adc, Dac, SarAdc
from archsim.hw.dpu import Dpu, Sram
from archsim.hw.encoding import WEIGHT_ENCODINGS, WeightEncoding, weight_encoding
from archsim.hw.programming import WriteVerify
from archsim.hw.registry import Registry
from archsim.hw.tile import Tile, TileOp

__all__ = ["ADC_MODELS", "Adc", "Component", "Dac", "Dpu", "Registry", "SarAdc", "Sram", "Tile",
           "TileOp", "WEIGHT_ENCODINGS", "WeightEncoding", "WriteVerify", "ceil_div", "cycles",
           "weight_encoding"]
