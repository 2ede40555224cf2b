"""Compiled pass of the schedule's per-batch write accounting (numba).

Every training batch the schedule turns each layer's commit report (the changed weights'
flat indices and their pulse counts) into per-tile columns: level changes, pulses and the
sequential pulse-and-verify steps (:meth:`archsim.engine.schedule.Engine.write_columns`).
Written with numpy this took a dozen whole-array passes per layer (divmod, two bincounts,
``np.maximum.at`` and a nonzero scan over a row-by-column-block table); here it is one loop
over the changed weights.

Every output is an integer sum or maximum of integers, which do not depend on the order of
the additions, so the loop gives exactly the numpy code's numbers (tests/test_write_kernel.py
keeps that code as the reference).
"""

from __future__ import annotations

import numba
import numpy as np

# One thread (a few hundred microseconds of work: a parallel launch would cost more than it
# saves); nogil lets another thread of the process run meanwhile.
_JIT = {"cache": True, "nogil": True, "fastmath": False}

NONE, COMPACT, PER_WEIGHT = 0, 1, 2
"""How a pulse array is laid out: absent (one pulse per changed weight), one entry per
changed weight in index order, or one entry per weight of the layer (flat)."""

OK, UNSORTED, OUT_OF_RANGE = 0, 1, 2
"""What :func:`tile_write_counts` found about the index."""


@numba.njit(inline="always")
def _pulse_of(values: np.ndarray, layout: int, k: int, flat: int) -> int:
    if layout == NONE:
        return 1
    if layout == COMPACT:
        return np.int64(values[k])
    return np.int64(values[flat])


@numba.njit(**_JIT)
def tile_write_counts(
    index: np.ndarray,
    pulses: np.ndarray,
    pulses_layout: int,
    steps: np.ndarray,
    steps_layout: int,
    n_weights: int,
    n_out: int,
    rows: int,
    block_of_column: np.ndarray,
    col_blocks: int,
    row_parallel: bool,
    changes: np.ndarray,
    totals: np.ndarray,
    tile_steps: np.ndarray,
) -> tuple[int, int]:
    """Per local tile (row block major, then column block) of one layer: add the level
    changes to ``changes``, their pulses to ``totals`` and their sequential steps to
    ``tile_steps`` (all int64, zeroed by the caller).

    ``index`` holds the changed weights' flat indices into the layer's (n_in, n_out) matrix
    in increasing order, as ``np.flatnonzero`` gives them; ``block_of_column`` the column
    block of each of the ``n_out`` columns; ``steps`` with ``steps_layout`` NONE means the
    pulses. With ``row_parallel`` a tile pulses a row's devices together, so a row costs the
    largest step count of its changed weights in the tile and the tile's steps are the sum
    over its rows; otherwise its steps are its pulses.

    Sorted flat indices visit each row in turn and, within a row, the column blocks in turn,
    so every (row, column block) is one contiguous run: its maximum needs one running value,
    added to the tile when the next run starts.

    Returns (status, pulses of the layer): status OK, or UNSORTED / OUT_OF_RANGE (the first
    index out of order or outside the layer) with nothing meaningful in the outputs.
    """
    pulse_sum = 0
    row_start = row_end = 0  # flat indices of the current row: [row_start, row_end)
    tile_base = run_base = 0
    run_key = -1  # (row, column block) of the current run, as row * col_blocks + block
    run_tile = 0
    run_max = 0  # largest step count of the current run
    previous = -1
    for k in range(index.size):
        flat = np.int64(index[k])
        if flat < 0 or flat >= n_weights:
            return OUT_OF_RANGE, 0
        if flat < previous:
            return UNSORTED, 0
        previous = flat
        # integer division only when the row changes and a table for the column block:
        # a division per changed weight cost more than all the rest of the loop
        if flat >= row_end:
            row = flat // n_out
            row_start = row * n_out
            row_end = row_start + n_out
            tile_base = (row // rows) * col_blocks
            run_base = row * col_blocks
        block = block_of_column[flat - row_start]
        tile = tile_base + block
        p = _pulse_of(pulses, pulses_layout, k, flat)
        changes[tile] += 1
        totals[tile] += p
        pulse_sum += p
        if row_parallel:
            s = p if steps_layout == NONE else _pulse_of(steps, steps_layout, k, flat)
            # without a branch on "a new run starts" (about every other weight: a branch
            # the processor cannot predict): the finished run's maximum is added times 0 or 1
            new = np.int64(run_base + block != run_key)
            tile_steps[run_tile] += run_max * new
            run_max = max(run_max * (1 - new), s)
            run_key = run_base + block
            run_tile = tile
    if row_parallel:
        tile_steps[run_tile] += run_max
    else:
        tile_steps[:] = totals
    return OK, pulse_sum
