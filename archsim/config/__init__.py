"""Configuration tree: one validated, immutable model per run, round-trippable to YAML.

``RunConfig`` = the workload (tasks, model, learning) + the seed (+ the hardware subtree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from archsim.config.device import DeviceConfig
from archsim.config.hardware import HardwareConfig
from archsim.config.loader import (
    apply_overrides,
    read_yaml_mapping,
    resolve_preset_path,
    to_yaml,
    validate,
)
from archsim.config.workload import (
    AdamConfig,
    DataConfig,
    LearningConfig,
    ModelConfig,
    TaskConfig,
    WorkloadConfig,
)


class RunConfig(WorkloadConfig):
    """Everything one run needs; written as ``config.yaml`` next to its results."""

    seed: int = Field(default=0, ge=0, lt=2**63, description="Seed of every random draw of the run.")
    hardware: HardwareConfig | None = Field(
        default=None,
        description="The chip (devices, tiles, converters, DPU, interconnect); None trains the "
        "network in software only (no device effects, no latency or energy).",
    )

    @model_validator(mode="after")
    def _float_weights_need_an_ideal_device(self) -> "RunConfig":
        device = None if self.hardware is None else self.hardware.device
        if device is not None and self.learning.rule == "float32" and not device.is_ideal:
            raise ValueError(
                f"learning.rule 'float32' keeps unquantized weights, which the multi-level "
                f"device '{device.name}' cannot store; use rule 'qnn-meta' or 'bnn-meta', or "
                "the ideal device"
            )
        return self

    @model_validator(mode="after")
    def _one_hidden_weight_format(self) -> "RunConfig":
        """The learning arithmetic and the DPU's energy/SRAM price must use the same format."""
        bits = self.learning.hidden_weight_bits
        if self.hardware is None or bits is None:
            return self
        precision = self.hardware.dpu.hidden_precision
        if precision != bits:
            raise ValueError(
                f"learning.hidden_weight_bits = {bits} but hardware.dpu.hidden_precision = "
                f"{precision}: the DPU's hidden weights have one format; set "
                f"hardware.dpu.hidden_precision={bits}, or leave learning.hidden_weight_bits "
                "unset (it then follows the DPU)"
            )
        return self

    @property
    def hidden_weight_bits(self) -> int | None:
        """Fixed-point width of the hidden weights in the learning arithmetic, None = float32.

        One source of truth: learning.hidden_weight_bits, or with hardware the DPU's
        hidden_precision (which also prices its arithmetic and sizes its SRAM).
        """
        if self.learning.hidden_weight_bits is not None or self.hardware is None:
            return self.learning.hidden_weight_bits
        precision = self.hardware.dpu.hidden_precision
        return None if precision == "float32" else int(precision)


def load_run_config(
    workload: str | Path,
    hardware: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> RunConfig:
    """Merge workload YAML, hardware YAML, ``--set`` overrides and seed, then validate."""
    workload_path = resolve_preset_path(workload, "workloads")
    tree: dict[str, Any] = read_yaml_mapping(workload_path)
    if hardware is not None:
        hardware_path = resolve_preset_path(hardware, "hwconfigs")
        tree["hardware"] = read_yaml_mapping(hardware_path)
    tree = apply_overrides(tree, overrides or [])
    if seed is not None:
        tree["seed"] = seed
    config = validate(RunConfig, tree, str(workload_path))
    if config.hardware is not None:
        from archsim.limits import check_run_memory

        check_run_memory(config)  # before the mapping below builds one object per tile
        # A network that does not fit is a load-time error, before any data is read.
        from archsim.mapping import check_network_fits

        check_network_fits(config)
    return config


__all__ = [
    "AdamConfig",
    "DataConfig",
    "DeviceConfig",
    "HardwareConfig",
    "LearningConfig",
    "ModelConfig",
    "RunConfig",
    "TaskConfig",
    "WorkloadConfig",
    "load_run_config",
    "to_yaml",
    "validate",
]
