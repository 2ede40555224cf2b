"""Dense per-device state and the vectorised write-verify loop.

One :class:`DevicePlane` holds every device of one role (G+, G- or the single G) of one layer
as flat numpy arrays -- never one Python object per device. Programming works on index
arrays: the write-verify loop iterates over the pulse number (at most ``max_pulses``) and, at
each pulse, over the devices still outside tolerance, all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archsim.devices.kernels import pulse_step
from archsim.devices.normal import standard_normal, standard_normal_into
from archsim.devices.model import DeviceModel

_EMPTY = np.zeros(0, dtype=np.float64)
_EVERY = np.zeros(0, dtype=np.int64)  # positions placeholder: every device


def smallest_unsigned(counts: np.ndarray) -> np.ndarray:
    """``counts`` (non-negative integers) in the smallest unsigned dtype that holds its maximum:
    what a result file stores (uint8 instead of uint32 compresses a quarter faster)."""
    top = int(counts.max()) if counts.size else 0
    return counts.astype(np.min_scalar_type(top), copy=False)


@dataclass
class ProgramResult:
    """What programming a set of devices did (arrays aligned with the index array given).

    ``pulses``: uint32 pulses applied to each requested device (0 when it was stuck);
    ``stuck``: bool, True where the device was stuck (fabrication fault, or worn out now or
    before) and was therefore not programmed -- None when no requested device was stuck;
    ``energy_j``: pulses and verify reads (``DeviceModel.energy_per_pulse``, summed over the
    conductance trajectory of every device); ``verify_failures``: devices still outside
    tolerance after ``max_pulses``; ``newly_stuck``: devices worn out by this request.
    """

    pulses: np.ndarray
    energy_j: float = 0.0
    verify_failures: int = 0
    newly_stuck: int = 0
    stuck: np.ndarray | None = None


@dataclass
class DevicePlane:
    """All devices of one role of one layer.

    Arrays (length n = devices): ``g`` float32 conductance (S); ``programs`` uint32 number of
    program operations (writes) applied; ``pulses`` uint32 pulses applied; ``stuck`` bool;
    ``endurance`` float32 cycles (None = infinite); ``gain`` float32 device-to-device
    programming gain (None = 1); ``program_event`` uint32 index of the store's programming
    event (its time on the store clock) that last programmed each device, and
    ``relax_amplitude`` float32 (S) the 1-s relaxation spread of its target times the unit
    draw of its slow relaxation (None when reads do not age: no drift, no relaxation growth).
    ``stuck_fabrication`` / ``worn_out`` count devices that became stuck; ``stuck_requests``
    counts program requests refused because the device was stuck (not counted as writes).
    """

    g: np.ndarray
    programs: np.ndarray
    pulses: np.ndarray
    stuck: np.ndarray
    stuck_fabrication: int = 0
    endurance: np.ndarray | None = None
    gain: np.ndarray | None = None
    program_event: np.ndarray | None = None
    relax_amplitude: np.ndarray | None = None
    worn_out: int = field(default=0)
    stuck_requests: int = field(default=0)

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
        if cfg.ages:
            plane.program_event = np.zeros(n, dtype=np.uint32)
            if cfg.relaxation_growth_per_decade > 0:
                plane.relax_amplitude = np.zeros(n, dtype=np.float32)
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

    def _wear_out(self, model: DeviceModel, index: np.ndarray, skip: np.ndarray) -> int:
        """Devices of ``index`` whose wear reached their endurance become stuck (``skip`` |= them)."""
        worn = ~skip & (self.wear(model, index) >= self.endurance[index])  # type: ignore[index]
        if not worn.any():
            return 0
        worn_idx = index[worn]
        self.stuck[worn_idx] = True
        cfg = model.config
        if cfg.stuck_state == "g_min":
            self.g[worn_idx] = np.float32(cfg.g_min_s)
        elif cfg.stuck_state == "g_max":
            self.g[worn_idx] = np.float32(cfg.g_max_s)
        skip |= worn
        self.worn_out += int(worn_idx.size)
        return int(worn_idx.size)

    def program(
        self,
        index: np.ndarray,
        target_g: np.ndarray,
        target_state: np.ndarray,
        model: DeviceModel,
        rng: np.random.Generator,
        event: int = 0,
        count: bool = True,
    ) -> ProgramResult:
        """Write-verify the devices ``index`` (flat int indices) to ``target_g`` (float32, S).

        Stuck devices are skipped (0 pulses, conductance kept, ``ProgramResult.stuck``); a
        device whose wear has reached its endurance becomes stuck here instead of being
        programmed. ``event`` is the store's programming-event index (drift ages a device
        from the time of that event). ``count=False`` (initial programming) leaves the wear,
        write, pulse and stuck-request counters untouched.
        """
        n = index.size
        pulses_out = np.zeros(n, dtype=np.uint32)
        result = ProgramResult(pulses=pulses_out)
        if n == 0:
            return result
        skip = self.stuck[index]
        if self.endurance is not None and count:
            result.newly_stuck = self._wear_out(model, index, skip)
        positions = None
        if skip.any():
            result.stuck = skip
            if count:
                self.stuck_requests += int(np.count_nonzero(skip))
            positions = np.flatnonzero(~skip)
            if positions.size == 0:
                return result
        dev = index if positions is None else index[positions]
        target = target_g if positions is None else target_g[positions]
        state = target_state if positions is None else target_state[positions]
        pulses, failures, energy = self._write_verify(dev, target, state, model, rng)
        if positions is None:
            pulses_out[:] = pulses
        else:
            pulses_out[positions] = pulses
        result.verify_failures = failures
        result.energy_j = energy
        if count:
            self.programs[dev] += np.uint32(1)
            self.pulses[dev] += pulses
        if self.program_event is not None:
            self.program_event[dev] = event
        if self.relax_amplitude is not None:  # direction of the slow relaxation, drawn once
            self.relax_amplitude[dev] = model.state_relax[state] * standard_normal(rng, dev.size)
        return result

    def _write_verify(
        self,
        dev: np.ndarray,
        target: np.ndarray,
        state: np.ndarray,
        model: DeviceModel,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, int, float]:
        """The loop: pulse, verify, keep pulsing the devices outside tolerance.

        A pulse moves a device from G to ``G + k (G_target - G) + N(0, sigma_c2c(target))``
        (k = its device-to-device gain, 1 by default); the verify read then keeps it in the
        loop while ``|G - G_target| > tolerance``. The first pulse works on the whole arrays,
        later ones on the positions still outside tolerance. Returns the pulses per device,
        how many devices were still
        outside tolerance after ``max_pulses`` and the energy of all pulses and verify reads,
        each pulse priced from the conductance before and after it.
        """
        cfg = model.config
        n = dev.size
        g = self.g[dev].astype(np.float64)
        tgt = target.astype(np.float64)
        gain = None if self.gain is None else self.gain[dev].astype(np.float64)
        sigma = model.state_c2c[state] if model.state_c2c.any() else None
        pulses = np.zeros(n, dtype=np.uint32)
        tol = model.tolerance_s
        pulse_g = verify_g = 0.0  # sums over pulses of the conductance each one is priced at
        pulse_count = 0
        trapezoid = cfg.pulse_energy_conductance == "trapezoid"
        gain_arr = _EMPTY if gain is None else gain
        sigma_arr = _EMPTY if sigma is None else sigma
        before, after = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
        outside = np.empty(n, dtype=np.int64)
        relax = model.state_relax.any()
        normals = np.empty(n, dtype=np.float64) if sigma is not None or relax else _EMPTY  # draws, reused
        pos = _EVERY  # the first pulse works on every device
        count = n
        for _ in range(cfg.max_pulses):
            if count == 0:
                break
            draws = _EMPTY
            if sigma is not None:
                draws = normals[:count]
                standard_normal_into(rng, draws)
            left = pulse_step(pos, pos is _EVERY, g, tgt, gain_arr, sigma_arr, draws, tol, pulses,
                              before, after, outside)
            g_a, new = before[:count], after[:count]
            total_new = float(new.sum())
            pulse_g += 0.5 * (float(g_a.sum()) + total_new) if trapezoid else float(np.maximum(g_a, new).sum())
            verify_g += total_new
            pulse_count += count
            pos, count = outside[:left].copy(), left
        if pos is _EVERY:  # max_pulses == 0
            pos = np.arange(n)
        failures = int(pos.size)
        if relax:
            standard_normal_into(rng, normals)
            g += model.state_relax[state] * normals
            np.maximum(g, 0.0, out=g)
        self.g[dev] = g  # float64 -> float32; exact for ideal devices (float32 targets)
        return pulses, failures, float(model.program_energy_j(pulse_g, verify_g, pulse_count))
