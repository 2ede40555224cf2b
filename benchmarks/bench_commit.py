"""The layer-1 commit of the paper network on the chip, kernel by kernel, split over the
kernels' threads against every scan in one pass on one thread.

    python benchmarks/bench_commit.py [--hw paper-130nm] [--move 0.004] [--repeats 15]

Set up as in ``bench_write_verify.py`` (three training batches, then the hidden weights moved
by a normal step of standard deviation ``--move``; commits alternate between the two states, so
every call changes the same weights: 0.004 gives ~83 000 level changes, 0.0004 ~21 000).
Times the commit (best of ``--repeats``, wall and CPU of all threads) with the scans split as
``archsim.learning.kernels.scan_chunks`` chooses and with ``SCAN_PARTS = 1`` (as sweep workers
with OMP_NUM_THREADS=1 run it), alternating three times, then the mean time per commit of
each compiled kernel it calls, both ways.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archsim.devices import arrays, store as store_module  # noqa: E402
from archsim.learning import kernels, quantizer  # noqa: E402
from benchmarks.bench_step_parts import alternating, kernels_in_one_pass  # noqa: E402
from benchmarks.bench_write_verify import moved_store  # noqa: E402

# the compiled kernels a commit calls, by the module that calls them
KERNELS = {
    quantizer: ["uniform_level_changes", "level_changes", "collect_changed"],
    store_module: ["device_requests", "merge_plane_pulses", "count_writes", "decode_weights"],
    arrays: ["prepare_write_verify", "write_verify_rounds", "pulse_step", "store_programmed"],
}


def timed_kernels(totals: dict[str, list[float]]) -> None:
    """Wrap every kernel of KERNELS where its caller looks it up, adding (wall, CPU) s to ``totals``."""
    for module, names in KERNELS.items():
        for name in names:
            def timed(*args, _kernel=getattr(module, name), _name=name):  # noqa: ANN001, ANN002
                cpu, wall = time.process_time(), time.perf_counter()
                result = _kernel(*args)
                totals[_name][0] += time.perf_counter() - wall
                totals[_name][1] += time.process_time() - cpu
                return result

            setattr(module, name, timed)


def per_kernel(commit: Callable[[], object], calls: int) -> dict[str, tuple[float, float]]:
    """Mean (wall, CPU) ms per commit of each kernel over ``calls`` commits."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    saved = {(module, name): getattr(module, name) for module, names in KERNELS.items() for name in names}
    timed_kernels(totals)
    try:
        for _ in range(calls):
            commit()
    finally:
        for (module, name), kernel in saved.items():
            setattr(module, name, kernel)
    return {name: (wall * 1e3 / calls, cpu * 1e3 / calls) for name, (wall, cpu) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="paper-130nm")
    parser.add_argument("--move", type=float, default=0.004, help="std of the hidden weights' move")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    store, hidden, moved = moved_store(args.hw, args.move)
    changes = store.commit(0, moved).index.size
    turn = [0]

    def commit() -> None:  # alternate: every call changes the same weights
        turn[0] ^= 1
        store.commit(0, hidden if turn[0] else moved)

    split, one_pass = alternating(commit, kernels_in_one_pass, args.repeats)
    print(f"layer-1 commit, {changes} level changes, {kernels.THREADS} kernel threads (ms, wall / CPU)")
    print(f"  scans split       {split[0]:8.2f} {split[1]:8.2f}")
    print(f"  every scan in one {one_pass[0]:8.2f} {one_pass[1]:8.2f}")
    print(f"  split / one pass: wall {split[0] / one_pass[0]:.3f}, CPU {split[1] / one_pass[1]:.3f}")
    calls = max(args.repeats, 5)
    for _ in range(3):
        commit()
    parts = per_kernel(commit, calls)
    with kernels_in_one_pass():
        parts_one = per_kernel(commit, calls)
    print(f"  {'kernel, mean per commit':<26} {'split':>15} {'one pass':>15}")
    for name in sorted(parts, key=lambda n: -parts_one[n][0]):
        print(f"  {name:<26} {parts[name][0]:7.2f} {parts[name][1]:7.2f} "
              f"{parts_one[name][0]:7.2f} {parts_one[name][1]:7.2f}")


if __name__ == "__main__":
    main()
