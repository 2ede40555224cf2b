"""Fused element-wise kernels of the learning step (numba), one pass over each weight array.

The optimizer, the meta-function and the quantized store each touch every hidden weight once
per mini-batch. Written as numpy expressions they take about 25 passes over memory per
layer (one temporary array per operator), several times the cost of the layer's matrix
products; here each is one loop over the elements.

Every kernel performs, per element, exactly the float32 (or float64, where the numpy code
upcast) operations of the numpy expression it replaces, in the same order and without
fused multiply-add contraction (numba's default ``fastmath=False``), so results are
bit-identical to the numpy code (tests/test_kernels.py compares them). The one function
not re-implemented is tanh: numpy's float32 tanh is not correctly rounded, so a different
implementation would change results in the last bit; the optimizer evaluates it with numpy
into a reused buffer and hands it to :func:`adam_step`.

``parallel=True`` splits the loops over the machine's cores; every element is independent,
so the split cannot change a result.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

_JIT = {"cache": True, "nogil": True, "parallel": True, "fastmath": False}
JIT_OPTIONS = _JIT  # for kernels elsewhere in archsim (archsim/hw/converters.py)

# numba's OpenMP layer spin-waits between kernels and then competes with OpenBLAS's threads
# for the same cores (measured: 8 ms of CPU and 40 ms of wall for a 3.2 M-weight Adam step on
# a loaded 2-core machine, against 4-5 ms for both with the plain work queue).
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def _thread_budget() -> int:
    """Threads per kernel: numba's count, capped like BLAS by OMP_NUM_THREADS (sweep workers)."""
    limit = numba.config.NUMBA_NUM_THREADS
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            limit = min(limit, int(value))
    return limit


THREADS = _thread_budget()

# Two-pass scans. A kernel that compacts (keeps some elements, in order) cannot simply split
# its loop over threads: where an element goes depends on how many were kept before it. Split
# into chunks, it counts per chunk first, then each chunk writes from the sum of the counts
# before it -- the same output, in the same order, as one pass. SCAN_PARTS chunks share the
# threads; below two grains of work a kernel runs in the calling thread (a parallel launch
# costs tens of microseconds). A split pays only while the other core is free: numba's work
# queue gives each thread a fixed share, so a thread waiting for its core holds up the kernel
# (docs/performance.md, h21-commit). Tests lower these to split small arrays.
SCAN_PARTS = 4 * THREADS if THREADS > 1 else 1
# elements one thread must have to be worth a launch: a streaming pass over a layer, or a pass
# over the changed weights where nearly every element misses the cache
SCAN_GRAIN = {"stream": 1 << 17, "gather": 1 << 12}


def scan_chunks(n: int, kind: str) -> int:
    """Chunks to split ``n`` elements of a ``kind`` of pass into (SCAN_GRAIN); 1 = one pass in
    the calling thread. Results do not depend on it."""
    grain = SCAN_GRAIN[kind]
    if SCAN_PARTS == 1 or n < 2 * grain:
        return 1
    return min(n // grain, SCAN_PARTS)


@numba.njit(inline="always")
def chunk_bounds(n: int, chunks: int, c: int) -> tuple[int, int]:
    """[start, stop) of chunk ``c`` of ``chunks`` over ``n`` elements; starts are multiples of 8."""
    size = ((n + chunks - 1) // chunks + 7) // 8 * 8
    start = min(c * size, n)
    return start, min(start + size, n)


@numba.njit(inline="always")
def exclusive_offsets(counts: np.ndarray) -> int:
    """Replace per-chunk counts by the sum of the counts before each chunk; returns the total."""
    total = 0
    for c in range(counts.size):
        k = counts[c]
        counts[c] = total
        total += k
    return total


_LAUNCH = threading.Lock()
_HELPER: list[tuple[int, ThreadPoolExecutor]] = []
_HELPER_LOCK = threading.Lock()


def helper_thread() -> ThreadPoolExecutor:
    """One helper thread per process for work that a ``nogil`` kernel does outside the GIL
    next to the calling thread (the read noise's split fill; work submitted in order runs in
    order). A forked child gets its own: the parent's thread does not exist there."""
    with _HELPER_LOCK:
        if not _HELPER or _HELPER[0][0] != os.getpid():
            _HELPER[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="archsim-helper"))]
        return _HELPER[0][1]


def on_helper_thread() -> bool:
    """Whether the calling thread is the helper thread (work it submits to itself would wait
    forever: it runs such work itself)."""
    return threading.current_thread().name.startswith("archsim-helper")


HALVES_MIN = 1 << 18  # elements below which an element-wise pass is not cut in halves


