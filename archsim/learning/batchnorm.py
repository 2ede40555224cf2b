"""Batch-norm with stored running statistics, for inference one image at a time.

Training always normalises with the statistics of the current mini-batch; while it does,
:class:`RunningStatistics` keeps an exponential moving average of every layer's mean and
(unbiased) variance, exactly as ``torch.nn.BatchNorm1d`` with ``track_running_stats=True``
and momentum 0.1 (PyTorch documentation, BatchNorm1d). Frozen, it normalises with the stored
values instead, so each image's output depends on that image alone: what a chip that
classifies one image at a time computes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from archsim.learning.network import batch_normalize

MOMENTUM = 0.1
"""Weight of the newest batch in the moving averages (PyTorch's default)."""


@dataclass
class RunningStatistics:
    """Per-layer running mean and variance; ``frozen`` switches normalisation to them."""

    mean: list[np.ndarray]
    var: list[np.ndarray]
    frozen: bool = False

    @classmethod
    def create(cls, sizes: tuple[int, ...]) -> "RunningStatistics":
        """Zero mean and unit variance, PyTorch's initial running statistics."""
        return cls(
            [np.zeros(n, dtype=np.float32) for n in sizes[1:]],
            [np.ones(n, dtype=np.float32) for n in sizes[1:]],
        )

    def normalize(self, layer: int, pre: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Batch statistics while training (and update the averages); stored ones when frozen."""
        if self.frozen:
            inv_std = (1.0 / np.sqrt(self.var[layer] + np.float32(eps))).astype(pre.dtype)
            return (pre - self.mean[layer]) * inv_std, inv_std
        normalized, inv_std = batch_normalize(pre, eps)
        self._update(layer, pre, inv_std, eps)
        return normalized, inv_std

    def _update(self, layer: int, pre: np.ndarray, inv_std: np.ndarray, eps: float) -> None:
        batch = pre.shape[0]
        biased_var = 1.0 / (inv_std.astype(np.float64) ** 2) - eps
        unbiased = biased_var * batch / max(batch - 1, 1)
        self.mean[layer] *= np.float32(1.0 - MOMENTUM)
        self.mean[layer] += np.float32(MOMENTUM) * pre.mean(axis=0)
        self.var[layer] *= np.float32(1.0 - MOMENTUM)
        self.var[layer] += (MOMENTUM * unbiased).astype(np.float32)

    def state(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [m.copy() for m in self.mean], [v.copy() for v in self.var]

    def load_state(self, state: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
        for target, source in zip(self.mean + self.var, state[0] + state[1]):
            target[...] = source


@contextmanager
def frozen(stats: RunningStatistics | None) -> Iterator[None]:
    """Normalise with the stored statistics inside the block (no-op without them)."""
    if stats is None:
        yield
        return
    before, stats.frozen = stats.frozen, True
    try:
        yield
    finally:
        stats.frozen = before
