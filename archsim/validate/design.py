"""A published design to validate against: its hardware (inputs) and headline figures.

A validation YAML (``hwconfigs/validation/*.yaml``) has three parts:

* ``hardware``: an ordinary hardware configuration (the same schema as ``--hw``) holding
  the design's published parameters and component figures -- the *inputs*;
* ``operating_point``: what one matrix-vector product (MVM) of the design is and how the
  design groups crossbars (``crossbars_per_unit``, ``units``), plus the parts of the design
  archsim does not model, each with its published figure (``unit_extra_area_mm2`` ...);
* ``figures``: the headline figures archsim *predicts*, each with the published value, its
  source and a tolerance (a figure that cannot meet it carries ``deviation``: why, and the
  ratio band it is known to sit in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from archsim.config.base import StrictModel
from archsim.config.hardware import HardwareConfig
from archsim.config.loader import read_yaml_mapping, validate

VALIDATION_DIR = Path(__file__).resolve().parent.parent / "presets" / "hwconfigs" / "validation"

Metric = Literal[
    "unit_power_w",
    "unit_area_mm2",
    "energy_per_op_j",
    "tops_per_w",
    "mvm_latency_s",
    "chip_tops",
    "chip_gops_per_mm2",
    "chip_area_mm2",
]


class OperatingPoint(StrictModel):
    """One MVM of the design and how its crossbars are grouped."""

    rows_used: int = Field(ge=1, description="Rows driven per MVM of one crossbar.")
    outputs: int = Field(ge=1, description="Column outputs sensed per MVM of one crossbar.")
    binary_inputs: bool = Field(default=False, description="Inputs are +-1 (one slice).")
    ops_per_mvm: int = Field(ge=1, description="Operations (2 per full-precision MAC) of one crossbar MVM.")
    crossbars_per_unit: int = Field(default=1, ge=1, description="Crossbars in the reported unit (IMA, core).")
    units: int = Field(default=1, ge=1, description="Units on the chip.")
    streaming: bool = Field(
        default=True,
        description="True: MVMs stream through the read and convert stages (the engine's "
        "pipeline; throughput = 1 / slower stage). False: each MVM reads then converts.",
    )
    unit_extra_power_w: float = Field(default=0.0, ge=0, description="Published power of unit parts archsim does not model.")
    unit_extra_area_mm2: float = Field(default=0.0, ge=0, description="Published area of unit parts archsim does not model.")
    chip_extra_area_mm2: float = Field(default=0.0, ge=0, description="Published area of chip parts outside the units.")


# Display units of the figures and their factor from SI (W, mm^2, J, s, ...).
UNIT_SCALE = {"W": 1.0, "mW": 1e3, "mm^2": 1.0, "pJ": 1e12, "fJ": 1e15, "TOPS/W": 1.0,
              "us": 1e6, "ns": 1e9, "TOPS": 1.0, "GOPS/(s*mm^2)": 1.0}
Unit = Literal["W", "mW", "mm^2", "pJ", "fJ", "TOPS/W", "us", "ns", "TOPS", "GOPS/(s*mm^2)"]


class Figure(StrictModel):
    """One headline figure: the published value and how close archsim must come."""

    metric: Metric
    published: float = Field(gt=0, description="The published value, in ``unit``.")
    unit: Unit
    source: str = Field(min_length=1)
    tolerance: float = Field(default=0.25, gt=0, lt=1, description="Allowed |ratio - 1|.")
    deviation: str | None = Field(
        default=None, description="Why this figure misses the tolerance (documented), or None."
    )
    known_ratio: tuple[float, float] | None = Field(
        default=None, description="With a deviation: the ratio band the figure is known to sit in."
    )

    @model_validator(mode="after")
    def _deviation_has_band(self) -> "Figure":
        if (self.deviation is None) != (self.known_ratio is None):
            raise ValueError("a figure's deviation and known_ratio go together")
        return self


class Design(StrictModel):
    name: str
    title: str
    reference: str
    hardware: HardwareConfig
    operating_point: OperatingPoint
    figures: list[Figure] = Field(min_length=1)


def load_design(path: Path) -> Design:
    """Read and check one validation YAML (errors name the file and the key)."""
    return validate(Design, read_yaml_mapping(path), str(path))


def shipped_designs(directory: Path = VALIDATION_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))
