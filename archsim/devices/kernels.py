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
