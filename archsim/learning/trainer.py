"""Training and evaluation loops of one network on one weight store.

Everything here is batched numpy: the only Python loops are over mini-batches and layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from archsim.config.workload import LearningConfig, ModelConfig
from archsim.learning.batchnorm import frozen
from archsim.learning.meta import TanhMeta
from archsim.learning.network import Mlp, softmax_cross_entropy
from archsim.learning.optimizer import Adam, MetaFactor
from archsim.learning.quantizer import Quantizer
from archsim.learning.storage import CommitReport, WeightStore

BatchCallback = Callable[[int], None]


class TrainingObserver:
    """Receives what the hardware model needs to know about each mini-batch.

    The default does nothing; the architecture engine subclasses it to schedule the
    inference, training and write-verify dataflow of each batch.
    """

    def on_train_batch(self, batch_size: int, commits: list[CommitReport]) -> None:
        """Called after the weights of a training batch are committed (one report per layer)."""

    def on_eval_batch(self, batch_size: int) -> None:
        """Called after an inference batch."""


def make_quantizer(learning: LearningConfig, model: ModelConfig) -> Quantizer | None:
    """The quantizer of the rule, or None for the float32 baseline."""
    if learning.rule == "float32":
        return None
    return Quantizer.from_config(model.levels, model.level_values)


def make_meta_factor(learning: LearningConfig, quantizer: Quantizer | None) -> MetaFactor | None:
    """The meta-function of the rule; None where no step is ever attenuated."""
    if learning.rule == "float32" or learning.m_star == 0 or quantizer is None:
        return None
    if learning.rule == "bnn-meta":
        return TanhMeta(learning.m_star)
    return TanhMeta(learning.m_star, quantizer)


def cosine_lr_scale(progress: float, final_fraction: float) -> float:
    """Cosine decay from 1 to ``final_fraction`` as ``progress`` goes from 0 to 1."""
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class Learner:
    """One network, its weight store and optimizer: trains and evaluates batches."""

    net: Mlp
    store: WeightStore
    optimizer: Adam
    meta: MetaFactor | None = None
    hidden_clip: float | None = None
    decoupled_decay: float = 0.0
    bn_trainable: tuple[bool, ...] | None = None
    hidden_rounding: Callable[[np.ndarray], None] | None = None
    observer: TrainingObserver = field(default_factory=TrainingObserver)

    def current_weights(self) -> list[np.ndarray]:
        return [self.store.read(layer) for layer in range(self.net.n_layers)]

    def train_batch(self, x: np.ndarray, y: np.ndarray, lr_scale: float = 1.0) -> float:
        """One forward/backward pass and metaplastic update; returns the batch loss."""
        weights = self.current_weights()
        logits, caches = self.net.forward(x, weights)
        loss, grad_logits = softmax_cross_entropy(logits, y)
        grads = self.net.backward(caches, grad_logits, weights)
        self.optimizer.begin_step()
        commits = []
        for layer in range(self.net.n_layers):
            hidden = self.net.hidden[layer]
            self.optimizer.update(
                3 * layer, hidden, grads.weights[layer], self.meta, lr_scale, self.decoupled_decay,
                self.hidden_clip,
            )
            if self.hidden_rounding is not None:  # k-bit fixed-point hidden weights
                self.hidden_rounding(hidden)
            if self.bn_trainable is None or self.bn_trainable[layer]:
                self.optimizer.update(3 * layer + 1, self.net.gamma[layer], grads.gamma[layer], None, lr_scale)
                self.optimizer.update(3 * layer + 2, self.net.beta[layer], grads.beta[layer], None, lr_scale)
            commits.append(self.store.commit(layer, hidden))
        self.observer.on_train_batch(x.shape[0], commits)
        return loss

    def train_epochs(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator,
        lr_schedule: Callable[[float], float] = lambda progress: 1.0,
        on_batch: BatchCallback | None = None,
    ) -> list[float]:
        """Train for ``epochs`` shuffled passes; returns the mean loss of each epoch."""
        n = x.shape[0]
        batches_per_epoch = max(1, n // batch_size)
        total = epochs * batches_per_epoch
        losses = []
        for epoch in range(epochs):
            order = rng.permutation(n)
            epoch_loss = 0.0
            for b in range(batches_per_epoch):
                idx = order[b * batch_size : (b + 1) * batch_size]
                done = (epoch * batches_per_epoch + b) / total
                epoch_loss += self.train_batch(x[idx], y[idx], lr_schedule(done))
                if on_batch is not None:
                    on_batch(idx.size)
            losses.append(epoch_loss / batches_per_epoch)
        return losses

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        """Fraction of correct predictions; batch-norm uses each batch's statistics, or the
        stored running statistics when the network keeps them (then per image)."""
        with frozen(self.net.bn_stats):
            return self._evaluate(x, y, batch_size)

    def _evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        correct = 0
        # Near-equal batches, so no tiny last batch distorts its own batch statistics.
        n_batches = max(1, round(x.shape[0] / batch_size))
        for xb, yb in zip(np.array_split(x, n_batches), np.array_split(y, n_batches)):
            logits, _ = self.net.forward(xb, self.current_weights())
            correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
            self.observer.on_eval_batch(xb.shape[0])
        return correct / x.shape[0]
