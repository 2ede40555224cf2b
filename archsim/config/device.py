"""Memristive device parameters: the multi-level resistive memory that stores the weights.

The number of levels is not a device parameter: it comes from the workload's quantizer
(``model.levels`` / ``model.level_values``). The device gives the conductance window, how a
signed weight maps onto conductances, how programming (write-verify) behaves and costs, how
reads are perturbed and when devices wear out. Every field defaults to the *ideal* device
(exact conductances, one pulse per write, no noise, infinite endurance), so the defaults
reproduce the ideal quantized store exactly. The model and the numbers of the shipped presets
are documented, with their sources, in ``docs/devices.md`` and ``hwconfigs/devices/*.yaml``.

Weight mapping (``docs/devices.md`` §2): with ``s = max(|Q_0|, |Q_{L-1}|)`` and
``dG = g_max_s - g_min_s``, a level value ``Q`` is written as

* ``differential``: ``G+ = g_min + max(Q/s, 0) dG``, ``G- = g_min + max(-Q/s, 0) dG`` and read
  back as ``W = (G+ - G-) / dG * s``;
* ``reference``: ``G = g_min + (1 + Q/s)/2 dG`` against a reference column at
  ``G_ref = (g_min + g_max)/2``, read back as ``W = (G - G_ref) / (dG/2) * s``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from archsim.config.base import StrictModel, check_float32

SigmaSpec = float | list[float]


class DeviceConfig(StrictModel):
    """Multi-level resistive memory device; the default is an ideal device."""

    name: str = Field(default="ideal", min_length=1, description="Preset name shown in reports.")
    description: str = Field(default="", description="Free text: technology and sources.")

    # --- conductance window and weight mapping -------------------------------------------
    g_min_s: float = Field(
        default=1.0e-6,
        ge=0,
        description="Lowest programmable conductance G_min in siemens (high-resistance state).",
    )
    g_max_s: float = Field(
        default=4.0e-5,
        gt=0,
        description="Highest programmable conductance G_max in siemens (low-resistance state).",
    )
    mapping: Literal["differential", "reference"] = Field(
        default="differential",
        description="Signed weights: 'differential' (a pair G+/G- per weight, W ~ G+ - G-) or "
        "'reference' (one device per weight against a reference column at (G_min+G_max)/2).",
    )

    # --- programming: write-verify ----------------------------------------------------------
    tolerance: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="Write-verify acceptance: stop pulsing a device once |G - G_target| <= "
        "tolerance * (G_max - G_min), i.e. relative to the conductance RANGE (dimensionless).",
    )
    max_pulses: int = Field(
        default=1,
        ge=1,
        le=10000,
        description="Most programming pulses (each followed by a verify read) per device and "
        "write; a device still outside tolerance after them keeps its last conductance "
        "(counted as a verify failure).",
    )
    pulse_voltage_v: float = Field(
        default=2.0, gt=0, description="Programming (SET/RESET) pulse amplitude in volts."
    )
    pulse_width_s: float = Field(default=1.0e-8, gt=0, description="Programming pulse width in seconds.")
    pulse_energy_conductance: Literal["trapezoid", "max"] = Field(
        default="trapezoid",
        description="Conductance a programming pulse is priced at (energy V^2 G t per pulse): "
        "'trapezoid' = mean of the device's conductance before and after that pulse (the "
        "integral of V^2 G(t) over a linear trajectory, as NeuroSim's analog write energy), "
        "'max' = the larger of the two (upper bound for an abrupt SET/RESET).",
    )
    line_capacitance_f: float = Field(
        default=0.0,
        ge=0,
        description="Capacitance in farads of the bit/source line charged by each pulse; adds "
        "C*V^2 per pulse (and per verify read) to the programming energy.",
    )
    verify_voltage_v: float = Field(
        default=0.2, gt=0, description="Verify-read voltage in volts (one verify read after each pulse)."
    )
    verify_time_s: float = Field(
        default=1.0e-9, ge=0, description="Duration of one verify read in seconds."
    )
    c2c_sigma: SigmaSpec = Field(
        default=0.0,
        description="Cycle-to-cycle programming spread per pulse: standard deviation of the "
        "conductance a pulse lands on around its target, as a fraction of (G_max - G_min). "
        "A list gives the value at evenly spaced conductances from G_min to G_max (first = "
        "G_min, last = G_max), interpolated linearly at each target, i.e. one entry per level "
        "for evenly spaced conductance levels.",
    )
    d2d_gain_sigma: float = Field(
        default=0.0,
        ge=0,
        description="Device-to-device variability: each device gets, once, a programming gain "
        "k ~ lognormal(median 1, sigma of ln k = this); a pulse moves G by k*(G_target - G) "
        "(plus the cycle-to-cycle spread), so devices with k != 1 over/undershoot and need "
        "more verify pulses (dimensionless).",
    )
    relaxation_sigma: SigmaSpec = Field(
        default=0.0,
        description="Conductance relaxation after a completed write-verify: one extra "
        "Gaussian step with this standard deviation, as a fraction of (G_max - G_min), applied "
        "after the last verify (the device drifts away from the verified value). A list is "
        "interpolated over the conductance window like c2c_sigma.",
    )

    relaxation_growth_per_decade: float = Field(
        default=0.0,
        ge=0,
        description="Growth of the relaxation spread with the time t since the write, on the "
        "device clock: sigma(t) = relaxation_sigma * (1 + this * log10(t / 1 s)) for t > 1 s "
        "(relaxation_sigma being the spread 1 s after the write). Each programmed device draws "
        "once the direction of its slow relaxation; 0 = the spread stays at its 1 s value.",
    )

    # --- reads -------------------------------------------------------------------------------
    read_noise_sigma: float = Field(
        default=0.0,
        ge=0,
        description="Read noise: every read draws a fresh Gaussian perturbation of each "
        "conductance with standard deviation read_noise_sigma * G (relative to G).",
    )
    read_noise_sampler: Literal["ziggurat", "box-muller"] = Field(
        default="ziggurat",
        description="How the read-noise Gaussians are drawn: 'ziggurat' (numpy's "
        "standard_normal, float32) or 'box-muller' (float32 Box-Muller from uniform draws: "
        "the same distribution, tails to 5.7 sigma, about 2x faster on a large layer; "
        "different draws for the same seed).",
    )
    drift_nu: float = Field(
        default=0.0,
        ge=0,
        description="Power-law conductance drift G(t) = G0 * ((t + t0)/t0)^-nu with t the time "
        "since the device was last programmed, on the device store's simulated clock "
        "(DeviceStore.now_s, moved by each batch: see seconds_per_batch); 0 = none.",
    )
    drift_t0_s: float = Field(default=1.0, gt=0, description="Drift reference time t0 in seconds.")
    seconds_per_batch: float | None = Field(
        default=None,
        ge=0,
        description="Simulated seconds each training or evaluation batch moves the device clock "
        "on (what drift ages by). None: the architecture engine's simulated latency of each "
        "batch in 'archsim run' (without an engine: the batch's serial programming time, "
        "pulses x (pulse_width_s + verify_time_s)). A number models a chip that sees one "
        "batch every so many seconds (e.g. learning from a sensor stream).",
    )

    # --- endurance and faults ------------------------------------------------------------------
    endurance_model: Literal["none", "lognormal"] = Field(
        default="none",
        description="Per-device endurance drawn once: 'none' (infinite) or 'lognormal' with "
        "endurance_median_cycles and endurance_sigma_ln.",
    )
    endurance_median_cycles: float = Field(
        default=1.0e6, gt=0, description="Median endurance in programming cycles (see endurance_unit)."
    )
    endurance_sigma_ln: float = Field(
        default=0.0, ge=0, description="Standard deviation of ln(endurance) (dimensionless)."
    )
    endurance_unit: Literal["writes", "pulses"] = Field(
        default="writes",
        description="What wears a device: each write (program operation, any number of pulses) "
        "or each pulse.",
    )
    stuck_state: Literal["g_min", "g_max", "last"] = Field(
        default="last",
        description="State of a worn-out device (one asked to program after its endurance): "
        "stuck at G_min, at G_max, or at its last conductance.",
    )
    stuck_at_fault_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Fraction of devices stuck from fabrication (never programmable).",
    )
    stuck_at_g_max_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Of the fabrication-stuck devices, the fraction stuck at G_max (the rest at G_min).",
    )

    @field_validator("c2c_sigma", "relaxation_sigma")
    @classmethod
    def _sigma_valid(cls, value: SigmaSpec) -> SigmaSpec:
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) < 1:
            raise ValueError("a sigma list needs at least one entry")
        for v in values:
            if not math.isfinite(v):
                raise ValueError("sigma must be a finite number")
            if v < 0:
                raise ValueError(f"sigma must be >= 0 (a standard deviation), got {v}")
        check_float32(values, "sigma")
        return value

    @model_validator(mode="after")
    def _window(self) -> "DeviceConfig":
        if self.g_min_s >= self.g_max_s:
            raise ValueError(
                f"g_min_s ({self.g_min_s:g} S) must be below g_max_s ({self.g_max_s:g} S); "
                "the conductance window G_min..G_max would be empty"
            )
        return self

    @property
    def ages(self) -> bool:
        """True when read conductances depend on the time since programming (drift, relaxation)."""
        relaxes = (max(self.relaxation_sigma) if isinstance(self.relaxation_sigma, list)
                   else self.relaxation_sigma) > 0
        return self.drift_nu > 0 or (self.relaxation_growth_per_decade > 0 and relaxes)

    @property
    def is_ideal(self) -> bool:
        """True when the device cannot perturb a weight or cost more than one pulse per write."""
        sigmas = [self.c2c_sigma, self.relaxation_sigma]
        no_spread = all(
            (max(s) if isinstance(s, list) else s) == 0.0 for s in sigmas
        )
        return (
            no_spread
            and self.d2d_gain_sigma == 0.0
            and self.read_noise_sigma == 0.0
            and self.drift_nu == 0.0
            and self.relaxation_growth_per_decade == 0.0
            and self.endurance_model == "none"
            and self.stuck_at_fault_rate == 0.0
        )
