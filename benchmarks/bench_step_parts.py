"""Cost of each part of one training step of the paper network on the chip, per call.

    python benchmarks/bench_step_parts.py [--hw paper-130nm] [--repeats 15] [--against DIR]

Times (best of ``--repeats``, so the least disturbed by other processes; wall clock and CPU
time of all threads) every part of one 784-4096-10 qnn-meta training step of batch 100 in
isolation, next to the plain matrix product x @ W1 of the same step: the circuit model's
forward/backward products, the device store's read and commit (write-verify), the fused
optimiser + meta-function, the quantiser and the engine's schedule of one batch. The commit
and the schedule are timed on a realistic batch: the hidden weights move by one Adam step's
worth, so that about as many weights change level as in the first epoch of training
(printed), and commits alternate between the two hidden states. The commit is timed a second
time with numpy's own float64 ``standard_normal`` for the write-verify draws instead of the
compiled ziggurat of ``archsim/devices/normal.py`` (same draws, same results), alternating
with the compiled one, and the ratio is printed. (Not the whole step: it gets cheaper as
training goes on and fewer weights change level, so whichever side ran later would win.)
The commit is timed a third time with every scan of the device store (the level scan and
the device kernels, ``archsim/devices/kernels.py``) in one pass on the calling thread, as
sweep workers run them with OMP_NUM_THREADS=1, alternating with the split scans.
``--against DIR`` times the layer-1 read a second time with the read-noise fill of another
checkout's ``archsim/devices/normal.py`` (see ``bench_read_noise.py``), alternating with this
tree's on the same store after checking both draw the same, and prints the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archsim  # noqa: E402,F401 - before numpy: OpenBLAS loads with archsim's thread settings
import numpy as np  # noqa: E402

from archsim.devices import normal  # noqa: E402
from archsim.devices import store as store_module  # noqa: E402
from archsim.engine import build_architecture  # noqa: E402
from archsim.experiment import build_learner, seed_streams  # noqa: E402
from archsim.learning import kernels  # noqa: E402
from archsim.learning.network import softmax_cross_entropy  # noqa: E402
from benchmarks.bench_paper import mnist, paper_config  # noqa: E402
from benchmarks.bench_read_noise import load_normal  # noqa: E402


def best_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall and best CPU milliseconds of ``repeats`` calls, after one warm-up call."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall * 1e3, cpu * 1e3


@contextmanager
def numpys_float64_draws() -> Iterator[None]:
    """Within: the device store's float64 draws are numpy's own calls (the compiled path's
    fallback, as when the once-per-process check fails)."""
    normal.fast_path64_ok()
    saved = normal._CHECKED["float64"]
    normal._CHECKED["float64"] = False
    try:
        yield
    finally:
        normal._CHECKED["float64"] = saved


@contextmanager
def kernels_in_one_pass() -> Iterator[None]:
    """Within: every scan of the device store runs as one pass in the calling thread, as with
    OMP_NUM_THREADS=1 (``archsim.learning.kernels.SCAN_PARTS``)."""
    saved = kernels.SCAN_PARTS
    kernels.SCAN_PARTS = 1
    try:
        yield
    finally:
        kernels.SCAN_PARTS = saved


def alternating(fn: Callable[[], object], other: Callable[[], AbstractContextManager], repeats: int,
                rounds: int = 3) -> tuple:
    """(as is, within ``other()``) best (wall, CPU) ms of ``fn``, the two alternating
    ``rounds`` times so that both see the same load."""
    fast = slow = (float("inf"), float("inf"))
    for _ in range(rounds):
        fast = tuple(map(min, fast, best_ms(fn, repeats)))
        with other():
            slow = tuple(map(min, slow, best_ms(fn, repeats)))
    return fast, slow


@contextmanager
def read_noise_of(module) -> Iterator[None]:  # noqa: ANN001 - a normal.py module
    """Within: the device store draws its read noise with ``module``'s fill."""
    saved = store_module.scaled_normal_into
    store_module.scaled_normal_into = module.scaled_normal_into
    try:
        yield
    finally:
        store_module.scaled_normal_into = saved


