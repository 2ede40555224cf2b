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
    * ``pulse_time_s``: duration of one pulse plus its verify read (s);
    * energy of a pulse: :meth:`energy_per_pulse` (from the conductance before and after it).
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
            pulse_time_s=config.pulse_width_s + config.verify_time_s,
            level_values32=q.astype(np.float32),
        )

    @property
    def levels(self) -> int:
        return int(self.level_values.size)

    @property
    def states(self) -> int:
        return int(self.state_g.size)

    def pulse_conductance(self, g_before_s: np.ndarray | float, g_after_s: np.ndarray | float):
        """Conductance (S) a pulse is priced at: the mean of the conductances before and after
        it (``trapezoid``: the current V*G(t) integrated over a linear G trajectory) or the
        larger of them (``max``: an upper bound for an abrupt SET/RESET)."""
        if self.config.pulse_energy_conductance == "trapezoid":
            return 0.5 * (np.asarray(g_before_s, dtype=np.float64) + g_after_s)
        return np.maximum(g_before_s, g_after_s)

    def energy_per_pulse(
        self, g_before_s: np.ndarray | float, g_after_s: np.ndarray | float
    ) -> np.ndarray | float:
        """Energy (J) of one programming pulse taking a device from ``g_before_s`` to
        ``g_after_s``, plus its verify read.

        ``V_p^2 G_pulse t_p + C V_p^2 + V_r^2 G_after t_r + C V_r^2``: the Joule energy
        ``integral V I dt = V^2 integral G(t) dt`` of the pulse, with ``G_pulse`` from
        :meth:`pulse_conductance` (trapezoid by default, as NeuroSim prices an analog write:
        ``V^2 (G_prev + G_new)/2 t_pulse``, neurosim/MLP_NeuroSim_V3.0 ``Cell.cpp``
        ``AnalogNVM::WriteEnergyCalculation``), the line charge ``C V^2``, and the verify read
        at the conductance the pulse left. A RESET from G_max to G_min is priced near
        ``V^2 G_max/2 t_p``, not at its low target.
        """
        g_pulse = self.pulse_conductance(g_before_s, g_after_s)
        return self.program_energy_j(g_pulse, g_after_s, 1)

    def program_energy_j(self, pulse_g_s, verify_g_s, pulses: int):  # noqa: ANN001, ANN201
        """Energy (J) of ``pulses`` pulses and verify reads whose priced conductances add up to
        ``pulse_g_s`` (pulses) and ``verify_g_s`` (verify reads), in siemens."""
        cfg = self.config
        v, vr, c = cfg.pulse_voltage_v, cfg.verify_voltage_v, cfg.line_capacitance_f
        return (
            v * v * cfg.pulse_width_s * pulse_g_s
            + vr * vr * cfg.verify_time_s * np.asarray(verify_g_s, dtype=np.float64)
            + c * (v * v + vr * vr) * pulses
        )
