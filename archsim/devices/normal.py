"""numpy's ``standard_normal`` draws, bit for bit, by compiled ziggurats (float32 and float64).

Read noise ``weights + std * z``, z drawn exactly as numpy's float32 ``standard_normal``:
the device store draws 3.2 M standard normals per read of the paper's first layer. numpy
draws a float32 standard normal by the ziggurat method of Marsaglia & Tsang (J. Stat. Softw.
5(8), 2000) with 256 strips, one 32-bit word of the bit generator per draw in 99 % of cases;
a PCG64 generator hands out each 64-bit output as two words, low half first. numpy calls the
bit generator through a function pointer per word and then needs two more passes to scale
and shift the draws; :func:`scaled_normal_into` instead steps the PCG64 generator itself
inside one compiled loop (the 128-bit LCG and XSL-RR output of O'Neill, "PCG: A family of
simple fast space-efficient statistically good algorithms for random number generation",
HMC-CS-2014-0905, as numpy's ``pcg64.h`` computes them), runs the same ziggurat on its words
and writes ``weights + std * z``, then hands numpy back the generator state it reached. On two
threads the draws are split in halves (:func:`_split_draws`): a second copy of the generator,
advanced past the first half's words with ``PCG64.advance``, draws ahead speculatively, and
the halves are joined where the true sequence of draws crosses over. Every draw, every word
consumed and the generator state after are those of ``rng.standard_normal(shape,
dtype=np.float32)``; ``tests/test_devices.py`` compares them over millions of draws,
including the rare wedge and tail branches.

The ziggurat tables follow Marsaglia & Tsang's construction (r = 3.6541528853610088, strip
area v = 4.92867323399e-3, 23-bit magnitudes); they, and this module's use of numpy's word
order, are checked against the installed numpy once per process (:func:`fast_path_ok`): if
numpy ever draws differently, or the generator is not a PCG64, the store falls back to
numpy's own ``standard_normal``, which is always correct, only slower.

The write-verify loop's float64 draws (cycle-to-cycle spread, relaxation) go through
:func:`standard_normal_into` and :class:`NormalStream`, numpy's float64 ziggurat (one 64-bit
output per try, 52-bit magnitudes) compiled the same way, stepping the same PCG64 two outputs
side by side, on the tables copied from numpy's source (:mod:`archsim.devices.ziggurat_double`); a stream hands
the generator's state over once for all the pulse rounds of a write-verify. It has its own
once-per-process check (:func:`fast_path64_ok`) and the same fallback.
"""

from __future__ import annotations

import collections
import math
import threading

import numba
import numpy as np

from archsim.devices.pcg64 import (generator_at, next_word, pcg64_next, pcg64_next_two, set_generator,
                                   two_step_increment)
from archsim.devices.ziggurat_double import (FI_DOUBLE, KI_DOUBLE, WI_DOUBLE, ZIGGURAT_NOR_INV_R,
                                             ZIGGURAT_NOR_R)
from archsim.learning.kernels import SERIAL_OPTIONS, THREADS, helper_thread, in_halves

_R = 3.6541528853610088  # right edge of the base strip
_V = 4.92867323399e-3  # area of every strip
_SCALE = float(1 << 23)  # magnitudes are 23-bit integers


