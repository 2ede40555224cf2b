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

from archsim.learning.kernels import adam_step, in_halves, meta_adam_in_blocks, tanh_in_place

MetaFactor = Callable[[np.ndarray], np.ndarray]


@dataclass
class AdamState:
    """First and second moments of one parameter array, and a scratch buffer for the meta-function."""

    first: np.ndarray
    second: np.ndarray
    scratch: np.ndarray

    @classmethod
    def zeros_like(cls, param: np.ndarray) -> "AdamState":
        return cls(np.zeros_like(param), np.zeros_like(param), np.empty_like(param))


_NO_FACTOR = np.ones(1, dtype=np.float32)


@dataclass
class Adam:
    """Adam over a fixed list of parameter arrays (C-contiguous float32), updated in place."""

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
        clip: float | None = None,
    ) -> None:
        """Apply one Adam step to ``param`` in place; ``meta`` damps shrinking steps.

        ``decoupled_decay`` (AdamW, Loshchilov & Hutter 2019) shrinks ``param`` by
        ``lr * decoupled_decay * param`` outside the moments; being a shrinking step it is
        damped by ``meta`` too, and being multiplicative it never carries a weight across zero.
        ``clip`` then bounds |param| (the hidden weights' range in the digital unit).

        In float32 per element (one fused pass, archsim/learning/kernels.py; with a uniform
        tanh meta-function, its argument, numpy's tanh and this pass a cache-sized block at a
        time):
        g += wd W; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
        step = lr m / (1 - b1^t) / (sqrt(v) / sqrt(1 - b2^t) + eps), times f(W) where m W > 0.
        """
        if param.dtype != np.float32 or not param.flags.c_contiguous:
            raise TypeError("Adam updates C-contiguous float32 arrays in place")
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = AdamState.zeros_like(param)
        grad = np.ascontiguousarray(grad, dtype=np.float32)
        correction1 = 1.0 - self.beta1**self.steps
        correction2 = 1.0 - self.beta2**self.steps
        adam_args = (
            np.float32(self.weight_decay),
            np.float32(self.beta1),
            np.float32(1.0 - self.beta1),
            np.float32(self.beta2),
            np.float32(1.0 - self.beta2),
            np.float32(1.0 / np.sqrt(correction2)),
            np.float32(self.eps),
            np.float32(self.lr * lr_scale / correction1),
            np.float32(self.lr * lr_scale * decoupled_decay),
            np.float32(0.0 if clip is None else clip),
        )
        flat = (param.reshape(-1), grad.reshape(-1), state.first.reshape(-1), state.second.reshape(-1))
        scale = meta.uniform_scale(param, state.scratch) if hasattr(meta, "uniform_scale") else None
        if scale is not None:
            # numpy's tanh, not a re-implementation: its last bit is part of the results.
            meta_adam_in_blocks(*flat, state.scratch.reshape(-1), scale, adam_args)
            return
        meta_mode, factor = 0, _NO_FACTOR
        if meta is not None and hasattr(meta, "tanh_argument"):
            factor = tanh_in_place(meta.tanh_argument(param, out=state.scratch))
            meta_mode = 1
        elif meta is not None:
            factor = np.ascontiguousarray(np.broadcast_to(np.asarray(meta(param), dtype=np.float32), param.shape))
            meta_mode = 2
        factor = factor.reshape(-1)
        p, g, m, v = flat
        # halves on this and the helper thread for a large layer (a parallel launch costs more
        # on a 2-core machine); a small array (batch-norm scale and shift) in one call
        in_halves(p.size, lambda a, b: adam_step(p[a:b], g[a:b], m[a:b], v[a:b], factor[a:b] if meta_mode else factor,
                                                 meta_mode, adam_args))
