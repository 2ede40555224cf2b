"""Write-verify programming of the devices whose level changed.

Each pulse is followed by a verify read (the cell read at V_read plus one ADC conversion).
Time of one pulse step: t_pulse + t_verify + t_adc. With row-parallel programming every
changed device of a row is pulsed at once, so a tile's write time is
``sum over rows (max pulses of that row's changed devices) x t_step``; otherwise devices are
programmed one at a time: ``sum of pulses x t_step``. Tiles program in parallel.

Energy: the device model's CommitReport.energy_j when it reports one (it knows V, G and the
pulse count); otherwise ``pulses x pulse_energy_j`` (about 0.6 pJ: 2 V SET/RESET, 10-50 ns).
Verify reads: ``pulses x E_adc`` (ledger ``adc.verify_convert``) plus, without a device
energy, ``pulses x E_cell_read`` (``programming.verify_cell``; the device model's energy
already includes the verify-read cell current).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archsim.hw.base import cycles, cycles_of


@dataclass
class WriteVerify:
    pulse_energy_j: float
    pulse_time_s: float
    verify_time_s: float
    adc_time_s: float
    row_parallel: bool
    clock_hz: float
    address_bits: int
    level_bits: int

    @property
    def step_s(self) -> float:
        return self.pulse_time_s + self.verify_time_s + self.adc_time_s

    def program_cycles(self, pulse_steps: int) -> int:
        """Cycles of a tile for ``pulse_steps`` sequential pulse-and-verify steps."""
        return cycles(pulse_steps * self.step_s, self.clock_hz)

    def program_cycles_of(self, pulse_steps: np.ndarray) -> np.ndarray:
        """:meth:`program_cycles` of every entry of an integer array (int64), by the same
        float64 operations in the same order."""
        return cycles_of(pulse_steps.astype(np.float64) * self.step_s, self.clock_hz)

    def message_bits(self, changes: int) -> int:
        """Bits of the change list sent from the DPU to a tile (address + new level)."""
        return changes * (self.address_bits + self.level_bits)
