"""DACs (word-line drivers) and SAR ADCs of a tile."""

from __future__ import annotations

from dataclasses import dataclass

from archsim.hw.base import Component, ceil_div, cycles

# ISAAC 32 nm SAR ADC energy per conversion (pJ) by resolution, as tabulated in Accelergy's
# hwcomponents-library isaac.py from Kull et al. ISSCC 2013 (8 bit, 1.2 GS/s) scaled with
# Saberi et al. 2011 (capacitive-DAC power vs. resolution).
ISAAC_ADC_PJ = {4: 0.79, 5: 0.99, 6: 1.20, 7: 1.42, 8: 1.67, 9: 1.969078145, 10: 2.379022742}


def adc_resolution_factor(bits: int) -> float:
    """Relative conversion energy of a ``bits`` SAR ADC (1.0 at 8 bits).

    The ISAAC/Saberi table for 4..10 bits; below 4 bits linear in bits (comparator-dominated,
    one decision per bit); above 10 bits x2 per bit (thermal-noise limited; Murmann's ADC
    survey shows energy/conversion ~ 4^ENOB at high resolution, x2 is the conservative end).
    """
    if bits in ISAAC_ADC_PJ:
        return ISAAC_ADC_PJ[bits] / ISAAC_ADC_PJ[8]
    if bits < 4:
        return ISAAC_ADC_PJ[4] * bits / 4 / ISAAC_ADC_PJ[8]
    return ISAAC_ADC_PJ[10] * 2.0 ** (bits - 10) / ISAAC_ADC_PJ[8]


@dataclass
class Dac(Component):
    """Input drivers. Action ``convert``: apply one input value to one row for one slice.

    Energy of a b-bit conversion = E_ref * 2^(b - b_ref) (Accelergy's DAC resolution scaling);
    bit-serial drivers are 1-bit. Latency: ``latency_s`` per slice (all rows in parallel).
    """

    bits: int = 1
    input_bits: int = 8
    bit_serial: bool = True
    latency_s: float = 1e-9

    def slices(self, binary_inputs: bool) -> int:
        """Slices to apply one input vector: 1 for binary (sign) inputs or multi-bit DACs."""
        if binary_inputs or not self.bit_serial:
            return 1
        return self.input_bits


@dataclass
class Adc(Component):
    """Column ADCs shared by ``columns_per_adc`` columns. Action ``convert``: one conversion.

    Conversion time: ``latency_s`` (default NeuroSim SAR: (bits + 1) x 1 ns,
    ``SarADC::CalculateLatency``). The columns sharing an ADC are converted one after another.
    """

    bits: int = 8
    columns_per_adc: int = 8
    latency_s: float = 9e-9
    per_vector: bool = False  # slices integrated in the analog domain, one conversion per vector

    def conversions(self, slices: int) -> int:
        """Conversions of one output for an input of ``slices`` slices."""
        return 1 if self.per_vector else slices

    def adcs_for(self, lines: int) -> int:
        """ADCs serving ``lines`` physical lines."""
        return ceil_div(lines, self.columns_per_adc)

    def conversion_rounds(self, outputs: int, adcs: int) -> int:
        """Sequential conversions of the busiest ADC when ``outputs`` values are sensed by
        ``adcs`` ADCs (outputs interleaved over the ADCs)."""
        return ceil_div(outputs, adcs) if outputs else 0

    def stage_cycles(self, rounds: int, slices: int) -> int:
        return cycles(slices * rounds * self.latency_s, self.clock_hz)


def default_adc_latency_s(bits: int) -> float:
    """NeuroSim SAR ADC: (log2(levels) + 1) steps of 1 ns."""
    return (bits + 1) * 1e-9


__all__ = ["Adc", "Dac", "adc_resolution_factor", "default_adc_latency_s"]
