"""Common pieces of the component models: counted actions and clock conversion.

Every component is a small class holding its parameters (already scaled to the chip's
technology) and exposing its actions. An action has a constant energy per unit
(``unit_energy_j[action]``) so the ledger can always check energy = count x unit energy, and
a latency in cycles of the component's clock. Derivations are cited next to each formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def cycles(seconds: float, clock_hz: float) -> int:
    """Whole cycles of ``clock_hz`` needed to cover ``seconds`` (ceil, with float slack)."""
    return max(0, math.ceil(seconds * clock_hz - 1e-9))


def cycles_of(seconds: np.ndarray, clock_hz: float) -> np.ndarray:
    """:func:`cycles` of every entry of a float64 array (int64), by the same float64
    operations in the same order."""
    return np.maximum(0, np.ceil(seconds * clock_hz - 1e-9)).astype(np.int64)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Component:
    """Base: a name for the ledger, a clock, per-action unit energies and a leakage power."""

    name: str
    clock_hz: float
    unit_energy_j: dict[str, float] = field(default_factory=dict)
    leakage_w: float = 0.0

    def energy(self, action: str, count: int) -> float:
        """Energy in J of ``count`` units of ``action``."""
        return count * self.unit_energy_j[action]

    def period_s(self) -> float:
        return 1.0 / self.clock_hz