def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ki uint32, wi float32, fi float32): acceptance thresholds of the 23-bit magnitude,
    strip widths per magnitude unit and the density at each strip edge, exp(-x^2/2)."""
    ki = np.zeros(256, dtype=np.float64)
    wi = np.zeros(256, dtype=np.float64)
    fi = np.zeros(256, dtype=np.float64)
    edge = outer = _R
    f_r = math.exp(-0.5 * _R * _R)
    base = _V / f_r  # width of the base strip including its tail
    ki[0] = (_R / base) * _SCALE
    wi[0] = base / _SCALE
    wi[255] = _R / _SCALE
    fi[0] = 1.0
    fi[255] = f_r
    for i in range(254, 0, -1):
        edge = math.sqrt(-2.0 * math.log(_V / edge + math.exp(-0.5 * edge * edge)))
        ki[i + 1] = (edge / outer) * _SCALE
        outer = edge
        fi[i] = math.exp(-0.5 * edge * edge)
        wi[i] = edge / _SCALE
    return np.round(ki).astype(np.uint32), wi.astype(np.float32), fi.astype(np.float32)


_KI, _WI, _FI = ziggurat_tables()
# the strip widths signed by the word's bit 8 (numpy's sign bit), indexed by its low 9 bits:
# magnitude * -wi is exactly -(magnitude * wi), -0.0 included, in one multiply and no branch
_SIGNED_WI = np.concatenate([_WI, -_WI])
_SIGNED_WI64 = np.concatenate([WI_DOUBLE, -WI_DOUBLE])  # the same for float64: bit 8 is the sign


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _strip_value(r):  # pragma: no cover - compiled
    """The word ``r``'s strip, 23-bit magnitude, signed value and whether it is accepted at
    once (~99 %): ``z = magnitude * wi[strip]``, negated when bit 8 is set, as one multiply
    by the signed width rather than behind a branch that a fair coin mispredicts half the time."""
    idx = r & np.uint32(0xFF)
    rabs = (r >> np.uint32(9)) & np.uint32(0x7FFFFF)
    z = np.float32(rabs) * _SIGNED_WI[r & np.uint32(0x1FF)]
    return idx, rabs, z, rabs < _KI[idx]


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _finish_draw(r, state_hi, state_lo, inc_hi, inc_lo, buffered, has, pos):  # pragma: no cover - compiled
    """One draw whose first word ``r`` (already counted in ``pos``) is taken: accepted at
    once, or the wedge or the tail with further words, retried with a new word when the
    wedge rejects. Returns (z, state_hi, state_lo, buffered, has, pos)."""
    r_f = np.float32(3.6541528853610088)
    inv_r_f = np.float32(0.27366123732975828)
    to_unit = np.float32(1.0 / 16777216.0)
    while True:
        idx, rabs, z, accepted = _strip_value(r)
        if accepted:
            return z, state_hi, state_lo, buffered, has, pos
        if idx == 0:  # the tail beyond r
            while True:
                state_hi, state_lo, buffered, has, w1 = next_word(state_hi, state_lo, inc_hi, inc_lo, buffered, has)
                state_hi, state_lo, buffered, has, w2 = next_word(state_hi, state_lo, inc_hi, inc_lo, buffered, has)
                pos += 2
                u1 = np.float32(w1 >> np.uint32(8)) * to_unit
                u2 = np.float32(w2 >> np.uint32(8)) * to_unit
                xx = -inv_r_f * np.float32(math.log1p(-u1))
                yy = -np.float32(math.log1p(-u2))
                if yy + yy > xx * xx:
                    z = -(r_f + xx) if (rabs >> np.uint32(8)) & np.uint32(1) else r_f + xx
                    return z, state_hi, state_lo, buffered, has, pos
        # the wedge of strip idx
        state_hi, state_lo, buffered, has, w1 = next_word(state_hi, state_lo, inc_hi, inc_lo, buffered, has)
        pos += 1
        u = np.float32(w1 >> np.uint32(8)) * to_unit
        zz = np.float64(z)
        if (_FI[idx - 1] - _FI[idx]) * u + _FI[idx] < math.exp(-0.5 * zz * zz):
            return z, state_hi, state_lo, buffered, has, pos
        state_hi, state_lo, buffered, has, r = next_word(state_hi, state_lo, inc_hi, inc_lo, buffered, has)
        pos += 1


@numba.njit(cache=True, nogil=True, fastmath=False)
def _ziggurat_into(gen, pos, out, std, weights, start, stop, stop_word, starts):  # pragma: no cover - compiled
    """Draw ``out[i] = weights[i] + std[i] * z`` for i = start, ..., stop - 1 (``out[i] = z``
    when ``std`` is empty), each z from the 32-bit words of the PCG64 generator ``gen``.

    ``gen`` (uint64: state high, state low, increment high, increment low, buffered word,
    whether it is buffered) is numpy's ``PCG64`` state: a 64-bit output gives two words, low
    half first, the upper half buffered (and left in place, stale, once used, as numpy
    does). It is stepped here and written back. ``pos`` counts the words (-1: the buffered
    one); no element starts at or after word ``stop_word`` (one that starts before may use
    words past it). When ``starts`` is not empty, ``starts[i]`` gets the word at which
    element i started. Returns (next element, next word).

    The common case takes a whole output at a time: when both its words are accepted at
    once (~98 %) they are two elements, with no buffering between them; otherwise the low
    word starts an element the general way with the upper one buffered, as numpy would.
    """
    state_hi, state_lo, inc_hi, inc_lo = gen[0], gen[1], gen[2], gen[3]
    buffered, has = gen[4], gen[5] != 0
    scale = std.size > 0
    record = starts.size > 0
    i = start
    while i < stop and pos < stop_word:
        if not has:
            # the common case: whole outputs whose two words are both accepted at once, as
            # many as fit before ``stop`` and ``stop_word``, counted once, indexed unsigned: with
            # a signed index every array access also wraps negative values around, and that and
            # a bound test per output made this loop 1.4x slower (docs/performance.md)
            split = False
            at = np.uint64(i)
            for _ in range(min(stop - i, stop_word - pos) // 2):
                state_hi, state_lo, raw = pcg64_next(state_hi, state_lo, inc_hi, inc_lo)
                r = np.uint32(raw & np.uint64(0xFFFFFFFF))
                buffered = raw >> np.uint64(32)  # numpy keeps the used upper half, stale
                _, _, z, accepted = _strip_value(r)
                _, _, z2, accepted2 = _strip_value(np.uint32(buffered))
                if not (accepted and accepted2):
                    split = True
                    break
                after = at + np.uint64(1)
                if record:
                    starts[at], starts[after] = pos, pos + 1
                if scale:
                    scaled, scaled2 = z * std[at], z2 * std[after]
                    out[at], out[after] = scaled + weights[at], scaled2 + weights[after]
                else:
                    out[at], out[after] = z, z2
                at += np.uint64(2)
                pos += 2
            i = np.int64(at)
            if split:  # the low word starts an element the general way, the upper one buffered
                has = True
            elif not (i < stop and pos < stop_word):
                break
            else:
                state_hi, state_lo, buffered, has, r = next_word(state_hi, state_lo, inc_hi, inc_lo, buffered, has)
        else:
            state_hi, state_lo, buffered, has, r = next_word(state_hi, state_lo, inc_hi, inc_lo, buffered, has)
        first = pos
        pos += 1
        z, state_hi, state_lo, buffered, has, pos = _finish_draw(r, state_hi, state_lo, inc_hi, inc_lo, buffered,
                                                                 has, pos)
        if record:
            starts[i] = first
        if scale:
            scaled = z * std[i]
            out[i] = scaled + weights[i]
        else:
            out[i] = z
        i += 1
    gen[0], gen[1], gen[4], gen[5] = state_hi, state_lo, buffered, np.uint64(1 if has else 0)
    return i, pos


@numba.njit(**SERIAL_OPTIONS)
def _scale_into(z, std, weights, out):  # pragma: no cover - compiled
    """``out = weights + std * z`` (float32), computed as :func:`_ziggurat_into` does, in the
    calling thread (the caller cuts it in halves: :func:`archsim.learning.kernels.in_halves`)."""
    for i in range(out.size):
        scaled = z[i] * std[i]
        out[i] = scaled + weights[i]


_CHECK_LOCK = threading.Lock()
_CHECKED: dict[str, bool] = {}


def _checked_once(kind: str, check) -> bool:
    """``check()``, run once per process per ``kind`` (the fast paths are used only when the
    installed numpy draws exactly as they do)."""
    with _CHECK_LOCK:
        if kind not in _CHECKED:
            _CHECKED[kind] = bool(check())
        return _CHECKED[kind]


def fast_path_ok() -> bool:
    """True when :func:`scaled_normal_into` reproduces this numpy's float32 standard normals
    (checked once per process on 200 000 draws, the generator state after included)."""
    return _checked_once("float32", _self_check)


def _self_check() -> bool:
    n = 200_000
    ones = np.ones(n, dtype=np.float32)
    zeros = np.zeros(n, dtype=np.float32)
    for seed in (2024, 7):
        ours, theirs = np.random.Generator(np.random.PCG64(seed)), np.random.Generator(np.random.PCG64(seed))
        theirs.random(1, dtype=np.float32)  # leave a buffered half-word, as between reads
        ours.random(1, dtype=np.float32)
        got = np.empty(n, dtype=np.float32)
        _fill(ours, zeros, ones, got)
        want = theirs.standard_normal(n, dtype=np.float32)
        if not (np.array_equal(got.view(np.uint32), (want * ones + zeros).view(np.uint32))
                and ours.bit_generator.state == theirs.bit_generator.state):
            return False
    return True


def scaled_normal_into(rng: np.random.Generator, weights: np.ndarray, std: np.ndarray, out: np.ndarray) -> None:
    """``out = weights + std * rng.standard_normal(out.shape, dtype=np.float32)``, float32,
    the same draws and the same generator state after as that numpy expression (computed as
    ``out = z; out *= std; out += weights``)."""
    if type(rng.bit_generator) is np.random.PCG64 and out.size and fast_path_ok():
        _fill(rng, weights, std, out)
    else:
        rng.standard_normal(out.shape, dtype=np.float32, out=out)
        out *= std
        out += weights


def _fill(rng: np.random.Generator, weights: np.ndarray, std: np.ndarray, out: np.ndarray,
          mode: str | None = None) -> None:
    """The fast path (PCG64 only), in one of two ``modes`` giving the same draws:

    * ``"sequential"``: one compiled pass that steps the generator itself;
    * ``"split"`` (default when kernels may use more than one thread and the fill is large):
      the draws split in two halves on two threads (see :func:`_split_draws`).

    The generator is left as numpy's own fill leaves it.
    """
    if mode not in (None, "sequential", "split"):
        raise ValueError(f"read-noise fill mode {mode!r}: use 'sequential' or 'split'")
    bitgen = rng.bit_generator
    flat_out = out.reshape(-1)
    flat_std = np.ascontiguousarray(std, dtype=np.float32).reshape(-1)
    flat_w = np.ascontiguousarray(weights, dtype=np.float32).reshape(-1)
    # not under bitgen.lock: a Generator is not shared between threads (the store draws from its own)
    state = bitgen.state
    pos = -1 if state["has_uint32"] else 0  # -1: the buffered half-word comes first
    n = flat_out.size
    if mode is None:
        mode = "split" if THREADS > 1 and n >= _SPLIT_MIN else "sequential"
    if mode == "split" and n < _SPLIT_MAX:
        gen = _split_draws(state, pos, flat_out, flat_std, flat_w)
    else:
        gen = generator_at(state, pos)
        _ziggurat_into(gen, pos, flat_out, flat_std, flat_w, 0, n, _NO_STOP, _NO_STARTS)
    set_generator(bitgen, state, gen)


_NO_STOP = 1 << 62  # stop_word: none
_NO_STARTS = np.zeros(0, dtype=np.int32)
_NO_SCALE = np.zeros(0, dtype=np.float32)
_SPLIT_MAX = 1 << 30  # the split records word positions as int32
_SPLIT_MIN = 1 << 16
SPLIT_OUTCOMES: collections.Counter[str] = collections.Counter()  # how split fills ended (tests)


_SPLIT_SCRATCH = threading.local()


def _split_scratch(size: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's scratch of the split mode, reused from fill to fill (fresh arrays of this
    size cost their page faults at every read): the worker's draws and the word each started at."""
    cached = getattr(_SPLIT_SCRATCH, "buffers", None)
    if cached is None or cached[0].size < size:
        cached = (np.empty(size, dtype=np.float32), np.empty(size, dtype=np.int32))
        _SPLIT_SCRATCH.buffers = cached
    return cached[0][:size], cached[1][:size]


