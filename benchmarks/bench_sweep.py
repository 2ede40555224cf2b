"""The same small sweep on 1 and on 2 local Dask workers: wall time of each and the speed-up.

    python benchmarks/bench_sweep.py [--points 16] [--train-limit 5000] [--hidden 128] [--repeats 1]

Each run starts its own LocalCluster (included in the wall time, as a user sees it) and
writes to a fresh temporary folder, so nothing is skipped. On a shared machine the absolute
times move with the load; the runs are back to back (interleaved with --repeats, best of N
kept) so the ratio is the useful number.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from archsim.sweep.execute import run_sweep


def write_spec(folder: Path, points: int, train_limit: int, hidden: int) -> Path:
    m_stars = [0.5 * i for i in range(points)]
    spec = {
        "name": "bench",
        "workload": "smoke",
        "set": {
            "tasks.*.epochs": 1,
            "tasks.*.train_limit": train_limit,
            "tasks.*.test_limit": 1000,
            "data.validation_size": 500,
            "model.hidden": [hidden],
        },
        "grid": {"learning.m_star": m_stars},
        "seeds": [0],
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def timed_sweep(spec: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall time of the whole sweep, sum of the points' own wall times)."""
    start = time.perf_counter()
    report = run_sweep(spec, out, workers=workers, quiet=True)
    wall = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"{report.failed} points failed; see {report.results}")
    busy = float(pd.read_parquet(report.results)["wall_time_s"].sum())
    return wall, busy


def _timed_spin(n: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - start


def free_core_check(n: int = 30_000_000) -> float:
    """Time of a CPU-bound loop run twice side by side over run alone (1.0 = two free cores).

    Tells whether the machine has a second core to give at all right now.
    """
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_timed_spin, [1000, 1000], chunksize=1)  # start both processes first
        one = pool.apply(_timed_spin, (n,))
        two = max(pool.map(_timed_spin, [n, n], chunksize=1))
    return two / one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--train-limit", type=int, default=5000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="Best of N, runs interleaved.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        folder = Path(tmp)
        spec = write_spec(folder, args.points, args.train_limit, args.hidden)
        results: dict[int, tuple[float, float]] = {}
        for repeat in range(args.repeats):
            for workers in (1, 2):
                timing = timed_sweep(spec, folder / f"out-{workers}-{repeat}", workers)
                if workers not in results or timing[0] < results[workers][0]:
                    results[workers] = timing
        for workers, (wall, busy) in results.items():
            print(f"{workers} worker(s): {args.points} points in {wall:6.1f} s "
                  f"(points' own time {busy:6.1f} s, {busy / args.points:.2f} s/point)")
        print(f"speed-up 2 vs 1 workers: {results[1][0] / results[2][0]:.2f}x")
    ratio = free_core_check()
    print(f"machine check: 2 CPU-bound processes side by side take {ratio:.2f}x the time of one "
          "(1.0 = a second core is free; 2.0 = no spare core, no speed-up possible)")


if __name__ == "__main__":
    main()
