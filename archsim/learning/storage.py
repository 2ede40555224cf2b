"""Where the quantized weights live: the interface between the learning rule and the devices.

A store turns the hidden weights kept by the digital unit into the weights the network
computes with. :class:`QuantizedStore` is the ideal multi-level memory (exact levels, every
level change counted as one write); the device model of :mod:`archsim.devices` implements the
same interface with conductances, programming variability, read noise and endurance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from archsim.learning.kernels import kernel_launch, uniform_commit
from archsim.learning.quantizer import Quantizer


@dataclass(frozen=True)
class CommitReport:
    """What storing one layer's updated weights cost.

    ``changed`` marks the weights whose level changed (the change list sent to the tiles);
    ``pulses`` is the number of programming pulses each of them took, all its devices
    together (None: one pulse per write, the ideal device); ``energy_j`` is the programming
    energy in joules (0 when the store has no device model and the hardware model prices the
    writes itself). A device model may add, per changed weight in the same order as
    ``pulses``: ``pulse_steps``, the pulse-and-verify steps when its devices (both of a
    differential pair) are pulsed in the same step, i.e. the largest pulse count of its
    devices (None: ``pulses``); ``stuck``, True where no device of the weight could be
    programmed (all stuck: a level change, not a write); ``index``, ``np.flatnonzero(changed)``
    already computed, so readers need not scan the whole layer again.
    """

    changed: np.ndarray
    pulses: np.ndarray | None = None
    energy_j: float = 0.0
    pulse_steps: np.ndarray | None = None
    stuck: np.ndarray | None = None
    index: np.ndarray | None = None

    @property
    def writes(self) -> int:
        """Weights written: level changes minus those whose devices were all stuck."""
        stuck = 0 if self.stuck is None else int(np.count_nonzero(self.stuck))
        return int(np.count_nonzero(self.changed)) - stuck


class WeightStore(Protocol):
    """Holds one weight array per layer; reading may be noisy, committing may cost writes."""

    def read(self, layer: int) -> np.ndarray:
        """Weights (in, out) used for the next matrix products of ``layer``."""
        ...

    def commit(self, layer: int, hidden: np.ndarray) -> CommitReport:
        """Store the quantized image of updated hidden weights; report what was written."""
        ...

    def write_counts(self) -> list[np.ndarray]:
        """Per-weight count of writes (level changes) since creation, one array per layer."""
        ...


class FloatStore:
    """Unquantized weights: the float32 baseline reads the hidden weights directly."""

    def __init__(self, hidden: list[np.ndarray]) -> None:
        self._hidden = hidden
        self._counts = [np.zeros(w.shape, dtype=np.uint32) for w in hidden]

    def read(self, layer: int) -> np.ndarray:
        return self._hidden[layer]

    def commit(self, layer: int, hidden: np.ndarray) -> CommitReport:
        self._hidden[layer] = hidden
        return CommitReport(changed=np.zeros(hidden.shape, dtype=bool))

    def write_counts(self) -> list[np.ndarray]:
        return self._counts


class QuantizedStore:
    """Ideal multi-level memory: exact level values, one write per level change."""

    def __init__(self, hidden: list[np.ndarray], quantizer: Quantizer) -> None:
        self.quantizer = quantizer
        self.level_index = [quantizer.level_index(w) for w in hidden]
        self._weights = [quantizer.dequantize(i) for i in self.level_index]
        self._level_values = quantizer.values.astype(np.float32)
        self._counts = [np.zeros(w.shape, dtype=np.uint32) for w in hidden]

    def read(self, layer: int) -> np.ndarray:
        return self._weights[layer]

    def commit(self, layer: int, hidden: np.ndarray) -> CommitReport:
        """Write the levels that changed; the weights array is refreshed in place."""
        changed = np.empty(hidden.shape, dtype=bool)
        if self.quantizer.uniform_step is not None and hidden.dtype == np.float32:
            with kernel_launch():
                uniform_commit(
                    np.ascontiguousarray(hidden).reshape(-1),
                    *self.quantizer.uniform_constants(),
                    self._level_values,
                    self.level_index[layer].reshape(-1),
                    self._weights[layer].reshape(-1),
                    self._counts[layer].reshape(-1),
                    changed.reshape(-1),
                )
            return CommitReport(changed=changed)
        new_index = self.quantizer.level_index(hidden)
        np.not_equal(new_index, self.level_index[layer], out=changed)
        self._counts[layer] += changed
        self.level_index[layer] = new_index
        self._weights[layer][...] = self.quantizer.dequantize(new_index)
        return CommitReport(changed=changed)

    def write_counts(self) -> list[np.ndarray]:
        return self._counts
