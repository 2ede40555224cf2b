"""The read noise of the paper network's first layer, alone: ``out = weights + std * z`` on
784 x 4096 = 3 211 264 float32 weights, z numpy's float32 standard normals, in one process.

    python benchmarks/bench_read_noise.py [--repeats 15] [--rounds 3] [--against DIR]

Times ``archsim/devices/normal.py``'s fill in its two modes (``sequential``: one compiled
pass stepping the PCG64 itself; ``split``: the draws in two halves on two threads) and the
reference, numpy's own ``rng.standard_normal(n, dtype=np.float32)`` then ``*= std``,
``+= weights`` (what the store falls back to), alternating in ``--rounds`` rounds of
``--repeats`` calls each so that all see the same load; prints median and best wall and CPU
milliseconds (CPU of all threads) and the median ratios to numpy's.

``--against DIR`` also loads ``DIR/archsim/devices/normal.py`` (another checkout, e.g. the
main branch's, whose own imports resolve in this tree) as a second module, checks that its
fill gives the same draws and generator state, and times it alongside: the ratio this tree /
DIR then compares two versions of the kernel on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archsim  # noqa: E402,F401 - before numpy: OpenBLAS loads with archsim's thread settings
import numpy as np  # noqa: E402
from numba.core.caching import NullCache  # noqa: E402
from numba.core.dispatcher import Dispatcher  # noqa: E402

from archsim.devices import normal  # noqa: E402
from benchmarks.common import timed  # noqa: E402

SHAPE = (784, 4096)  # the paper network's first layer


def load_module(tree: Path, relative: str, name: str):  # noqa: ANN201 - a module
    """``tree``'s file ``relative`` (e.g. ``archsim/devices/normal.py``) as a module of its own
    named ``name``; its imports resolve in this tree."""
    path = tree / relative
    if not path.is_file():
        sys.exit(f"--against {tree}: no {relative} there; give the root of an archsim checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for value in vars(module).values():  # compiled afresh: numba's cache cannot reload a module
        if isinstance(value, Dispatcher) and value.__module__ == name:  # loaded from a path
            value._cache = NullCache()
    return module


def load_normal(tree: Path):  # noqa: ANN201 - a module
    """``tree``'s ``archsim/devices/normal.py`` as a module of its own."""
    return load_module(tree, "archsim/devices/normal.py", "normal_against")


def numpy_fill(rng: np.random.Generator, weights: np.ndarray, std: np.ndarray, out: np.ndarray) -> None:
    rng.standard_normal(out.shape, dtype=np.float32, out=out)
    out *= std
    out += weights


def fills(other) -> dict[str, Callable]:  # noqa: ANN001
    """name -> fill(rng, weights, std, out) of every variant timed."""
    variants = {f"this tree, {mode}": (normal, mode) for mode in ("sequential", "split")}
    if other is not None:
        variants |= {f"--against, {mode}": (other, mode) for mode in ("sequential", "split")}
    timed = {name: (lambda rng, w, s, o, m=module, mode=mode: m._fill(rng, w, s, o, mode=mode))
             for name, (module, mode) in variants.items()}
    return timed | {"numpy standard_normal, *= std, += weights": numpy_fill}


def check_same_draws(variants: dict[str, Callable], weights: np.ndarray, std: np.ndarray) -> None:
    """Every variant gives numpy's draws and leaves the generator as numpy does."""
    results = []
    for fill in variants.values():
        rng, out = np.random.default_rng(9), np.empty(SHAPE, dtype=np.float32)
        rng.random(1, dtype=np.float32)  # a buffered half-word first, as between reads
        fill(rng, weights, std, out)
        results.append((out.view(np.uint32), rng.bit_generator.state))
    for (out, state), name in zip(results[1:], list(variants)[1:]):
        if not (np.array_equal(out, results[0][0]) and state == results[0][1]):
            sys.exit(f"{name} draws differently from {next(iter(variants))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, default=None, help="root of another archsim checkout")
    args = parser.parse_args()
    if not normal.fast_path_ok():
        sys.exit("this numpy draws differently from the compiled kernel: the store uses numpy's own draws")
    other = load_normal(args.against.resolve()) if args.against else None
    init = np.random.default_rng(0)
    weights = init.uniform(-1, 1, SHAPE).astype(np.float32)
    std = (init.random(SHAPE, dtype=np.float32) * np.float32(0.05)).astype(np.float32)
    variants = fills(other)
    check_same_draws(variants, weights, std)
    rng, out = np.random.default_rng(1), np.empty(SHAPE, dtype=np.float32)
    calls = {name: (lambda fill=fill: fill(rng, weights, std, out)) for name, fill in variants.items()}
    times = timed(calls, args.rounds, args.repeats, reverse_every_other=False)
    numpy_wall, numpy_cpu = (np.median(t) for t in times["numpy standard_normal, *= std, += weights"])
    print(f"{SHAPE[0] * SHAPE[1]} float32 draws, {args.rounds} x {args.repeats} calls each"
          + (f"; --against {args.against}" if other else ""))
    print(f"  {'fill':<44} {'wall med/best ms':>17} {'CPU med/best ms':>17} {'/ numpy wall, CPU':>18}")
    for name, (wall, cpu) in times.items():
        wall_ms, cpu_ms = np.array(wall) * 1e3, np.array(cpu) * 1e3
        print(f"  {name:<44} {np.median(wall_ms):8.2f} {wall_ms.min():8.2f} {np.median(cpu_ms):8.2f} "
              f"{cpu_ms.min():8.2f} {np.median(wall) / numpy_wall:9.2f} {np.median(cpu) / numpy_cpu:8.2f}")
    if other is not None:
        for mode in ("sequential", "split"):
            ours, theirs = times[f"this tree, {mode}"], times[f"--against, {mode}"]
            print(f"this tree / --against, {mode}: wall {np.median(ours[0]) / np.median(theirs[0]):.2f}, "
                  f"CPU {np.median(ours[1]) / np.median(theirs[1]):.2f} (medians)")


if __name__ == "__main__":
    main()
