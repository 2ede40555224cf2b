"""Learning core: gradients, training runs that learn, determinism of the functional model."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.experiment import run_experiment
from archsim.learning.network import Mlp, softmax_cross_entropy


def numeric_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = f()
        array[index] = original - eps
        minus = f()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def test_float_path_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    net = Mlp.create((7, 5, 4, 3), 0.5, rng, sign_hidden=False)
    net.hidden = [w.astype(np.float64) for w in net.hidden]
    net.gamma = [rng.normal(1, 0.2, g.shape) for g in net.gamma]
    net.beta = [rng.normal(0, 0.2, b.shape) for b in net.beta]
    x = rng.normal(size=(6, 7))
    y = rng.integers(0, 3, 6)

    def loss() -> float:
        logits, _ = net.forward(x, net.hidden)
        return softmax_cross_entropy(logits, y)[0]

    logits, caches = net.forward(x, net.hidden)
    _, grad_logits = softmax_cross_entropy(logits, y)
    grads = net.backward(caches, grad_logits, net.hidden)
    for params, analytic in ((net.hidden, grads.weights), (net.gamma, grads.gamma), (net.beta, grads.beta)):
        for p, g in zip(params, analytic):
            numeric = numeric_gradient(loss, p)
            assert np.allclose(g, numeric, rtol=1e-5, atol=1e-7)


def test_sign_activation_backward_is_straight_through():
    rng = np.random.default_rng(2)
    net = Mlp.create((4, 6, 3), 0.5, rng, sign_hidden=True)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    logits, caches = net.forward(x, net.hidden)
    assert set(np.unique(np.sign(caches[0].bn_out) >= 0)) <= {True, False}
    _, grad_logits = softmax_cross_entropy(logits, rng.integers(0, 3, 8))
    grads = net.backward(caches, grad_logits, net.hidden)
    assert all(np.all(np.isfinite(g)) for g in grads.weights)


@pytest.mark.parametrize("rule,levels", [("qnn-meta", 3), ("bnn-meta", 2), ("float32", 3)])
def test_small_subset_run_learns(tiny, rule, levels):
    config = tiny(learning__rule=rule, model__levels=levels, learning__m_star=1.0)
    result = run_experiment(config)
    after_first = result.accuracy["after:mnist"]["mnist"]
    assert after_first > 0.75, f"{rule}: MNIST accuracy {after_first:.3f} after training"
    assert result.accuracy["after:fashion"]["fashion"] > 0.6
    losses = result.train_loss["mnist"]
    assert losses[-1] < losses[0]


def test_same_seed_same_result_different_seed_different(tiny):
    a = run_experiment(tiny(seed=3))
    b = run_experiment(tiny(seed=3))
    c = run_experiment(tiny(seed=4))
    assert a.accuracy == b.accuracy
    assert all(np.array_equal(x, y) for x, y in zip(a.write_counts, b.write_counts))
    assert not all(np.array_equal(x, y) for x, y in zip(a.write_counts, c.write_counts))


def test_write_counts_count_level_changes(tiny):
    result = run_experiment(tiny())
    counts = result.write_counts
    assert [c.shape for c in counts] == [(784, 128), (128, 10)]
    assert sum(int(c.sum()) for c in counts) > 0


def test_metaplasticity_reduces_level_changes_in_second_task(tiny):
    """Consolidation shows in the hardware: fewer devices rewritten while learning task 2."""
    plain = run_experiment(tiny(learning__m_star=0.0))
    meta = run_experiment(tiny(learning__m_star=3.0))
    assert sum(int(c.sum()) for c in meta.write_counts) < sum(int(c.sum()) for c in plain.write_counts)
