"""Adam with metaplastic attenuation of magnitude-decreasing steps.

Follows the ``Adam_meta`` optimizer of Laborieux et al. 2021 (github
Laborieux-Axel/SynapticMetaplasticityBNN, MIT): the L2 term is added to the gradient, the
moments are bias-corrected, and where sign(W_H) equals the sign of the first moment (the step
would shrink |W_H|) the step is multiplied by the meta-function f(W_H) in (0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MetaFactor = Callable[[np.ndarray], np.ndarray]


@dataclass
class AdamState:
    """First and second moments of one parameter array."""

    first: np.ndarray
    second: np.ndarray

    @classmethod
    def zeros_like(cls, param: np.ndarray) -> "AdamState":
        return cls(np.zeros_like(param), np.zeros_like(param))


@dataclass
class Adam:
    """Adam over a fixed list of parameter arrays, updated in place."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    steps: int = 0
    states: dict[int, AdamState] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget the moments (e.g. at a task boundary)."""
        self.steps = 0
        self.states.clear()

    def begin_step(self) -> None:
        """Advance the shared step counter once per mini-batch, before updating arrays."""
        self.steps += 1

    def update(
        self,
        key: int,
        param: np.ndarray,
        grad: np.ndarray,
        meta: MetaFactor | None = None,
        lr_scale: float = 1.0,
        decoupled_decay: float = 0.0,
    ) -> None:
        """Apply one Adam step to ``param`` in place; ``meta`` damps shrinking steps.

        ``decoupled_decay`` (AdamW, Loshchilov & Hutter 2019) shrinks ``param`` by
        ``lr * decoupled_decay * param`` outside the moments; being a shrinking step it is
        damped by ``meta`` too, and being multiplicative it never carries a weight across zero.
        """
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = AdamState.zeros_like(param)
        if self.weight_decay:
            grad = grad + np.float32(self.weight_decay) * param
        first, second = state.first, state.second
        first *= np.float32(self.beta1)
        first += np.float32(1.0 - self.beta1) * grad
        second *= np.float32(self.beta2)
        second += np.float32(1.0 - self.beta2) * (grad * grad)

        correction1 = 1.0 - self.beta1**self.steps
        correction2 = 1.0 - self.beta2**self.steps
        denom = np.sqrt(second)
        denom *= np.float32(1.0 / np.sqrt(correction2))
        denom += np.float32(self.eps)
        step = np.divide(first, denom)
        step *= np.float32(self.lr * lr_scale / correction1)
        factor = None if meta is None else meta(param)
        if factor is not None:
            # Same sign of W_H and of the first moment: the step -lr*m/.. shrinks |W_H|.
            shrinking = (first * param) > 0
            step = np.where(shrinking, step * factor, step)
        if decoupled_decay:
            decay = np.float32(self.lr * lr_scale * decoupled_decay) * param
            step += decay if factor is None else decay * factor
        param -= step
