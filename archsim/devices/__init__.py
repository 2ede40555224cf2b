"""Multi-level resistive memory model: devices, write-verify, read noise, endurance.

Usage::

    from archsim.devices import make_device_store
    result = run_experiment(config, store_factory=make_device_store)

``make_device_store`` reads the device parameters from ``config.hardware.device`` (an ideal
device when ``config.hardware`` is None). See ``docs/devices.md`` for the model and
``archsim/devices/README.md`` for how to add a device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from archsim.config import RunConfig
from archsim.config.device import DeviceConfig
from archsim.config.loader import PRESET_DIR, read_yaml_mapping, validate
from archsim.devices.arrays import DevicePlane, ProgramResult
from archsim.devices.model import DeviceModel
from archsim.devices.store import DeviceStore
from archsim.errors import ConfigError
from archsim.learning.storage import FloatStore, WeightStore
from archsim.learning.trainer import make_quantizer

DEVICE_PRESET_DIR = PRESET_DIR / "hwconfigs" / "devices"


def device_config_of(config: RunConfig) -> DeviceConfig:
    """The device of a run configuration; the ideal device when it has no hardware."""
    return DeviceConfig() if config.hardware is None else config.hardware.device


def make_device_store(config: RunConfig, hidden: list[np.ndarray], rng: np.random.Generator) -> WeightStore:
    """Store factory for :func:`archsim.experiment.run_experiment` (``StoreFactory``).

    ``config`` is the :class:`~archsim.config.RunConfig`; ``hidden`` the initial hidden weights
    (one (in, out) array per layer); ``rng`` the run's device generator, the only one drawn
    from. The float32 rule has no levels to store: it gets the digital ``FloatStore``
    (``RunConfig`` already rejects float32 with a non-ideal device at load time).
    """
    quantizer = make_quantizer(config.learning, config.model)
    if quantizer is None:
        return FloatStore(hidden)
    return DeviceStore(hidden, quantizer, device_config_of(config), rng)


def load_device_preset(name_or_path: str | Path) -> DeviceConfig:
    """A device preset: a YAML file of DeviceConfig fields, or a name in hwconfigs/devices/."""
    path = Path(name_or_path)
    if not path.is_file():
        path = DEVICE_PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            shipped = sorted(p.stem for p in DEVICE_PRESET_DIR.glob("*.yaml"))
            raise ConfigError(
                f"{name_or_path}: no such device preset; give a YAML path or one of: "
                + ", ".join(shipped)
            )
    return validate(DeviceConfig, read_yaml_mapping(path), str(path))


__all__ = [
    "DeviceConfig",
    "DeviceModel",
    "DevicePlane",
    "DeviceStore",
    "ProgramResult",
    "device_config_of",
    "load_device_preset",
    "make_device_store",
]
