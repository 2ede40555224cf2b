"""Batched numpy MLP: matmul (no bias) -> batch-norm -> sign (hidden) / softmax (output).

The network holds only the trainable state that lives in the digital unit (hidden weights,
batch-norm scale and shift). The weights *used* in the forward and backward passes are passed
in by the caller, so the same code trains on ideal quantized weights, on conductances read
from a device model, or on float weights; the matrix-vector products go through an
:class:`Mvm` so circuit effects (DAC/ADC quantisation of partial sums) slot in without
touching the learning code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from archsim.learning.kernels import kernel_launch, sign_into


class Mvm(Protocol):
    """How a layer's matrix products are computed (ideal BLAS or a crossbar model)."""

    def forward(self, layer: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """x (batch, in) times weights (in, out)."""
        ...

    def backward(self, layer: int, delta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """delta (batch, out) times weights transposed (out, in)."""
        ...


class IdealMvm:
    """Exact float32 matrix products (the software baseline)."""

    def forward(self, layer: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return x @ weights

    def backward(self, layer: int, delta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return delta @ weights.T


@dataclass
class LayerCache:
    """What one layer's forward pass keeps for the backward pass."""

    inputs: np.ndarray
    normalized: np.ndarray
    inv_std: np.ndarray
    bn_out: np.ndarray


@dataclass
class Gradients:
    """Gradients of the loss for every trainable array, per layer."""

    weights: list[np.ndarray]
    gamma: list[np.ndarray]
    beta: list[np.ndarray]


@dataclass
class Mlp:
    """784-...-10 perceptron with batch-norm after every layer and sign hidden activations."""

    sizes: tuple[int, ...]
    hidden: list[np.ndarray]
    gamma: list[np.ndarray]
    beta: list[np.ndarray]
    bn_eps: float = 1e-5
    sign_hidden: bool = True
    mvm: Mvm = field(default_factory=IdealMvm)
    bn_stats: Any = None
    """Optional :class:`archsim.learning.batchnorm.RunningStatistics` (stored-statistics eval)."""

    @classmethod
    def create(
        cls,
        sizes: tuple[int, ...],
        init_width: float,
        rng: np.random.Generator,
        bn_eps: float = 1e-5,
        sign_hidden: bool = True,
    ) -> "Mlp":
        """Uniform init U(-init_width/2, init_width/2), as Laborieux et al. 2021's code."""
        half = init_width / 2
        hidden = [
            rng.uniform(-half, half, size=(n_in, n_out)).astype(np.float32)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        ]
        gamma = [np.ones(n, dtype=np.float32) for n in sizes[1:]]
        beta = [np.zeros(n, dtype=np.float32) for n in sizes[1:]]
        return cls(tuple(sizes), hidden, gamma, beta, bn_eps, sign_hidden)

    @property
    def n_layers(self) -> int:
        return len(self.hidden)

    def batch_norm_state(self) -> tuple[list[np.ndarray], ...]:
        """Copies of every layer's batch-norm scale and shift (and running statistics)."""
        running = () if self.bn_stats is None else self.bn_stats.state()
        return ([g.copy() for g in self.gamma], [b.copy() for b in self.beta], *running)

    def load_batch_norm_state(self, state: tuple[list[np.ndarray], ...]) -> None:
        """Restore what :meth:`batch_norm_state` saved (in place)."""
        for target, source in zip(self.gamma + self.beta, state[0] + state[1]):
            target[...] = source
        if self.bn_stats is not None:
            self.bn_stats.load_state(state[2:])

    def forward(
        self, x: np.ndarray, weights: list[np.ndarray]
    ) -> tuple[np.ndarray, list[LayerCache]]:
        """Logits for a batch (batch statistics in every batch-norm) and the caches."""
        caches: list[LayerCache] = []
        activation = x
        for layer, w in enumerate(weights):
            pre = self.mvm.forward(layer, activation, w)
            if self.bn_stats is None:
                normalized, inv_std = batch_normalize(pre, self.bn_eps)
            else:
                normalized, inv_std = self.bn_stats.normalize(layer, pre, self.bn_eps)
            bn_out = normalized * self.gamma[layer]
            bn_out += self.beta[layer]
            caches.append(LayerCache(activation, normalized, inv_std, bn_out))
            if layer < self.n_layers - 1:
                activation = sign(bn_out) if self.sign_hidden else np.tanh(bn_out)
            else:
                activation = bn_out
        return activation, caches

    def backward(
        self, caches: list[LayerCache], grad_logits: np.ndarray, weights: list[np.ndarray]
    ) -> Gradients:
        """Backpropagate d(loss)/d(logits) to every weight and batch-norm parameter."""
        grad_w: list[np.ndarray] = [None] * self.n_layers  # type: ignore[list-item]
        grad_gamma: list[np.ndarray] = [None] * self.n_layers  # type: ignore[list-item]
        grad_beta: list[np.ndarray] = [None] * self.n_layers  # type: ignore[list-item]
        delta = grad_logits
        for layer in range(self.n_layers - 1, -1, -1):
            cache = caches[layer]
            grad_gamma[layer] = np.einsum("ij,ij->j", delta, cache.normalized)
            grad_beta[layer] = delta.sum(axis=0)
            grad_pre = batch_norm_backward(
                delta * self.gamma[layer], cache.normalized, cache.inv_std
            )
            grad_w[layer] = weight_gradient(cache.inputs, grad_pre)
            if layer > 0:
                grad_act = self.mvm.backward(layer, grad_pre, weights[layer])
                delta = activation_backward(grad_act, caches[layer - 1].bn_out, self.sign_hidden)
        return Gradients(grad_w, grad_gamma, grad_beta)


def weight_gradient(inputs: np.ndarray, grad_pre: np.ndarray) -> np.ndarray:
    """d(loss)/dW = inputs^T grad_pre: the digital unit's outer-product accumulation."""
    return inputs.T @ grad_pre


def batch_normalize(pre: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(pre - mean) / sqrt(var + eps) over the batch, and 1/sqrt(var + eps)."""
    mean = pre.mean(axis=0)
    centered = pre - mean
    var = np.einsum("ij,ij->j", centered, centered) / pre.shape[0]
    inv_std = (1.0 / np.sqrt(var + eps)).astype(pre.dtype)
    centered *= inv_std
    return centered, inv_std


def batch_norm_backward(
    grad_norm: np.ndarray, normalized: np.ndarray, inv_std: np.ndarray
) -> np.ndarray:
    """Gradient through batch normalisation with batch statistics (standard closed form)."""
    batch = grad_norm.shape[0]
    mean_grad = grad_norm.mean(axis=0)
    mean_grad_norm = np.einsum("ij,ij->j", grad_norm, normalized) / batch
    out = grad_norm - mean_grad
    out -= normalized * mean_grad_norm
    out *= inv_std
    return out


def sign(x: np.ndarray) -> np.ndarray:
    """sign with sign(0) = +1, so every activation is one of two values."""
    out = np.empty(x.shape, dtype=x.dtype)
    if x.dtype.kind == "f":
        with kernel_launch():
            sign_into(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    else:
        out[...] = np.where(x >= 0, 1, -1)
    return out


def activation_backward(grad: np.ndarray, pre_activation: np.ndarray, sign_hidden: bool) -> np.ndarray:
    """Straight-through estimator for sign: pass where |x| <= 1 (hardtanh derivative)."""
    if sign_hidden:
        return grad * (np.abs(pre_activation) <= 1.0)
    t = np.tanh(pre_activation)
    return grad * (1.0 - t * t)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    rows = np.arange(labels.shape[0])
    loss = float(-np.log(np.maximum(probs[rows, labels], 1e-12)).mean())
    probs[rows, labels] -= 1.0
    probs /= labels.shape[0]
    return loss, probs
