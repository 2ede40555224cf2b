"""Meta-functions: how strongly a magnitude-decreasing update of a hidden weight is damped.

Both rules return a factor f in (0, 1] per hidden weight. The optimizer multiplies a step by
f only where the step would *decrease* |W_H| (sign of Adam's first moment equal to sign(W_H));
steps that increase |W_H| always pass unchanged. See docs/learning-rules.md for the equations.

Both factors have the form f = 1 - tanh^2(a) with a = s(W_H) |W_H|; a :class:`TanhMeta`
exposes the argument a, so the optimizer can evaluate tanh into a reused buffer and fuse the
rest (1 - t^2, the damping) into its own single pass (archsim/learning/kernels.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archsim.learning.quantizer import Quantizer


@dataclass(frozen=True)
class TanhMeta:
    """f(W_H) = 1 - tanh^2(m |W_H| / (I(W_H) / 2)), or 1 - tanh^2(m |W_H|) without a quantizer.

    With ``quantizer`` this is the QNN meta-function (I(W_H) is the width of the quantization
    interval holding W_H); without, Laborieux et al.'s BNN meta-function.
    """

    m: float
    quantizer: Quantizer | None = None

    def tanh_argument(self, hidden: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """a = s(W_H) |W_H| in float32, written to ``out`` when given."""
        a = np.abs(hidden, out=out)
        if self.quantizer is None:
            scale = np.float32(self.m)
        else:
            half_interval = np.float32(0.5) * np.asarray(
                self.quantizer.interval_width(hidden), dtype=np.float32
            )
            scale = np.float32(self.m) / half_interval
        a *= scale
        return a

    def __call__(self, hidden: np.ndarray) -> np.ndarray:
        t = np.tanh(self.tanh_argument(hidden))
        return 1.0 - t * t


def bnn_meta_factor(hidden: np.ndarray, m: float) -> np.ndarray:
    """Laborieux et al. 2021: f_meta = 1 - tanh^2(m |W_H|)."""
    return TanhMeta(m)(hidden)


def qnn_meta_factor(hidden: np.ndarray, quantizer: Quantizer, m_star: float) -> np.ndarray:
    """QNN meta-function M(W_H) = 1 - tanh^2(m* |W_H| / (I(W_H) / 2)).

    I(W_H) is the width of the quantization interval [Q_i, Q_{i+1}] holding W_H, so the
    distance from zero is measured in half-intervals (the distance from a decision threshold to
    its level). With two levels {-1, +1} the interval is 2 and M reduces exactly to
    Laborieux's 1 - tanh^2(m* |W_H|); with m* = 0 it is 1 everywhere.
    """
    return TanhMeta(m_star, quantizer)(hidden)
