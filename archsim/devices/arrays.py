"""Dense per-device state and the vectorised write-verify loop.

One :class:`DevicePlane` holds every device of one role (G+, G- or the single G) of one layer
as flat numpy arrays -- never one Python object per device. Programming works on index
arrays: the write-verify loop iterates over the pulse number (at most ``max_pulses``) and, at
each pulse, over the devices still outside tolerance, all at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from archsim.devices.kernels import (numpy_sum_ok, prepare_write_verify, pulse_step, store_programmed,
                                     write_verify_rounds)
from archsim.devices.normal import NormalStream
from archsim.devices.model import DeviceModel
from archsim.learning import kernels
from archsim.learning.kernels import kernel_launch

_EMPTY = np.zeros(0, dtype=np.float64)
_EVERY = np.zeros(0, dtype=np.int64)  # positions placeholder: every device
_NO_COUNTS = np.zeros(0, dtype=np.uint32)  # absent per-device uint32 array (wear, event)
_NO_FLOAT32 = np.zeros(0, dtype=np.float32)  # absent per-device float32 array


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
class ProgramJob:
    """One plane's program request between the phases of :meth:`DevicePlane.program`: its
    result so far, the write-verify's working arrays (None: nothing to program) with the
    request positions they came from, and the relaxation draws (empty until drawn)."""

    result: ProgramResult
    work: "_WriteVerify | None"
    positions: np.ndarray
    relax: np.ndarray = field(default_factory=lambda: _EMPTY)
    amplitude: np.ndarray = field(default_factory=lambda: _EMPTY)


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

    def wear(self, model: DeviceModel) -> np.ndarray:
        """The counter endurance is spent on, per device: pulses or programs (writes)."""
        return self.pulses if model.config.endurance_unit == "pulses" else self.programs

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
        """Write-verify the devices ``index`` (distinct flat int indices) to ``target_g``
        (float32, S).

        Stuck devices are skipped (0 pulses, conductance kept, ``ProgramResult.stuck``); a
        device whose wear has reached its endurance becomes stuck here instead of being
        programmed. ``event`` is the store's programming-event index (drift ages a device
        from the time of that event). ``count=False`` (initial programming) leaves the wear,
        write, pulse and stuck-request counters untouched.

        Random draws, in this order: the cycle-to-cycle spread of every pulse round, the
        post-verify relaxation, the direction of the slow relaxation. Each phase is one
        compiled pass over the devices (archsim/devices/kernels.py): :meth:`prepare` (no
        draws), :meth:`draw` (every draw), :meth:`store` (no draws).
        """
        job = self.prepare(index, target_g, target_state, model, count)
        if job.work is not None:
            with NormalStream(rng) as stream:  # one state hand-over for all the draws
                self.draw(job, model, stream)
            self.store(job, model, event, count)
        return job.result

    def prepare(self, index: np.ndarray, target_g: np.ndarray, target_state: np.ndarray, model: DeviceModel,
                count: bool = True, split: bool = True) -> "ProgramJob":
        """First phase of :meth:`program`: refuse the stuck devices (and wear out those at
        their endurance) and gather the write-verify's working arrays. Draws nothing and
        touches no other plane. ``split`` False: one pass in the calling thread, without
        the kernels' threads (for a call on the helper thread); the results are the same."""
        n = index.size
        pulses_out = np.zeros(n, dtype=np.uint32)
        result = ProgramResult(pulses=pulses_out)
        if n == 0:
            return ProgramJob(result, None, _EVERY)
        skip = np.empty(n, dtype=bool)
        positions = np.empty(n, dtype=np.int64)
        work = _WriteVerify.allocate(n, target_state.dtype, self.gain is not None,
                                     bool(model.state_c2c.any()))
        wears_out = self.endurance is not None and count
        chunks = kernels.scan_chunks(n, "gather") if split else 1
        with kernel_launch() if split else nullcontext():
            kept, worn = prepare_write_verify(
                index, target_g, target_state, self.stuck,
                self.wear(model) if wears_out else _NO_COUNTS,
                self.endurance if wears_out else _NO_FLOAT32,  # type: ignore[arg-type]
                _stuck_conductance(model), self.g,
                _NO_FLOAT32 if self.gain is None else self.gain,
                model.state_c2c if work.sigma.size else _EMPTY,
                skip, positions, work.devices, work.state, work.g, work.target, work.gain, work.sigma,
                np.empty((chunks, 2), dtype=np.int64),
            )
        self.worn_out += worn
        result.newly_stuck = worn
        if kept < n:
            result.stuck = skip
            if count:
                self.stuck_requests += n - kept
            if kept == 0:
                return ProgramJob(result, None, _EVERY)
            work = work.first(kept)
        return ProgramJob(result, work, positions[:kept])

    def draw(self, job: "ProgramJob", model: DeviceModel, stream: NormalStream) -> None:
        """Second phase of :meth:`program`: the write-verify loop and the relaxation draws,
        every draw of the request from ``stream``, in order; only ``job``'s arrays change."""
        work = job.work
        result = job.result
        result.verify_failures, result.energy_j = self._write_verify(work, model, stream)
        kept = work.g.size
        if model.state_relax.any():
            job.relax = np.empty(kept, dtype=np.float64)
            stream.fill(job.relax)
        if self.relax_amplitude is not None:  # direction of the slow relaxation, drawn once
            job.amplitude = np.empty(kept, dtype=np.float64)
            stream.fill(job.amplitude)

    def store(self, job: "ProgramJob", model: DeviceModel, event: int, count: bool = True,
              split: bool = True) -> None:
        """Last phase of :meth:`program`: the programmed devices' conductances (relaxed) and
        counters into this plane. Draws nothing; ``split`` as in :meth:`prepare`."""
        work = job.work
        with kernel_launch() if split else nullcontext():
            store_programmed(
                work.devices, job.positions, work.state, work.g, work.pulses, model.state_relax, job.relax,
                job.amplitude, count, event, self.g, self.programs, self.pulses,
                _NO_COUNTS if self.program_event is None else self.program_event,
                _NO_FLOAT32 if self.relax_amplitude is None else self.relax_amplitude,
                job.result.pulses, kernels.scan_chunks(work.devices.size, "gather") if split else 1,
            )

    def _write_verify(self, work: _WriteVerify, model: DeviceModel, stream: NormalStream) -> tuple[int, float]:
        """The loop: pulse, verify, keep pulsing the devices outside tolerance.

        A pulse moves a device from G to ``G + k (G_target - G) + N(0, sigma_c2c(target))``
        (k = its device-to-device gain, 1 by default), its spread drawn from ``stream``; the
        verify read then keeps it in the loop while ``|G - G_target| > tolerance``. The first
        pulse works on every device of ``work``, later ones on the positions still outside
        tolerance. Updates ``work.g`` and ``work.pulses``; returns how many devices were still
        outside tolerance after ``max_pulses`` and the energy of all pulses and verify reads,
        each pulse priced from the conductance before and after it.

        When a round runs as one loop in this thread (always on the paper's layers), all the
        rounds are one compiled call (:func:`~archsim.devices.kernels.write_verify_rounds`);
        otherwise, or when its draws or sums cannot be those of numpy here, one call per round
        (:meth:`_pulse_rounds`, the same results).
        """
        cfg = model.config
        n = work.g.size
        if _rounds_in_one_call(n, work, stream):
            gen = _NO_GENERATOR if stream.gen is None else stream.gen
            normals = np.empty(n, dtype=np.float64) if work.sigma.size else _EMPTY
            left, pulse_g, verify_g, pulse_count = write_verify_rounds(
                work.g, work.target, work.gain, work.sigma, model.tolerance_s, cfg.max_pulses,
                cfg.pulse_energy_conductance == "trapezoid", work.pulses, work.before, work.after,
                np.empty((2, n), dtype=np.int64), normals, gen)
        else:
            left, pulse_g, verify_g, pulse_count = self._pulse_rounds(work, model, stream)
        return left, float(model.program_energy_j(pulse_g, verify_g, pulse_count))

    @staticmethod
    def _pulse_rounds(work: _WriteVerify, model: DeviceModel, stream: NormalStream) -> tuple[int, float, float, int]:
        """The pulse rounds of :meth:`_write_verify`, one :func:`pulse_step` call per round
        (split over the kernels' threads on large rounds). Returns (devices still outside
        tolerance, pulse and verify priced conductance sums, pulses applied)."""
        cfg = model.config
        n = work.g.size
        tol = model.tolerance_s
        pulse_g = verify_g = 0.0  # sums over pulses of the conductance each one is priced at
        pulse_count = 0
        trapezoid = cfg.pulse_energy_conductance == "trapezoid"
        before, after = work.before, work.after
        # positions still outside tolerance: a round reads one buffer and writes the other
        buffers = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64))
        staging = _EVERY  # where the chunks of a round split over threads keep theirs first
        pos = _EVERY  # the first pulse works on every device
        normals = np.empty(n, dtype=np.float64) if work.sigma.size else _EMPTY  # draws, reused
        count = n
        for round_ in range(cfg.max_pulses):
            if count == 0:
                break
            outside = buffers[round_ % 2]
            draws = _EMPTY
            if work.sigma.size:
                draws = normals[:count]
                stream.fill(draws)
            chunks = kernels.scan_chunks(count, "stream")
            if chunks > 1 and staging.size < n:
                staging = np.empty(n, dtype=np.int64)
            with kernel_launch():
                left = pulse_step(pos, pos is _EVERY, work.g, work.target, work.gain, work.sigma, draws,
                                  tol, work.pulses, before, after, outside, staging,
                                  np.empty(chunks, dtype=np.int64))
            g_a, new = before[:count], after[:count]
            total_new = float(new.sum())
            pulse_g += 0.5 * (float(g_a.sum()) + total_new) if trapezoid else float(np.maximum(g_a, new).sum())
            verify_g += total_new
            pulse_count += count
            pos, count = outside[:left], left
        # count: devices still outside tolerance (all of them when max_pulses == 0)
        return count, pulse_g, verify_g, pulse_count


