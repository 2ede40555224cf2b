"""Compiled loops of the device store's write-verify and read-back (numba).

Each kernel does, per device, exactly the float64 operations of the numpy code it replaced,
in the same order and without fused multiply-add (numba's default ``fastmath=False``), so
results are bit-identical; random draws are made by the caller in the same order and sizes
(numpy's ``standard_normal`` values, :mod:`archsim.devices.normal`), and sums over many
devices are numpy's: ``ndarray.sum()`` of the same arrays, or :func:`numpy_sum`, numpy's
pairwise order of additions (a plain loop would add in another order), checked against
numpy once per process. tests/test_devices.py keeps the numpy code as reference.

Every kernel takes ``chunks`` (:func:`archsim.learning.kernels.scan_chunks`): 1 runs it as one
loop in the calling thread; more splits it over the kernels' threads (call it inside
:func:`~archsim.learning.kernels.kernel_launch`). Each device or weight is independent of the
others, so a split changes no result; where the kernel keeps some of them in order (the
devices to program, those still outside tolerance) it counts per chunk first and then writes
each chunk from the sum of the counts before it -- the order of one loop.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from archsim.devices.normal import _checked_once, _ziggurat64_into
from archsim.learning.kernels import chunk_bounds

_JIT = {"cache": True, "nogil": True, "parallel": True, "fastmath": False}


@numba.njit(inline="always")
def _kept_before(counts: np.ndarray, c: int) -> int:
    """How many the chunks before chunk ``c`` kept (a handful of chunks: summed where needed)."""
    total = 0
    for d in range(c):
        total += counts[d]
    return total


@numba.njit(inline="always")
def _pulse_chunk(
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
    start: int,
    stop: int,
    outside: np.ndarray,
    o: int,
) -> int:
    """:func:`pulse_step` of devices ``start:stop``; those still outside tolerance go to
    ``outside`` from ``o`` (never past the device being pulsed); returns how many."""
    has_gain = gain.size > 0
    has_sigma = sigma.size > 0
    at = positions[start:stop] if not every else positions
    drawn = draws[start:stop] if has_sigma else draws
    was, now, out = before[start:stop], after[start:stop], outside[o:]
    left = 0
    for j in range(stop - start):
        # unsigned: numba wraps every signed index around (a few instructions per access)
        p = np.uint64(start + j) if every else np.uint64(at[j])
        g_a = g[p]
        t_a = target[p]
        new = g_a + gain[p] * (t_a - g_a) if has_gain else t_a
        if has_sigma:
            new = new + sigma[p] * drawn[j]
        if new < 0.0:  # np.maximum(new, 0.0): NaN stays NaN
            new = 0.0
        was[j] = g_a
        now[j] = new
        g[p] = new
        pulses[p] += np.uint32(1)
        out[left] = p  # kept only if outside tolerance: no branch to mispredict
        left += abs(new - t_a) > tolerance
    return left


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
    staging: np.ndarray,
    counts: np.ndarray,
) -> int:
    """One pulse and verify of the devices ``positions`` (all n when ``every``), in
    ``counts.size`` chunks.

    Per device j at position p: G -> ``G + k (G_t - G)`` (``G_t`` when ``gain`` is empty),
    plus ``sigma[p] * draws[j]`` (none when ``sigma`` is empty), floored at 0; ``before[j]``
    and ``after[j]`` get the conductance before and after (the caller prices the pulses from
    them), ``g[p]`` the new one, ``pulses[p]`` one more. The positions still outside
    tolerance, in order, go to ``outside``; returns how many. Split, each chunk keeps its
    own in ``staging`` (as long as ``outside``) first.
    """
    count = g.size if every else positions.size
    chunks = counts.size
    if chunks == 1:
        return _pulse_chunk(positions, every, g, target, gain, sigma, draws, tolerance, pulses, before,
                            after, 0, count, outside, 0)
    for c in numba.prange(chunks):
        start, stop = chunk_bounds(count, chunks, c)
        counts[c] = _pulse_chunk(positions, every, g, target, gain, sigma, draws, tolerance, pulses,
                                 before, after, start, stop, staging, start)
    for c in numba.prange(chunks):
        start = chunk_bounds(count, chunks, c)[0]
        o = _kept_before(counts, c)
        kept, to = staging[start:start + counts[c]], outside[o:]
        for k in range(kept.size):
            to[k] = kept[k]
    return _kept_before(counts, chunks)


# --------------------------------------------------------------------------- all pulse rounds
# On the paper's layers a write-verify is ~20 rounds, most of a few hundred devices or fewer
# (58 240 devices, then 46 261, 29 145, ... 9): run one Python round at a time, each round's
# draws, kernel launch, slicing and three numpy sums cost more than its pulses. When a round
# runs as one loop in the calling thread anyway (``scan_chunks(n, "stream") == 1``), the
# whole loop is one compiled call: the same draws from the same generator, the same pulse
# arithmetic (:func:`_pulse_chunk`) and the energy sums added in numpy's order
# (:func:`numpy_sum`), checked against numpy once per process (:func:`numpy_sum_ok`).

_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE: below it, eight running sums


@numba.njit(inline="always")
def _block_sum(a: np.ndarray, start: int, n: int) -> float:  # pragma: no cover - compiled
    """numpy's pairwise sum of at most 128 elements ``a[start:start + n]``: fewer than 8
    added in order from 0, else eight running sums combined as ``((r0 + r1) + (r2 + r3)) +
    ((r4 + r5) + (r6 + r7))``, then the remainder in order."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    whole = start + n - n % 8
    i = start + 8
    while i < whole:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for k in range(whole, start + n):
        res += a[k]
    return res


