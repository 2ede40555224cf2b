"""Expand a sweep into points: one fully resolved, validated RunConfig each, with a stable id.

Points are ``grid (cartesian product, spec order) x random samples x seeds``. The id of a
point is the SHA-256 of the canonical JSON of its resolved configuration, so it does not
depend on the order of the grid, on other points, or on the sweep's name: re-running a
reordered or extended sweep recognises every point it already finished.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from archsim.config import RunConfig
from archsim.config.dotted import get_dotted, set_dotted
from archsim.config.loader import format_validation_error, read_yaml_mapping
from archsim.errors import ConfigError
from archsim.limits import check_memory, estimate_run
from archsim.sweep.spec import (
    Distribution,
    RandomSpec,
    SweepSpec,
    check_sweep,
    point_count,
    resolve_input,
)


@dataclass(frozen=True)
class Point:
    """One configuration of the sweep."""

    id: str
    index: int
    swept: dict[str, Any]
    """Swept key -> value as resolved in the configuration (spec order, ``seed`` last)."""
    config: dict[str, Any]
    """``RunConfig.model_dump(mode='json')``: what the worker validates and runs."""

    def label(self) -> str:
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in self.swept.items())


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def point_id(config: RunConfig) -> str:
    """Stable identity of a resolved configuration."""
    return hashlib.sha256(canonical_json(config.model_dump(mode="json")).encode()).hexdigest()


def draw(dist: Distribution, rng: np.random.Generator) -> Any:
    kind = dist.kind
    if kind == "uniform":
        lo, hi = dist.uniform  # type: ignore[misc]
        return float(rng.uniform(lo, hi))
    if kind == "loguniform":
        lo, hi = dist.loguniform  # type: ignore[misc]
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    if kind == "integer":
        lo, hi = dist.integer  # type: ignore[misc]
        return int(rng.integers(lo, hi, endpoint=True))
    choices = dist.choice or []
    return copy.deepcopy(choices[int(rng.integers(len(choices)))])


def random_samples(random: RandomSpec | None) -> list[dict[str, Any]]:
    """Sample i uses its own generator seeded by (seed, i): raising ``samples`` keeps the
    earlier samples unchanged."""
    if random is None:
        return [{}]
    samples = []
    for i in range(random.samples):
        rng = np.random.default_rng([random.seed, i])
        samples.append({key: draw(dist, rng) for key, dist in random.space.items()})
    return samples


def base_tree(spec: SweepSpec, spec_dir: Path) -> dict[str, Any]:
    """Workload YAML (+ hardware under ``hardware``) + ``set``, as a plain tree."""
    tree = read_yaml_mapping(resolve_input(spec.workload, spec_dir, "workloads"))
    if spec.hardware is not None:
        tree["hardware"] = read_yaml_mapping(resolve_input(spec.hardware, spec_dir, "hwconfigs"))
    for key, value in spec.overrides.items():
        try:
            set_dotted(tree, key, value)
        except ConfigError as exc:
            raise ConfigError(f"set: {exc}") from None
    return tree


def expand(spec: SweepSpec, spec_path: str | Path) -> tuple[list[Point], int]:
    """Every point of the sweep, validated; returns (unique points, duplicates dropped).

    The first invalid point stops everything with a ConfigError naming the point and key.
    """
    spec_path = Path(spec_path)
    check_sweep(spec, str(spec_path))
    base = base_tree(spec, spec_path.parent)
    grid_keys = list(spec.grid)
    # check_sweep has bounded the count, so the samples list is small; combos stay lazy.
    combos = itertools.product(*(spec.grid[k] for k in grid_keys))
    samples = random_samples(spec.random)
    total = point_count(spec)
    points: list[Point] = []
    seen: set[str] = set()
    duplicates = 0
    largest = 0
    for index, (combo, sample, seed) in enumerate(itertools.product(combos, samples, spec.seeds)):
        chosen = {**dict(zip(grid_keys, combo)), **sample}
        where = f"{spec_path}: point {index + 1} of {total} ({_describe(chosen, seed)})"
        tree = copy.deepcopy(base)
        for key, value in chosen.items():
            try:
                set_dotted(tree, key, value)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        tree["seed"] = seed
        try:
            config = RunConfig.model_validate(tree)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, where)) from None
        pid = point_id(config)
        if pid in seen:
            duplicates += 1
            continue
        seen.add(pid)
        resolved = config.model_dump(mode="json")
        swept = {key: _resolved_value(resolved, key, chosen[key]) for key in chosen}
        swept["seed"] = seed
        points.append(Point(id=pid, index=index, swept=swept, config=resolved))
        largest = max(largest, estimate_run(config).total)
    check_memory(largest, f"{spec_path}: its largest point",
                 "reduce model.hidden, the batch sizes or tile.count of that point")
    return points, duplicates


def _describe(chosen: dict[str, Any], seed: int) -> str:
    parts = [f"{k}={json.dumps(v, default=str)}" for k, v in chosen.items()]
    return ", ".join(parts + [f"seed={seed}"])


def _resolved_value(resolved: dict[str, Any], key: str, given: Any) -> Any:
    """The value as the configuration holds it (e.g. 2 -> 2.0 for a float field)."""
    try:
        return get_dotted(resolved, key)
    except (KeyError, IndexError, ValueError, TypeError):
        return given
