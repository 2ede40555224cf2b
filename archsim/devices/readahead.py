"""Read noise drawn ahead: the next reads' standard normals drawn while the commit runs.

A training step reads every layer with fresh read noise (3.2 M float32 standard normals for
the paper's first layer) from the device generator, right after the previous step's commit
drew its write-verify pulses from the same generator. The read cannot draw before the commit
has drawn its last pulse: where the generator will then stand depends on how many pulses the
devices took. But PCG64 can be placed anywhere ahead (``PCG64.advance``), the distance
between two of its states can be computed (:func:`~archsim.devices.pcg64.outputs_between`),
and 99 % of float32 ziggurat draws take exactly one 32-bit word, so two sequences of draws
started at different words almost always meet at a word where both start a draw, and agree
from there on (the same property the split fill of :mod:`archsim.devices.normal` uses).

So when a commit starts, :class:`ReadAhead` takes the generator's state, skips a guess of
the outputs the commits will take (a fraction of what they took the last time), and draws
the next reads' normals from there on a low-priority thread: it runs on the core the commit
leaves idle (the write-verify's pulse rounds are sequential) and yields to the commit's own
threads. At the read, the generator's true position is computed; where the true sequence of
draws meets the drawn-ahead one, the read takes the drawn-ahead values (scaled: ``weights +
std * z``) instead of drawing them. Every value, and the generator state after, is exactly
what ``rng.standard_normal`` would give (tests/test_readahead.py); when the sequences do not
meet (the guess skipped too far, or the meeting word fell inside a multi-word draw, ~1 %)
the read draws as before. Nothing here depends on timing: the read waits for the thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from archsim.devices import normal
from archsim.devices.pcg64 import generator_at, outputs_between, set_generator
from archsim.learning.kernels import THREADS, kernel_launch

# Fraction of the outputs the last commits took that the next draw-ahead skips: the commits'
# draws vary from step to step (measured on the paper's first layer: consecutive steps differ
# by 2-8 %, up to 30 % in the first steps); skipping too few wastes a few draws, too many
# misses the read.
SKIP_FRACTION = 0.8
# Draws beyond the reads' own, as a fraction of the commits' last outputs, so that the
# drawn-ahead sequence still covers the reads when the commits took more than the skip.
MARGIN_FRACTION = 0.5
# Niceness of the draw-ahead thread (Linux: per thread): it should take only a core that the
# commit's own threads leave idle.
NICENESS = 19

_MAX_WORD = 1 << 31
ENABLED = THREADS > 1  # with one thread per process (sweep workers) there is no idle core


@dataclass
class _Job:
    state: dict  # the generator's state when the commit started (numpy's PCG64 state dict)
    start: int  # the first word drawn ahead, counted from ``state``
    future: Future
    z: np.ndarray  # drawn-ahead standard normals (float32, unscaled)
    starts: np.ndarray  # the word each of them started at (int32, counted from ``state``)
    measured: bool = False  # the commits' outputs were measured at the first read after them
    spent: bool = False  # the reads have gone past the drawn-ahead values


_LOW: list[tuple[int, ThreadPoolExecutor]] = []
_LOW_LOCK = threading.Lock()


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: an ordinary thread
        pass


def low_priority_thread() -> ThreadPoolExecutor:
    """One low-priority thread per process for work that should use only idle cores (a forked
    child gets its own)."""
    with _LOW_LOCK:
        if not _LOW or _LOW[0][0] != os.getpid():
            _LOW[:] = [(os.getpid(), ThreadPoolExecutor(1, "archsim-ahead", initializer=_lower_priority))]
        return _LOW[0][1]


class ReadAhead:
    """Draws the next reads' read-noise normals of one generator while its commits run.

    :meth:`start` when a commit begins (a no-op while drawn-ahead values wait for their
    reads), :meth:`fill` at every read: True when it filled ``out`` exactly as
    :func:`archsim.devices.normal.scaled_normal_into` would have (generator state after
    included), False when the read must draw itself (nothing was changed).
    """

    def __init__(self) -> None:
        self._job: _Job | None = None
        self._commit_outputs = 0  # outputs the commits took before the last read
        self._scratch: tuple[np.ndarray, np.ndarray] | None = None
        self.outcomes: dict[str, int] = {"used": 0, "missed": 0, "short": 0}

    def start(self, rng: np.random.Generator, draws: int) -> None:
        """Begin drawing ``draws`` normals ahead (all the next reads' together), from the
        generator's state now past the outputs the commits are expected to take."""
        if not ENABLED or draws <= 0 or (self._job is not None and not self._job.measured):
            return
        if type(rng.bit_generator) is not np.random.PCG64 or not normal.fast_path_ok():
            return
        if self._job is not None:
            self._job.future.result()  # its scratch is about to be reused
        state = rng.bit_generator.state
        start = 2 * int(self._commit_outputs * SKIP_FRACTION)  # a fresh output's low word
        count = draws + int(self._commit_outputs * 2 * MARGIN_FRACTION)
        if start + 4 * count >= _MAX_WORD:  # word positions are kept as int32
            return
        z, starts = self._buffers(count)
        gen = generator_at(state, start)
        future = low_priority_thread().submit(normal._ziggurat_into, gen, start, z, normal._NO_SCALE,
                                              normal._NO_SCALE, 0, count, normal._NO_STOP, starts)
        self._job = _Job(state, start, future, z, starts)

    def _buffers(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        if self._scratch is None or self._scratch[0].size < count:
            self._scratch = (np.empty(count, dtype=np.float32), np.empty(count, dtype=np.int32))
        return self._scratch[0][:count], self._scratch[1][:count]

    def cancel(self) -> None:
        """Forget the drawn-ahead values (waits for the thread)."""
        if self._job is not None:
            self._job.future.result()
            self._job = None

    def fill(self, rng: np.random.Generator, weights: np.ndarray, std: np.ndarray, out: np.ndarray) -> bool:
        """``out = weights + std * rng.standard_normal(out.shape, dtype=np.float32)`` from the
        drawn-ahead values, when the generator's true position meets them; see the class."""
        job = self._job
        if job is None or job.spent or out.size == 0 or type(rng.bit_generator) is not np.random.PCG64:
            return False
        drawn, ahead_end = job.future.result()
        now = rng.bit_generator.state
        inc = job.state["state"]["inc"]
        if now["state"]["inc"] != inc:
            return False
        outputs = outputs_between(job.state["state"]["state"], now["state"]["state"], inc)
        if not job.measured:
            job.measured = True
            self._commit_outputs = outputs
        flat_out = out.reshape(-1)
        flat_std = np.ascontiguousarray(std, dtype=np.float32).reshape(-1)
        flat_w = np.ascontiguousarray(weights, dtype=np.float32).reshape(-1)
        i, pos = 0, 2 * outputs  # pos: the next word, counted from the job's state
        if now["has_uint32"]:
            # the buffered half-word comes first; it may be stale (float64 draws leave it),
            # so it is not a word of the job's sequence: the first draw is made here
            i, after = normal._ziggurat_into(generator_at(now, -1), -1, flat_out, flat_std, flat_w, 0, 1,
                                             normal._NO_STOP, normal._NO_STARTS)
            pos = 2 * outputs + after
        if pos >= ahead_end:  # past them (e.g. evaluation reads after the training reads)
            job.spent = True
            return False
        if pos < job.start:  # the commits took fewer outputs than skipped
            self.outcomes["missed"] += 1
            return False
        meet = int(job.starts[:drawn].searchsorted(np.int32(pos)))
        if meet >= drawn or job.starts[meet] != pos:
            self.outcomes["missed"] += 1
            return False
        n = flat_out.size
        take = min(drawn - meet, n - i)
        with kernel_launch():
            normal._scale_into(job.z[meet:meet + take], flat_std[i:i + take], flat_w[i:i + take],
                               flat_out[i:i + take])
        i += take
        pos = int(job.starts[meet + take]) if meet + take < drawn else ahead_end
        job.spent = meet + take >= drawn
        gen = generator_at(job.state, pos)
        if i < n:  # drawn ahead too few: the rest in order from where they stop
            self.outcomes["short"] += 1
            normal._ziggurat_into(gen, pos, flat_out, flat_std, flat_w, i, n, normal._NO_STOP, normal._NO_STARTS)
        set_generator(rng.bit_generator, job.state, gen)
        self.outcomes["used"] += 1
        return True