@numba.njit(inline="always")
def _first_half(n: int) -> int:
    """Where numpy cuts ``n`` > 128 elements in two: about half, a multiple of 8."""
    half = n // 2
    return half - half % 8


@numba.njit(cache=True, nogil=True, fastmath=False)
def _pairwise_sum(a: np.ndarray) -> float:  # pragma: no cover - compiled
    """numpy's pairwise sum of the float64 ``a`` (``pairwise_sum`` of
    numpy/_core/src/umath/loops_utils.h.src): up to 128 elements :func:`_block_sum`; more,
    the sums of the two halves (:func:`_first_half`) added. numpy recurses; here the
    recursion is an explicit stack of the halves being summed (a recursive numba function
    crashes when loaded from the cache), visited in numpy's order."""
    if a.size <= _PAIRWISE_BLOCK:
        return _block_sum(a, 0, a.size)
    starts = np.empty(64, dtype=np.int64)  # per level of the tree: the half being summed,
    sizes = np.empty(64, dtype=np.int64)
    firsts = np.empty(64, dtype=np.float64)  # the sum of its first half, once known
    second = np.zeros(64, dtype=np.bool_)  # and whether its second half is being summed
    depth = 0
    starts[0], sizes[0], second[0] = 0, a.size, False
    while True:
        n = sizes[depth]
        if n > _PAIRWISE_BLOCK:  # go down into the first half
            depth += 1
            starts[depth], sizes[depth], second[depth] = starts[depth - 1], _first_half(n), False
            continue
        total = _block_sum(a, starts[depth], n)
        while True:  # go up while this was a second half
            if depth == 0:
                return total
            depth -= 1
            if not second[depth]:
                break
            total = firsts[depth] + total
        firsts[depth], second[depth] = total, True  # then down into the second half
        half = _first_half(sizes[depth])
        depth += 1
        starts[depth], sizes[depth], second[depth] = starts[depth - 1] + half, sizes[depth - 1] - half, False


@numba.njit(cache=True, nogil=True, fastmath=False)
def numpy_sum(a: np.ndarray) -> float:  # pragma: no cover - compiled
    """``float(a.sum())`` of a contiguous float64 array as numpy computes it: the reduction
    starts from add's identity 0.0 and adds the pairwise sum of the whole array (one piece:
    numpy 2.4 does not cut a contiguous reduction into buffer-sized pieces)."""
    return 0.0 + _pairwise_sum(a)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _numpy_maximum_into(a: np.ndarray, b: np.ndarray) -> None:  # pragma: no cover - compiled
    """``np.maximum(a, b, out=a)``: a NaN in either wins."""
    for i in range(a.size):
        x, y = a[i], b[i]
        a[i] = x if (x > y or x != x) else y


