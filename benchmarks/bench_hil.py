"""Hardware-in-the-loop training throughput against plain numpy training.

Run: ``python benchmarks/bench_hil.py [--train-limit N] [--hw paper-130nm]``

1. One epoch of MNIST on 784-512-10 with the full hardware loop: device model
   (``archsim.devices.make_device_store``, the preset's HfO2 device), circuit effects (DAC and
   per-tile ADC quantisation), SimPy schedule and ledger (fast mode);
2. the same network trained as plain float32 numpy (``rule: float32``, no hardware);
3. exact vs fast schedule on a small run (identical totals, wall-time ratio).

Prints the training throughputs (images/s of wall time) and their ratio (target >= 1/5).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archsim.config import RunConfig, validate  # noqa: E402
from archsim.config.loader import read_yaml_mapping, resolve_preset_path  # noqa: E402
from archsim.engine import build_architecture  # noqa: E402
from archsim.experiment import run_experiment  # noqa: E402

try:
    from archsim.devices import make_device_store  # noqa: E402
except ImportError:  # pragma: no cover - before the device model exists
    make_device_store = None


def workload(hidden: int, rule: str, train_limit: int | None, test_limit: int | None, hw: dict | None) -> RunConfig:
    tree = {
        "name": "bench-hil",
        "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": train_limit,
                   "test_limit": test_limit}],
        "model": {"hidden": [hidden], "levels": 3, "init_width": 2.0},
        "learning": {"rule": rule, "m_star": 2.0, "batch_size": 100, "optimizer": {"lr": 0.02}},
        "data": {"validation_size": 5000},
        "eval_batch_size": 1000,
    }
    if hw is not None:
        tree["hardware"] = hw
    return validate(RunConfig, tree, "bench-hil")


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    return out, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="paper-130nm", help="hardware preset (name or YAML path)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--train-limit", type=int, default=None, help="training images (default: full epoch)")
    parser.add_argument("--test-limit", type=int, default=None)
    args = parser.parse_args()

    hw_tree = read_yaml_mapping(resolve_preset_path(args.hw, "hwconfigs"))
    hil_cfg = workload(args.hidden, "qnn-meta", args.train_limit, args.test_limit, hw_tree)
    plain_cfg = workload(args.hidden, "float32", args.train_limit, args.test_limit, None)
    store = make_device_store if make_device_store is not None else None

    # Plain numpy float32 training of the same network (includes loading the data).
    plain, plain_wall = timed("plain", lambda: run_experiment(plain_cfg))

    def hil_run():
        arch = build_architecture(hil_cfg)
        kwargs = {"observer": arch.observer, "mvm": arch.mvm}
        if store is not None:
            kwargs["store_factory"] = store
        return arch, run_experiment(hil_cfg, **kwargs)

    (arch, hil), hil_wall = timed("hil", hil_run)
    summary = arch.summary()
    n_train = summary["batches"]["train_images"]
    plain_train_s = plain.wall_time_s["train:mnist"]
    hil_train_s = hil.wall_time_s["train:mnist"]
    print(f"network 784-{args.hidden}-10, {n_train} training images (1 epoch), hardware {args.hw}, "
          f"device store: {'archsim.devices' if store else 'ideal'}")
    print(f"plain float32 numpy : train {plain_train_s:7.2f} s  -> {n_train / plain_train_s:8.0f} img/s   "
          f"(run incl. data + eval {plain_wall:.2f} s)  acc {plain.accuracy['after:mnist']['mnist']:.4f}")
    print(f"hardware in the loop: train {hil_train_s:7.2f} s  -> {n_train / hil_train_s:8.0f} img/s   "
          f"(run incl. data + eval {hil_wall:.2f} s)  acc {hil.accuracy['after:mnist']['mnist']:.4f}")
    ratio = plain_train_s / hil_train_s
    print(f"throughput ratio HIL / plain (training): {ratio:.3f}  (target >= 0.2: "
          f"{'met' if ratio >= 0.2 else 'NOT met'});  whole run: {plain_wall / hil_wall:.3f}")
    lat, en = summary["latency_s"], summary["energy_j"]
    print(f"simulated chip: train step {lat['train_step'] * 1e6:.1f} us, inference/image "
          f"{lat['inference_per_image'] * 1e6:.2f} us, energy {en['total'] * 1e3:.3f} mJ "
          f"({en['per_train_step'] * 1e6:.2f} uJ/step), schedule phases simulated/reused "
          f"{summary['schedule']['phases_simulated']}/{summary['schedule']['phases_reused']}")

    # Exact vs fast on a small run.
    small = {}
    for mode in ("fast", "exact"):
        tree = dict(hw_tree, schedule=mode)
        cfg = workload(64, "qnn-meta", 1000, 1000, tree)

        def small_run(cfg=cfg):
            arch = build_architecture(cfg)
            run_experiment(cfg, observer=arch.observer, mvm=arch.mvm)
            return arch.summary()

        small[mode] = timed(mode, small_run)
    (fs, fw), (es, ew) = small["fast"], small["exact"]
    same = all(fs[k] == es[k] for k in ("latency_cycles", "energy_j", "action_counts"))
    print(f"small run 784-64-10, 1000 images: fast {fw:.2f} s, exact {ew:.2f} s, exact/fast "
          f"wall ratio {ew / fw:.2f}; identical totals: {same}")


if __name__ == "__main__":
    main()