# Requests (devices per plane) from which the planes of a commit are programmed as a pipeline
# (:func:`program_planes`): below it, handing a phase to the helper thread costs more than
# the phase.
PIPELINE_MIN_DEVICES = 1 << 14


def program_planes(
    planes: Sequence[DevicePlane],
    requests: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray] | None],
    model: DeviceModel,
    rng: np.random.Generator,
    event: int,
) -> list[ProgramResult | None]:
    """:meth:`DevicePlane.program` of each plane's request (index, target_g, target_state;
    None: none), in plane order, with the same draws and results.

    A plane's write-verify draws from ``rng`` and runs in one thread (its pulse rounds are
    one compiled call), while its :meth:`~DevicePlane.prepare` and
    :meth:`~DevicePlane.store` draw nothing and touch only that plane. With two kernel
    threads and large requests, the next plane's prepare and the previous plane's store run
    on the helper thread while this thread draws: the draws keep their order, each phase
    reads and writes only its own plane's arrays, and each kernel's result does not depend
    on the thread that runs it (archsim/learning/kernels.py), so nothing changes but the
    wall time."""
    active = [p for p, request in enumerate(requests) if request is not None]
    results: list[ProgramResult | None] = [None] * len(planes)
    pipelined = (kernels.THREADS > 1 and len(active) > 1 and not kernels.on_helper_thread()
                 and all(requests[p][0].size >= PIPELINE_MIN_DEVICES for p in active))
    if not pipelined:
        for p in active:
            results[p] = planes[p].program(*requests[p], model, rng, event)
        return results
    helper = kernels.helper_thread()
    pending = []  # the helper's work, waited for before returning (also on an error)
    try:
        job = planes[active[0]].prepare(*requests[active[0]], model)
        for i, p in enumerate(active):
            last = i + 1 == len(active)
            ahead = None if last else helper.submit(planes[active[i + 1]].prepare, *requests[active[i + 1]],
                                                    model, True, False)
            if ahead is not None:
                pending.append(ahead)
            if job.work is not None:
                with NormalStream(rng) as stream:
                    planes[p].draw(job, model, stream)
            for done in pending:  # the previous plane's store and the next plane's prepare
                done.result()
            pending.clear()
            results[p] = job.result
            if job.work is not None:
                if last:
                    planes[p].store(job, model, event)
                else:
                    pending.append(helper.submit(planes[p].store, job, model, event, True, False))
            if ahead is not None:
                job = ahead.result()
    finally:  # on an error, no phase may still be running when it propagates
        for done in pending:
            done.exception()
    return results