@numba.njit(cache=True, nogil=True, fastmath=False)
def write_verify_rounds(
    g: np.ndarray,
    target: np.ndarray,
    gain: np.ndarray,
    sigma: np.ndarray,
    tolerance: float,
    max_pulses: int,
    trapezoid: bool,
    pulses: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    outside: np.ndarray,
    normals: np.ndarray,
    gen: np.ndarray,
) -> tuple[int, float, float, int]:  # pragma: no cover - compiled
    """Every pulse round of a write-verify, in one call: what ``DevicePlane._write_verify``'s
    per-round loop does with :func:`pulse_step` in one chunk, bit for bit.

    Round r pulses every device (r = 0) or those still outside tolerance after round r - 1,
    up to ``max_pulses`` rounds; with ``sigma`` (not empty) each round first draws its
    cycle-to-cycle spread into ``normals`` (float64, one per device pulsed) from the PCG64
    ``gen`` (:func:`~archsim.devices.normal._ziggurat64_into`, stepped and written back).
    ``outside`` (2, n) int64 holds the positions still outside tolerance, a round reading one
    row and writing the other. ``before`` and ``after`` are scratch. Returns (devices still
    outside tolerance, the pulses' and the verify reads' priced conductance sums (S), pulses
    applied); the energy of a round's pulses is the trapezoid ``(sum(before) + sum(after)) /
    2`` or ``sum(max(before, after))``, its verify reads ``sum(after)``, each sum numpy's.
    """
    n = g.size
    has_sigma = sigma.size > 0
    pulse_g = 0.0
    verify_g = 0.0
    pulse_count = 0
    count = n
    pos = outside[1]  # not read in the first round: it pulses every device
    for round_ in range(max_pulses):
        if count == 0:
            break
        into = outside[round_ % 2]
        draws = normals[:count] if has_sigma else normals
        if has_sigma:
            _ziggurat64_into(gen, draws)
        left = _pulse_chunk(pos, round_ == 0, g, target, gain, sigma, draws, tolerance, pulses, before,
                            after, 0, count, into, 0)
        was, now = before[:count], after[:count]
        total_new = numpy_sum(now)
        if trapezoid:
            pulse_g += 0.5 * (numpy_sum(was) + total_new)
        else:
            _numpy_maximum_into(was, now)
            pulse_g += numpy_sum(was)
        verify_g += total_new
        pulse_count += count
        pos = into[:left]
        count = left
    return count, pulse_g, verify_g, pulse_count


def numpy_sum_ok() -> bool:
    """True when :func:`numpy_sum` adds as this numpy's ``ndarray.sum()`` does, bit for bit
    (checked once per process over sizes 0-300, around powers of two and the buffer size,
    and random sizes up to 300 000, on values spread over 16 decades of both signs: a
    different order of additions shows)."""
    return _checked_once("float64 sum", _sum_self_check)


def _sum_self_check() -> bool:
    values = np.random.default_rng(20261202)
    sizes = [*range(301), *(2**k + d for k in range(9, 20) for d in (-1, 0, 1)), 8191, 8192, 8193,
             60_000, 58_240, *values.integers(300, 300_000, 24).tolist()]
    for n in sizes:
        a = values.standard_normal(n) * 10.0 ** values.uniform(-8, 8, n)
        if numpy_sum(a).hex() != float(a.sum()).hex():
            return False
        b = np.abs(a)  # and the conductances' case: all positive
        if numpy_sum(b).hex() != float(b.sum()).hex():
            return False
    return True


@numba.njit(inline="always")
def _decode_chunk(
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
    start: int,
    stop: int,
) -> None:
    has_std = read_std.size > 0
    for i in index[start:stop]:
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
    chunks: int,
) -> None:
    """Read-back weight and read-noise std of the weights ``index`` (flat), in float64:

    ``W = Q_k + ((G+ - G+_k) - (G- - G-_k)) * weight_per_siemens`` (one plane: ``Q_k + (G -
    G_k) * ...``) and ``std = sqrt(G+^2 + G-^2) * noise_per_siemens``, stored as float32
    (``read_std`` empty: no read noise). ``targets`` is (planes, levels) float32.
    """
    if chunks == 1:
        _decode_chunk(index, levels, g_plus, g_minus, planes, targets, level_values, weight_per_siemens,
                      noise_per_siemens, weights, read_std, 0, index.size)
        return
    for c in numba.prange(chunks):
        start, stop = chunk_bounds(index.size, chunks, c)
        _decode_chunk(index, levels, g_plus, g_minus, planes, targets, level_values, weight_per_siemens,
                      noise_per_siemens, weights, read_std, start, stop)


# --------------------------------------------------------------------------- programming
# DevicePlane.program and DeviceStore.commit touch the layer-sized per-device arrays (3.2 M
# elements for the paper's first layer) at the scattered positions of the changed weights,
# where nearly every access misses the cache. As numpy code every gather and scatter was a
# pass of its own over those positions (about ten per plane, plus the temporaries between
# them); the kernels below make one pass per phase of the programming -- which devices of
# which plane, their write-verify state, the write-back, the per-weight totals -- each
# reading or writing every array it needs at a device's position while it is there.


