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

from archsim.learning.kernels import in_halves, scaled_abs_into
from archsim.learning.quantizer import Quantizer


def _fusable(hidden: np.ndarray, out: np.ndarray | None) -> bool:
    """float32, C-contiguous and, when given, ``out`` alike and of the same shape."""
    ok = hidden.dtype == np.float32 and hidden.flags.c_contiguous
    return ok and (out is None or (out.dtype == np.float32 and out.flags.c_contiguous and out.shape == hidden.shape))


@dataclass(frozen=True)
class TanhMeta:
    """f(W_H) = 1 - tanh^2(m |W_H| / (I(W_H) / 2)), or 1 - tanh^2(m |W_H|) without a quantizer.

    With ``quantizer`` this is the QNN meta-function (I(W_H) is the width of the quantization
    interval holding W_H); without, Laborieux et al.'s BNN meta-function.
    """

    m: float
    quantizer: Quantizer | None = None

    def uniform_scale(self, hidden: np.ndarray, out: np.ndarray | None = None) -> np.float32 | None:
        """s(W_H) as one float32 when it is the same for every weight (a uniform level set, or
        no quantizer) and ``hidden`` (and ``out``) are C-contiguous float32: then the argument
        is ``|W_H| * s`` element by element, which compiled code may fuse with what uses it."""
        uniform = self.quantizer is None or self.quantizer.uniform_step is not None
        if not (uniform and _fusable(hidden, out)):
            return None
        return np.float32(self._scale(hidden))

    def tanh_argument(self, hidden: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """a = s(W_H) |W_H| in float32, written to ``out`` when given."""
        scale = self.uniform_scale(hidden, out)
        if scale is not None:
            # one compiled pass, the same float32 operations as np.abs then *= scale below
            out = np.empty_like(hidden) if out is None else out
            flat, into = hidden.reshape(-1), out.reshape(-1)
            in_halves(flat.size, lambda start, stop: scaled_abs_into(flat[start:stop], scale, into[start:stop]))
            return out
        a = np.abs(hidden, out=out)
        a *= self._scale(hidden)
        return a

    def _scale(self, hidden: np.ndarray) -> np.float32 | np.ndarray:
        """s(W_H) = m / (I(W_H) / 2) (a scalar for a uniform level set), or m without quantizer."""
        if self.quantizer is None:
            return np.float32(self.m)
        half_interval = np.float32(0.5) * np.asarray(self.quantizer.interval_width(hidden), dtype=np.float32)
        return np.float32(self.m) / half_interval

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
