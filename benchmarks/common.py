"""Shared pieces of the benchmarks: a plain numpy reference trainer and timing helpers."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from archsim.data import load_split


def mnist_train(n: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_split("mnist", "train")
    return images[:n].astype(np.float32) / 255.0, labels[:n].astype(np.int64)


def plain_numpy_epoch(x: np.ndarray, y: np.ndarray, hidden: int, batch: int, seed: int = 0) -> None:
    """Reference: float32 MLP 784-hidden-10, batch-norm, sign/STE, Adam; no quantization.

    Written independently of archsim, as the simplest numpy training a user would write.
    """
    rng = np.random.default_rng(seed)
    sizes = [784, hidden, 10]
    ws = [rng.uniform(-0.1, 0.1, (a, b)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros_like(w) for w in ws]
    lr, b1, b2, eps = 0.005, 0.9, 0.999, 1e-8
    order = rng.permutation(len(x))
    for t, start in enumerate(range(0, len(x) - batch + 1, batch), start=1):
        idx = order[start : start + batch]
        h, caches = x[idx], []
        for i, w in enumerate(ws):
            z = h @ w
            mu, var = z.mean(0), z.var(0)
            zn = (z - mu) / np.sqrt(var + 1e-5)
            caches.append((h, zn, 1 / np.sqrt(var + 1e-5)))
            h = np.where(zn >= 0, 1.0, -1.0).astype(np.float32) if i < len(ws) - 1 else zn
        p = np.exp(h - h.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(batch), y[idx]] -= 1
        d = p / batch
        for i in range(len(ws) - 1, -1, -1):
            hin, zn, inv = caches[i]
            dz = inv * (d - d.mean(0) - zn * (d * zn).mean(0))
            g = hin.T @ dz
            if i:
                d = (dz @ ws[i].T) * (np.abs(caches[i - 1][1]) <= 1)
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
            ws[i] -= lr * (ms[i] / (1 - b1**t)) / (np.sqrt(vs[i] / (1 - b2**t)) + eps)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock timings (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timed(parts: dict[str, Callable[[], object]], rounds: int, repeats: int,
          reverse_every_other: bool = True) -> dict[str, tuple[list, list]]:
    """Wall and CPU seconds of every call of every part (after one warm-up call per part and
    round), the parts alternating per round; with ``reverse_every_other``, in reverse order
    every other round (what ran just before a part moves its time)."""
    times: dict[str, tuple[list, list]] = {name: ([], []) for name in parts}
    for round_ in range(rounds):
        order = list(parts.items())
        for name, fn in order[::-1] if reverse_every_other and round_ % 2 else order:
            fn()  # warm-up
            for _ in range(repeats):
                cpu, wall = time.process_time(), time.perf_counter()
                fn()
                times[name][0].append(time.perf_counter() - wall)
                times[name][1].append(time.process_time() - cpu)
    return times
