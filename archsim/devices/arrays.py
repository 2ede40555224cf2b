"""Dense per-device state and the vectorised write-verify loop.

One :class:`DevicePlane` holds every device of one role (G+, G- or the single G) of one layer
as flat numpy arrays -- never one Python object per device. Programming works on index
arrays: the write-verify loop iterates over the pulse number (at most ``max_pulses``) and, at
each pulse, over the devices still outside tolerance, all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archsim.devices.model import DeviceModel


@dataclass
class ProgramResult:
    """What programming a set of devices did (aligned with the index array given)."""

    pulses: np.ndarray  # uint32, pulses applied to each requested device (0 if stuck)
    energy_j: float = 0.0
    verify_failures: int = 0
    newly_stuck: int = 0


@dataclass
class DevicePlane:
    """All devices of one role of one layer.

    Arrays (length n = devices): ``g`` float32 conductance (S); ``programs`` uint32 number of
    program operations (writes) applied; ``pulses`` uint32 pulses applied; ``stuck`` bool;
    ``endurance`` float32 cycles (None = infinite); ``gain`` float32 device-to-device
    programming gain (None = 1); ``program_time`` float64 time of the last programming (s)
    (None without drift).
    """

    g: np.ndarray
    programs: np.ndarray
    pulses: np.ndarray
    stuck: np.ndarray
    stuck_fabrication: int = 0
    endurance: np.ndarray | None = None
    gain: np.ndarray | None = None
    program_time: np.ndarray | None = None
    worn_out: int = field(default=0)

    @classmethod
    def create(cls, n: int, model: DeviceModel, rng: np.random.Generator) -> "DevicePlane":
        """Fresh devices at G_min; variability and fabrication faults drawn once from ``rng``."""
        cfg = model.config
        plane = cls(
            g=np.full(n, cfg.g_min_s, dtype=np.float32),
            programs=np.zeros(n, dtype=np.uint32),
            pulses=np.zeros(n, dtype=np.uint32),
            stuck=np.zeros(n, dtype=bool),
        )
        if cfg.endurance_model == "lognormal":
            endurance = rng.standard_normal(n, dtype=np.float32)
            endurance *= np.float32(cfg.endurance_sigma_ln)
            np.exp(endurance, out=endurance)
            endurance *= np.float32(cfg.endurance_median_cycles)
            plane.endurance = endurance
        if cfg.d2d_gain_sigma > 0:
            gain = rng.standard_normal(n, dtype=np.float32)
            gain *= np.float32(cfg.d2d_gain_sigma)
            np.exp(gain, out=gain)
            plane.gain = gain
        if cfg.drift_nu > 0:
            plane.program_time = np.zeros(n, dtype=np.float64)
        if cfg.stuck_at_fault_rate > 0:
            faulty = np.flatnonzero(rng.random(n) < cfg.stuck_at_fault_rate)
            at_max = rng.random(faulty.size) < cfg.stuck_at_g_max_fraction
            plane.stuck[faulty] = True
            plane.g[faulty] = np.where(at_max, cfg.g_max_s, cfg.g_min_s).astype(np.float32)
            plane.stuck_fabrication = int(faulty.size)
        return plane

    @property
    def size(self) -> int:
        return int(self.g.size)

    def stuck_count(self) -> int:
        return int(np.count_nonzero(self.stuck))

    def wear(self, model: DeviceModel, index: np.ndarray) -> np.ndarray:
        source = self.pulses if model.config.endurance_unit == "pulses" else self.programs
        return source[index]

    def program(
        self,
        index: np.ndarray,
        target_g: np.ndarray,
        target_state: np.ndarray,
        model: DeviceModel,
        rng: np.random.Generator,
        now_s: float = 0.0,
        count: bool = True,
    ) -> ProgramResult:
        """Write-verify the devices ``index`` (flat int indices) to ``target_g`` (float32, S).

        Stuck devices are skipped (0 pulses, conductance kept); a device whose wear has
        reached its endurance becomes stuck here instead of being programmed. ``count=False``
        (initial programming) leaves the wear, write and pulse counters untouched.
        """
        cfg = model.config
        n = index.size
        pulses_out = np.zeros(n, dtype=np.uint32)
        result = ProgramResult(pulses=pulses_out)
        if n == 0:
            return result
        sel = ~self.stuck[index]
        if self.endurance is not None and count:
            worn = sel & (self.wear(model, index) >= self.endurance[index])
            if worn.any():
                worn_idx = index[worn]
                self.stuck[worn_idx] = True
                if cfg.stuck_state == "g_min":
                    self.g[worn_idx] = np.float32(cfg.g_min_s)
                elif cfg.stuck_state == "g_max":
                    self.g[worn_idx] = np.float32(cfg.g_max_s)
                result.newly_stuck = int(worn_idx.size)
                self.worn_out += result.newly_stuck
                sel &= ~worn
        if not sel.all():
            positions = np.flatnonzero(sel)
        else:
            positions = None
        dev = index if positions is None else index[positions]
        if dev.size == 0:
            return result
        target = target_g if positions is None else target_g[positions]
        state = target_state if positions is None else target_state[positions]
        pulses, failures = self._write_verify(dev, target, state, model, rng)
        if positions is None:
            pulses_out[:] = pulses
        else:
            pulses_out[positions] = pulses
        result.verify_failures = failures
        result.energy_j = float(np.dot(pulses.astype(np.float64), model.pulse_energy_j[state]))
        if count:
            self.programs[dev] += np.uint32(1)
            self.pulses[dev] += pulses
        if self.program_time is not None:
            self.program_time[dev] = now_s
        return result

    def _write_verify(
        self,
        dev: np.ndarray,
        target: np.ndarray,
        state: np.ndarray,
        model: DeviceModel,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, int]:
        """The loop: pulse, verify, keep pulsing the devices outside tolerance.

        A pulse moves a device from G to ``G + k (G_target - G) + N(0, sigma_c2c(target))``
        (k = its device-to-device gain, 1 by default); the verify read then keeps it in the
        loop while ``|G - G_target| > tolerance``. Returns the pulses per device and how many
        devices were still outside tolerance after ``max_pulses``.
        """
        cfg = model.config
        n = dev.size
        g = self.g[dev].astype(np.float64)
        tgt = target.astype(np.float64)
        gain = None if self.gain is None else self.gain[dev].astype(np.float64)
        sigma = model.state_c2c[state] if model.state_c2c.any() else None
        pulses = np.zeros(n, dtype=np.uint32)
        active = np.arange(n)
        tol = model.tolerance_s
        for _ in range(cfg.max_pulses):
            if active.size == 0:
                break
            ga = g[active]
            ta = tgt[active]
            if gain is None:
                new = ta.copy()
            else:
                new = ga + gain[active] * (ta - ga)
            if sigma is not None:
                new += sigma[active] * rng.standard_normal(active.size)
            np.maximum(new, 0.0, out=new)
            g[active] = new
            pulses[active] += 1
            active = active[np.abs(new - ta) > tol]
        failures = int(active.size)
        if model.state_relax.any():
            g += model.state_relax[state] * rng.standard_normal(n)
            np.maximum(g, 0.0, out=g)
        self.g[dev] = g  # float64 -> float32; exact for ideal devices (float32 targets)
        return pulses, failures