def halves(n: int) -> int:
    """Where :func:`in_halves` cuts ``n`` elements (a multiple of 16), or 0: not cut (one
    kernel thread, or too few elements to pay for the helper's hand-over)."""
    if THREADS < 2 or n < HALVES_MIN:
        return 0
    return n // 2 // 16 * 16


def in_halves(n: int, work: Callable[[int, int], object]) -> None:
    """``work(start, stop)`` over ``n`` elements: [0, cut) in the calling thread and [cut, n)
    on the helper thread at the same time (:func:`halves`), or [0, n) here. For element-wise
    passes whose every element is computed alone (so the cut cannot change a value): one
    hand-over to a thread that is usually awake, where a parallel kernel launch wakes two
    (about 0.02-0.13 ms against 0.11-0.26 ms on the development machine)."""
    cut = halves(n)
    if cut == 0 or on_helper_thread():  # the helper waiting on itself would never return
        work(0, n)
        return
    second = helper_thread().submit(work, cut, n)
    try:
        work(0, cut)
    finally:
        second.result()


def tanh_in_place(x: np.ndarray) -> np.ndarray:
    """``np.tanh(x, out=x)`` for a C-contiguous float array: numpy's own tanh (its last bit is
    part of the results), in halves on two threads when the array is large (numpy's tanh
    runs in one thread; each element's value does not depend on which thread or which part
    of the array computes it)."""
    flat = x.reshape(-1)
    in_halves(flat.size, lambda start, stop: np.tanh(flat[start:stop], out=flat[start:stop]))
    return x


@contextmanager
def kernel_launch() -> Iterator[None]:
    """Around every kernel call: the thread budget, applied in the calling thread (numba's
    thread count is per calling thread), and one launch at a time per process (the work
    queue must not be entered by two Python threads at once, e.g. threaded Dask workers)."""
    with _LAUNCH:
        if numba.get_num_threads() != THREADS:
            numba.set_num_threads(THREADS)
        yield


@numba.njit(inline="always")
def _adam_element(
    w: np.float32,
    g: np.float32,
    m: np.float32,
    v: np.float32,
    t: np.float32,
    meta_mode: int,
    coefficients: tuple,
) -> tuple[np.float32, np.float32, np.float32]:
    """(weight, first moment, second moment) after one Adam step of one element (see
    :func:`adam_step`); ``t`` is tanh(arg) (meta_mode 1), the factor (2) or unused (0)."""
    (weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2, denom_scale, eps, step_scale,
     decay_scale, clip) = coefficients
    one = np.float32(1.0)
    zero = np.float32(0.0)
    if weight_decay != zero:
        g = g + weight_decay * w
    m = m * beta1
    m = m + one_minus_beta1 * g
    v = v * beta2
    v = v + one_minus_beta2 * (g * g)
    denom = np.float32(math.sqrt(v)) * denom_scale
    denom = denom + eps
    step = m / denom
    step = step * step_scale
    factor = one
    if meta_mode == 1:
        factor = one - t * t
    elif meta_mode == 2:
        factor = t
    if meta_mode != 0 and m * w > zero:
        step = step * factor
    if decay_scale != zero:
        decay = decay_scale * w
        if meta_mode != 0:
            decay = decay * factor
        step = step + decay
    w = w - step
    if clip != zero:
        w = min(max(w, -clip), clip)
    return w, m, v


# One thread's loop, for work split by the caller: numpy's error model, as numba gives the
# parallel kernels' loops (no Python exception checks around sqrt and the division, which
# would keep the loop from vectorising; the values are the same: IEEE float32 either way).
_SERIAL = {"cache": True, "nogil": True, "parallel": False, "fastmath": False, "error_model": "numpy"}
SERIAL_OPTIONS = _SERIAL  # for one-thread kernels elsewhere in archsim (archsim/hw/converters.py)


@numba.njit(**_SERIAL)
def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    tanh_or_factor: np.ndarray,
    meta_mode: int,
    coefficients: tuple,
) -> None:
    """One Adam step with metaplastic damping, in place on flat float32 arrays, in the calling
    thread (the optimizer cuts a large layer in halves for this and the helper thread,
    :func:`in_halves`; every element is computed alone).

    ``meta_mode``: 0 no meta-function; 1 ``tanh_or_factor`` holds tanh(arg) and the factor is
    1 - tanh^2; 2 it holds the factor itself. ``coefficients``: ten float32 (weight_decay,
    beta1, 1 - beta1, beta2, 1 - beta2, denom_scale, eps, step_scale, decay_scale, clip);
    ``weight_decay`` (L2 in the gradient), ``decay_scale`` (decoupled, lr * lambda) and
    ``clip`` (|W_H| bound) are off when 0.
    """
    for i in range(param.size):
        t = tanh_or_factor[i] if meta_mode != 0 else np.float32(0.0)
        param[i], first[i], second[i] = _adam_element(
            param[i], grad[i], first[i], second[i], t, meta_mode, coefficients)