@numba.njit(inline="always")
def _plane_requests_chunk(
    index: np.ndarray,
    old_levels: np.ndarray,
    new_levels: np.ndarray,
    targets: np.ndarray,
    new_of: np.ndarray,
    planes_of: np.ndarray,
    counts: np.ndarray,
    start: int,
    stop: int,
) -> None:
    """Which planes each changed weight ``start:stop`` programs (bit p of ``planes_of``), its
    new level (``new_of``), and per plane how many (``counts``)."""
    planes = targets.shape[0]
    for p in range(planes):
        counts[p] = 0
    weights, levels, which = index[start:stop], new_of[start:stop], planes_of[start:stop]
    for j in range(weights.size):
        i = weights[j]
        old = old_levels[i]
        new = new_levels[i]
        levels[j] = new
        bits = 0
        for p in range(planes):
            if targets[p, new] != targets[p, old]:
                bits |= 1 << p
                counts[p] += 1
        which[j] = bits


@numba.njit(inline="always")
def _write_requests_chunk(
    index: np.ndarray,
    targets: np.ndarray,
    state_of: np.ndarray,
    new_of: np.ndarray,
    planes_of: np.ndarray,
    start: int,
    stop: int,
    first: np.ndarray,
    devices: np.ndarray,
    target_g: np.ndarray,
    target_state: np.ndarray,
    where: np.ndarray,
) -> None:
    """The requests of weights ``start:stop``, per plane p from position ``first[p]`` on."""
    planes = targets.shape[0]
    weights, levels, which = index[start:stop], new_of[start:stop], planes_of[start:stop]
    for p in range(planes):
        c = 0
        to_device, to_g, to_state, to_where = (devices[p, first[p]:], target_g[p, first[p]:],
                                               target_state[p, first[p]:], where[p, first[p]:])
        for j in range(weights.size):
            if which[j] >> p & 1:
                new = levels[j]
                to_device[c] = weights[j]
                to_g[c] = targets[p, new]
                to_state[c] = state_of[p, new]
                to_where[c] = start + j
                c += 1


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
    need: np.ndarray,
    new_of: np.ndarray,
    planes_of: np.ndarray,
    counts: np.ndarray,
) -> None:
    """The devices to program, per plane, for the changed weights ``index`` (flat).

    ``targets`` and ``state_of`` are (planes, levels). A device is programmed when its target
    ``targets[p, new level]`` differs from the old one (a differential pair moving between
    two positive levels leaves G- alone). Per plane p, in ``index`` order: the device's flat
    index (``devices[p]``), target conductance and state (``target_g[p]``,
    ``target_state[p]``) and the weight's position in ``index`` (``where[p]``); ``need[p]``
    gets how many. A first pass reads each weight's two levels once for both planes and
    keeps its new level and planes (``new_of``, ``planes_of``, one per changed weight); a
    second writes the requests, in ``counts.shape[0]`` chunks (``counts``: (chunks, planes)).
    """
    n = index.size
    chunks = counts.shape[0]
    planes = targets.shape[0]
    if chunks == 1:
        _plane_requests_chunk(index, old_levels, new_levels, targets, new_of, planes_of, counts[0], 0, n)
    else:
        for c in numba.prange(chunks):
            start, stop = chunk_bounds(n, chunks, c)
            _plane_requests_chunk(index, old_levels, new_levels, targets, new_of, planes_of, counts[c],
                                  start, stop)
    for p in range(planes):  # counts become each chunk's first position per plane
        total = 0
        for c in range(chunks):
            k = counts[c, p]
            counts[c, p] = total
            total += k
        need[p] = total
    if chunks == 1:
        _write_requests_chunk(index, targets, state_of, new_of, planes_of, 0, n, counts[0], devices,
                              target_g, target_state, where)
    else:
        for c in numba.prange(chunks):
            start, stop = chunk_bounds(n, chunks, c)
            _write_requests_chunk(index, targets, state_of, new_of, planes_of, start, stop, counts[c],
                                  devices, target_g, target_state, where)


