"""Hardware description: the memristive devices and the chip around them.

A hardware YAML (``--hw``, presets in ``hwconfigs/``) holds these fields at its top level;
in the resolved run configuration they sit under ``hardware``, so ``--set
hardware.device.read_noise_sigma=0.02`` overrides one of them.
"""

from __future__ import annotations

from pydantic import Field

from archsim.config.base import StrictModel
from archsim.config.device import DeviceConfig


class HardwareConfig(StrictModel):
    """The chip a workload runs on."""

    name: str = Field(default="hardware", min_length=1, description="Preset name shown in reports.")
    description: str = Field(default="", description="Free text shown in reports.")
    device: DeviceConfig = Field(default_factory=DeviceConfig, description="Memristive device model.")
