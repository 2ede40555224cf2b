"""Weight quantizer: maps high-precision hidden weights W_H to one of L levels.

The level set is uniform symmetric by default, Q_k = -1 + k * 2/(L-1) for k = 0..L-1, so
L = 2 gives the binary weights {-1, +1} of a BNN and L = 3 the ternary {-1, 0, +1}. Any
strictly increasing level set may be given. A hidden weight maps to the nearest level
(decision thresholds at the interval midpoints); values beyond the outer levels clip to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archsim.learning import kernels
from archsim.learning.kernels import (
    THRESHOLD_LEVELS, collect_changed, kernel_launch, level_changes, uniform_level_changes, uniform_level_index,
)


def uniform_levels(levels: int) -> np.ndarray:
    """The uniform symmetric level set in [-1, 1] with ``levels`` entries (float64)."""
    if levels < 2:
        raise ValueError(f"a quantizer needs at least 2 levels, got {levels}")
    return np.linspace(-1.0, 1.0, levels)


@dataclass(frozen=True)
class Quantizer:
    """Nearest-level quantizer over a strictly increasing set of level values."""

    values: np.ndarray
    thresholds: np.ndarray = field(init=False, repr=False)
    intervals: np.ndarray = field(init=False, repr=False)
    uniform_step: float | None = field(init=False, repr=False)
    _thresholds: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 1 or values.size < 2:
            raise ValueError("a quantizer needs at least 2 level values")
        if np.any(np.diff(values) <= 0) or not np.all(np.isfinite(values)):
            raise ValueError("level values must be finite and strictly increasing")
        intervals = np.diff(values)
        uniform = bool(np.allclose(intervals, intervals[0], rtol=1e-9, atol=0.0))
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "intervals", intervals)
        object.__setattr__(self, "thresholds", (values[1:] + values[:-1]) / 2.0)
        object.__setattr__(self, "uniform_step", float(intervals[0]) if uniform else None)

    @classmethod
    def from_config(cls, levels: int, level_values: list[float] | None = None) -> "Quantizer":
        values = uniform_levels(levels) if level_values is None else np.asarray(level_values)
        return cls(values)

    @property
    def levels(self) -> int:
        return int(self.values.size)

    @property
    def bits(self) -> int:
        """Bits needed to address one level (ceil(log2 L))."""
        return int(np.ceil(np.log2(self.levels)))

    def level_index(self, hidden: np.ndarray) -> np.ndarray:
        """Index (uint8 for L <= 256) of the nearest level of every hidden weight."""
        dtype = np.uint8 if self.levels <= 256 else np.int32
        if self.uniform_step is not None:
            # floor(x + 1/2) sends ties upwards, like searchsorted(side="right") below;
            # evaluated in float64 (the level values' precision), one fused pass.
            hidden = np.asarray(hidden)
            if hidden.dtype not in (np.float32, np.float64):
                hidden = hidden.astype(np.float64)
            index = np.empty(hidden.shape, dtype=dtype)
            with kernel_launch():
                uniform_level_index(
                    np.ascontiguousarray(hidden).reshape(-1), *self.uniform_constants(), index.reshape(-1)
                )
            return index
        return np.searchsorted(self.thresholds, hidden, side="right").astype(dtype)

    def level_changes(self, hidden: np.ndarray, old: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``new = level_index(hidden)``, ``changed = new != old`` and ``np.flatnonzero(changed)``.

        Uniform levels: one compiled scan computes the levels, compares them, and collects
        the changed indices while each block is in the cache (sorted, as flatnonzero); other
        level sets take numpy's levels, then a compare-and-count pass and a collect pass.
        The scans split over the kernels' threads when the layer is large.
        """
        if self.uniform_step is None:
            return self._searched_level_changes(hidden, old)
        if np.shape(hidden) != old.shape:
            raise ValueError(f"stored levels {old.dtype}{old.shape} do not match {old.dtype}{np.shape(hidden)}")
        source = np.asarray(hidden)
        if source.dtype not in (np.float32, np.float64):
            source = source.astype(np.float64)
        source = np.ascontiguousarray(source).reshape(-1)
        new = np.empty(old.shape, dtype=old.dtype)
        changed = np.empty(old.shape, dtype=bool)
        mask = changed.reshape(-1)
        chunks = kernels.scan_chunks(mask.size, "stream")
        # each chunk's part: up to an eighth of its weights changed (positions in the chunk),
        # plus 8 spare
        scratch = np.empty(mask.size // 8 + 8 * (chunks + 1), dtype=np.int32 if mask.size < 2**31 else np.int64)
        with kernel_launch():
            index = uniform_level_changes(source, *self.uniform_constants(), self.level_thresholds(source.dtype),
                                          np.ascontiguousarray(old).reshape(-1), new.reshape(-1), mask,
                                          mask[: mask.size // 8 * 8].view(np.uint64),
                                          np.empty(chunks, dtype=np.int64), scratch)
        return new, changed, index

    def _searched_level_changes(self, hidden: np.ndarray, old: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`level_changes` of a non-uniform level set."""
        new = self.level_index(hidden)
        if new.shape != old.shape or new.dtype != old.dtype:
            raise ValueError(f"stored levels {old.dtype}{old.shape} do not match {new.dtype}{new.shape}")
        flat = new.reshape(-1)
        changed = np.empty(new.shape, dtype=bool)
        mask = changed.reshape(-1)
        offsets = np.empty(kernels.scan_chunks(flat.size, "stream"), dtype=np.int64)
        with kernel_launch():
            total = level_changes(np.ascontiguousarray(old).reshape(-1), flat, mask, offsets)
        index = np.empty(total, dtype=np.intp)
        if total:
            with kernel_launch():
                collect_changed(mask, mask[: mask.size // 8 * 8].view(np.uint64), offsets, index)
        return new, changed, index

    def level_thresholds(self, dtype: np.dtype) -> np.ndarray:
        """Uniform levels, at most THRESHOLD_LEVELS of them: T_1..T_{L-1}, T_k the least value of
        ``dtype`` whose float64 level arithmetic (:func:`uniform_level_index`) reaches level k,
        padded with NaN to three; an empty array for more levels (the kernels then compute).
        For weights below 2^63 steps, level(x) = #{k : x >= T_k} exactly (the arithmetic is
        non-decreasing in x); beyond, the thresholds give the outer level as numpy's floor and
        clip do, where the compiled float64-to-integer floor overflows to level 0."""
        dtype = np.dtype(dtype)
        cached = self._thresholds.get(dtype)
        if cached is not None:
            return cached
        if self.levels > THRESHOLD_LEVELS:
            thresholds = np.zeros(0, dtype=dtype)
        else:
            lowest, inv_step, top = self.uniform_constants()
            thresholds = np.full(THRESHOLD_LEVELS - 1, np.nan, dtype=dtype)
            bits = np.dtype(f"i{dtype.itemsize}")
            sign = np.array((1 << (8 * dtype.itemsize - 1)) - 1, dtype=bits)  # all bits but the sign

            def ordered(x: float) -> int:  # the float's rank among the dtype's values, as an integer
                b = np.array(x, dtype=dtype).view(bits)
                return int(b ^ ((b >> (8 * dtype.itemsize - 1)) & sign))

            def value(key: int) -> np.floating:
                b = np.array(key, dtype=bits)
                return (b ^ ((b >> (8 * dtype.itemsize - 1)) & sign)).view(dtype)[()]

            def reaches(x: np.floating, k: int) -> bool:  # the kernels' float64 operations, in order
                return (float(x) - lowest) * inv_step + 0.5 >= k

            for k in range(1, top + 1):
                below, at = ordered(-np.inf), ordered(np.inf)  # g(-inf) = -inf, g(inf) = inf
                while at - below > 1:
                    middle = (below + at) // 2
                    if reaches(value(middle), k):
                        at = middle
                    else:
                        below = middle
                thresholds[k - 1] = value(at)
        self._thresholds[dtype] = thresholds
        return thresholds

    def uniform_constants(self) -> tuple[float, float, int]:
        """(Q_0, 1 / step, L - 1): the uniform quantizer as the fused kernels take it."""
        assert self.uniform_step is not None
        return float(self.values[0]), 1.0 / self.uniform_step, self.levels - 1

    def dequantize(self, index: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Level values of an index array."""
        return self.values.astype(dtype)[index]

    def quantize(self, hidden: np.ndarray) -> np.ndarray:
        """Nearest level value of every hidden weight, in the hidden weights' dtype."""
        return self.dequantize(self.level_index(hidden), dtype=hidden.dtype)

    def interval_width(self, hidden: np.ndarray) -> np.ndarray | float:
        """Width I_i = Q_{i+1} - Q_i of the interval [Q_i, Q_{i+1}] holding each weight.

        Weights beyond the outer levels take the outermost interval's width.
        """
        if self.uniform_step is not None:
            return self.uniform_step
        position = np.searchsorted(self.values, hidden, side="right") - 1
        np.clip(position, 0, self.levels - 2, out=position)
        return self.intervals[position]
