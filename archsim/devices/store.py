"""DeviceStore: the quantized weights kept as conductances of multi-level resistive devices.

Implements the :class:`~archsim.learning.storage.WeightStore` protocol, so the learner trains
on it exactly as on the ideal :class:`~archsim.learning.storage.QuantizedStore`:

* ``read(layer)``: float32 weights (in, out) decoded from the conductances (aged by drift on
  the store's simulated clock), with fresh read noise drawn from the device generator at
  every call;
* ``commit(layer, hidden)``: quantizes the hidden weights, write-verifies exactly the devices
  whose target changed (those of the weights whose level changed), counts one write per
  level change per weight that programmed at least one device, and returns a
  :class:`~archsim.learning.storage.CommitReport` whose per-changed-weight arrays (in
  ``np.flatnonzero(changed)`` order) are ``pulses`` (all its devices: both of a differential
  pair), ``pulse_steps`` (the larger of the pair: the pulse-and-verify steps when both are
  pulsed in the same step) and ``stuck`` (no device of it could be programmed), plus
  ``index`` (the changed weights' flat indices);
* ``write_counts()``: writes per weight, one uint32 array per layer;
* ``now_s`` / ``advance_time_s(dt)``: the simulated clock drift ages the devices by.

Only the device generator passed in is ever drawn from, and an ideal device draws nothing, so
attaching this store never shifts the initialisation or shuffling streams.
"""

from __future__ import annotations

from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from archsim.config.device import DeviceConfig
from archsim.devices.arrays import DevicePlane, program_planes
from archsim.devices.kernels import count_writes, decode_weights, device_requests, merge_plane_pulses
from archsim.devices.model import DeviceModel
from archsim.learning import kernels
from archsim.learning.kernels import kernel_launch
from archsim.devices.normal import scaled_normal_into
from archsim.learning.quantizer import Quantizer
from archsim.learning.storage import CommitReport

_NO_STD = np.zeros(0, dtype=np.float32)

# Changed weights from which a commit's decode runs on the helper thread (DeviceStore.commit):
# below it, the hand-over costs more than the decode.
DEFERRED_DECODE_MIN = 1 << 14


@dataclass
class LayerDevices:
    """One layer: weight level indices, write counters, device planes and decoded weights."""

    shape: tuple[int, int]
    levels: np.ndarray  # uint8 (in, out), level index of every weight
    writes: np.ndarray  # uint32 (in, out), writes (level changes that programmed a device)
    planes: list[DevicePlane]
    weights: np.ndarray  # float32 (in, out), noiseless decoded weights
    read_std: np.ndarray | None  # float32 (in, out), std of one read of each weight
    weights_shared: bool = False  # ``weights`` was returned by read(): copy before changing
    version: int = 0  # commits that changed a device; keys the drifted-read cache
    drift_key: tuple[float, int] | None = None  # (clock, version) of the cached drifted read
    drifted: tuple[np.ndarray, np.ndarray | None] | None = None
    scratch: list[np.ndarray] = field(default_factory=list)  # float32 per plane, drift only


