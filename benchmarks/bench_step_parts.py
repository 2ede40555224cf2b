"""Cost of each part of one training step of the paper network on the chip, per call.

    python benchmarks/bench_step_parts.py [--hw paper-130nm] [--repeats 15]

Times (best of ``--repeats``, so the least disturbed by other processes) every part of one
784-4096-10 qnn-meta training step of batch 100 in isolation, next to the plain matrix
product x @ W1 of the same step: the circuit model's forward/backward products, the device
store's read and commit (write-verify), the fused optimiser + meta-function, the quantiser
and the engine's schedule of one batch (the last as a difference of two timings).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archsim.engine import build_architecture  # noqa: E402
from archsim.experiment import build_learner, seed_streams  # noqa: E402
from archsim.learning.network import softmax_cross_entropy  # noqa: E402
from benchmarks.bench_paper import mnist, paper_config  # noqa: E402
from benchmarks.common import best_time  # noqa: E402


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` calls after one warm-up call, in milliseconds."""
    fn()
    return best_time(fn, repeats) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="paper-130nm")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    config = paper_config(1000, args.hw)
    arch = build_architecture(config)
    rngs = seed_streams(0)
    learner = build_learner(config, rngs["init"], rngs["device"], arch.store_factory, arch.observer, arch.mvm)
    x, y = mnist(100)
    learner.train_batch(x, y)  # simulates the schedule's phases once
    weights = learner.current_weights()
    logits, caches = learner.net.forward(x, weights)
    _, grad_logits = softmax_cross_entropy(logits, y)
    grads = learner.net.backward(caches, grad_logits, weights)
    hidden = learner.net.hidden[0]
    store, opt, mvm = learner.store, learner.optimizer, arch.mvm
    r = args.repeats
    rows = [
        ("plain x @ W1 (100x784 @ 784x4096, BLAS)", best_ms(lambda: x @ weights[0], r)),
        ("plain x.T @ d (784x100 @ 100x4096, BLAS)", best_ms(lambda: x.T @ caches[0].normalized, r)),
        ("whole training step (learner.train_batch)", best_ms(lambda: learner.train_batch(x, y), max(3, r // 3))),
        ("circuit forward layer 1 (CrossbarMvm.forward)", best_ms(lambda: mvm.forward(0, x, weights[0]), r)),
        ("circuit backward layer 2 (CrossbarMvm.backward)", best_ms(
            lambda: mvm.backward(1, caches[1].normalized, weights[1]), r)),
        ("device store read layer 1 (store.read)", best_ms(lambda: store.read(0), r)),
        ("device store commit layer 1 (store.commit, write-verify)", best_ms(
            lambda: store.commit(0, hidden), r)),
        ("optimiser + meta layer 1 (Adam.update, fused)", best_ms(
            lambda: opt.update(0, hidden.copy(), grads.weights[0], learner.meta), r)),
        ("quantiser level index layer 1", best_ms(lambda: learner.store.quantizer.level_index(hidden), r)),
        ("schedule + ledger of one batch (observer.on_train_batch)", best_ms(
            lambda: arch.observer.on_train_batch(100, [store.commit(0, hidden), store.commit(1, learner.net.hidden[1])]), r)
         - best_ms(lambda: store.commit(0, hidden), r)),
    ]
    for name, ms in rows:
        print(f"  {name:<60} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