@numba.njit(**_SERIAL)
def scaled_abs_into(x: np.ndarray, scale: np.float32, out: np.ndarray) -> None:
    """out = |x| * scale in float32 (np.abs into out, then out *= scale: one pass, not two),
    in the calling thread (callers cut a large array: :func:`in_halves`, or blocks)."""
    for i in range(x.size):
        out[i] = abs(x[i]) * scale


# Elements per block of the blocked meta-Adam step: its tanh argument (512 kB of float32) is
# computed, passed through numpy's tanh and used by Adam while it is still in the core's L2.
META_ADAM_BLOCK = 1 << 17


def meta_adam_in_blocks(
    param: np.ndarray,
    grad: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    scratch: np.ndarray,
    scale: np.float32,
    adam_args: tuple,
) -> None:
    """The meta-Adam step of :func:`adam_step` with ``meta_mode`` 1 and tanh(scale |param|)
    as its factor, on flat float32 arrays, a block of :data:`META_ADAM_BLOCK` elements at a
    time: the argument (:func:`scaled_abs_into`), numpy's tanh and the Adam step
    (:func:`adam_step`) of a block follow each other while the block is in cache,
    instead of three passes over the layer through memory (the layer's arrays do not fit in
    the caches between passes: about 2/3 of the memory traffic of the three passes goes).
    The second half of the blocks runs on the helper thread when kernels may use two threads.
    ``adam_args``: :func:`adam_step`'s ``coefficients``. Each element's
    operations are those of the three passes, so results are bit-identical to them."""
    n = param.size

    def meta_adam_blocks(start: int, stop: int) -> None:
        for lo in range(start, stop, META_ADAM_BLOCK):
            hi = min(lo + META_ADAM_BLOCK, stop)
            t = scratch[lo:hi]
            scaled_abs_into(param[lo:hi], scale, t)
            np.tanh(t, out=t)
            adam_step(param[lo:hi], grad[lo:hi], first[lo:hi], second[lo:hi], t, 1, adam_args)

    in_halves(n, meta_adam_blocks)


@numba.njit(inline="always")
def _uniform_level(x, lowest: float, inv_step: float, top: int) -> float:
    """floor((x - Q_0) / step + 1/2) clipped to [0, top], in float64 like the numpy expression
    (the level values are float64): a uniform quantizer's level of one hidden weight."""
    return min(max(math.floor((np.float64(x) - lowest) * inv_step + 0.5), 0.0), np.float64(top))


@numba.njit(**_JIT)
def uniform_level_index(hidden: np.ndarray, lowest: float, inv_step: float, top: int, out: np.ndarray) -> None:
    """:func:`_uniform_level` of every hidden weight into ``out``."""
    for i in numba.prange(hidden.size):
        out[i] = _uniform_level(hidden[i], lowest, inv_step, top)


# The chunk loops below run over views that start at the chunk: an index counted up from 0
# is known not to be negative, so numba emits no wraparound test per element and the loop
# vectorises (counted from a variable start it ran several times slower). For the same reason
# the level scan works in blocks of BLOCK weights, one simple loop per step (level, compare,
# count) over data still in the L1 cache: one loop doing all three did not vectorise.
BLOCK = 4096


@numba.njit(inline="always")
def _count_changes(new: np.ndarray, old: np.ndarray, changed: np.ndarray) -> int:
    """``changed = new != old`` (views of one block); returns how many."""
    for i in range(new.size):
        changed[i] = new[i] != old[i]
    moved = 0
    for i in range(changed.size):
        moved += changed[i]
    return moved


@numba.njit(inline="always")
def _changes_chunk(new: np.ndarray, old: np.ndarray, changed: np.ndarray, start: int, stop: int) -> int:
    moved = 0
    for block in range(start, stop, BLOCK):
        end = min(block + BLOCK, stop)
        moved += _count_changes(new[block:end], old[block:end], changed[block:end])
    return moved