class DeviceStore:
    """Weights stored in multi-level devices (``docs/devices.md``)."""

    def __init__(
        self,
        hidden: list[np.ndarray],
        quantizer: Quantizer,
        config: DeviceConfig,
        rng: np.random.Generator,
    ) -> None:
        self.quantizer = quantizer
        self.config = config
        self.model = DeviceModel.build(config, quantizer)
        self._targets = np.stack(self.model.targets)  # (planes, levels) float32, for the kernels
        self._state_of = np.stack(self.model.state_of)  # (planes, levels) uint8
        self.rng = rng
        self._now_s = 0.0
        self._event_times = [0.0]  # clock time of every programming event (drift ages from it)
        self.reads = 0
        self.commits = 0
        self.energy_j = 0.0
        self.verify_failures = 0
        self.stuck_skipped_writes = 0
        self.initial = {"pulses": 0, "energy_j": 0.0, "verify_failures": 0}
        self._layers: list[LayerDevices] = []
        self._pending: dict[int, Future] = {}  # layer -> its decode, running on the helper thread
        self._buffers: dict[int, list[np.ndarray]] = {}
        self._box_muller_scratch: dict[int, np.ndarray] = {}
        for w in hidden:
            self._layers.append(self._create_layer(w))

    @property
    def layers(self) -> list[LayerDevices]:
        """Every layer's device state (with every decode finished)."""
        for layer in list(self._pending):
            self._settle(layer)
        return self._layers

    def _settle(self, layer: int) -> LayerDevices:
        """Layer ``layer``'s state once the decode of its last commit (if still running on the
        helper thread) has finished; an error raised there is raised here."""
        pending = self._pending.pop(layer, None)
        if pending is not None:
            pending.result()
        return self._layers[layer]

    # ------------------------------------------------------------------ simulated clock
    @property
    def now_s(self) -> float:
        """Simulated time in seconds since the devices were first programmed."""
        return self._now_s

    def advance_time_s(self, seconds: float) -> None:
        """Move the device clock forward by ``seconds`` (drift ages every device by it)."""
        if not seconds >= 0:  # also rejects NaN
            raise ValueError(f"time cannot go backwards (got {seconds} s)")
        self._now_s += float(seconds)

    advance_time = advance_time_s  # shorter alias for scripts and notebooks

    def tick_batch(self, simulated_now_s: float | None = None, programming_s: float = 0.0) -> None:
        """Advance the clock after one batch (``docs/devices.md`` §4a): by
        ``device.seconds_per_batch`` when it is set; else up to the engine's simulated time
        ``simulated_now_s`` (the engine calls this after every batch); else, without an
        engine, by the batch's serial programming time ``programming_s``."""
        if self.config.seconds_per_batch is not None:
            self.advance_time_s(self.config.seconds_per_batch)
        elif simulated_now_s is not None:
            self.advance_time_s(max(0.0, simulated_now_s - self._now_s))
        else:
            self.advance_time_s(programming_s)

    def _program_event(self) -> int:
        """Index of the programming event at the current time (a new one when time moved)."""
        if self._event_times[-1] != self._now_s:
            self._event_times.append(self._now_s)
        return len(self._event_times) - 1

    # ------------------------------------------------------------------ construction
    def _create_layer(self, hidden: np.ndarray) -> LayerDevices:
        model = self.model
        shape = (int(hidden.shape[0]), int(hidden.shape[1]))
        n = shape[0] * shape[1]
        levels = self.quantizer.level_index(hidden)
        planes = [DevicePlane.create(n, model, self.rng) for _ in range(model.planes)]
        flat_levels = levels.ravel()
        everything = np.arange(n)
        for p, plane in enumerate(planes):
            res = plane.program(
                everything,
                model.targets[p][flat_levels],
                model.state_of[p][flat_levels],
                model,
                self.rng,
                self._program_event(),
                count=False,
            )
            self.initial["pulses"] += int(res.pulses.sum(dtype=np.int64))
            self.initial["energy_j"] += res.energy_j
            self.initial["verify_failures"] += res.verify_failures
        layer = LayerDevices(
            shape=shape,
            levels=levels,
            writes=np.zeros(shape, dtype=np.uint32),
            planes=planes,
            weights=np.empty(shape, dtype=np.float32),
            read_std=None if self.config.read_noise_sigma == 0 else np.empty(shape, dtype=np.float32),
        )
        self._decode(layer, None)
        return layer

    # ------------------------------------------------------------------ decoding
    def _decode(self, layer: LayerDevices, index: np.ndarray | None, split: bool = True) -> None:
        """Refresh the cached weights (and read-noise std) of weights ``index`` (None = all).

        ``W = Q_k + ((G+ - G+_k) - (G- - G-_k)) * s/dG`` (reference: ``Q_k + (G - G_k) * 2s/dG``):
        the mapping's read-back formula, exact for devices on their targets. Evaluated in
        float64 on the changed weights only (bit-identical to the earlier full-layer decode),
        in one compiled loop (archsim/devices/kernels.py). ``split`` False: in the calling
        thread only (the helper thread's deferred decode); the same values.
        """
        model = self.model
        if layer.weights_shared:  # copy-on-write: arrays already handed out never change
            layer.weights = layer.weights.copy()
            layer.weights_shared = False
        if index is None:
            index = np.arange(layer.levels.size)
        planes = layer.planes
        with kernel_launch() if split else nullcontext():
            decode_weights(
                index,
                layer.levels.reshape(-1),
                planes[0].g,
                planes[-1].g,
                len(planes),
                self._targets,
                model.level_values32,
                float(model.weight_per_siemens),
                float(self.config.read_noise_sigma * model.weight_per_siemens),
                layer.weights.reshape(-1),
                _NO_STD if layer.read_std is None else layer.read_std.reshape(-1),
                kernels.scan_chunks(index.size, "gather") if split else 1,
            )

    def age_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Per programming event (float32): the drift factor ``((t + t0)/t0)^-nu`` and the
        relaxation growth ``sqrt((1 + g log10(t / 1 s))^2 - 1)`` (0 for t <= 1 s), t = its age."""
        cfg = self.config
        age = self._now_s - np.asarray(self._event_times, dtype=np.float64)
        drift = np.power(age / cfg.drift_t0_s + 1.0, -cfg.drift_nu)
        spread = 1.0 + cfg.relaxation_growth_per_decade * np.log10(np.maximum(age, 1.0))
        growth = np.sqrt(spread * spread - 1.0)
        return drift.astype(np.float32), growth.astype(np.float32)

    def _aged_weights(self, layer: LayerDevices) -> tuple[np.ndarray, np.ndarray | None]:
        """Weights and read std at the current time, with drift and relaxation growth (float32).

        ``G(t) = G ((t + t0)/t0)^-nu + a sqrt((1 + g log10 t)^2 - 1)`` per device, t its age
        since the programming event that last wrote it and ``a`` its relaxation amplitude; the
        factors are computed once per event and gathered per device. Cached until the clock
        moves or a commit changes the layer.
        """
        key = (self._now_s, layer.version)
        if layer.drift_key == key and layer.drifted is not None:
            return layer.drifted
        model = self.model
        drift, growth = self.age_factors()
        if not layer.scratch:
            layer.scratch = [np.empty(layer.shape, dtype=np.float32) for _ in range(len(layer.planes) + 1)]
        g_eff = []
        extra = layer.scratch[-1].ravel()
        for plane, buf in zip(layer.planes, layer.scratch):
            flat = buf.ravel()
            np.take(drift, plane.program_event, out=flat)  # type: ignore[arg-type]
            flat *= plane.g
            if plane.relax_amplitude is not None:
                np.take(growth, plane.program_event, out=extra)  # type: ignore[arg-type]
                extra *= plane.relax_amplitude
                flat += extra
                np.maximum(flat, np.float32(0.0), out=flat)
            g_eff.append(buf)
        weights = np.empty(layer.shape, dtype=np.float32)
        if model.planes == 2:
            np.subtract(g_eff[0], g_eff[1], out=weights)
        else:
            np.subtract(g_eff[0], np.float32(model.reference_s), out=weights)
        weights *= np.float32(model.weight_per_siemens)
        std = None
        if self.config.read_noise_sigma > 0:
            scale = np.float32(self.config.read_noise_sigma * model.weight_per_siemens)
            std = np.hypot(g_eff[0], g_eff[1]) if model.planes == 2 else g_eff[0].copy()
            std *= scale
        layer.drift_key, layer.drifted = key, (weights, std)
        return weights, std

    # ------------------------------------------------------------------ WeightStore protocol
    def read(self, layer: int) -> np.ndarray:
        """Weights (in, out) for the next matrix products; fresh read noise at every call.

        Without read noise (and drift) this is the cached noiseless array: never modified
        afterwards (a commit copies it before changing it), do not modify it either. With read
        noise it is one of two buffers per layer used in turn: it stays valid until the
        next-but-one read of the same layer; copy it to keep it longer.
        """
        self.reads += 1
        state = self._settle(layer)
        if self.config.ages:
            weights, std = self._aged_weights(state)
        else:
            weights, std = state.weights, state.read_std
        if std is None:
            state.weights_shared = weights is state.weights
            return weights
        buffers = self._buffers.get(layer)
        if buffers is None:
            buffers = self._buffers[layer] = [
                np.empty(state.shape, dtype=np.float32) for _ in range(2)
            ]
        buffers.reverse()  # alternate: the previous read of this layer stays intact
        out = buffers[0]
        if self.config.read_noise_sampler == "box-muller":
            self._box_muller(out)
            out *= std
            out += weights
        else:  # numpy's float32 standard normal draws, in one compiled pass with the scaling
            scaled_normal_into(self.rng, weights, std, out)
        return out

    def _box_muller(self, out: np.ndarray) -> None:
        """Fill ``out`` (float32) with standard normal draws by the Box-Muller transform.

        ``r = sqrt(-2 ln(1 - u1))``, ``z = r cos(2 pi u2)`` and ``r sin(2 pi u2)``, u1, u2
        uniform float32 in [0, 1): every operation is a vectorised float32 ufunc, about twice
        as fast as the float32 ziggurat; 1 - u1 >= 2^-24 bounds |z| at sqrt(48 ln 2) = 5.77.
        """
        flat = out.reshape(-1)
        half = (flat.size + 1) // 2
        radius, other = flat[:half], flat[half:]
        theta = self._box_muller_scratch.get(half)
        if theta is None:
            theta = self._box_muller_scratch[half] = np.empty(half, dtype=np.float32)
        self.rng.random(half, dtype=np.float32, out=radius)
        self.rng.random(half, dtype=np.float32, out=theta)
        np.subtract(np.float32(1.0), radius, out=radius)
        np.log(radius, out=radius)
        radius *= np.float32(-2.0)
        np.sqrt(radius, out=radius)
        theta *= np.float32(2.0 * np.pi)
        np.sin(theta[: other.size], out=other)
        other *= radius[: other.size]
        np.cos(theta, out=theta)
        radius *= theta

    def commit(self, layer: int, hidden: np.ndarray) -> CommitReport:
        """Quantize ``hidden`` and write-verify the devices of every weight whose level changed.

        Only devices whose target conductance changed are programmed (a differential pair
        moving between two positive levels reprograms G+ only); stuck devices keep their
        conductance and are not programmed. A weight's write is counted when at least one of
        its devices was programmed; a level change whose devices were all stuck is counted
        apart (``stuck_skipped_writes``, ``CommitReport.stuck``).
        """
        self.commits += 1
        model = self.model
        state = self._settle(layer)
        new_levels, changed, index = self.quantizer.level_changes(hidden, state.levels)
        if index.size == 0:
            state.levels = new_levels
            none = np.zeros(0, dtype=np.uint32)
            return CommitReport(changed=changed, pulses=none, energy_j=0.0, pulse_steps=none,
                                stuck=np.zeros(0, dtype=bool), index=index)
        old_levels = state.levels.reshape(-1)
        state.levels = new_levels
        pulses = np.zeros(index.size, dtype=np.uint32)
        steps = np.zeros(index.size, dtype=np.uint32)
        requested = np.zeros(index.size, dtype=bool)
        energy = 0.0
        event = self._program_event()
        planes = len(state.planes)
        devices = np.empty((planes, index.size), dtype=np.int64)
        target_g = np.empty((planes, index.size), dtype=np.float32)
        target_state = np.empty((planes, index.size), dtype=np.uint8)
        where = np.empty((planes, index.size), dtype=np.int64)
        need = np.empty(planes, dtype=np.int64)
        chunks = kernels.scan_chunks(index.size, "gather")
        with kernel_launch():
            device_requests(index, old_levels, new_levels.reshape(-1), self._targets, self._state_of,
                            devices, target_g, target_state, where, need,
                            np.empty(index.size, dtype=new_levels.dtype), np.empty(index.size, dtype=np.uint8),
                            np.empty((chunks, planes), dtype=np.int64))
        requests = [None if need[p] == 0 else (devices[p, :m], target_g[p, :m], target_state[p, :m])
                    for p, m in enumerate(need.tolist())]
        results = program_planes(state.planes, requests, model, self.rng, event)
        # The decode needs only the new levels and conductances: on a large commit it runs on
        # the helper thread while this one accounts the pulses and goes on (the next layer's
        # update and commit, the schedule); this layer's next read or commit waits for it.
        deferred = kernels.THREADS > 1 and index.size >= DEFERRED_DECODE_MIN and not kernels.on_helper_thread()
        if deferred:
            self._pending[layer] = kernels.helper_thread().submit(self._decode, state, index, False)
        for p, res in enumerate(results):
            if res is None:
                continue
            m = int(need[p])
            with kernel_launch():
                merge_plane_pulses(where[p, :m], res.pulses, pulses, steps, requested,
                                   kernels.scan_chunks(m, "stream"))
            energy += res.energy_j
            self.verify_failures += res.verify_failures
        stuck = np.empty(index.size, dtype=bool)
        # in one pass while the decode holds the other core: a kernel split over both would
        # wait for its share queued behind the decode
        with kernel_launch():
            self.stuck_skipped_writes += count_writes(index, requested, pulses, state.writes.reshape(-1), stuck,
                                                      np.empty(1 if deferred else chunks, dtype=np.int64))
        state.version += 1
        if not deferred:
            self._decode(state, index)
        self.energy_j += energy
        return CommitReport(changed=changed, pulses=pulses, energy_j=energy, pulse_steps=steps,
                            stuck=stuck, index=index)

    def write_counts(self) -> list[np.ndarray]:
        """Writes per weight since creation (level changes that programmed at least one of its
        devices), one (in, out) array per layer."""
        return [layer.writes for layer in self.layers]

    # ------------------------------------------------------------------ extras
    def pulse_counts(self) -> list[np.ndarray]:
        """Programming pulses per weight (all its devices), one uint32 (in, out) array per layer."""
        out = []
        for layer in self.layers:
            total = np.zeros(layer.shape, dtype=np.uint32)
            for plane in layer.planes:
                total += plane.pulses.reshape(layer.shape)
            out.append(total)
        return out

    def device_pulse_counts(self) -> list[list[np.ndarray]]:
        """Pulses per device: per layer, one (in, out) array per plane (G+, G- or G)."""
        return [[pl.pulses.reshape(layer.shape) for pl in layer.planes] for layer in self.layers]

    def device_write_counts(self) -> list[list[np.ndarray]]:
        """Writes (program operations) per device: per layer, one (in, out) array per plane."""
        return [[pl.programs.reshape(layer.shape) for pl in layer.planes] for layer in self.layers]

    def stuck_count(self) -> int:
        """Devices currently stuck (fabrication faults and worn-out devices)."""
        return sum(plane.stuck_count() for layer in self.layers for plane in layer.planes)

    def statistics(self) -> dict[str, float | int]:
        """Totals since creation (the initial programming of the network is reported apart).

        writes_*: writes per weight (level changes that programmed at least one device);
        device_programs_*: program operations per device (G+ and G- counted separately);
        stuck_skipped_writes: level changes whose devices were all stuck (not writes);
        stuck_requests: device program requests refused because the device was stuck;
        pulses_total; stuck_devices (fabrication + worn out); program_energy_j and
        program_time_s (every pulse and its verify read one after the other, serial sum);
        clock_s: the simulated clock at the end.
        """
        writes_total = sum(int(layer.writes.sum(dtype=np.int64)) for layer in self.layers)
        weights = sum(layer.writes.size for layer in self.layers)
        planes = [plane for layer in self.layers for plane in layer.planes]
        devices = sum(plane.size for plane in planes)
        programs_total = sum(int(plane.programs.sum(dtype=np.int64)) for plane in planes)
        pulses_total = sum(int(plane.pulses.sum(dtype=np.int64)) for plane in planes)
        return {
            "weights": int(weights),
            "devices": int(devices),
            "writes_total": writes_total,
            "writes_max_per_weight": int(max((int(l.writes.max()) for l in self.layers), default=0)),
            "writes_mean_per_weight": writes_total / weights if weights else 0.0,
            "device_programs_total": programs_total,
            "device_programs_max": int(max((int(p.programs.max()) for p in planes), default=0)),
            "device_programs_mean": programs_total / devices if devices else 0.0,
            "pulses_total": pulses_total,
            "pulses_max_per_device": int(max((int(p.pulses.max()) for p in planes), default=0)),
            "pulses_per_write_mean": pulses_total / writes_total if writes_total else 0.0,
            "verify_failures": int(self.verify_failures),
            "stuck_devices": int(sum(p.stuck_count() for p in planes)),
            "stuck_fabrication": int(sum(p.stuck_fabrication for p in planes)),
            "stuck_worn_out": int(sum(p.worn_out for p in planes)),
            "stuck_requests": int(sum(p.stuck_requests for p in planes)),
            "stuck_skipped_writes": int(self.stuck_skipped_writes),
            "program_energy_j": float(self.energy_j),
            "program_time_s": pulses_total * self.model.pulse_time_s,
            "initial_program_pulses": int(self.initial["pulses"]),
            "initial_program_energy_j": float(self.initial["energy_j"]),
            "initial_verify_failures": int(self.initial["verify_failures"]),
            "reads": int(self.reads),
            "commits": int(self.commits),
            "clock_s": float(self._now_s),
        }

    def conductance_snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the device state for plots and analysis.

        Keys: ``state_g_s`` (target conductance of every state, S), ``level_values``, and per
        layer i: ``layer{i}.levels`` (uint8 (in, out)), ``layer{i}.weights`` (noiseless decoded
        weights) and per plane j (0 = G+ or G, 1 = G-): ``layer{i}.g{j}_s`` (float32 S),
        ``layer{i}.state{j}`` (uint8 target state index) and ``layer{i}.stuck{j}`` (bool).
        """
        snap: dict[str, np.ndarray] = {
            "state_g_s": self.model.state_g.copy(),
            "level_values": self.model.level_values.copy(),
        }
        for i, layer in enumerate(self.layers):
            snap[f"layer{i}.levels"] = layer.levels.copy()
            snap[f"layer{i}.weights"] = layer.weights.copy()
            for j, plane in enumerate(layer.planes):
                snap[f"layer{i}.g{j}_s"] = plane.g.reshape(layer.shape).copy()
                snap[f"layer{i}.state{j}"] = self.model.state_of[j][layer.levels]
                snap[f"layer{i}.stuck{j}"] = plane.stuck.reshape(layer.shape).copy()
        return snap