def _split_draws(state: dict, pos: int, flat_out: np.ndarray, flat_std: np.ndarray,
                 flat_w: np.ndarray) -> np.ndarray:
    """Split mode of :func:`_fill`: the same draws as one sequential pass, on two threads.

    The words are cut at ``cut``, about where half the draws end (a draw takes 1.012 words
    on average). This thread draws the elements that start before the cut, writing them
    scaled into ``out``; meanwhile the worker, on a copy of the generator advanced to the
    cut (``PCG64.advance``), draws speculatively from there, keeping each unscaled draw and
    the word it started at. Where the last draw of this thread ends is where the true
    sequence crosses the cut; almost always (all but ~1 % of draws take one word) the worker
    also started a draw at that word, and from there on its draws are the true ones: they
    are scaled into ``out`` in one parallel pass. Returns the generator after the fill.
    """
    n = flat_out.size
    cut = 2 * int(n * 0.253)
    ahead_count = max(n - int(cut * 0.97), 1)  # draws of this thread: about cut / 1.012
    z, starts = _split_scratch(ahead_count)
    ahead_gen = generator_at(state, cut)
    ahead = helper_thread().submit(_ziggurat_into, ahead_gen, cut, z, _NO_SCALE, _NO_SCALE, 0, ahead_count,
                             _NO_STOP, starts)
    gen = generator_at(state, pos)
    try:
        i, pos = _ziggurat_into(gen, pos, flat_out, flat_std, flat_w, 0, n, cut, _NO_STARTS)
    finally:
        drawn, ahead_end = ahead.result()
    return _join_halves(state, gen, i, pos, z, starts, drawn, ahead_end, flat_out, flat_std, flat_w)


