"""Memristive device parameters (filled in by the device model, issue 4)."""

from __future__ import annotations

from pydantic import Field

from archsim.config.base import StrictModel


class DeviceConfig(StrictModel):
    """Multi-level resistive memory device; the default is an ideal device."""

    name: str = Field(default="ideal", description="Preset name shown in reports.")
