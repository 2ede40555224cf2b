"""The typed result of a run: what ``summary.json`` holds, as pydantic models.

``summary.json`` is written from :class:`RunSummary` (:mod:`archsim.summary` builds it) and
every reader goes through the same model: ``archsim report``, the sweep store (which flattens
it to Parquet columns with :meth:`RunSummary.flat`), the notebooks and the Python API
(:func:`archsim.run` returns it). ``archsim schema`` prints its JSON Schema.

Conventions:

* Accuracies are fractions in [0, 1]. An accuracy matrix maps ``"after:<trained task>"`` to
  ``{<evaluated task>: accuracy}`` (row = after training that task, column = task evaluated).
* Units are in the field names: ``_j`` joules, ``_s`` seconds, ``_cycles`` clock cycles,
  ``_bits`` bits, ``_mm2`` square millimetres, ``_hz`` hertz.
* Sections that the producer always writes have required fields, and a section rejects keys
  it does not know (``extra="forbid"``): renaming a field breaks validation (and the tests),
  never silently empties a report section. Sections that pass through an open-ended
  breakdown of the engine or the device model (``architecture``, ``utilisation``, ``device``)
  type the fields the readers use and keep the others.
* Sections added later are optional (``None`` = the run did not measure it, and the key is
  absent from ``summary.json``), so a new measurement is one optional field here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

AccuracyMatrix = dict[str, dict[str, float]]
"""``{"after:<trained task>": {"<evaluated task>": accuracy fraction}}``."""

ROW_PREFIX = "after:"
PHASES = ("forward", "backward", "update", "write", "eval")
"""Phases of the ledger in the order of one training step (``eval`` last)."""


class Section(BaseModel):
    """A summary section with a fixed set of keys."""

    model_config = ConfigDict(extra="forbid")


class OpenSection(BaseModel):
    """A summary section whose known keys are typed and whose further keys are kept as they are."""

    model_config = ConfigDict(extra="allow")


# -- sections -----------------------------------------------------------------------------------
class Writes(Section):
    """Device programming during training (a write = one level change of one weight)."""

    total: int = Field(ge=0, description="Level changes of all weights over the run.")
    max_per_device: int = Field(ge=0, description="Most program operations of one device (G+ and G- apart).")
    mean_per_device: float = Field(description="Mean program operations per device.")
    pulses_total: int = Field(ge=0, description="Programming pulses (write-verify iterations) of all devices.")
    stuck_devices: int = Field(ge=0, description="Devices stuck at the end of the run.")
    weights: int = Field(ge=0, description="Weights held by devices.")
    max_per_weight: int | None = Field(default=None, ge=0, description="Most level changes of one weight.")
    mean_per_weight: float | None = Field(default=None, description="Mean level changes per weight.")
    devices: int | None = Field(default=None, ge=0, description="Devices holding the weights.")
    stuck_skipped: int | None = Field(default=None, ge=0, description="Writes skipped because the device was stuck.")


class DeviceStats(OpenSection):
    """Statistics of the device model (``archsim.devices``); further counters are kept."""

    name: str
    weights: int = Field(ge=0)
    writes_total: int = Field(ge=0)
    writes_max_per_weight: int = Field(ge=0)
    writes_mean_per_weight: float = Field()
    pulses_total: int = Field(ge=0)
    stuck_devices: int = Field(ge=0)
    stuck_fabrication: int | None = Field(default=None, ge=0, description="Devices stuck from fabrication.")
    stuck_worn_out: int | None = Field(default=None, ge=0, description="Devices worn out during the run.")
    pulses_max_per_device: int | None = Field(default=None, ge=0)
    program_energy_j: float | None = Field(default=None, description="Energy of training-time programming (J).")
    program_time_s: float | None = Field(default=None, description="Time of training-time programming (s).")


class LedgerRow(Section):
    """One entry of the energy ledger: what one component's action cost in one phase."""

    component: str
    action: str = Field(description="Action name; 'leakage' for static power x phase time.")
    phase: str = Field(description="forward, backward, update, write or eval.")
    kind: Literal["dynamic", "leakage"]
    count: int = Field(ge=0, description="Times the action ran (0 for leakage).")
    busy_cycles: int = Field(ge=0, description="Clock cycles the component was busy with it.")
    energy_j: float = Field(description="Energy in J.")