def _join_halves(state, gen, i, pos, z, starts, drawn, ahead_end, flat_out, flat_std, flat_w):
    """After the two passes of :func:`_split_draws`: this thread stopped at element ``i``,
    word ``pos`` with generator ``gen``; the worker made ``drawn`` draws ``z`` from the words
    ``starts`` and stopped at word ``ahead_end``. Completes ``out`` and returns the
    generator after it."""
    n = flat_out.size
    if i == n:
        return gen
    meet = int(starts[:drawn].searchsorted(np.int32(pos)))  # an int64 key would copy ``starts``
    if meet < drawn and starts[meet] == pos:
        take = min(drawn - meet, n - i)
        zs, stds, ws, outs = z[meet:meet + take], flat_std[i:i + take], flat_w[i:i + take], flat_out[i:i + take]
        in_halves(take, lambda a, b: _scale_into(zs[a:b], stds[a:b], ws[a:b], outs[a:b]))
        pos = int(starts[meet + take]) if meet + take < drawn else ahead_end
        i += take
        SPLIT_OUTCOMES["met" if i == n else "met, worker stopped early"] += 1
        gen = generator_at(state, pos)
    else:
        SPLIT_OUTCOMES["never met"] += 1
    if i < n:  # the worker stopped short, or the two passes never met: go on from here
        _ziggurat_into(gen, pos, flat_out, flat_std, flat_w, i, n, _NO_STOP, _NO_STARTS)
    return gen