def read_against(store, other, repeats: int, rounds: int = 3) -> tuple:  # noqa: ANN001
    """(this tree's, ``other``'s) best (wall, CPU) ms of the layer-1 read, alternating
    ``rounds`` times, after checking that both give the same draws and generator state."""
    reads = []
    for module in (normal, other):
        state = store.rng.bit_generator.state
        with read_noise_of(module):
            reads.append((store.read(0).copy().view(np.uint32), store.rng.bit_generator.state))
        store.rng.bit_generator.state = state
    if not (np.array_equal(reads[0][0], reads[1][0]) and reads[0][1] == reads[1][1]):
        sys.exit("--against: its read noise draws differently from this tree's")
    ours = theirs = (float("inf"), float("inf"))
    for _ in range(rounds):
        ours = tuple(map(min, ours, best_ms(lambda: store.read(0), repeats)))
        with read_noise_of(other):
            theirs = tuple(map(min, theirs, best_ms(lambda: store.read(0), repeats)))
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="paper-130nm")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--against", type=Path, default=None, help="root of another archsim checkout")
    args = parser.parse_args()
    other = load_normal(args.against.resolve()) if args.against else None
    config = paper_config(1000, args.hw)
    arch = build_architecture(config)
    rngs = seed_streams(0)
    learner = build_learner(config, rngs["init"], rngs["device"], arch.store_factory, arch.observer, arch.mvm)
    x_all, y_all = mnist(1000)
    batches = [(x_all[i:i + 100], y_all[i:i + 100]) for i in range(0, 1000, 100)]
    for xb, yb in batches[:3]:
        learner.train_batch(xb, yb)  # the first simulates the schedule's phases once
    x, y = batches[3]
    weights = learner.current_weights()
    logits, caches = learner.net.forward(x, weights)
    _, grad_logits = softmax_cross_entropy(logits, y)
    grads = learner.net.backward(caches, grad_logits, weights)
    store, opt, mvm = learner.store, learner.optimizer, arch.mvm
    hidden = [h.copy() for h in learner.net.hidden]
    moved = [h + np.random.default_rng(7).normal(0, 0.004, h.shape).astype(np.float32) for h in hidden]
    reports = [store.commit(layer, moved[layer]) for layer in range(2)]
    changes = int(reports[0].index.size) if reports[0].index is not None else int(np.count_nonzero(reports[0].changed))
    turn = [0]

    def commit_layer1() -> None:  # alternate: every call changes the same ~changes weights
        turn[0] ^= 1
        store.commit(0, hidden[0] if turn[0] else moved[0])

    step = [0]

    def train_step() -> None:
        step[0] += 1
        learner.train_batch(*batches[4 + step[0] % 6])

    r = args.repeats
    rows = [
        ("plain x @ W1 (100x784 @ 784x4096, BLAS)", best_ms(lambda: x @ weights[0], r)),
        ("plain x.T @ d (784x100 @ 100x4096, BLAS)", best_ms(lambda: x.T @ caches[0].normalized, r)),
        ("whole training step (learner.train_batch)", best_ms(train_step, max(3, r // 3))),
        ("circuit forward layer 1 (CrossbarMvm.forward)", best_ms(lambda: mvm.forward(0, x, weights[0]), r)),
        ("circuit backward layer 2 (CrossbarMvm.backward)", best_ms(
            lambda: mvm.backward(1, caches[1].normalized, weights[1]), r)),
        ("device store read layer 1 (store.read)", best_ms(lambda: store.read(0), r)),
    ]
    if other is not None:
        read_ours, read_theirs = read_against(store, other, r)
        rows += [("  the same, this tree's read noise (alternating)", read_ours),
                 ("  the same, --against's read noise (alternating)", read_theirs)]
    commit_fast, commit_numpy = alternating(commit_layer1, numpys_float64_draws, r)
    commit_split, commit_one_pass = alternating(commit_layer1, kernels_in_one_pass, r)
    rows += [
        (f"device store commit layer 1, {changes} level changes", commit_fast),
        ("  the same, numpy's float64 write-verify draws", commit_numpy),
        (f"  the same again, scans split over {kernels.THREADS} threads", commit_split),
        ("  the same, every scan in one pass on one thread", commit_one_pass),
        ("optimiser + meta layer 1 (Adam.update, fused)", best_ms(
            lambda: opt.update(0, hidden[0].copy(), grads.weights[0], learner.meta), r)),
        ("quantiser level index layer 1", best_ms(lambda: learner.store.quantizer.level_index(hidden[0]), r)),
        (f"schedule + ledger of one batch, {changes} changes", best_ms(
            lambda: arch.observer.on_train_batch(100, reports), r)),
    ]
    print(f"  {'part':<60} {'wall ms':>9} {'CPU ms':>9}")
    for name, (wall, cpu) in rows:
        print(f"  {name:<60} {wall:9.2f} {cpu:9.2f}")
    print(f"commit layer 1, compiled float64 draws / numpy's: wall {commit_fast[0] / commit_numpy[0]:.3f}, "
          f"CPU {commit_fast[1] / commit_numpy[1]:.3f}")
    print(f"commit layer 1, scans split / in one pass: wall {commit_split[0] / commit_one_pass[0]:.3f}, "
          f"CPU {commit_split[1] / commit_one_pass[1]:.3f}")
    if other is not None:
        print(f"read layer 1, this tree / --against {args.against}: wall {read_ours[0] / read_theirs[0]:.3f}, "
              f"CPU {read_ours[1] / read_theirs[1]:.3f}")


if __name__ == "__main__":
    main()