class Energy(Section):
    """Energy of the run (J), split several ways."""

    total: float = Field()
    dynamic: float = Field()
    leakage: float = Field()
    by_component: dict[str, float]
    by_phase: dict[str, float]
    by_component_phase: dict[str, dict[str, float]]
    per_train_step: float = Field(description="Training energy per batch (all phases but eval).")
    per_inference_image: float = Field(description="Evaluation energy per image.")
    train_total: float | None = Field(default=None, description="Energy of all training (phases but eval).")
    eval_total: float | None = Field(default=None, description="Energy of all evaluation.")
    ledger: list[LedgerRow] | None = Field(default=None, description="Every (component, action, phase) entry.")


class Latency(Section):
    """Latency, in cycles (``latency_cycles``) or seconds (``latency_s``)."""

    by_phase: dict[str, float]
    inference_per_image: float = Field(description="Evaluation time per image (batched).")
    inference_single_image: float = Field(description="One image alone through the chip.")
    train_per_image: float = Field()
    train_step: float = Field(description="One training batch.")
    train_total: float = Field()
    eval_total: float = Field()
    total: float = Field()


class Utilisation(OpenSection):
    """How much of the chip the network uses; further keys of the mapping are kept."""

    tiles_used: int = Field(ge=0)
    tiles_available: int | None = Field(default=None, ge=0)
    tile_rows: int = Field(ge=1)
    tile_cols: int = Field(ge=1)
    weights: int = Field(ge=0)
    cell_utilisation_allocated: float | None = None
    cell_utilisation_chip: float | None = None
    busy_fraction: dict[str, float] = Field(default_factory=dict)
    layers: list[dict[str, Any]] = Field(default_factory=list)


class Architecture(OpenSection):
    """The rest of the engine's report: clocks, counts, unit energies, schedule."""

    clock_hz: dict[str, float]
    unit_energy_j: dict[str, float]
    action_counts: dict[str, int]
    busy_cycles: dict[str, int]
    batches: dict[str, int] = Field(default_factory=dict)
    schedule: dict[str, Any] = Field(default_factory=dict)
    writes: dict[str, int] = Field(default_factory=dict)
    memory_bits: dict[str, int] = Field(default_factory=dict)


class MemoryBits(OpenSection):
    """Memory footprint (bits) and its saving against the BNN design (docs/memory.md)."""

    weights: int = Field(ge=0, description="Weights of the network (a count, not bits).")
    total: int = Field(ge=0)
    bnn_equivalent: int = Field(ge=0)
    saving_vs_bnn: float = Field()
    formula: str
    rram_cells: int | None = None
    rram: float | None = None
    dpu: int | None = None
    batchnorm: int | None = None
    buffers: int | None = None
    hidden_bits: int | None = None
    optimizer_state: int | None = None
    paper_formula: float | None = None
    paper_formula_bnn: float | None = None
    paper_formula_saving: float | None = None
    total_with_optimizer: int | None = None
    bnn_equivalent_with_optimizer: int | None = None
    saving_vs_bnn_with_optimizer: float | None = None
    bnn_network: str | None = None
    bnn_source: str | None = None


class Area(OpenSection):
    """Chip area in mm^2."""

    total: float = Field()
    by_component: dict[str, float] = Field(default_factory=dict)
    tiles: int | None = Field(default=None, ge=0, description="Tiles on the chip.")
    per_tile: float | None = Field(default=None, description="Area of one tile (mm^2).")


class ContinualScores(Section):
    """Continual-learning metrics of one accuracy matrix (fractions; archsim/metrics/continual.py)."""

    average_accuracy: float
    backward_transfer: float | None = None
    average_forgetting: float | None = None
    forgetting: dict[str, float] = Field(default_factory=dict)
    accuracy_when_learned: dict[str, float] = Field(default_factory=dict)


class ContinualMetrics(Section):
    """Continual-learning metrics of the test and of the validation matrix (absent if not evaluated)."""

    test: ContinualScores | None = None
    validation: ContinualScores | None = None


