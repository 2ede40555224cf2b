"""numpy's PCG64 bit generator, stepped inside compiled loops.

numpy's default generator is PCG64 (O'Neill, "PCG: A family of simple fast space-efficient
statistically good algorithms for random number generation", HMC-CS-2014-0905): a 128-bit
linear congruential state ``s = s * mult + inc`` and the XSL-RR output ``rotr64(hi ^ lo,
hi >> 58)`` of the new state, as numpy's ``pcg64.h`` computes them. numpy hands its state out
as a dict; here it is an array a numba kernel can step (:func:`generator_at`), one 64x64->128
multiply per output (:func:`_mul_64x64`, an LLVM intrinsic: numba's integers stop at 64
bits), and it goes back to numpy with :func:`set_generator`. 32-bit draws take the low half of
an output first and keep the upper half buffered (:func:`next_word`, numpy's
``next_uint32``), 64-bit draws take whole outputs and leave the buffer alone; two outputs
can be computed side by side from one state (:func:`pcg64_next_two`). ``PCG64.advance``
places a second copy anywhere ahead (:func:`generator_at`), which is what lets a fill be
split over threads. tests/test_devices.py checks every output and state against numpy's.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

_M64 = (1 << 64) - 1
_PCG64_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier (O'Neill 2014)
_MULT_HI = np.uint64(_PCG64_MULT >> 64)
_MULT_LO = np.uint64(_PCG64_MULT & _M64)
_MULT2 = (_PCG64_MULT * _PCG64_MULT) & ((1 << 128) - 1)  # two steps at once: state * mult**2 + inc * (mult + 1)
_MULT2_HI, _MULT2_LO = np.uint64(_MULT2 >> 64), np.uint64(_MULT2 & _M64)
_MULT1_HI, _MULT1_LO = np.uint64((_PCG64_MULT + 1) >> 64), np.uint64((_PCG64_MULT + 1) & _M64)


@intrinsic
def _mul_64x64(typingctx, a, b):  # pragma: no cover - compiled
    """(high, low) 64-bit halves of the 128-bit product of two uint64: one ``mul`` on x86-64,
    where numba's integers stop at 64 bits."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        low = builder.trunc(product, ir.IntType(64))
        high = builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, [high, low])

    return sig, codegen


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _lcg(state_hi, state_lo, mult_hi, mult_lo, add_hi, add_lo):  # pragma: no cover - compiled
    """``state * mult + add`` modulo 2**128, each as (high, low) 64-bit halves."""
    high, low = _mul_64x64(state_lo, mult_lo)
    high = high + state_lo * mult_hi + state_hi * mult_lo
    new_lo = low + add_lo
    new_hi = high + add_hi + (np.uint64(1) if new_lo < low else np.uint64(0))
    return new_hi, new_lo


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _xsl_rr(state_hi, state_lo):  # pragma: no cover - compiled
    """PCG64's output of a state: ``rotr64(hi ^ lo, hi >> 58)``."""
    mixed = state_hi ^ state_lo
    rot = state_hi >> np.uint64(58)
    return (mixed >> rot) | (mixed << ((np.uint64(64) - rot) & np.uint64(63)))


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def pcg64_next(state_hi, state_lo, inc_hi, inc_lo):  # pragma: no cover - compiled
    """One step of numpy's PCG64 (O'Neill 2014, PCG-XSL-RR 128/64): the 128-bit LCG
    ``state = state * mult + inc``, then the output ``rotr64(hi ^ lo, hi >> 58)`` of the new
    state. Returns (state_hi, state_lo, output)."""
    new_hi, new_lo = _lcg(state_hi, state_lo, _MULT_HI, _MULT_LO, inc_hi, inc_lo)
    return new_hi, new_lo, _xsl_rr(new_hi, new_lo)


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def two_step_increment(inc_hi, inc_lo):  # pragma: no cover - compiled
    """``inc * (mult + 1)`` modulo 2**128: two LCG steps at once are ``state * mult**2`` plus
    this (:func:`pcg64_next_two`)."""
    return _lcg(inc_hi, inc_lo, _MULT1_HI, _MULT1_LO, np.uint64(0), np.uint64(0))


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def pcg64_next_two(state_hi, state_lo, inc_hi, inc_lo, inc2_hi, inc2_lo):  # pragma: no cover - compiled
    """The next two steps of :func:`pcg64_next`, the second computed from the current state
    too, as ``state * mult**2 + inc2`` (``inc2`` from :func:`two_step_increment`), so that the
    two 128-bit products do not wait for each other: a loop that steps one output at a time
    is bound by the latency of that product. Returns (state_hi, state_lo, output) after one
    step, then after two."""
    hi1, lo1 = _lcg(state_hi, state_lo, _MULT_HI, _MULT_LO, inc_hi, inc_lo)
    hi2, lo2 = _lcg(state_hi, state_lo, _MULT2_HI, _MULT2_LO, inc2_hi, inc2_lo)
    return hi1, lo1, _xsl_rr(hi1, lo1), hi2, lo2, _xsl_rr(hi2, lo2)


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def next_word(state_hi, state_lo, inc_hi, inc_lo, buffered, has):  # pragma: no cover - compiled
    """numpy's ``next_uint32`` of a PCG64: the buffered upper half-word if there is one, else
    the low half of a new output, its upper half buffered. Returns (state_hi, state_lo,
    buffered, has, word)."""
    if has:
        return state_hi, state_lo, buffered, False, np.uint32(buffered)
    state_hi, state_lo, raw = pcg64_next(state_hi, state_lo, inc_hi, inc_lo)
    return state_hi, state_lo, raw >> np.uint64(32), True, np.uint32(raw & np.uint64(0xFFFFFFFF))