# --------------------------------------------------------------------------- float64 draws
@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _strip64(word):  # pragma: no cover - compiled
    """numpy's reading of a 64-bit output: strip (low 8 bits), sign (bit 8), 52-bit magnitude
    (bits 9-60). Returns the strip, the magnitude, the signed value ``magnitude * wi[strip]``
    (one multiply by the signed width: ``magnitude * -wi`` is exactly numpy's ``-(magnitude *
    wi)``, -0.0 included) and whether it is accepted at once (~99 %)."""
    idx = word & np.uint64(0xFF)
    rabs = (word >> np.uint64(9)) & np.uint64(0x000FFFFFFFFFFFFF)
    x = np.float64(rabs) * _SIGNED_WI64[word & np.uint64(0x1FF)]
    return idx, rabs, x, rabs < KI_DOUBLE[idx]


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _finish_draw64(word, state_hi, state_lo, inc_hi, inc_lo):  # pragma: no cover - compiled
    """One float64 draw whose first output ``word`` is taken: accepted at once, or the wedge
    or the tail with further outputs, retried with a new output when the wedge rejects. The
    tail and the wedge take uniforms ``(output >> 11) * 2**-53``, numpy's ``next_double``.
    Returns (x, state_hi, state_lo)."""
    to_unit = 1.0 / 9007199254740992.0
    eleven = np.uint64(11)
    while True:
        idx, rabs, x, accepted = _strip64(word)
        if accepted:
            return x, state_hi, state_lo
        if idx == 0:  # the tail beyond r
            while True:
                state_hi, state_lo, w1 = pcg64_next(state_hi, state_lo, inc_hi, inc_lo)
                state_hi, state_lo, w2 = pcg64_next(state_hi, state_lo, inc_hi, inc_lo)
                xx = -ZIGGURAT_NOR_INV_R * math.log1p(-np.float64(w1 >> eleven) * to_unit)
                yy = -math.log1p(-np.float64(w2 >> eleven) * to_unit)
                if yy + yy > xx * xx:  # numpy takes the tail's sign from the magnitude's bit 8
                    x = -(ZIGGURAT_NOR_R + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else ZIGGURAT_NOR_R + xx
                    return x, state_hi, state_lo
        # the wedge of strip idx
        state_hi, state_lo, w1 = pcg64_next(state_hi, state_lo, inc_hi, inc_lo)
        u = np.float64(w1 >> eleven) * to_unit
        if (FI_DOUBLE[idx - 1] - FI_DOUBLE[idx]) * u + FI_DOUBLE[idx] < math.exp(-0.5 * x * x):
            return x, state_hi, state_lo
        state_hi, state_lo, word = pcg64_next(state_hi, state_lo, inc_hi, inc_lo)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _ziggurat64_into(gen, out):  # pragma: no cover - compiled
    """Fill ``out`` as numpy's float64 ``random_standard_normal`` does on a PCG64: one 64-bit
    output per try (``gen`` stepped and written back). The buffered half-word of float32
    draws (``gen[4]``, ``gen[5]``) is left alone, as numpy leaves it.

    The common case takes two outputs at a time, both computed from the current state
    (:func:`~archsim.devices.pcg64.pcg64_next_two`): stepping one output at a time, every
    draw waited for the previous one's 128-bit product. When both are accepted at once
    (~98 %) they are two draws, indexed unsigned (a signed index costs a wrap-around per
    access); otherwise the draws go on from the rejected output the general way.
    """
    state_hi, state_lo, inc_hi, inc_lo = gen[0], gen[1], gen[2], gen[3]
    inc2_hi, inc2_lo = two_step_increment(inc_hi, inc_lo)
    n = out.size
    i = 0
    while i < n:
        at = np.uint64(i)
        rejected = False
        for _ in range((n - i) // 2):
            hi1, lo1, word1, hi2, lo2, word2 = pcg64_next_two(state_hi, state_lo, inc_hi, inc_lo, inc2_hi, inc2_lo)
            _, _, x1, accepted1 = _strip64(word1)
            _, _, x2, accepted2 = _strip64(word2)
            if not (accepted1 and accepted2):
                rejected = True
                break
            out[at], out[at + np.uint64(1)] = x1, x2
            at += np.uint64(2)
            state_hi, state_lo = hi2, lo2
        i = np.int64(at)
        if rejected:  # the first rejected output starts a draw the general way
            if accepted1:
                out[at] = x1
                i += 1
                state_hi, state_lo, word = hi2, lo2, word2
            else:
                state_hi, state_lo, word = hi1, lo1, word1
        elif i < n:  # one draw left
            state_hi, state_lo, word = pcg64_next(state_hi, state_lo, inc_hi, inc_lo)
        else:
            break
        x, state_hi, state_lo = _finish_draw64(word, state_hi, state_lo, inc_hi, inc_lo)
        out[i] = x
        i += 1
    gen[0], gen[1] = state_hi, state_lo


def standard_normal_into(rng: np.random.Generator, out: np.ndarray) -> None:
    """Fill the float64 array ``out`` with ``rng.standard_normal(out.size)``: the same values
    and the generator left in the same state (its buffered half-word untouched, as numpy's
    float64 draws leave it). Several fills in a row are cheaper through :class:`NormalStream`."""
    with NormalStream(rng) as stream:
        stream.fill(out)


def standard_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """``rng.standard_normal(n)`` (float64), through :func:`standard_normal_into`."""
    out = np.empty(n, dtype=np.float64)
    standard_normal_into(rng, out)
    return out


class NormalStream:
    """float64 standard normals of ``rng`` over several fills, as ``rng.standard_normal`` gives
    them: on a PCG64 (and when :func:`fast_path64_ok`) the generator's state is taken once on
    entering, stepped by the compiled ziggurat at every :meth:`fill`, and handed back on
    leaving, so a loop of many small fills (the write-verify's pulse rounds) pays numpy's
    state handling once. Nothing else may draw from ``rng`` inside the ``with`` block."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.gen: np.ndarray | None = None
        self._state: dict | None = None

    def __enter__(self) -> "NormalStream":
        bitgen = self.rng.bit_generator
        if type(bitgen) is np.random.PCG64 and fast_path64_ok():
            self._state = bitgen.state
            self.gen = generator_at(self._state, -1 if self._state["has_uint32"] else 0)
        return self

    def fill(self, out: np.ndarray) -> None:
        if out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError(f"standard_normal_into fills a C-contiguous float64 array, not {out.dtype} "
                             f"{'contiguous' if out.flags.c_contiguous else 'strided'}")
        flat = out.reshape(-1)
        if not flat.size:
            return
        if self.gen is None:
            self.rng.standard_normal(flat.size, out=flat)
        else:
            _ziggurat64_into(self.gen, flat)

    def __exit__(self, *exc: object) -> None:
        if self.gen is not None:
            set_generator(self.rng.bit_generator, self._state, self.gen)
            self.gen = None


def fast_path64_ok() -> bool:
    """True when :func:`standard_normal_into` reproduces this numpy's float64 standard normals
    (checked once per process on 200 000 draws, the generator state after included)."""
    return _checked_once("float64", _self_check64)


def _self_check64() -> bool:
    n = 200_000
    for seed in (2024, 7):
        ours, theirs = np.random.Generator(np.random.PCG64(seed)), np.random.Generator(np.random.PCG64(seed))
        theirs.random(1, dtype=np.float32)  # a buffered half-word, which float64 draws keep
        ours.random(1, dtype=np.float32)
        got = np.empty(n, dtype=np.float64)
        state = ours.bit_generator.state
        gen = generator_at(state, -1)
        _ziggurat64_into(gen, got)
        set_generator(ours.bit_generator, state, gen)
        want = theirs.standard_normal(n)
        if not (np.array_equal(got.view(np.uint64), want.view(np.uint64))
                and ours.bit_generator.state == theirs.bit_generator.state):
            return False
    return True
