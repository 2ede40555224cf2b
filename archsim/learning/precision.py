"""Fixed-point hidden weights: what a DPU with k-bit hidden-weight registers can hold.

After every update the hidden weights are rounded onto the grid of a signed fixed-point
number with ``bits`` bits (sign included) spanning [-range, +range): step
``2 * range / 2**bits``, values saturated at the ends. Rounding is to the nearest step or
stochastic (up with probability equal to the remainder, Gupta et al., ICML 2015), drawing
from a seeded generator. This is applied in the learning arithmetic itself, so a narrow
hidden weight loses the small Adam steps it cannot represent (nearest) or keeps them only
in expectation (stochastic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FixedPointHidden:
    """Rounds hidden-weight arrays in place onto a ``bits``-bit fixed-point grid."""

    bits: int
    range: float
    stochastic: bool = False
    rng: np.random.Generator | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 64:
            raise ValueError(f"hidden-weight bits must be in 2..64, got {self.bits}")
        if self.stochastic and self.rng is None:
            raise ValueError("stochastic rounding needs a seeded np.random.Generator")

    @property
    def step(self) -> float:
        return 2.0 * self.range / 2**self.bits

    @property
    def max_value(self) -> float:
        """Largest representable value: range - step (two's complement)."""
        return self.range - self.step

    def __call__(self, hidden: np.ndarray) -> None:
        """Round ``hidden`` (float32) in place."""
        # float64 for the grid index: at 32 bits the index exceeds float32's 24-bit mantissa.
        scaled = hidden.astype(np.float64) * (1.0 / self.step)
        if self.stochastic:
            scaled += self.rng.random(hidden.shape)  # floor(x + u), u ~ U[0, 1): E = x
            np.floor(scaled, out=scaled)
        else:
            np.rint(scaled, out=scaled)
        scaled *= self.step
        np.clip(scaled, -self.range, self.max_value, out=scaled)
        hidden[...] = scaled
