"""DeviceStore: the quantized weights kept as conductances of multi-level resistive devices.

Implements the :class:`~archsim.learning.storage.WeightStore` protocol, so the learner trains
on it exactly as on the ideal :class:`~archsim.learning.storage.QuantizedStore`:

* ``read(layer)``: float32 weights (in, out) decoded from the conductances, with fresh read
  noise drawn from the device generator at every call;
* ``commit(layer, hidden)``: quantizes the hidden weights, write-verifies exactly the devices
  whose target changed (those of the weights whose level changed), counts one write per
  level change per weight, and returns ``CommitReport(changed, pulses, energy_j)`` where
  ``pulses`` holds, for every changed weight in ``np.flatnonzero(changed)`` order, the pulses
  of all its devices (both of a differential pair);
* ``write_counts()``: writes (level changes) per weight, one uint32 array per layer.

Only the device generator passed in is ever drawn from, and an ideal device draws nothing, so
attaching this store never shifts the initialisation or shuffling streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archsim.config.device import DeviceConfig
from archsim.devices.arrays import DevicePlane
from archsim.devices.model import DeviceModel
from archsim.learning.quantizer import Quantizer
from archsim.learning.storage import CommitReport


@dataclass
class LayerDevices:
    """One layer: weight level indices, write counters, device planes and decoded weights."""

    shape: tuple[int, int]
    levels: np.ndarray  # uint8 (in, out), level index of every weight
    writes: np.ndarray  # uint32 (in, out), level changes per weight
    planes: list[DevicePlane]
    weights: np.ndarray  # float32 (in, out), noiseless decoded weights
    read_std: np.ndarray | None  # float32 (in, out), std of one read of each weight
    weights_shared: bool = False  # ``weights`` was returned by read(): copy before changing


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
        self.rng = rng
        self.now_s = 0.0
        self.reads = 0
        self.commits = 0
        self.energy_j = 0.0
        self.verify_failures = 0
        self.initial = {"pulses": 0, "energy_j": 0.0, "verify_failures": 0}
        self.layers: list[LayerDevices] = []
        self._buffers: dict[int, list[np.ndarray]] = {}
        for w in hidden:
            self.layers.append(self._create_layer(w))

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
                self.now_s,
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
    def _decode(self, layer: LayerDevices, index: np.ndarray | None) -> None:
        """Refresh the cached weights (and read-noise std) of weights ``index`` (None = all).

        ``W = Q_k + ((G+ - G+_k) - (G- - G-_k)) * s/dG`` (reference: ``Q_k + (G - G_k) * 2s/dG``):
        the mapping's read-back formula, exact for devices on their targets.
        """
        model = self.model
        lv = layer.levels.ravel() if index is None else layer.levels.ravel()[index]
        deviation = np.zeros(lv.shape, dtype=np.float64)
        for p, plane in enumerate(layer.planes):
            g = plane.g if index is None else plane.g[index]
            d = g.astype(np.float64) - model.targets[p][lv]
            if p == 0:
                deviation += d
            else:
                deviation -= d
        w = model.level_values32[lv] + deviation * model.weight_per_siemens
        if layer.weights_shared:  # copy-on-write: arrays already handed out never change
            layer.weights = layer.weights.copy()
            layer.weights_shared = False
        if index is None:
            layer.weights.ravel()[:] = w
        else:
            layer.weights.ravel()[index] = w
        if layer.read_std is not None:
            sq = np.zeros(lv.shape, dtype=np.float64)
            for plane in layer.planes:
                g = (plane.g if index is None else plane.g[index]).astype(np.float64)
                sq += g * g
            std = np.sqrt(sq) * (self.config.read_noise_sigma * model.weight_per_siemens)
            if index is None:
                layer.read_std.ravel()[:] = std
            else:
                layer.read_std.ravel()[index] = std

    def _drifted_weights(self, layer: LayerDevices) -> tuple[np.ndarray, np.ndarray | None]:
        """Weights and read std with power-law drift applied at the current time (slow path)."""
        cfg = self.config
        model = self.model
        g_eff = []
        for plane in layer.planes:
            age = self.now_s - plane.program_time  # type: ignore[operator]
            factor = ((age + cfg.drift_t0_s) / cfg.drift_t0_s) ** (-cfg.drift_nu)
            g_eff.append(plane.g * factor)
        if model.planes == 2:
            diff = g_eff[0] - g_eff[1]
        else:
            diff = g_eff[0] - model.reference_s
        weights = (diff * model.weight_per_siemens).astype(np.float32).reshape(layer.shape)
        std = None
        if cfg.read_noise_sigma > 0:
            sq = sum(g * g for g in g_eff)
            std = (np.sqrt(sq) * (cfg.read_noise_sigma * model.weight_per_siemens)).astype(np.float32)
            std = std.reshape(layer.shape)
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
        state = self.layers[layer]
        if self.config.drift_nu > 0:
            weights, std = self._drifted_weights(state)
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
        self.rng.standard_normal(out.shape, dtype=np.float32, out=out)
        out *= std
        out += weights
        return out

    def commit(self, layer: int, hidden: np.ndarray) -> CommitReport:
        """Quantize ``hidden`` and write-verify the devices of every weight whose level changed.

        Only devices whose target conductance changed are programmed (a differential pair
        moving between two positive levels reprograms G+ only); stuck devices keep their
        conductance. One write is counted per changed weight, whatever its pulses.
        """
        self.commits += 1
        model = self.model
        state = self.layers[layer]
        new_levels = self.quantizer.level_index(hidden)
        changed = new_levels != state.levels
        index = np.flatnonzero(changed)
        if index.size == 0:
            state.levels = new_levels
            return CommitReport(changed=changed, pulses=np.zeros(0, dtype=np.uint32), energy_j=0.0)
        lv_old = state.levels.ravel()[index]
        lv_new = new_levels.ravel()[index]
        state.levels = new_levels
        state.writes.ravel()[index] += np.uint32(1)
        pulses = np.zeros(index.size, dtype=np.uint32)
        energy = 0.0
        for p, plane in enumerate(state.planes):
            targets = model.targets[p]
            new_target = targets[lv_new]
            need = new_target != targets[lv_old]
            if not need.any():
                continue
            if need.all():
                res = plane.program(
                    index, new_target, model.state_of[p][lv_new], model, self.rng, self.now_s
                )
                pulses += res.pulses
            else:
                res = plane.program(
                    index[need],
                    new_target[need],
                    model.state_of[p][lv_new[need]],
                    model,
                    self.rng,
                    self.now_s,
                )
                pulses[need] += res.pulses
            energy += res.energy_j
            self.verify_failures += res.verify_failures
        self._decode(state, index)
        self.energy_j += energy
        return CommitReport(changed=changed, pulses=pulses, energy_j=energy)

    def write_counts(self) -> list[np.ndarray]:
        """Writes (level changes) per weight since creation, one (in, out) array per layer."""
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

    def stuck_count(self) -> int:
        """Devices currently stuck (fabrication faults and worn-out devices)."""
        return sum(plane.stuck_count() for layer in self.layers for plane in layer.planes)

    def advance_time(self, seconds: float) -> None:
        """Move the device clock forward (drift ages every device by ``seconds``)."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (got {seconds} s)")
        self.now_s += float(seconds)

    def statistics(self) -> dict[str, float | int]:
        """Totals since creation (the initial programming of the network is reported apart).

        writes_*: level changes per weight; device_programs_*: program operations per device;
        pulses_total; stuck_devices (fabrication + worn out); program_energy_j and
        program_time_s (every pulse and its verify read one after the other, serial sum).
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
            "program_energy_j": float(self.energy_j),
            "program_time_s": pulses_total * self.model.pulse_time_s,
            "initial_program_pulses": int(self.initial["pulses"]),
            "initial_program_energy_j": float(self.initial["energy_j"]),
            "initial_verify_failures": int(self.initial["verify_failures"]),
            "reads": int(self.reads),
            "commits": int(self.commits),
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
