"""The software training step with and without its element-wise fusions, same process.

    python -m benchmarks.bench_adam_commit [--images 3000] [--rounds 3]

Three learners of the paper network (784-4096-10, qnn-meta, batch 100, the ideal store) train
the same batches in turn, each batch timed (wall and CPU), so all three see the same machine:

* ``separate``: Adam's pass, then the store's commit as a second pass; numpy's tanh on one thread
  (the step before this benchmark was written);
* ``in-pass commit``: the store's commit done in Adam's pass (``Adam.update(commit=...)``);
* ``in-pass commit + tanh halves``: and numpy's tanh in two halves, one on the helper thread.

All three compute the same weights (checked at the end). Prints the median and total of the
steady batches (after the first) and each variant's total against ``separate``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from archsim.learning import kernels
from benchmarks.bench_paper import build_archsim, mnist, paper_config


class SeparateCommit:
    """The ideal store seen only through the WeightStore interface: commit after Adam."""

    def __init__(self, inner) -> None:  # noqa: ANN001 - a QuantizedStore
        self.inner = inner

    def read(self, layer: int) -> np.ndarray:
        return self.inner.read(layer)

    def commit(self, layer: int, hidden: np.ndarray):  # noqa: ANN201
        return self.inner.commit(layer, hidden)

    def write_counts(self) -> list[np.ndarray]:
        return self.inner.write_counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1, help="epochs over the images")
    args = parser.parse_args()
    config = paper_config(args.images, None)
    x, y = mnist(args.images)
    batch = config.learning.batch_size
    never, default = 1 << 62, kernels.TANH_SPLIT_MIN
    variants = {"separate": never, "in-pass commit": never, "in-pass commit + tanh halves": default}
    learners = {}
    for name in variants:
        learner, _ = build_archsim(config)
        if name == "separate":
            learner.store = SeparateCommit(learner.store)
        learners[name] = learner
    times = {name: ([], []) for name in variants}
    order = np.random.default_rng(0).permutation(args.images)
    n = 0
    for _ in range(args.rounds):
        for start in range(0, args.images - batch + 1, batch):
            idx = order[start:start + batch]
            names = list(variants) if n % 2 == 0 else list(variants)[::-1]
            for name in names:
                kernels.TANH_SPLIT_MIN = variants[name]
                wall, cpu = time.perf_counter(), time.process_time()
                learners[name].train_batch(x[idx], y[idx])
                times[name][0].append(time.perf_counter() - wall)
                times[name][1].append(time.process_time() - cpu)
            n += 1
    kernels.TANH_SPLIT_MIN = default
    reference = learners["separate"].net.hidden
    for name, learner in learners.items():
        assert all(np.array_equal(a, b) for a, b in zip(learner.net.hidden, reference)), name
    print(f"{n} batches of {batch} ({args.images} MNIST images x {args.rounds}), kernels on {kernels.THREADS} "
          f"threads; ms per batch after the first, wall (CPU); all variants gave the same weights")
    base = sum(times["separate"][0][1:]), sum(times["separate"][1][1:])
    for name, (wall, cpu) in times.items():
        w, c = np.array(wall[1:]) * 1e3, np.array(cpu[1:]) * 1e3
        print(f"  {name:<30} median {np.median(w):7.2f} ({np.median(c):7.2f})   mean {w.mean():7.2f} "
              f"({c.mean():7.2f})   total / separate: wall {w.sum() / 1e3 / base[0]:.3f}, CPU {c.sum() / 1e3 / base[1]:.3f}")


if __name__ == "__main__":
    main()