@numba.njit(inline="always")
def _prepare_chunk(
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
    start: int,
    stop: int,
) -> tuple[int, int]:
    """:func:`prepare_write_verify` of requests ``start:stop``, the devices kept written from
    position ``start`` on (never past the request being read); returns (kept, worn out)."""
    wears_out = endurance.size > 0
    set_g = not math.isnan(stuck_g)
    has_gain = gain_plane.size > 0
    has_sigma = state_c2c.size > 0
    requests, wanted_g, wanted_state, refusals = (index[start:stop], requested_g[start:stop],
                                                  requested_state[start:stop], skip[start:stop])
    to_position, to_device, to_state = positions[start:], devices[start:], state[start:]
    to_g, to_target = g[start:], target[start:]
    to_gain = gain[start:] if has_gain else gain
    to_sigma = sigma[start:] if has_sigma else sigma
    kept = 0
    worn = 0
    for k in range(requests.size):
        i = np.uint64(requests[k])  # unsigned: no wrap-around per access (as in pulse_step)
        refused = stuck[i]
        # numpy compares uint32 with float32 in float64: exact for both
        if not refused and wears_out and np.float64(wear[i]) >= np.float64(endurance[i]):
            stuck[i] = True
            if set_g:
                g_plane[i] = stuck_g
            worn += 1
            refused = True
        refusals[k] = refused
        # written for every device, kept (the count advances) only for those programmed
        s = wanted_state[k]
        to_position[kept] = start + k
        to_device[kept] = i
        to_state[kept] = s
        to_g[kept] = np.float64(g_plane[i])
        to_target[kept] = np.float64(wanted_g[k])
        if has_gain:
            to_gain[kept] = np.float64(gain_plane[i])
        if has_sigma:
            to_sigma[kept] = state_c2c[s]
        kept += not refused
    return kept, worn


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
    counts: np.ndarray,
) -> tuple[int, int]:
    """Refuse the stuck devices among ``index`` and gather the write-verify loop's working
    arrays for the others.

    A stuck device is refused (``skip[k]`` True). With ``endurance`` (empty: infinite), a
    device whose ``wear`` has reached its endurance wears out now: it becomes stuck, its
    conductance goes to ``stuck_g`` (NaN: it keeps its last one), and it is refused too.
    Each device j to program (request k = ``positions[j]``, in order) gets its flat index
    and target state, its conductance and target in float64, its gain (none when
    ``gain_plane`` is empty) and the cycle-to-cycle sigma of its target state (none when
    ``state_c2c`` is empty). Returns (how many to program, how many wore out). ``index``
    holds no device twice. In one pass (``counts``: (1, 2)), or split in ``counts.shape[0]``
    chunks that each gather theirs from the chunk's first position, after which the runs move
    down to follow each other.
    """
    n = index.size
    chunks = counts.shape[0]
    if chunks == 1:
        return _prepare_chunk(index, requested_g, requested_state, stuck, wear, endurance, stuck_g, g_plane,
                              gain_plane, state_c2c, skip, positions, devices, state, g, target, gain, sigma,
                              0, n)
    for c in numba.prange(chunks):  # each chunk gathers its own into its own place first
        start, stop = chunk_bounds(n, chunks, c)
        counts[c, 0], counts[c, 1] = _prepare_chunk(
            index, requested_g, requested_state, stuck, wear, endurance, stuck_g, g_plane, gain_plane,
            state_c2c, skip, positions, devices, state, g, target, gain, sigma, start, stop)
    j = 0
    worn = 0
    for c in range(chunks):  # then the runs move down, in order (a destination never passes its source)
        start = chunk_bounds(n, chunks, c)[0]
        kept = counts[c, 0]
        worn += counts[c, 1]
        if j < start:
            _move_down(positions, start, j, kept)
            _move_down(devices, start, j, kept)
            _move_down(state, start, j, kept)
            _move_down(g, start, j, kept)
            _move_down(target, start, j, kept)
            _move_down(gain, start, j, kept)
            _move_down(sigma, start, j, kept)
        j += kept
    return j, worn


@numba.njit(inline="always")
def _move_down(a: np.ndarray, source: int, to: int, count: int) -> None:
    """``a[to:to + count] = a[source:source + count]`` for ``to <= source`` (empty ``a``: none)."""
    if a.size > 0:
        for k in range(count):
            a[to + k] = a[source + k]


