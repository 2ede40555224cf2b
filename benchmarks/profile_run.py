"""Where the time of an ``archsim run`` goes, by category (the breakdown of docs/performance.md).

    python benchmarks/profile_run.py WORKLOAD [--hw PRESET] [--set key=value ...] [--pstats FILE]

Runs the configuration exactly as ``archsim run`` does (``archsim.runner.execute_run``, result
folder in a temporary directory) and times its phases by wall clock: data handling (reading
and scaling the images), building the chip and device arrays, training, evaluation, writing
results. The training phase alone runs under cProfile; its time is split by category from
the functions' own time, where a function outside archsim (a numpy wrapper, a builtin) is
charged to the archsim function that called it. cProfile adds a per-call overhead, which
inflates the categories with many small Python calls (the SimPy schedule) relative to the
ones spent in a few large numpy/BLAS calls; the wall-clock phases are not affected.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import archsim.experiment as experiment
import archsim.runner as runner
from archsim.config import load_run_config
from archsim.learning.trainer import Learner

# (path fragment, function name or None for any) -> category; first match wins.
CATEGORIES: list[tuple[str, str | None, str]] = [
    ("archsim/learning/network.py", "weight_gradient", "BLAS matrix products"),
    ("archsim/hw/circuits.py", "_block_products", "BLAS matrix products (per-tile stacks)"),
    ("archsim/hw/circuits.py", None, "circuit model (DAC/ADC)"),
    ("archsim/devices/", None, "device store (read, write-verify, variability)"),
    ("archsim/learning/optimizer.py", None, "optimiser and meta-function"),
    ("archsim/learning/meta.py", None, "optimiser and meta-function"),
    ("archsim/learning/kernels.py", "adam_step", "optimiser and meta-function"),
    ("archsim/learning/kernels.py", "meta_adam_", "optimiser and meta-function"),
    ("archsim/learning/kernels.py", "scaled_abs_", "optimiser and meta-function"),
    ("archsim/learning/kernels.py", "tanh_", "optimiser and meta-function"),
    ("archsim/learning/quantizer.py", None, "quantiser and ideal store"),
    ("archsim/learning/storage.py", None, "quantiser and ideal store"),
    ("archsim/learning/kernels.py", "uniform_", "quantiser and ideal store"),
    ("archsim/learning/network.py", None, "network element-wise (batch-norm, sign, STE, softmax)"),
    ("archsim/learning/kernels.py", "sign_into", "network element-wise (batch-norm, sign, STE, softmax)"),
    ("archsim/engine/", None, "schedule and ledger (SimPy)"),
    ("archsim/interconnect/", None, "schedule and ledger (SimPy)"),
    ("archsim/hw/", None, "schedule and ledger (SimPy)"),
    ("simpy/", None, "schedule and ledger (SimPy)"),
    ("archsim/learning/trainer.py", None, "training loop (batching, data indexing)"),
    ("archsim/", None, "other archsim"),
]


def category_of(func: tuple[str, int, str]) -> str | None:
    path, _, name = func
    path = path.replace("\\", "/")
    for fragment, fname, category in CATEGORIES:
        if fragment in path and (fname is None or name == fname or (fname.endswith("_") and name.startswith(fname))):
            return category
    return None


def breakdown(stats: pstats.Stats) -> dict[str, float]:
    """Own time per category; time of non-archsim functions goes to their archsim callers."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    # IdealMvm.forward/backward are the matrix products (Mlp.forward/backward, defined after
    # them in the module, are the element-wise work around them).
    import archsim.learning.network as network

    first_mlp_line = network.Mlp.forward.__code__.co_firstlineno
    ideal_mvm = {f for f in raw if f[0].endswith("archsim/learning/network.py")
                 and f[2] in ("forward", "backward") and f[1] < first_mlp_line}
    resolved: dict[Any, dict[str, float]] = {}

    def shares(func: Any, depth: int = 0) -> dict[str, float]:
        """Fractions of a function's own time per category."""
        if func in resolved:
            return resolved[func]
        category = "BLAS matrix products" if func in ideal_mvm else category_of(func)
        if category is not None:
            result = {category: 1.0}
        else:
            callers = raw[func][4] if func in raw else {}
            total = sum(edge[2] for edge in callers.values())
            result = defaultdict(float)
            if depth > 20 or total <= 0:
                result["other (outside archsim)"] = 1.0
            else:
                for caller, edge in callers.items():
                    for cat, frac in shares(caller, depth + 1).items():
                        result[cat] += frac * edge[2] / total
        resolved[func] = dict(result)
        return resolved[func]

    out: dict[str, float] = defaultdict(float)
    for func, (_, _, own, _, _) in raw.items():
        for cat, frac in shares(func).items():
            out[cat] += own * frac
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload")
    parser.add_argument("--hw", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--pstats", type=Path, default=None, help="also save the training profile")
    args = parser.parse_args()

    config = load_run_config(args.workload, args.hw, args.overrides)
    phases: dict[str, float] = defaultdict(float)
    profiler = cProfile.Profile()

    def timed(name: str, fn: Callable, profile: bool = False) -> Callable:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            if profile:
                profiler.enable()
            try:
                return fn(*a, **k)
            finally:
                if profile:
                    profiler.disable()
                phases[name] += time.perf_counter() - start
        return wrapper

    experiment.load_task_data = timed("data handling", experiment.load_task_data)
    experiment.build_learner = timed("building learner + device arrays", experiment.build_learner)
    runner.HardwareAttachment.for_config = classmethod(
        timed("building the chip (mapping, engine)", runner.HardwareAttachment.for_config.__func__)
    )
    Learner.train_epochs = timed("training", Learner.train_epochs, profile=True)
    Learner.evaluate = timed("evaluation", Learner.evaluate)
    runner.write_results = timed("writing results (devices.npz, summary)", runner.write_results)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runner.execute_run(config, Path(tmp) / "run", show_progress=False)
    total = time.perf_counter() - start

    stats = pstats.Stats(profiler)
    if args.pstats is not None:
        stats.dump_stats(str(args.pstats))
    train = breakdown(stats)
    train_profiled = sum(train.values())
    print(f"{args.workload} --hw {args.hw} {' '.join('--set ' + o for o in args.overrides)}")
    print(f"whole run {total:.1f} s wall")
    print(f"{'phase / category':<58} {'s':>8} {'%':>6}")
    for name, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"{name:<58} {seconds:8.1f} {100 * seconds / total:6.1f}")
        if name == "training":
            for cat, own in sorted(train.items(), key=lambda kv: -kv[1]):
                share = own / train_profiled
                print(f"  {cat:<56} {share * seconds:8.1f} {100 * share * seconds / total:6.1f}")
    rest = total - sum(phases.values())
    print(f"{'rest (config, imports, summary)':<58} {rest:8.1f} {100 * rest / total:6.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
