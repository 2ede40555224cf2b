"""Same-process A/B of one module constant on the paper network's chip training step.

    python3 -m benchmarks.bench_ab archsim.devices.arrays:PIPELINE_MIN_DEVICES=1099511627776
    python3 -m benchmarks.bench_ab archsim.devices.store:DEFERRED_DECODE_MIN=1099511627776 --batches 80
    python3 -m benchmarks.bench_ab archsim.learning.kernels:HALVES_MIN=1099511627776

Builds two identical learners of the paper network (784-4096-10, qnn-meta, batch 100) on a
hardware preset (default ``paper-130nm``) and trains them on the same MNIST batches in turn,
A as the code stands and B with ``module:NAME=value`` set around each of its batches (the
order alternates every batch). On a machine whose speed drifts by tens of percent between
runs (docs/performance.md), only two learners timed side by side in one process compare.
Prints both mean and median batch times, B/A, the time of the device store's read and
commit and of the optimizer per batch for each, and whether both ended with the same hidden
weights and device conductances (every constant archsim exposes this way changes only how
the work is split, never a value).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archsim  # noqa: E402,F401 - before numpy: OpenBLAS loads with archsim's thread settings
import numpy as np  # noqa: E402

from archsim.engine import build_architecture  # noqa: E402
from archsim.experiment import build_learner, seed_streams  # noqa: E402
from benchmarks.bench_paper import mnist, paper_config  # noqa: E402

PARTS = (("read", "store", "read"), ("commit", "store", "commit"), ("optimizer", "optimizer", "update"))


def parse_constant(text: str) -> tuple[object, str, object]:
    """``module:NAME=value`` -> (module, NAME, value as a Python literal or int)."""
    try:
        target, value = text.split("=", 1)
        module_name, name = target.split(":", 1)
        module = importlib.import_module(module_name)
    except (ValueError, ImportError) as exc:
        sys.exit(f"bench_ab: {text!r}: expected module:NAME=value with an importable module ({exc})")
    if not hasattr(module, name):
        sys.exit(f"bench_ab: {module_name} has no {name}; name a module constant")
    current = getattr(module, name)
    try:
        return module, name, type(current)(value)
    except (TypeError, ValueError):
        sys.exit(f"bench_ab: {value!r} is not a {type(current).__name__} like {name} = {current!r}")


@contextmanager
def constant_set(module: object, name: str, value: object) -> Iterator[None]:
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def timed_parts(learner, label: str, totals: dict[str, list[float]]) -> None:  # noqa: ANN001
    """Time the learner's store and optimizer calls into ``totals[label + part]``."""
    for part, owner_name, method in PARTS:
        owner = getattr(learner, owner_name)
        bound: Callable = getattr(owner, method)

        def call(*args, _bound=bound, _key=f"{label}.{part}", **kwargs):  # noqa: ANN002,ANN003
            start = time.perf_counter()
            try:
                return _bound(*args, **kwargs)
            finally:
                totals[_key][-1] += time.perf_counter() - start

        object.__setattr__(owner, method, call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("constant", help="module:NAME=value set for learner B")
    parser.add_argument("--batches", type=int, default=60, help="timed batches per learner")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--hw", default="paper-130nm")
    args = parser.parse_args()
    if args.batches < 2 or args.warmup < 1:
        sys.exit("bench_ab: --batches must be at least 2 and --warmup at least 1")
    module, name, value = parse_constant(args.constant)
    images = 100 * (args.batches + args.warmup)
    config = paper_config(images, args.hw)
    x_all, y_all = mnist(images)

    def learner():  # noqa: ANN202
        arch = build_architecture(config)
        rngs = seed_streams(0)
        return build_learner(config, rngs["init"], rngs["device"], arch.store_factory, arch.observer, arch.mvm)

    a, b = learner(), learner()
    parts: dict[str, list[float]] = defaultdict(list)
    timed_parts(a, "A", parts)
    timed_parts(b, "B", parts)
    batch_times: dict[str, list[float]] = {"A": [], "B": []}
    for k in range(args.warmup + args.batches):
        xb, yb = x_all[k * 100:(k + 1) * 100], y_all[k * 100:(k + 1) * 100]
        turns = [("A", a, False), ("B", b, True)]
        for label, which, changed in turns if k % 2 == 0 else reversed(turns):
            for part, _, _ in PARTS:
                parts[f"{label}.{part}"].append(0.0)
            start = time.perf_counter()
            if changed:
                with constant_set(module, name, value):
                    which.train_batch(xb, yb)
            else:
                which.train_batch(xb, yb)
            batch_times[label].append(time.perf_counter() - start)
    w = args.warmup
    ta, tb = batch_times["A"][w:], batch_times["B"][w:]
    print(f"A: as is; B: {module.__name__}.{name} = {value!r} "
          f"({args.batches} batches each after {w}, {args.hw})")
    print(f"  batch  A {1e3 * statistics.mean(ta):7.2f} ms (median {1e3 * statistics.median(ta):.2f})"
          f"   B {1e3 * statistics.mean(tb):7.2f} ms (median {1e3 * statistics.median(tb):.2f})"
          f"   B/A mean {statistics.mean(tb) / statistics.mean(ta):.3f}"
          f", median {statistics.median(tb) / statistics.median(ta):.3f}")
    for part, _, _ in PARTS:
        pa, pb = sum(parts[f"A.{part}"][w:]), sum(parts[f"B.{part}"][w:])
        print(f"  {part:9s} A {1e3 * pa / args.batches:7.2f} ms   B {1e3 * pb / args.batches:7.2f} ms"
              f"   B/A {pb / pa:.3f}")
    hidden_same = all(np.array_equal(p, q) for p, q in zip(a.net.hidden, b.net.hidden))
    devices_same = all(np.array_equal(p.g, q.g) for la, lb in zip(a.store.layers, b.store.layers)
                       for p, q in zip(la.planes, lb.planes)) if hasattr(a.store, "layers") else True
    print(f"  same hidden weights: {hidden_same}; same conductances: {devices_same}")


if __name__ == "__main__":
    main()
