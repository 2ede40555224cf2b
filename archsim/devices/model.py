"""Derived constants of one device configuration for one level set.

:class:`DeviceModel` turns a :class:`~archsim.config.device.DeviceConfig` and the workload's
quantizer into the tables the arrays use: the target conductance of every device for every
weight level, the distinct conductance *states* a device can be asked for, the spreads at
those states in siemens, the weight-per-siemens factor and the energy of a pulse.

Mapping W_Q -> conductances -> W (``docs/devices.md`` §2). With ``s = max|Q_k|`` and
``dG = g_max - g_min``:

* differential: ``G+_k = g_min + max(Q_k/s, 0) dG``, ``G-_k = g_min + max(-Q_k/s, 0) dG``,
  ``W = (G+ - G-) * s/dG``;
* reference: ``G_k = g_min + (1 + Q_k/s)/2 dG``, ``G_ref = (g_min + g_max)/2``,
  ``W = (G - G_ref) * 2s/dG``.

Both are linear, so ``Q_k = (G+_k - G-_k) * weight_per_siemens`` and the stores evaluate the
read-back weight as ``Q_k + ((G+ - G+_k) - (G- - G-_k)) * weight_per_siemens``: algebraically
the formula above, and bit-exact (``== quantizer.dequantize``) when the devices sit on their
targets, as ideal devices do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archsim.config.device import DeviceConfig
from archsim.learning.quantizer import Quantizer


def sigma_at(spec: float | list[float], x: np.ndarray) -> np.ndarray:
    """A sigma spec (scalar, or values at evenly spaced points of [0, 1]) evaluated at ``x``."""
    if not isinstance(spec, list):
        return np.full(np.shape(x), float(spec))
    if len(spec) == 1:
        return np.full(np.shape(x), float(spec[0]))
    grid = np.linspace(0.0, 1.0, len(spec))
    return np.interp(x, grid, np.asarray(spec, dtype=np.float64))


@dataclass(frozen=True)
class DeviceModel:
    """Everything the device arrays need, derived once per run.

    Attributes (all per *weight level* k = 0..L-1 unless said otherwise):

    * ``targets[p][k]``: target conductance (S, float32) of plane p (0 = G+ or G, 1 = G-);
    * ``state_of[p][k]``: index of that target in ``state_g`` (the distinct conductances);
    * ``state_g``: the distinct target conductances, ascending (S, float64);
    * ``state_c2c`` / ``state_relax``: per-pulse and post-verify spread at each state (S);
    * ``weight_per_siemens``: W per siemens of (G+ - G-) (or of G - G_ref);
    * ``tolerance_s``: write-verify acceptance half-width (S);
    * ``pulse_energy_j[state]``: energy of one pulse plus its verify read at that target (J);
    * ``pulse_time_s``: duration of one pulse plus its verify read (s).
    """

    config: DeviceConfig
    level_values: np.ndarray
    planes: int
    targets: tuple[np.ndarray, ...]
    state_of: tuple[np.ndarray, ...]
    state_g: np.ndarray
    state_c2c: np.ndarray
    state_relax: np.ndarray
    weight_per_siemens: float
    reference_s: float
    tolerance_s: float
    pulse_energy_j: np.ndarray
    pulse_time_s: float
    level_values32: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]

    @classmethod
    def build(cls, config: DeviceConfig, quantizer: Quantizer) -> "DeviceModel":
        q = np.asarray(quantizer.values, dtype=np.float64)
        scale = float(np.max(np.abs(q)))
        if scale == 0.0:  # pragma: no cover - strictly increasing levels are never all zero
            raise ValueError("level values are all zero")
        g_min, g_max = config.g_min_s, config.g_max_s
        dg = g_max - g_min
        u = q / scale  # in [-1, 1]
        if config.mapping == "differential":
            g_targets = [g_min + np.maximum(u, 0.0) * dg, g_min + np.maximum(-u, 0.0) * dg]
            weight_per_siemens = scale / dg
            reference = 0.0
        else:
            g_targets = [g_min + (1.0 + u) * 0.5 * dg]
            weight_per_siemens = 2.0 * scale / dg
            reference = 0.5 * (g_min + g_max)
        targets32 = tuple(t.astype(np.float32) for t in g_targets)
        # Distinct states from the float32 targets, so equal targets share one state.
        state_g32 = np.unique(np.concatenate(targets32))
        state_of = tuple(np.searchsorted(state_g32, t).astype(np.uint8) for t in targets32)
        state_g = state_g32.astype(np.float64)
        x = np.clip((state_g - g_min) / dg, 0.0, 1.0)
        v, t, c = config.pulse_voltage_v, config.pulse_width_s, config.line_capacitance_f
        vr, tr = config.verify_voltage_v, config.verify_time_s
        pulse_energy = v * v * state_g * t + c * v * v + vr * vr * state_g * tr + c * vr * vr
        return cls(
            config=config,
            level_values=q,
            planes=len(targets32),
            targets=targets32,
            state_of=state_of,
            state_g=state_g,
            state_c2c=sigma_at(config.c2c_sigma, x) * dg,
            state_relax=sigma_at(config.relaxation_sigma, x) * dg,
            weight_per_siemens=weight_per_siemens,
            reference_s=reference,
            tolerance_s=config.tolerance * dg,
            pulse_energy_j=pulse_energy,
            pulse_time_s=t + tr,
            level_values32=q.astype(np.float32),
        )

    @property
    def levels(self) -> int:
        return int(self.level_values.size)

    @property
    def states(self) -> int:
        return int(self.state_g.size)

    def energy_per_pulse(self, target_s: np.ndarray | float) -> np.ndarray | float:
        """Energy (J) of one programming pulse and its verify read at target conductance(s).

        ``V_p^2 G t_p + C V_p^2 + V_r^2 G t_r + C V_r^2`` with G the target conductance (the
        1T1R access transistor limits the SET current to the level's compliance).
        """
        cfg = self.config
        v, vr, c = cfg.pulse_voltage_v, cfg.verify_voltage_v, cfg.line_capacitance_f
        return (
            v * v * target_s * cfg.pulse_width_s
            + c * v * v
            + vr * vr * target_s * cfg.verify_time_s
            + c * vr * vr
        )
