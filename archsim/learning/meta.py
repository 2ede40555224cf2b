"""Meta-functions: how strongly a magnitude-decreasing update of a hidden weight is damped.

Both rules return a factor f in (0, 1] per hidden weight. The optimizer multiplies a step by
f only where the step would *decrease* |W_H| (sign of Adam's first moment equal to sign(W_H));
steps that increase |W_H| always pass unchanged. See docs/learning-rules.md for the equations.
"""

from __future__ import annotations

import numpy as np

from archsim.learning.quantizer import Quantizer


def bnn_meta_factor(hidden: np.ndarray, m: float) -> np.ndarray:
    """Laborieux et al. 2021: f_meta = 1 - tanh^2(m |W_H|)."""
    t = np.tanh(np.abs(hidden) * np.float32(m))
    return 1.0 - t * t


def qnn_meta_factor(hidden: np.ndarray, quantizer: Quantizer, m_star: float) -> np.ndarray:
    """QNN meta-function M(W_H) = 1 - tanh^2(m* |W_H| / (I(W_H) / 2)).

    I(W_H) is the width of the quantization interval [Q_i, Q_{i+1}] holding W_H, so the
    distance from zero is measured in half-intervals (the distance from a decision threshold to
    its level). With two levels {-1, +1} the interval is 2 and M reduces exactly to
    Laborieux's 1 - tanh^2(m* |W_H|); with m* = 0 it is 1 everywhere.
    """
    half_interval = np.float32(0.5) * quantizer.interval_width(hidden)
    t = np.tanh(np.abs(hidden) * (np.float32(m_star) / half_interval))
    return 1.0 - t * t
