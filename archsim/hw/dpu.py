"""Digital processing unit: arithmetic lanes and the SRAM of hidden weights.

Arithmetic (Horowitz, ISSCC 2014, 45 nm / 0.9 V): fp32 add 0.9 pJ, fp32 multiply 3.7 pJ,
int32 add 0.1 pJ, int32 multiply 3.1 pJ. A b-bit fixed-point add costs b/32 of the 32-bit add
(ripple/prefix adder energy ~ width), a b-bit multiply (b/32)^2 of the 32-bit one (array
multiplier ~ width^2). ``mac_units`` lanes each perform one add or multiply per DPU cycle,
so n operations take ceil(n / mac_units) cycles.

SRAM (Horowitz 2014: 8 kB array, 64-bit access 10 pJ at 45 nm, i.e. 0.156 pJ/bit) holds the
hidden weights and Adam moments at ``hidden_bits``, batch-norm parameters, and the
activations of one batch needed by the backward pass. Actions ``read_bit`` / ``write_bit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsim.hw.base import Component, ceil_div


@dataclass
class Dpu(Component):
    mac_units: int = 64
    hidden_bits: int = 32

    def op_cycles(self, ops: int) -> int:
        return ceil_div(ops, self.mac_units) if ops else 0


@dataclass
class Sram(Component):
    capacity_bits: int = 0