# the write-verify's pulse rounds in one compiled call when they can be (tests turn it off to
# compare with the call per round)
ROUNDS_IN_ONE_CALL = True
_NO_GENERATOR = np.zeros(6, dtype=np.uint64)  # the rounds draw nothing: no generator stepped


def _rounds_in_one_call(n: int, work: _WriteVerify, stream: NormalStream) -> bool:
    """Whether :func:`write_verify_rounds` gives the per-round loop's results here: every
    round in one chunk, the draws (if any) stepped from the stream's PCG64, numpy's sums."""
    return (ROUNDS_IN_ONE_CALL and kernels.scan_chunks(n, "stream") == 1
            and (stream.gen is not None or not work.sigma.size) and numpy_sum_ok())


@dataclass
class _WriteVerify:
    """Working arrays of one write-verify, one element per device programmed: its flat
    index, target state, conductance (float64, updated by the pulses), target, gain and c2c
    sigma (float64; empty when absent), the pulses applied (uint32), and the conductances
    before and after each pulse of a round (float64 scratch the round's energy is summed from).
    """

    devices: np.ndarray
    state: np.ndarray
    g: np.ndarray
    target: np.ndarray
    gain: np.ndarray
    sigma: np.ndarray
    pulses: np.ndarray
    before: np.ndarray
    after: np.ndarray

    @classmethod
    def allocate(cls, n: int, state_dtype: np.dtype, gain: bool, sigma: bool) -> "_WriteVerify":
        """Arrays for up to ``n`` devices; gain and sigma empty when absent."""
        return cls(
            devices=np.empty(n, dtype=np.int64),
            state=np.empty(n, dtype=state_dtype),
            g=np.empty(n, dtype=np.float64),
            target=np.empty(n, dtype=np.float64),
            gain=np.empty(n, dtype=np.float64) if gain else _EMPTY,
            sigma=np.empty(n, dtype=np.float64) if sigma else _EMPTY,
            pulses=np.zeros(n, dtype=np.uint32),
            before=np.empty(n, dtype=np.float64),
            after=np.empty(n, dtype=np.float64),
        )

    def first(self, m: int) -> "_WriteVerify":
        """The same arrays cut to their first ``m`` devices (views)."""
        return _WriteVerify(*(a[:m] if a.size else a for a in (
            self.devices, self.state, self.g, self.target, self.gain, self.sigma, self.pulses,
            self.before, self.after)))


def _stuck_conductance(model: DeviceModel) -> float:
    """Conductance (S) a worn-out device is left at; NaN: it keeps its last one."""
    cfg = model.config
    if cfg.stuck_state == "g_min":
        return float(np.float32(cfg.g_min_s))
    if cfg.stuck_state == "g_max":
        return float(np.float32(cfg.g_max_s))
    return math.nan