# -- the run summary ------------------------------------------------------------------------------
class RunSummary(Section):
    """Everything one run reports; ``summary.json`` is this model as JSON."""

    archsim_version: str
    workload: str
    seed: int
    rule: str
    m_star: float
    tasks: list[str] = Field(default_factory=list, description="Task names in training order.")
    accuracy: AccuracyMatrix = Field(description="Test accuracy after every task.")
    validation_accuracy: AccuracyMatrix = Field(description="Validation-split accuracy after every task.")
    baseline_accuracy: AccuracyMatrix | None = Field(
        default=None, description="Same network and seed without hardware effects.")
    train_loss: dict[str, list[float]] = Field(description="Mean training loss of every epoch, per task.")
    writes: Writes
    memory_bits: MemoryBits
    device: DeviceStats | None = None
    latency_cycles: Latency | None = None
    latency_s: Latency | None = None
    energy_j: Energy | None = None
    utilisation: Utilisation | None = None
    architecture: Architecture | None = None
    area_mm2: Area | None = None
    continual: ContinualMetrics | None = None
    warnings: list[str] | None = Field(default=None, description="Problems recorded with the run (e.g. "
                                       "values that were not finite and were written as null).")

    # -- files --------------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        """The JSON document (absent sections left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def save(self, path: str | Path) -> Path:
        """Write ``path`` atomically (sorted keys: byte-reproducible)."""
        from archsim.io import atomic_write_json

        atomic_write_json(Path(path), self.to_json_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "RunSummary":
        """Read a ``summary.json`` (or a run folder holding one); one-line DataError if invalid."""
        from archsim.errors import DataError

        path = Path(path)
        if path.is_dir():
            path = path / "summary.json"
        from archsim.io import read_json

        try:
            data = read_json(path)  # bounded size and nesting
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: corrupt JSON (line {exc.lineno}: {exc.msg}); rerun 'archsim run' to rewrite it"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise DataError(f"{path}: cannot be read ({reason})") from None
        return cls.from_json_dict(data, str(path))

    @classmethod
    def from_json_dict(cls, data: Any, source: str = "summary") -> "RunSummary":
        from archsim.errors import DataError

        if not isinstance(data, dict):
            raise DataError(f"{source}: not a run summary (a JSON object is expected); rerun 'archsim run'")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise DataError(
                f"{source}: not a summary of this archsim version ('{key}': {first['msg']}); "
                f"rerun 'archsim run' with archsim {_version()} to rewrite it"
            ) from None

    def __getitem__(self, key: str) -> Any:
        """Read access by ``summary.json`` key (plain JSON values), for code written against the file."""
        if key not in type(self).model_fields or getattr(self, key) is None:
            raise KeyError(key)
        value = getattr(self, key)
        return value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in type(self).model_fields and getattr(self, key) is not None

    # -- accuracy -----------------------------------------------------------------------------
    def task_order(self) -> list[str]:
        """Tasks in training order (``tasks``, else rows ordered by how many tasks they hold)."""
        if self.tasks:
            return list(self.tasks)
        rows = sorted(self.accuracy, key=lambda r: (len(self.accuracy[r]), r))
        return [r[len(ROW_PREFIX):] if r.startswith(ROW_PREFIX) else r for r in rows]

    @property
    def final_accuracy(self) -> float:
        """Mean test accuracy over every task after the last task (NaN if none)."""
        order = self.task_order()
        row = self.accuracy.get(f"{ROW_PREFIX}{order[-1]}", {}) if order else {}
        return sum(row.values()) / len(row) if row else math.nan

    def accuracy_frame(self, which: Literal["test", "validation", "baseline"] = "test"):
        """Accuracy matrix as a DataFrame: rows ``after:<task>`` in training order, columns the
        evaluated tasks, NaN where a task was not yet trained."""
        import pandas as pd

        matrix = {"test": self.accuracy, "validation": self.validation_accuracy,
                  "baseline": self.baseline_accuracy}[which] or {}
        order = self.task_order()
        rows = [f"{ROW_PREFIX}{t}" for t in order if f"{ROW_PREFIX}{t}" in matrix]
        rows += sorted(r for r in matrix if r not in rows)
        cols = [t for t in order if any(t in matrix[r] for r in rows)]
        cols += sorted({t for r in rows for t in matrix[r]} - set(cols))
        frame = pd.DataFrame([[matrix[r].get(c, math.nan) for c in cols] for r in rows],
                             index=pd.Index(rows, name="after"), columns=pd.Index(cols, name="task"),
                             dtype=float)
        return frame

    # -- energy and latency ----------------------------------------------------------------------
    def ledger_rows(self) -> list[LedgerRow]:
        """The energy ledger; for summaries without one, rows per (component, phase) built from
        ``by_component_phase`` (action ``all``, dynamic and leakage together)."""
        if self.energy_j is None:
            return []
        if self.energy_j.ledger is not None:
            return list(self.energy_j.ledger)
        return [LedgerRow(component=c, action="all", phase=p, kind="dynamic", count=0, busy_cycles=0, energy_j=e)
                for c, phases in sorted(self.energy_j.by_component_phase.items()) for p, e in sorted(phases.items())]

    def energy_frame(self):
        """The energy ledger as a DataFrame: component, action, phase, kind, count, busy_cycles, energy_j."""
        import pandas as pd

        columns = list(LedgerRow.model_fields)
        return pd.DataFrame([row.model_dump() for row in self.ledger_rows()], columns=columns)

    def latency_frame(self):
        """Latency as a DataFrame: one row per quantity (phases as ``phase:<name>``), columns
        ``cycles`` and ``seconds``."""
        import pandas as pd

        def entries(latency: Latency | None) -> dict[str, float]:
            if latency is None:
                return {}
            plain = latency.model_dump(exclude={"by_phase"})
            return plain | {f"phase:{p}": v for p, v in ordered_phases(latency.by_phase).items()}

        cycles, seconds = entries(self.latency_cycles), entries(self.latency_s)
        index = list(dict.fromkeys([*cycles, *seconds]))
        return pd.DataFrame({"cycles": [cycles.get(k, math.nan) for k in index],
                             "seconds": [seconds.get(k, math.nan) for k in index]},
                            index=pd.Index(index, name="quantity"))

    def to_frame(self, what: Literal["accuracy", "validation", "baseline", "energy", "latency"] = "accuracy"):
        """A DataFrame of one part of the result: the accuracy matrix (default; ``validation``,
        ``baseline``), the energy ledger (``energy``) or the latency table (``latency``)."""
        if what in ("accuracy", "test"):
            return self.accuracy_frame("test")
        if what in ("validation", "baseline"):
            return self.accuracy_frame(what)
        if what == "energy":
            return self.energy_frame()
        if what == "latency":
            return self.latency_frame()
        raise ValueError(f"to_frame({what!r}): choose accuracy, validation, baseline, energy or latency")

    # -- flat columns (sweeps) -------------------------------------------------------------------
    def flat(self) -> dict[str, Any]:
        """``{"section.key": scalar}`` of every field (the columns of a sweep's results.parquet);
        lists become JSON text; the ledger rows are left out (``by_component_phase`` holds
        their sums)."""
        from archsim.sweep.store import flatten

        data = self.to_json_dict()
        data.get("energy_j", {}).pop("ledger", None)
        return flatten(data)


def ordered_phases(values: dict[str, float]) -> dict[str, float]:
    """Phases in the order of one training step, unknown ones after them alphabetically."""
    known = [p for p in PHASES if p in values]
    return {p: values[p] for p in known + sorted(p for p in values if p not in PHASES)}


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def section_fields(model: type[BaseModel] = RunSummary) -> set[str]:
    """Fields holding a mapping (a section or a dict): their flat columns are ``field.key``."""
    import typing

    out = set()
    for name, info in model.model_fields.items():
        annotation = _unwrap(info.annotation)
        if typing.get_origin(annotation) is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            out.add(name)
    return out


def field_path_exists(dotted: str, model: type[BaseModel] = RunSummary) -> bool:
    """True if ``a.b.c`` names a field of the model (through nested sections); a dict-typed
    field accepts any further key (``energy_j.by_component.adc``)."""
    import typing

    import typing

    current: Any = model
    for part in dotted.split("."):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        info = current.model_fields.get(part)
        if info is None:
            return False
        current = _unwrap(info.annotation)
        if typing.get_origin(current) is dict:
            return True
    return True


def json_schema() -> dict[str, Any]:
    """JSON Schema of ``summary.json`` (the RunSummary model)."""
    schema = RunSummary.model_json_schema()
    schema["title"] = "archsim run summary (summary.json)"
    return schema


def _version() -> str:
    from archsim import __version__

    return __version__


__all__ = [
    "AccuracyMatrix", "Architecture", "Area", "ContinualMetrics", "DeviceStats", "Energy", "Latency",
    "LedgerRow", "MemoryBits", "RunSummary", "Utilisation", "Writes", "field_path_exists", "json_schema",
]
