"""Time one training epoch on the ideal QuantizedStore and on a device preset, same process.

    python benchmarks/bench_devices.py                      # 784-512-10, 55 000 MNIST images
    python benchmarks/bench_devices.py --hidden 4096 --train-limit 5000 --device hfo2-130nm
    python benchmarks/bench_devices.py --hidden 4096 --train-limit 3000 --read-noise-sampler box-muller

Prints the wall time of each and their ratio (device / ideal), the time per store read and
commit call, plus the device statistics.
Both runs use the same seed, so they train on the same batches from the same initial weights.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from archsim.config import RunConfig, validate
from archsim.devices import load_device_preset, make_device_store
from archsim.experiment import build_learner, ideal_store, load_task_data, seed_streams


def make_config(hidden: list[int], train_limit: int | None, levels: int, device: str, seed: int,
                sampler: str | None = None) -> RunConfig:
    device_fields = load_device_preset(device).model_dump()
    if sampler is not None:
        device_fields["read_noise_sampler"] = sampler
    tree = {
        "name": "bench-devices",
        "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": train_limit}],
        "model": {"hidden": hidden, "levels": levels, "init_width": 2.0},
        "learning": {"rule": "qnn-meta", "m_star": 2.0, "batch_size": 100},
        "seed": seed,
        "hardware": {"name": f"bench-{device}", "device": device_fields},
    }
    return validate(RunConfig, tree, "bench")


class TimedStore:
    """Forwards to a store and adds up the wall time of its read and commit calls."""

    def __init__(self, store) -> None:  # noqa: ANN001
        self.store = store
        self.seconds = {"read": 0.0, "commit": 0.0}
        self.calls = {"read": 0, "commit": 0}

    def _timed(self, name: str, *args):  # noqa: ANN002, ANN202
        start = time.perf_counter()
        out = getattr(self.store, name)(*args)
        self.seconds[name] += time.perf_counter() - start
        self.calls[name] += 1
        return out

    def read(self, layer: int) -> np.ndarray:
        return self._timed("read", layer)

    def commit(self, layer: int, hidden: np.ndarray):  # noqa: ANN201
        return self._timed("commit", layer, hidden)

    def write_counts(self) -> list[np.ndarray]:
        return self.store.write_counts()

    def per_call_ms(self) -> str:
        return ", ".join(
            f"{name} {1e3 * self.seconds[name] / max(1, self.calls[name]):.3f} ms/call "
            f"({self.calls[name]} calls, {self.seconds[name]:.2f} s)"
            for name in ("read", "commit")
        )


def time_epoch(config: RunConfig, factory, data) -> tuple[float, TimedStore]:  # noqa: ANN001
    rngs = seed_streams(config.seed)
    timed: list[TimedStore] = []

    def timed_factory(cfg, hidden, rng):  # noqa: ANN001, ANN202
        timed.append(TimedStore(factory(cfg, hidden, rng)))
        return timed[-1]

    learner = build_learner(config, rngs["init"], rngs["device"], timed_factory)
    start = time.perf_counter()
    learner.train_epochs(data.train_x, data.train_y, 1, config.learning.batch_size, rngs["shuffle"])
    return time.perf_counter() - start, timed[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512], help="hidden layer sizes (default 512)")
    parser.add_argument("--train-limit", type=int, default=None, help="training images (default all 55 000)")
    parser.add_argument("--levels", type=int, default=3, help="quantized levels L (default 3)")
    parser.add_argument("--device", default="hfo2-130nm", help="device preset (default hfo2-130nm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--read-noise-sampler", choices=["ziggurat", "box-muller"], default=None,
                        help="override the preset's read_noise_sampler")
    args = parser.parse_args()

    config = make_config(args.hidden, args.train_limit, args.levels, args.device, args.seed,
                         args.read_noise_sampler)
    data = load_task_data(config.tasks[0], config.data.data_dir, config.data.validation_size)
    sizes = "-".join(str(s) for s in (784, *args.hidden, 10))
    print(f"network {sizes}, L={args.levels}, {data.train_x.shape[0]} images, one epoch, "
          f"device preset '{args.device}'")

    t_ideal, ideal = time_epoch(config, ideal_store, data)
    print(f"ideal QuantizedStore : {t_ideal:8.2f} s   ({ideal.per_call_ms()})")
    t_device, timed = time_epoch(config, make_device_store, data)
    print(f"DeviceStore ({args.device}): {t_device:8.2f} s   ({timed.per_call_ms()})")
    print(f"ratio device/ideal   : {t_device / t_ideal:8.2f}")
    store = timed.store
    stats = store.statistics() if hasattr(store, "statistics") else {}
    for key in ("writes_total", "pulses_total", "pulses_per_write_mean", "verify_failures",
                "stuck_devices", "program_energy_j", "program_time_s"):
        if key in stats:
            value = stats[key]
            print(f"  {key:24s} {value:.4g}" if isinstance(value, float) else f"  {key:24s} {value}")


if __name__ == "__main__":
    main()
