"""One epoch of qnn-meta training vs plain float32 numpy training of the same network.

    python benchmarks/bench_learning.py [--hidden 4096] [--images 55000] [--repeats 2]

Both are measured in the same process, one after the other, so the ratio is meaningful on a
shared machine; the absolute times are not.
"""

from __future__ import annotations

import argparse

import numpy as np

from archsim.config import RunConfig, validate
from archsim.experiment import build_learner, seed_streams
from benchmarks.common import best_time, mnist_train, plain_numpy_epoch


def archsim_epoch(x: np.ndarray, y: np.ndarray, hidden: int, rule: str, batch: int) -> None:
    config = validate(
        RunConfig,
        {
            "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1}],
            "model": {"hidden": [hidden], "levels": 2 if rule == "bnn-meta" else 3, "init_width": 2.0},
            "learning": {"rule": rule, "m_star": 3.0, "batch_size": batch},
        },
        "benchmark",
    )
    rngs = seed_streams(0)
    learner = build_learner(config, rngs["init"], rngs["device"])
    learner.train_epochs(x, y, 1, batch, rngs["shuffle"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--images", type=int, default=55000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    x, y = mnist_train(args.images)
    print(f"one epoch, 784-{args.hidden}-10, {args.images} images, batch {args.batch}, best of {args.repeats}")
    reference = best_time(lambda: plain_numpy_epoch(x, y, args.hidden, args.batch), args.repeats)
    print(f"  plain float32 numpy (reference): {reference:8.2f} s  {args.images / reference:9.0f} img/s")
    for rule in ("float32", "qnn-meta", "bnn-meta"):
        t = best_time(lambda: archsim_epoch(x, y, args.hidden, rule, args.batch), args.repeats)
        print(f"  archsim {rule:<24}: {t:8.2f} s  {args.images / t:9.0f} img/s  "
              f"throughput ratio vs reference {reference / t:5.2f}")


if __name__ == "__main__":
    main()
