"""Batched numpy network: matmul or convolution (no bias) -> [pooling] -> batch-norm ->
sign (hidden) / softmax (output).

The network holds only the trainable state that lives in the digital unit (hidden weights,
batch-norm scale and shift). The weights *used* in the forward and backward passes are passed
in by the caller, so the same code trains on ideal quantized weights, on conductances read
from a device model, or on float weights; the matrix-vector products go through an
:class:`Mvm` so circuit effects (DAC/ADC quantisation of partial sums) slot in without
touching the learning code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from archsim.learning.kernels import sign_into

if TYPE_CHECKING:
    from archsim.config.layers import WeightedLayer


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
class ConvCache:
    """What a convolution's forward pass keeps besides its unrolled input."""

    input_shape: tuple[int, int, int, int]
    """(N, H, W, C_in) of the feature map the windows were cut from."""
    pools: list[tuple[Any, Any, tuple[int, int, int, int]]]
    """Per pooling: the pool, its state (max positions) and its input shape."""


@dataclass
class LayerCache:
    """What one layer's forward pass keeps for the backward pass. For a convolution
    ``inputs`` is the unrolled input (one row per window) and the batch-norm arrays are
    (N*positions, channels)."""

    inputs: np.ndarray
    normalized: np.ndarray
    inv_std: np.ndarray
    bn_out: np.ndarray
    conv: ConvCache | None = None


@dataclass
class Gradients:
    """Gradients of the loss for every trainable array, per layer."""

    weights: list[np.ndarray]
    gamma: list[np.ndarray]
    beta: list[np.ndarray]


@dataclass
class Mlp:
    """Dense (784-...-10) or convolutional network with batch-norm after every weighted layer
    and sign hidden activations. ``plan`` (:class:`archsim.config.layers.WeightedLayer`)
    says which layers are convolutions; None (or dense entries) is the MLP."""

    sizes: tuple[int, ...]
    hidden: list[np.ndarray]
    gamma: list[np.ndarray]
    beta: list[np.ndarray]
    bn_eps: float = 1e-5
    sign_hidden: bool = True
    mvm: Mvm = field(default_factory=IdealMvm)
    bn_stats: Any = None
    """Optional :class:`archsim.learning.batchnorm.RunningStatistics` (stored-statistics eval)."""
    plan: tuple[Any, ...] | None = None
    """The weighted layers (archsim.config.layers.WeightedLayer); None = every layer dense."""

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

    @classmethod
    def from_plan(
        cls,
        plan: "tuple[WeightedLayer, ...]",
        init_width: float,
        rng: np.random.Generator,
        bn_eps: float = 1e-5,
        sign_hidden: bool = True,
    ) -> "Mlp":
        """The network of ``plan``; convolution kernels are (C_in*k*k, C_out) matrices drawn
        like dense weights (same draws, in layer order, as :meth:`create` for an MLP).
        ``sizes`` lists the matrix rows of the first layer and every layer's outputs."""
        sizes = (plan[0].n_in, *(layer.n_out for layer in plan))
        half = init_width / 2
        hidden = [
            rng.uniform(-half, half, size=(spec.n_in, spec.n_out)).astype(np.float32) for spec in plan
        ]
        gamma = [np.ones(spec.n_out, dtype=np.float32) for spec in plan]
        beta = [np.zeros(spec.n_out, dtype=np.float32) for spec in plan]
        return cls(sizes, hidden, gamma, beta, bn_eps, sign_hidden, plan=tuple(plan))

    def _conv(self, layer: int):
        """The layer's Conv2d and Pool2d operators, or None for a dense layer."""
        spec = None if self.plan is None else self.plan[layer]
        if spec is None or not spec.is_conv:
            return None
        from archsim.learning.layers import Conv2d, Pool2d

        channels = spec.in_shape[0]
        conv = Conv2d(channels, spec.n_out, spec.kernel, spec.stride, spec.padding)
        return spec, conv, [Pool2d(size, kind) for kind, size in spec.pools]

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
        batch = x.shape[0]
        for layer, w in enumerate(weights):
            conv_ops = self._conv(layer)
            conv_cache = None
            if conv_ops is None:
                inputs = activation.reshape(batch, -1)  # flatten (H, W, C) feature maps
                pre = self.mvm.forward(layer, inputs, w)
            else:
                inputs, pre, conv_cache = self._conv_forward(layer, conv_ops, activation, w)
            if self.bn_stats is None:
                normalized, inv_std = batch_normalize(pre, self.bn_eps)
            else:
                normalized, inv_std = self.bn_stats.normalize(layer, pre, self.bn_eps)
            bn_out = normalized * self.gamma[layer]
            bn_out += self.beta[layer]
            caches.append(LayerCache(inputs, normalized, inv_std, bn_out, conv_cache))
            if layer < self.n_layers - 1:
                activation = sign(bn_out) if self.sign_hidden else np.tanh(bn_out)
                if conv_ops is not None:  # back to (N, H, W, C) for the next layer
                    spec = conv_ops[0]
                    activation = activation.reshape(batch, *spec.pooled_hw, spec.n_out)
            else:
                activation = bn_out
        return activation, caches

    def _conv_forward(self, layer: int, conv_ops, x: np.ndarray, w: np.ndarray):
        """Unrolled input, pooled pre-activations as (N*positions, C_out), and the cache."""
        spec, conv, pools = conv_ops
        if x.ndim == 2:  # the input images: (N, C*H*W) with C = 1, row-major H x W
            channels, height, width = spec.in_shape
            x = x.reshape(x.shape[0], height, width, channels)
        out, cols = conv.forward(layer, x, w, self.mvm)
        pool_states = []
        for pool in pools:
            pooled, state = pool.forward(out)
            pool_states.append((pool, state, out.shape))
            out = pooled
        return cols, out.reshape(-1, spec.n_out), ConvCache(x.shape, pool_states)

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
            if cache.conv is not None:
                grad_pre = unpool(grad_pre, cache.conv)
            grad_w[layer] = weight_gradient(cache.inputs, grad_pre)
            if layer > 0:
                grad_act = self.mvm.backward(layer, grad_pre, weights[layer])
                if cache.conv is not None:
                    spec = self.plan[layer]
                    grad_act = col2im_of(spec, grad_act, cache.conv.input_shape)
                previous = caches[layer - 1].bn_out
                delta = activation_backward(grad_act.reshape(previous.shape), previous, self.sign_hidden)
        return Gradients(grad_w, grad_gamma, grad_beta)


def unpool(grad: np.ndarray, cache: ConvCache) -> np.ndarray:
    """Gradient of the pooled pre-activations (N*positions, C) back to every window
    (N*OH*OW, C), through the poolings in reverse."""
    if not cache.pools:
        return grad
    channels = grad.shape[1]
    for pool, state, in_shape in reversed(cache.pools):
        n, h, w, _ = in_shape
        out_shape = (n, h // pool.size, w // pool.size, channels)
        grad = pool.backward(grad.reshape(out_shape), state, in_shape)
    return grad.reshape(-1, channels)


def col2im_of(spec: Any, grad_cols: np.ndarray, input_shape: tuple[int, int, int, int]) -> np.ndarray:
    """Gradient of a convolution's unrolled input back onto its (N, H, W, C) input."""
    from archsim.learning.layers import col2im

    return col2im(grad_cols, input_shape, spec.kernel, spec.stride, spec.padding)


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
