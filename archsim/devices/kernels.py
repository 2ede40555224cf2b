"""Compiled loops of the device store's write-verify and read-back (numba).

Each kernel does, per device, exactly the float64 operations of the numpy code it replaced,
in the same order and without fused multiply-add (numba's default ``fastmath=False``), so
results are bit-identical; random draws are made by the caller in the same order and sizes
(numpy's ``standard_normal`` values, :mod:`archsim.devices.normal`), and sums over many
devices stay numpy sums of the same arrays (numpy adds pairwise; a loop would add in another
order). tests/test_devices.py keeps the numpy code as reference.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True, "fastmath": False}


@numba.njit(**_JIT)
def pulse_step(
    positions: np.ndarray,
    every: bool,
    g: np.ndarray,
    target: np.ndarray,
    gain: np.ndarray,
    sigma: np.ndarray,
    draws: np.ndarray,
    tolerance: float,
    pulses: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    outside: np.ndarray,
) -> int:
    """One pulse and verify of the devices ``positions`` (all n when ``every``).

    Per device j at position p: G -> ``G + k (G_t - G)`` (``G_t`` when ``gain`` is empty),
    plus ``sigma[p] * draws[j]`` (none when ``sigma`` is empty), floored at 0; ``before[j]``
    and ``after[j]`` get the conductance before and after (the caller prices the pulses from
    them), ``g[p]`` the new one, ``pulses[p]`` one more. The positions still outside
    tolerance, in order, go to ``outside``; returns how many.
    """
    count = g.size if every else positions.size
    has_gain = gain.size > 0
    has_sigma = sigma.size > 0
    left = 0
    for j in range(count):
        p = j if every else positions[j]
        g_a = g[p]
        t_a = target[p]
        new = g_a + gain[p] * (t_a - g_a) if has_gain else t_a
        if has_sigma:
            new = new + sigma[p] * draws[j]
        if new < 0.0:  # np.maximum(new, 0.0): NaN stays NaN
            new = 0.0
        before[j] = g_a
        after[j] = new
        g[p] = new
        pulses[p] += np.uint32(1)
        outside[left] = p  # kept only if outside tolerance: no branch to mispredict
        left += abs(new - t_a) > tolerance
    return left


@numba.njit(**_JIT)
def decode_weights(
    index: np.ndarray,
    levels: np.ndarray,
    g_plus: np.ndarray,
    g_minus: np.ndarray,
    planes: int,
    targets: np.ndarray,
    level_values: np.ndarray,
    weight_per_siemens: float,
    noise_per_siemens: float,
    weights: np.ndarray,
    read_std: np.ndarray,
) -> None:
    """Read-back weight and read-noise std of the weights ``index`` (flat), in float64:

    ``W = Q_k + ((G+ - G+_k) - (G- - G-_k)) * weight_per_siemens`` (one plane: ``Q_k + (G -
    G_k) * ...``) and ``std = sqrt(G+^2 + G-^2) * noise_per_siemens``, stored as float32
    (``read_std`` empty: no read noise). ``targets`` is (planes, levels) float32.
    """
    has_std = read_std.size > 0
    for j in range(index.size):
        i = index[j]
        k = levels[i]
        g0 = np.float64(g_plus[i])
        deviation = 0.0 + (g0 - np.float64(targets[0, k]))
        square = 0.0 + g0 * g0
        if planes == 2:
            g1 = np.float64(g_minus[i])
            deviation = deviation - (g1 - np.float64(targets[1, k]))
            square = square + g1 * g1
        weights[i] = np.float32(np.float64(level_values[k]) + deviation * weight_per_siemens)
        if has_std:
            read_std[i] = np.float32(math.sqrt(square) * noise_per_siemens)


# --------------------------------------------------------------------------- programming
# DevicePlane.program and DeviceStore.commit touch the layer-sized per-device arrays (3.2 M
# elements for the paper's first layer) at the scattered positions of the changed weights,
# where nearly every access misses the cache. As numpy code every gather and scatter was a
# pass of its own over those positions (about ten per plane, plus the temporaries between
# them); the kernels below make one pass per phase of the programming -- which devices of
# which plane, their write-verify state, the write-back, the per-weight totals -- each
# reading or writing every array it needs at a device's position while it is there.


@numba.njit(**_JIT)
def device_requests(
    index: np.ndarray,
    old_levels: np.ndarray,
    new_levels: np.ndarray,
    targets: np.ndarray,
    state_of: np.ndarray,
    devices: np.ndarray,
    target_g: np.ndarray,
    target_state: np.ndarray,
    where: np.ndarray,
    counts: np.ndarray,
) -> None:
    """The devices to program, per plane, for the changed weights ``index`` (flat).

    ``targets`` and ``state_of`` are (planes, levels). A device is programmed when its target
    ``targets[p, new level]`` differs from the old one (a differential pair moving between
    two positive levels leaves G- alone). Per plane p, in ``index`` order: the device's flat
    index (``devices[p]``), target conductance and state (``target_g[p]``,
    ``target_state[p]``) and the weight's position in ``index`` (``where[p]``); ``counts[p]``
    gets how many. Each weight's two levels are read once for both planes.
    """
    planes = targets.shape[0]
    counts[:] = 0
    for j in range(index.size):
        i = index[j]
        old = old_levels[i]
        new = new_levels[i]
        for p in range(planes):
            target = targets[p, new]
            if target != targets[p, old]:
                c = counts[p]
                devices[p, c] = i
                target_g[p, c] = target
                target_state[p, c] = state_of[p, new]
                where[p, c] = j
                counts[p] = c + 1


@numba.njit(**_JIT)
def prepare_write_verify(
    index: np.ndarray,
    requested_g: np.ndarray,
    requested_state: np.ndarray,
    stuck: np.ndarray,
    wear: np.ndarray,
    endurance: np.ndarray,
    stuck_g: float,
    g_plane: np.ndarray,
    gain_plane: np.ndarray,
    state_c2c: np.ndarray,
    skip: np.ndarray,
    positions: np.ndarray,
    devices: np.ndarray,
    state: np.ndarray,
    g: np.ndarray,
    target: np.ndarray,
    gain: np.ndarray,
    sigma: np.ndarray,
) -> tuple[int, int]:
    """Refuse the stuck devices among ``index`` and gather the write-verify loop's working
    arrays for the others, in one pass.

    A stuck device is refused (``skip[k]`` True). With ``endurance`` (empty: infinite), a
    device whose ``wear`` has reached its endurance wears out now: it becomes stuck, its
    conductance goes to ``stuck_g`` (NaN: it keeps its last one), and it is refused too.
    Each device j to program (request k = ``positions[j]``, in order) gets its flat index
    and target state, its conductance and target in float64, its gain (none when
    ``gain_plane`` is empty) and the cycle-to-cycle sigma of its target state (none when
    ``state_c2c`` is empty). Returns (how many to program, how many wore out). ``index``
    holds no device twice.
    """
    wears_out = endurance.size > 0
    set_g = not math.isnan(stuck_g)
    has_gain = gain_plane.size > 0
    has_sigma = state_c2c.size > 0
    kept = 0
    worn = 0
    for k in range(index.size):
        i = index[k]
        refused = stuck[i]
        # numpy compares uint32 with float32 in float64: exact for both
        if not refused and wears_out and np.float64(wear[i]) >= np.float64(endurance[i]):
            stuck[i] = True
            if set_g:
                g_plane[i] = stuck_g
            worn += 1
            refused = True
        skip[k] = refused
        # written for every device, kept (the count advances) only for those programmed
        s = requested_state[k]
        positions[kept] = k
        devices[kept] = i
        state[kept] = s
        g[kept] = np.float64(g_plane[i])
        target[kept] = np.float64(requested_g[k])
        if has_gain:
            gain[kept] = np.float64(gain_plane[i])
        if has_sigma:
            sigma[kept] = state_c2c[s]
        kept += not refused
    return kept, worn


@numba.njit(**_JIT)
def store_programmed(
    devices: np.ndarray,
    positions: np.ndarray,
    state: np.ndarray,
    g: np.ndarray,
    pulses: np.ndarray,
    state_relax: np.ndarray,
    relax_draws: np.ndarray,
    amplitude_draws: np.ndarray,
    count: bool,
    event: int,
    g_plane: np.ndarray,
    programs: np.ndarray,
    plane_pulses: np.ndarray,
    program_event: np.ndarray,
    relax_amplitude: np.ndarray,
    pulses_out: np.ndarray,
) -> None:
    """Write the result of the write-verify loop back into the plane.

    Per device j: the post-verify relaxation ``G + relax[state] * relax_draws[j]`` floored at
    0 (none when ``relax_draws`` is empty), stored as float32; its pulses at its request's
    position in ``pulses_out``; with ``count``, one more program and its pulses on the
    device's counters; the programming ``event`` (when ``program_event`` is not empty) and
    the slow-relaxation amplitude ``relax[state] * amplitude_draws[j]`` (when
    ``relax_amplitude`` is not empty).
    """
    relaxes = relax_draws.size > 0
    has_event = program_event.size > 0
    has_amplitude = relax_amplitude.size > 0
    for j in range(devices.size):
        i = devices[j]
        new = g[j]
        if relaxes:
            new = new + state_relax[state[j]] * relax_draws[j]
            if new < 0.0:  # np.maximum(g, 0.0): NaN stays NaN
                new = 0.0
        g_plane[i] = np.float32(new)
        pulses_out[positions[j]] = pulses[j]
        if count:
            programs[i] += np.uint32(1)
            plane_pulses[i] += pulses[j]
        if has_event:
            program_event[i] = np.uint32(event)
        if has_amplitude:
            relax_amplitude[i] = np.float32(state_relax[state[j]] * amplitude_draws[j])


@numba.njit(**_JIT)
def merge_plane_pulses(
    where: np.ndarray,
    plane_pulses: np.ndarray,
    pulses: np.ndarray,
    steps: np.ndarray,
    requested: np.ndarray,
) -> None:
    """Add one plane's pulses to the changed weights at ``where``: ``pulses`` (all devices of
    a weight), ``steps`` (the larger of the pair) and ``requested`` (a device was asked)."""
    for j in range(where.size):
        w = where[j]
        p = plane_pulses[j]
        pulses[w] += p
        if p > steps[w]:
            steps[w] = p
        requested[w] = True


@numba.njit(**_JIT)
def count_writes(
    index: np.ndarray, requested: np.ndarray, pulses: np.ndarray, writes: np.ndarray, stuck: np.ndarray
) -> int:
    """One write more for every changed weight ``index`` that took a pulse; a weight whose
    devices were requested but took none had them all stuck (``stuck``: not a write, as a
    device that is not stuck takes at least one pulse). Returns how many were stuck."""
    skipped = 0
    for j in range(index.size):
        refused = requested[j] and pulses[j] == 0
        stuck[j] = refused
        if refused:
            skipped += 1
        else:
            writes[index[j]] += np.uint32(1)
    return skipped