@numba.njit(inline="always")
def _collect_chunk(
    changed: np.ndarray, words: np.ndarray, start: int, stop: int, o: int, found: int, index: np.ndarray
) -> None:
    """The flat indices of the ``found`` True elements of ``changed[start:stop]`` into
    ``index`` from ``o``. ``words`` is ``changed`` read 8 bytes at a time (``start`` a multiple
    of 8): an unchanged stretch costs one test per 8 weights. Within a word every byte's
    index is written and the position advances by the byte (0 or 1), without a branch; the
    write after the last one found would land in the next chunk's place, so the loop ends
    with it."""
    if found == 0:
        return
    c, out = changed[start:stop], index[o:o + found]
    w = words[start >> 3 : min(stop >> 3, words.size)]
    k = 0
    for word in range(w.size):
        if w[word] != 0:
            for b in range(8 * word, 8 * word + 8):
                out[k] = start + b
                k += c[b]
                if k == found:
                    return
    for b in range(8 * w.size, c.size):
        out[k] = start + b
        k += c[b]
        if k == found:
            return


@numba.njit(**_JIT)
def level_changes(old: np.ndarray, new: np.ndarray, changed: np.ndarray, counts: np.ndarray) -> int:
    """First pass of :meth:`Quantizer.level_changes` of a non-uniform level set (``new``
    given): ``changed = new != old``; per chunk (``counts.size`` of them) the count of
    changes, turned into offsets. Returns the total."""
    n = new.size
    chunks = counts.size
    if chunks == 1:
        counts[0] = _changes_chunk(new, old, changed, 0, n)
    else:
        for c in numba.prange(chunks):
            start, stop = chunk_bounds(n, chunks, c)
            counts[c] = _changes_chunk(new, old, changed, start, stop)
    return exclusive_offsets(counts)


