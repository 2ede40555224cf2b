"""The sweep description (``SWEEP.yaml``): a validated, immutable model.

A sweep is one workload (plus optional hardware) with settings changed per point::

    name: m-star-vs-levels
    workload: smoke                  # path (relative to this file first) or shipped name
    hardware: null                   # optional hardware YAML / preset
    set:                             # applied to every point
      tasks.*.epochs: 1
    grid:                            # full cartesian product
      learning.m_star: [0, 1, 2]
      model.levels: [3, 5]
    random:                          # optional: N samples, each crossed with the grid
      samples: 4
      seed: 0
      space:
        learning.optimizer.lr: {loguniform: [0.001, 0.05]}
    seeds: [0, 1]                    # run seeds (default [0])
    output: sweeps-out/m-star-vs-levels   # default sweeps-out/<name>

Keys are the dotted names of ``--set`` (``learning.m_star``); a numeric part indexes a list
(``tasks.0.epochs``) and ``*`` sets every element (``tasks.*.epochs``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from archsim.config.base import StrictModel
from archsim.config.loader import read_yaml_mapping, resolve_preset_path, validate
from archsim.errors import ConfigError, ResourceError


def check_dotted_key(key: str) -> str:
    """A dotted key has non-empty parts; ``seed`` is swept with ``seeds``, not here."""
    if not isinstance(key, str) or not key or any(not part.strip() for part in key.split(".")):
        raise ValueError(f"{key!r} is not a dotted key like learning.m_star")
    if key == "seed":
        raise ValueError("sweep run seeds with the top-level 'seeds' list, not a 'seed' key")
    return key


class Distribution(StrictModel):
    """One dimension of the random space: exactly one of the four kinds."""

    uniform: tuple[float, float] | None = Field(default=None, description="Float in [lo, hi).")
    loguniform: tuple[float, float] | None = Field(
        default=None, description="Float whose log is uniform in [log lo, log hi); lo > 0."
    )
    integer: tuple[int, int] | None = Field(
        default=None, alias="int", description="Integer in [lo, hi], both ends included."
    )
    choice: list[Any] | None = Field(
        default=None, min_length=1, description="One of the listed values, equally likely."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "Distribution":
        given = [k for k in ("uniform", "loguniform", "integer", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of {uniform: [lo, hi]}, {loguniform: [lo, hi]}, "
                "{int: [lo, hi]}, {choice: [...]}"
            )
        kind = given[0]
        if kind in ("uniform", "loguniform", "integer"):
            lo, hi = getattr(self, kind)
            if kind != "integer" and not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"{kind} bounds must be finite")
            if hi < lo or (kind != "integer" and hi == lo):
                raise ValueError(f"{kind} needs lo < hi, got [{lo}, {hi}]")
            if kind == "loguniform" and lo <= 0:
                raise ValueError(f"loguniform needs lo > 0, got {lo}")
        return self

    @property
    def kind(self) -> str:
        for k in ("uniform", "loguniform", "integer", "choice"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated Distribution has no kind")


class RandomSpec(StrictModel):
    """``samples`` draws from ``space``; sample i depends only on (seed, i)."""

    samples: int = Field(ge=1, le=1_000_000, description="Number of random samples.")
    seed: int = Field(default=0, ge=0, lt=2**63, description="Seed of the sampling.")
    space: dict[str, Distribution] = Field(min_length=1, description="Dotted key -> distribution.")

    @field_validator("space")
    @classmethod
    def _keys(cls, space: dict[str, Distribution]) -> dict[str, Distribution]:
        for key in space:
            check_dotted_key(key)
        return space


class SweepSpec(StrictModel):
    """A design-space sweep: points = grid x random samples x seeds."""

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Sweep name (letters, digits, . _ -); default output sweeps-out/<name>.",
    )
    description: str = Field(default="", description="Free text.")
    workload: str = Field(
        min_length=1,
        description="Workload YAML (relative to the sweep file's folder first) or shipped name.",
    )
    hardware: str | None = Field(default=None, description="Hardware YAML or shipped preset name.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, alias="set", description="Dotted key -> value for every point."
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted key -> list of values (cartesian product)."
    )
    random: RandomSpec | None = Field(default=None, description="Random samples, crossed with the grid.")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Run seeds.")
    output: str | None = Field(
        default=None, description="Result folder (relative to the current folder); default sweeps-out/<name>."
    )

    @field_validator("overrides")
    @classmethod
    def _set_keys(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        for key in overrides:
            check_dotted_key(key)
        return overrides

    @field_validator("grid")
    @classmethod
    def _grid_keys(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            check_dotted_key(key)
            if not values:
                raise ValueError(f"grid key '{key}' has an empty list of values; give at least one")
        return grid

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        for seed in seeds:
            if not 0 <= seed < 2**63:
                raise ValueError(f"seeds must be in [0, 2**63), got {seed}")
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds has repeated values")
        return seeds

    @property
    def swept_keys(self) -> list[str]:
        """Columns that vary between points, in spec order; ``seed`` last."""
        keys = list(self.grid)
        if self.random is not None:
            keys += list(self.random.space)
        return keys + ["seed"]


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML; errors are one-line ConfigErrors naming the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep file; give the path to a sweep YAML")
    spec = validate(SweepSpec, read_yaml_mapping(path), str(path))
    check_sweep(spec, str(path))
    return spec


def check_sweep(spec: SweepSpec, source: str) -> None:
    """Checks across fields: something to sweep, no key both in grid and random."""
    if not spec.grid and spec.random is None:
        raise ConfigError(
            f"{source}: nothing to sweep: 'grid' is empty and there is no 'random' space; "
            "add grid: {dotted.key: [values, ...]} or random: {samples: N, space: {...}}"
        )
    if spec.random is not None:
        both = sorted(set(spec.grid) & set(spec.random.space))
        if both:
            raise ConfigError(
                f"{source}: key(s) in both 'grid' and 'random.space': {', '.join(both)}; keep one"
            )
    check_point_count(spec, source)


def point_count(spec: SweepSpec) -> int:
    """Points the sweep plans (grid product x random samples x seeds), counted, not expanded."""
    total = math.prod(len(values) for values in spec.grid.values())
    samples = spec.random.samples if spec.random is not None else 1
    return total * samples * len(spec.seeds)


def check_point_count(spec: SweepSpec, source: str) -> None:
    """Refuse a plan beyond MAX_SWEEP_POINTS or the memory its points would take."""
    from archsim.limits import BYTES_PER_SWEEP_POINT, MAX_SWEEP_POINTS, check_memory

    total = point_count(spec)
    factors = [str(len(v)) for v in spec.grid.values()]
    if spec.random is not None:
        factors.append(f"{spec.random.samples:,} samples")
    factors.append(f"{len(spec.seeds):,} seed(s)")
    if total > MAX_SWEEP_POINTS:
        raise ResourceError(
            f"{source}: the sweep has {total:,} points ({' x '.join(factors)}), more than the "
            f"{MAX_SWEEP_POINTS:,} one sweep may plan; split it into several sweeps or sample "
            "the space with random: {samples: N, ...}"
        )
    check_memory(total * BYTES_PER_SWEEP_POINT, f"{source}: planning {total:,} points",
                 "split the sweep into several sweeps")


def resolve_input(value: str, spec_dir: Path, kind: str) -> Path:
    """A workload/hardware path: relative to the sweep file's folder first, then as usual."""
    candidate = Path(value)
    if not candidate.is_absolute() and (spec_dir / candidate).is_file():
        return (spec_dir / candidate).resolve()
    return resolve_preset_path(value, kind).resolve()


def default_output(spec: SweepSpec) -> Path:
    return Path(spec.output) if spec.output else Path("sweeps-out") / spec.name