def generator_at(state: dict, pos: int) -> np.ndarray:
    """The generator of :mod:`archsim.devices.normal`'s kernels (uint64: state high and low, increment high
    and low, buffered word, whether buffered) as it stands when word ``pos`` of a fill from
    ``state`` (numpy's PCG64 state dict) is the next one; -1 is the buffered word itself."""
    inc = state["state"]["inc"]
    if pos < 0:
        word, has, at = state["uinteger"], 1, state["state"]["state"]
    else:
        walker = _walker()
        walker.state = state
        made = (pos + 1) // 2  # outputs made before word pos: its own if pos is an upper half
        if made:
            walker.advance(made - 1)
            word = int(walker.random_raw(1)[0]) >> 32  # buffered, or stale once used (numpy's way)
        else:
            word = state["uinteger"]
        has, at = pos % 2, walker.state["state"]["state"]
    return np.array([at >> 64, at & _M64, inc >> 64, inc & _M64, word, has], dtype=np.uint64)


def outputs_between(start: int, end: int, inc: int) -> int:
    """How many outputs a PCG64 with increment ``inc`` makes to go from 128-bit state ``start``
    to ``end``: the LCG's distance, found one bit at a time (Brown, "Random number generation
    with arbitrary strides", Trans. Am. Nucl. Soc. 71, 1994; the ``distance`` of O'Neill's
    pcg_random.hpp): bit j of the distance is set where the states still differ in bit j
    after the lower bits are matched, each step of 2^j outputs composed by squaring. Every
    state is reachable (the LCG has full period 2^128), so this always ends, in at most 128
    rounds; a state that was not reached by drawing gives a distance of the order of 2^127."""
    mask = (1 << 128) - 1
    mult, bit, distance = _PCG64_MULT, 1, 0
    while start != end:
        if (start ^ end) & bit:
            start = (start * mult + inc) & mask
            distance |= bit
        inc = ((mult + 1) * inc) & mask
        mult = (mult * mult) & mask
        bit <<= 1
    return distance


_WALKERS = threading.local()


def _walker() -> np.random.PCG64:
    """A PCG64 of this thread to set states on and advance (a fresh ``PCG64()`` seeds itself
    from the OS's entropy: 0.5 ms)."""
    walker = getattr(_WALKERS, "pcg64", None)
    if walker is None:
        walker = _WALKERS.pcg64 = np.random.PCG64(0)
    return walker


def set_generator(bitgen: np.random.PCG64, state: dict, gen: np.ndarray) -> None:
    """Give ``bitgen`` the state ``gen`` reached from ``state``: its 128-bit state and its
    buffered half-word, as numpy's own draws would have left them."""
    after = dict(state)
    after["state"] = {"state": (int(gen[0]) << 64) | int(gen[1]), "inc": state["state"]["inc"]}
    after["has_uint32"], after["uinteger"] = int(gen[5]), int(gen[4])
    bitgen.state = after