@numba.njit(**_JIT)
def collect_changed(changed: np.ndarray, words: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> None:
    """Second pass: ``np.flatnonzero(changed)`` into ``index``, each chunk from its offset."""
    n = changed.size
    chunks = offsets.size
    if chunks == 1:
        _collect_chunk(changed, words, 0, n, 0, index.size, index)
    else:
        for c in numba.prange(chunks):
            start, stop = chunk_bounds(n, chunks, c)
            found = (offsets[c + 1] if c + 1 < chunks else index.size) - offsets[c]
            _collect_chunk(changed, words, start, stop, offsets[c], found, index)


# The uniform quantizer's level of a hidden weight x, floor(g(x)) clipped to [0, top] with
# g(x) = (x - Q_0) / step + 1/2 in float64, is a non-decreasing function of x: each float64
# operation of g rounds monotonically. So level(x) >= k exactly when x >= T_k, the least value
# of the hidden dtype with g(T_k) >= k (Quantizer.level_thresholds finds it by stepping over
# neighbouring floats), and level(x) = [x >= T_1] + ... + [x >= T_top]: for up to four levels
# three float32 comparisons replace the float64 convert, subtract, multiply, add, floor and
# clamp, twice the lanes per vector. Missing thresholds are NaN (x >= NaN is false), and so is
# a NaN weight's every comparison: level 0, as the arithmetic gives it.
THRESHOLD_LEVELS = 4


@numba.njit(inline="always")
def _threshold_levels(hidden: np.ndarray, new: np.ndarray, thresholds: np.ndarray) -> None:
    a, b, c = thresholds[0], thresholds[1], thresholds[2]
    for i in range(hidden.size):
        new[i] = np.uint8(hidden[i] >= a) + np.uint8(hidden[i] >= b) + np.uint8(hidden[i] >= c)


@numba.njit(inline="always")
def _collect_block(changed: np.ndarray, words: np.ndarray, base: int, out: np.ndarray, k: int) -> int:
    """Append ``base +`` the position of every True of one block's ``changed`` (in L1) to
    ``out`` from ``k``; ``words`` is the block read 8 bytes at a time. Each changed byte holds
    a single set bit, so a word's lowest set bit, divided by 8, is its next change's place."""
    for word in range(words.size):
        bits = words[word]
        while bits != 0:
            out[k] = base + 8 * word + (trailing_zeros(bits) >> 3)
            k += 1
            bits &= bits - np.uint64(1)
    for b in range(8 * words.size, changed.size):
        if changed[b]:
            out[k] = base + b
            k += 1
    return k


@numba.njit(inline="always")
def _uniform_scan_chunk(
    hidden: np.ndarray, lowest: float, inv_step: float, top: int, thresholds: np.ndarray, old: np.ndarray,
    new: np.ndarray, changed: np.ndarray, words: np.ndarray, start: int, stop: int, out: np.ndarray, bound: int,
) -> tuple[int, int]:
    """One chunk of :func:`uniform_level_changes`: levels, mask and count block by block, and
    each block's changed positions (relative to ``start``) appended to ``out`` while the
    chunk's total stays within ``bound``. Returns (changes, collected); collected > bound
    means the chunk overflowed and its positions must be read from the mask."""
    moved = 0
    k = 0
    for block in range(start, stop, BLOCK):
        end = min(block + BLOCK, stop)
        h, n, ch = hidden[block:end], new[block:end], changed[block:end]
        if thresholds.size:
            _threshold_levels(h, n, thresholds)
        else:
            for i in range(h.size):
                n[i] = _uniform_level(h[i], lowest, inv_step, top)
        m = _count_changes(n, old[block:end], ch)
        moved += m
        if m != 0:
            if k + m <= bound:
                k = _collect_block(ch, words[block >> 3 : min(end >> 3, words.size)], block - start, out, k)
            else:
                k = bound + 1
    return moved, k


@numba.njit(inline="always")
def _place_chunk(
    changed: np.ndarray, words: np.ndarray, start: int, stop: int, o: int, found: int, collected: int,
    scratch: np.ndarray, bound: int, index: np.ndarray,
) -> None:
    """Chunk's ``found`` indices into ``index`` from ``o``: from its scratch, or from the mask
    when it overflowed its bound."""
    if found == 0:
        return
    if collected > bound:
        _collect_chunk(changed, words, start, stop, o, found, index)
        return
    dst = index[o:o + found]
    for i in range(found):
        dst[i] = scratch[i] + start


@numba.njit(**_JIT)
def uniform_level_changes(
    hidden: np.ndarray,
    lowest: float,
    inv_step: float,
    top: int,
    thresholds: np.ndarray,
    old: np.ndarray,
    new: np.ndarray,
    changed: np.ndarray,
    words: np.ndarray,
    counts: np.ndarray,
    scratch: np.ndarray,
) -> np.ndarray:
    """:meth:`Quantizer.level_changes` of a uniform quantizer in one scan: the level of every
    hidden weight into ``new`` (by ``thresholds`` when given, else the float64 arithmetic of
    :func:`uniform_level_index`), ``changed = new != old``, and the changed indices, returned
    sorted as ``np.flatnonzero(changed)``. Each of the ``counts.size`` chunks collects its
    indices while its block is in the cache into its own equal part of ``scratch`` (part size
    minus 8 is the bound); the parts are then copied after the sum of the counts before them.
    A chunk with more changes than its bound reads them from the mask instead, as
    :func:`collect_changed` does."""
    n = new.size
    chunks = counts.size
    part = scratch.size // chunks
    bound = part - 8
    collected = np.empty(chunks, dtype=np.int64)
    if chunks == 1:
        counts[0], collected[0] = _uniform_scan_chunk(hidden, lowest, inv_step, top, thresholds, old, new, changed,
                                                      words, 0, n, scratch, bound)
    else:
        for c in numba.prange(chunks):
            start, stop = chunk_bounds(n, chunks, c)
            counts[c], collected[c] = _uniform_scan_chunk(hidden, lowest, inv_step, top, thresholds, old, new,
                                                          changed, words, start, stop,
                                                          scratch[c * part : (c + 1) * part], bound)
    total = exclusive_offsets(counts)
    index = np.empty(total, dtype=np.intp)
    if total == 0:
        return index
    if chunks == 1:
        _place_chunk(changed, words, 0, n, 0, total, collected[0], scratch, bound, index)
    else:
        for c in numba.prange(chunks):
            start, stop = chunk_bounds(n, chunks, c)
            found = (counts[c + 1] if c + 1 < chunks else total) - counts[c]
            _place_chunk(changed, words, start, stop, counts[c], found, collected[c],
                         scratch[c * part : (c + 1) * part], bound, index)
    return index


@numba.njit(**_JIT)
def uniform_commit(
    hidden: np.ndarray,
    lowest: float,
    inv_step: float,
    top: int,
    values: np.ndarray,
    level_index: np.ndarray,
    weights: np.ndarray,
    counts: np.ndarray,
    changed: np.ndarray,
) -> None:
    """Quantize, compare with the stored level, count the write and refresh the weight, in place."""
    for i in numba.prange(hidden.size):
        index = np.intp(_uniform_level(hidden[i], lowest, inv_step, top))
        moved = index != level_index[i]
        changed[i] = moved
        if moved:
            counts[i] += 1
            level_index[i] = index
            weights[i] = values[index]


@numba.njit(**_SERIAL)
def sign_into(x: np.ndarray, out: np.ndarray) -> None:
    """out = +1 where x >= 0 else -1 (sign(0) = +1, NaN -> -1, as np.where(x >= 0, 1, -1)), in
    the calling thread (a batch of hidden activations, ~0.1 ms: less than a parallel launch)."""
    one = out.dtype.type(1)
    for i in range(x.size):
        out[i] = one if x[i] >= 0 else -one
