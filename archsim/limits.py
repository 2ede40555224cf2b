"""Bounds on what archsim reads and builds, checked before anything large is allocated.

A careless or hostile input (a 1 kB YAML whose aliases expand to gigabytes, a 3 MB gzip that
inflates to 3 GiB, ``hidden: [1000000000]``, a sweep grid of 10^9 points) must end in one
clear line before it takes the machine down. The caps below sit far above anything the
shipped workloads, presets and sweeps use; the memory estimate compares what a run or a
sweep plan is about to allocate with what this machine (and this process's address-space
limit, ``ulimit -v``) has available. Every failure is a :class:`~archsim.errors.ResourceError`
(exit code 2) naming the setting to reduce.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archsim.errors import ResourceError

MAX_CONFIG_BYTES = 4 * 2**20
"""Largest workload / hardware / sweep YAML read (shipped ones are a few kB)."""
MAX_NESTING_DEPTH = 64
"""Deepest nesting of YAML or JSON collections (a resolved configuration is 5 deep)."""
MAX_YAML_ALIASES = 1_000
"""Alias uses (``*name``) per YAML document."""
MAX_EXPANDED_NODES = 1_000_000
"""Values of a YAML document once its aliases are expanded (the billion-laughs bound)."""
MAX_JSON_BYTES = 256 * 2**20
"""Largest JSON result file read back (summary.json of the paper's run is a few kB)."""
MAX_IDX_BYTES = 64 * 2**20
"""Largest (decompressed) IDX data file: MNIST's training images are 47 040 016 bytes."""
MAX_SWEEP_POINTS = 10_000
"""Most points one sweep may plan (grid x random samples x seeds); about 3 ms each to validate."""

FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)

# Bytes allocated per weight of the network, measured on 784-4096-4096-10 (20.0 M weights,
# one epoch on 300 images; peak RSS above a [32] run): 48 B with the ideal store (hidden
# weights, Adam moments, quantized copy, write counters, gradients), 134 B with a device
# store (conductance planes, pulse counters, stuck masks, device draws). Rounded up.
BYTES_PER_WEIGHT_SOFTWARE = 64
BYTES_PER_WEIGHT_DEVICE = 160
# Chip model per tile (SimPy resources, interconnect graph node, ledger entries): 1e6 tiles
# took 0.85 GB. Rounded up.
BYTES_PER_TILE = 1_200
# A planned sweep point holds its resolved configuration as a dict: 6.3 kB measured.
BYTES_PER_SWEEP_POINT = 16_000
TRAIN_IMAGES = 60_000
TEST_IMAGES = 10_000
PIXELS = 784


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run is about to allocate, by part, in bytes."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        shown = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{name} {gib(size)}" for name, size in shown if size)


def gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**28 else f"{size / 2**20:.0f} MiB"


def _proc_value_kb(path: str, key: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory_bytes() -> int | None:
    """Memory this process may still allocate: the machine's available memory, capped by the
    head-room left under its address-space limit (``ulimit -v``); None if unknown."""
    candidates = []
    available_kb = _proc_value_kb("/proc/meminfo", "MemAvailable")
    if available_kb is not None:
        candidates.append(available_kb * 1024)
    else:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used_kb = _proc_value_kb("/proc/self/status", "VmSize") or 0
        candidates.append(max(0, soft - used_kb * 1024))
    return min(candidates) if candidates else None


def estimate_run(config: Any) -> MemoryEstimate:
    """Bytes a run of ``config`` (a RunConfig) allocates beyond the interpreter: network and
    optimizer state, device arrays, chip model, task data and batch activations."""
    plan = config.model.plan
    weights = sum(layer.n_in * layer.n_out for layer in plan)
    has_device = config.hardware is not None
    per_weight = BYTES_PER_WEIGHT_DEVICE if has_device else BYTES_PER_WEIGHT_SOFTWARE
    copies = 2 if config.software_baseline else 1
    parts = {"network": weights * per_weight + (weights * BYTES_PER_WEIGHT_SOFTWARE if copies == 2 else 0)}
    validation = config.data.validation_size
    data = 0
    for task in config.tasks:
        train = TRAIN_IMAGES - validation if task.train_limit is None else min(TRAIN_IMAGES - validation, task.train_limit)
        test = TEST_IMAGES if task.test_limit is None else min(TEST_IMAGES, task.test_limit)
        data += (train + validation + test) * PIXELS * 4  # float32 pixels kept for the whole run
    datasets = {task.dataset for task in config.tasks}
    data += len(datasets) * (TRAIN_IMAGES + TEST_IMAGES) * (PIXELS + 1)  # cached uint8 files
    parts["data"] = data
    # per image: every layer's outputs (a convolution's at every window, and its unrolled
    # input windows), kept as inputs, pre-activations, BN and gradients
    width = sum(layer.windows * (layer.n_out + (layer.n_in if layer.is_conv else 0)) for layer in plan)
    width += PIXELS
    batch = max(config.learning.batch_size, config.eval_batch_size)
    parts["activations"] = batch * width * 4 * 8
    if has_device:
        tile = config.hardware.tile
        if tile.count is None:
            from archsim.mapping import tiles_needed  # the mapping's own count, replicas included

            tiles = tiles_needed(plan, tile.rows, tile.cols, config.hardware.weight_encoding)
        else:
            tiles = tile.count
        parts["chip"] = tiles * BYTES_PER_TILE
    return MemoryEstimate(parts)


def check_memory(needed: MemoryEstimate | int, what: str, fix: str) -> None:
    """ResourceError if ``needed`` exceeds the memory this process may still allocate."""
    available = available_memory_bytes()
    total = needed.total if isinstance(needed, MemoryEstimate) else int(needed)
    if available is None or total <= available:
        return
    detail = f" ({needed.describe()})" if isinstance(needed, MemoryEstimate) else ""
    raise ResourceError(
        f"{what} needs about {gib(total)}{detail}, more than the {gib(available)} this machine "
        f"has available; {fix}"
    )


def check_run_memory(config: Any, what: str = "the run") -> None:
    check_memory(estimate_run(config), what,
                 "reduce model.hidden (or model.layers), the batch sizes or tile.count, or use a bigger machine")


def read_capped(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, refusing one larger than ``limit`` without reading it all."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ResourceError(f"{path}: larger than {gib(limit)}; {what}")
    return data