@numba.njit(inline="always")
def _store_chunk(
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
    start: int,
    stop: int,
) -> None:
    relaxes = relax_draws.size > 0
    has_event = program_event.size > 0
    has_amplitude = relax_amplitude.size > 0
    at, states, conductance, took = positions[start:stop], state[start:stop], g[start:stop], pulses[start:stop]
    relax = relax_draws[start:stop] if relaxes else relax_draws
    amplitude = amplitude_draws[start:stop] if has_amplitude else amplitude_draws
    for j, i in enumerate(devices[start:stop]):
        new = conductance[j]
        if relaxes:
            new = new + state_relax[states[j]] * relax[j]
            if new < 0.0:  # np.maximum(g, 0.0): NaN stays NaN
                new = 0.0
        g_plane[i] = np.float32(new)
        pulses_out[at[j]] = took[j]
        if count:
            programs[i] += np.uint32(1)
            plane_pulses[i] += took[j]
        if has_event:
            program_event[i] = np.uint32(event)
        if has_amplitude:
            relax_amplitude[i] = np.float32(state_relax[states[j]] * amplitude[j])


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
    chunks: int,
) -> None:
    """Write the result of the write-verify loop back into the plane.

    Per device j: the post-verify relaxation ``G + relax[state] * relax_draws[j]`` floored at
    0 (none when ``relax_draws`` is empty), stored as float32; its pulses at its request's
    position in ``pulses_out``; with ``count``, one more program and its pulses on the
    device's counters; the programming ``event`` (when ``program_event`` is not empty) and
    the slow-relaxation amplitude ``relax[state] * amplitude_draws[j]`` (when
    ``relax_amplitude`` is not empty).
    """
    if chunks == 1:
        _store_chunk(devices, positions, state, g, pulses, state_relax, relax_draws, amplitude_draws, count,
                     event, g_plane, programs, plane_pulses, program_event, relax_amplitude, pulses_out,
                     0, devices.size)
        return
    for c in numba.prange(chunks):
        start, stop = chunk_bounds(devices.size, chunks, c)
        _store_chunk(devices, positions, state, g, pulses, state_relax, relax_draws, amplitude_draws, count,
                     event, g_plane, programs, plane_pulses, program_event, relax_amplitude, pulses_out,
                     start, stop)


@numba.njit(inline="always")
def _merge_chunk(
    where: np.ndarray, plane_pulses: np.ndarray, pulses: np.ndarray, steps: np.ndarray, requested: np.ndarray,
    start: int, stop: int,
) -> None:
    took = plane_pulses[start:stop]
    for j, w in enumerate(where[start:stop]):
        p = took[j]
        pulses[w] += p
        if p > steps[w]:
            steps[w] = p
        requested[w] = True


@numba.njit(**_JIT)
def merge_plane_pulses(
    where: np.ndarray,
    plane_pulses: np.ndarray,
    pulses: np.ndarray,
    steps: np.ndarray,
    requested: np.ndarray,
    chunks: int,
) -> None:
    """Add one plane's pulses to the changed weights at ``where``: ``pulses`` (all devices of
    a weight), ``steps`` (the larger of the pair) and ``requested`` (a device was asked)."""
    if chunks == 1:
        _merge_chunk(where, plane_pulses, pulses, steps, requested, 0, where.size)
        return
    for c in numba.prange(chunks):
        start, stop = chunk_bounds(where.size, chunks, c)
        _merge_chunk(where, plane_pulses, pulses, steps, requested, start, stop)


@numba.njit(inline="always")
def _count_chunk(
    index: np.ndarray, requested: np.ndarray, pulses: np.ndarray, writes: np.ndarray, stuck: np.ndarray,
    start: int, stop: int,
) -> int:
    skipped = 0
    asked, took, refusals = requested[start:stop], pulses[start:stop], stuck[start:stop]
    for j, i in enumerate(index[start:stop]):
        refused = asked[j] and took[j] == 0
        refusals[j] = refused
        if refused:
            skipped += 1
        else:
            writes[i] += np.uint32(1)
    return skipped


@numba.njit(**_JIT)
def count_writes(
    index: np.ndarray,
    requested: np.ndarray,
    pulses: np.ndarray,
    writes: np.ndarray,
    stuck: np.ndarray,
    counts: np.ndarray,
) -> int:
    """One write more for every changed weight ``index`` that took a pulse; a weight whose
    devices were requested but took none had them all stuck (``stuck``: not a write, as a
    device that is not stuck takes at least one pulse). Returns how many were stuck.
    ``counts``: one per chunk, scratch."""
    chunks = counts.size
    if chunks == 1:
        return _count_chunk(index, requested, pulses, writes, stuck, 0, index.size)
    for c in numba.prange(chunks):
        start, stop = chunk_bounds(index.size, chunks, c)
        counts[c] = _count_chunk(index, requested, pulses, writes, stuck, start, stop)
    return _kept_before(counts, chunks)
