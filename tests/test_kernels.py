"""The fused kernels of the learning step give bit-identical results to the numpy expressions
they replace (the pre-fusion code, kept here as the reference)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from archsim.learning.meta import TanhMeta
from archsim.learning.optimizer import Adam
from archsim.learning.quantizer import Quantizer
from archsim.learning.storage import QuantizedStore


def reference_adam(param, grad, first, second, steps, meta, lr, lr_scale, wd, decoupled, clip,
                   beta1=0.9, beta2=0.999, eps=1e-8):
    """The numpy Adam_meta update archsim used before the fused kernel (one temporary per op)."""
    if wd:
        grad = grad + np.float32(wd) * param
    first *= np.float32(beta1)
    first += np.float32(1.0 - beta1) * grad
    second *= np.float32(beta2)
    second += np.float32(1.0 - beta2) * (grad * grad)
    correction1 = 1.0 - beta1**steps
    correction2 = 1.0 - beta2**steps
    denom = np.sqrt(second)
    denom *= np.float32(1.0 / np.sqrt(correction2))
    denom += np.float32(eps)
    step = np.divide(first, denom)
    step *= np.float32(lr * lr_scale / correction1)
    factor = None if meta is None else meta(param)
    if factor is not None:
        shrinking = (first * param) > 0
        step = np.where(shrinking, step * factor, step)
    if decoupled:
        decay = np.float32(lr * lr_scale * decoupled) * param
        step += decay if factor is None else decay * factor
    param -= step
    if clip is not None:
        np.clip(param, -clip, clip, out=param)


def reference_level_index(q: Quantizer, hidden: np.ndarray) -> np.ndarray:
    index = (hidden - q.values[0]) * (1.0 / q.uniform_step) + 0.5
    np.floor(index, out=index)
    np.clip(index, 0, q.levels - 1, out=index)
    return index.astype(np.uint8)


def awkward_weights(rng: np.random.Generator, shape: tuple[int, ...], q: Quantizer) -> np.ndarray:
    """Random weights plus exact zeros, thresholds, levels and their float32 neighbours."""
    w = rng.normal(0.0, 0.6, size=shape).astype(np.float32)
    special = np.concatenate([q.thresholds, q.values, [0.0, -0.0, 1.5, -1.5]]).astype(np.float32)
    special = np.concatenate([special, np.nextafter(special, np.float32(2)), np.nextafter(special, np.float32(-2))])
    flat = w.reshape(-1)
    flat[: special.size] = special
    return w


@pytest.mark.parametrize("levels", [2, 3, 4])
@pytest.mark.parametrize(
    "wd, decoupled, clip, lr_scale", [(0.0, 0.0, None, 1.0), (1.5e-6, 0.0, None, 1.0), (0.0, 0.3, 1.2, 0.7)]
)
def test_fused_adam_meta_is_bit_identical_to_numpy(levels, wd, decoupled, clip, lr_scale):
    rng = np.random.default_rng(levels)
    q = Quantizer.from_config(levels)
    meta = TanhMeta(3.0, q) if levels > 2 else TanhMeta(3.0)
    for m in (None, meta, lambda h: meta(h)):  # none, fused tanh form, generic callable
        param = awkward_weights(rng, (37, 53), q)
        ref_param = param.copy()
        ref_first, ref_second = np.zeros_like(param), np.zeros_like(param)
        opt = Adam(lr=0.005, weight_decay=wd)
        for step in range(1, 4):
            grad = rng.normal(0, 1e-2, size=param.shape).astype(np.float32)
            grad[0, :5] = 0.0
            opt.begin_step()
            opt.update(0, param, grad, m, lr_scale, decoupled, clip)
            reference_adam(ref_param, grad, ref_first, ref_second, step, m, 0.005, lr_scale, wd, decoupled, clip)
            np.testing.assert_array_equal(param, ref_param)
            np.testing.assert_array_equal(opt.states[0].first, ref_first)
            np.testing.assert_array_equal(opt.states[0].second, ref_second)


@pytest.mark.parametrize("levels", [2, 3, 4, 16])
def test_fused_level_index_and_commit_match_numpy(levels):
    rng = np.random.default_rng(7)
    q = Quantizer.from_config(levels)
    hidden = [awkward_weights(rng, (41, 29), q)]
    store = QuantizedStore([hidden[0].copy()], q)
    np.testing.assert_array_equal(q.level_index(hidden[0]), reference_level_index(q, hidden[0]))
    np.testing.assert_array_equal(q.level_index(hidden[0].astype(np.float64)), reference_level_index(q, hidden[0]))
    counts = np.zeros(hidden[0].shape, dtype=np.uint32)
    old = reference_level_index(q, hidden[0])
    for _ in range(3):
        new_hidden = hidden[0] + rng.normal(0, 0.3, size=hidden[0].shape).astype(np.float32)
        report = store.commit(0, new_hidden)
        new = reference_level_index(q, new_hidden)
        np.testing.assert_array_equal(report.changed, new != old)
        counts += new != old
        old = new
        np.testing.assert_array_equal(store.write_counts()[0], counts)
        np.testing.assert_array_equal(store.level_index[0], new)
        np.testing.assert_array_equal(store.read(0), q.values.astype(np.float32)[new])


@pytest.mark.parametrize("parts, grain", [(1, 1 << 17), (7, 5), (2, 64)])
@pytest.mark.parametrize("levels, values", [(5, None), (300, None), (4, [-1.0, -0.2, 0.5, 1.0])])
def test_level_changes_match_level_index_compare_and_flatnonzero(monkeypatch, parts, grain, levels, values):
    """Quantizer.level_changes (one fused scan, or two-pass chunks split over threads) against
    level_index, != and np.flatnonzero: same levels and dtype, mask and sorted indices."""
    from archsim.learning import kernels

    monkeypatch.setattr(kernels, "SCAN_PARTS", parts)
    monkeypatch.setitem(kernels.SCAN_GRAIN, "stream", grain)
    rng = np.random.default_rng(levels)
    q = Quantizer.from_config(levels, values)
    for shape in [(1,), (7,), (13, 17), (301, 33)]:
        hidden = rng.normal(0, 0.6, shape).astype(np.float32)
        if hidden.size > 3000:  # exact thresholds, levels and their neighbours
            hidden = awkward_weights(rng, shape, q)
        old = q.level_index(hidden + rng.normal(0, 0.05, shape).astype(np.float32))
        old.reshape(-1)[:3] = q.level_index(hidden).reshape(-1)[:3]  # unchanged first weights
        for h in (hidden, hidden.astype(np.float64)):
            new, changed, index = q.level_changes(h, old)
            expected = q.level_index(h)
            assert new.dtype == expected.dtype and changed.shape == shape and index.dtype == np.intp
            np.testing.assert_array_equal(new, expected)
            np.testing.assert_array_equal(changed, expected != old)
            np.testing.assert_array_equal(index, np.flatnonzero(expected != old))
    new, changed, index = q.level_changes(hidden, new)  # nothing moved
    assert not changed.any() and index.size == 0


def two_pass_level_changes(q: Quantizer, hidden: np.ndarray, old: np.ndarray):
    """The uniform level_changes before the one-scan kernel: the float64 level arithmetic
    (Quantizer.level_index), compare and count per chunk, then the collect pass over the mask
    (kept as the reference)."""
    from archsim.learning import kernels

    new = q.level_index(hidden)
    changed = np.empty(old.shape, dtype=bool)
    mask = changed.reshape(-1)
    offsets = np.empty(kernels.scan_chunks(mask.size, "stream"), dtype=np.int64)
    total = kernels.level_changes(old.reshape(-1), new.reshape(-1), mask, offsets)
    index = np.empty(total, dtype=np.intp)
    if total:
        kernels.collect_changed(mask, mask[: mask.size // 8 * 8].view(np.uint64), offsets, index)
    return new, changed, index


@pytest.mark.parametrize("parts, grain", [(1, 1 << 17), (7, 5), (3, 64)])
@pytest.mark.parametrize("levels", [2, 3, 4, 5])
def test_one_scan_level_changes_match_the_two_pass_kernels(monkeypatch, parts, grain, levels):
    """The one-scan uniform level_changes (threshold levels up to 4 levels, indices collected
    per chunk into a bounded scratch) against the two-pass kernels: equal levels, mask and
    indices over sizes around the 8-byte words, the 4096-weight blocks and the chunk bounds;
    no change, ~2 % changed, every weight changed (each chunk over its bound), and the changes
    crowded into one chunk (that chunk alone over its bound); float32 and float64."""
    from archsim.learning import kernels

    monkeypatch.setattr(kernels, "SCAN_PARTS", parts)
    monkeypatch.setitem(kernels.SCAN_GRAIN, "stream", grain)
    q = Quantizer.from_config(levels)
    rng = np.random.default_rng(levels + parts)
    for size in [1, 7, 8, 9, 63, 65, 4095, 4096, 4097, 3 * 4096 + 13, 50_021]:
        hidden = rng.normal(0.0, 0.5, size).astype(np.float32)
        if size > 200:
            hidden = awkward_weights(rng, (size,), q)
        for dtype in (np.float32, np.float64):
            h = hidden.astype(dtype)
            base = q.level_index(h)
            near = q.level_index(h + rng.normal(0.0, 0.02, size).astype(dtype))
            crowded = near.copy()  # every weight of a quarter changed: its chunks over their bound
            crowded[size // 3 : size // 3 + size // 4] = (base[size // 3 : size // 3 + size // 4] + 1) % q.levels
            for old in (base, near, (base + 1) % q.levels, crowded):
                new, changed, index = q.level_changes(h, old)
                ref_new, ref_changed, ref_index = two_pass_level_changes(q, h, old)
                assert new.dtype == ref_new.dtype and index.dtype == np.intp
                np.testing.assert_array_equal(new, ref_new)
                np.testing.assert_array_equal(changed, ref_changed)
                np.testing.assert_array_equal(index, ref_index)
                np.testing.assert_array_equal(index, np.flatnonzero(new != old))


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_level_thresholds_are_where_the_float64_arithmetic_steps(levels):
    """Each threshold reaches its level in the float64 arithmetic and its lower neighbour does
    not; beyond the arithmetic's integer range (2^63 steps) and at infinity the thresholds give
    the outer levels, as numpy's floor and clip (the reference) do."""
    q = Quantizer.from_config(levels)
    for dtype in (np.float32, np.float64):
        t = q.level_thresholds(dtype)
        assert t.dtype == dtype and t.size == 3 and np.isnan(t[levels - 1:]).all()
        below = np.nextafter(t[: levels - 1], dtype(-np.inf))
        np.testing.assert_array_equal(reference_level_index(q, t[: levels - 1]), np.arange(1, levels))
        np.testing.assert_array_equal(reference_level_index(q, below), np.arange(levels - 1))
        extreme = np.array([np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0], dtype=dtype)
        new, changed, index = q.level_changes(extreme, np.zeros(extreme.shape, dtype=np.uint8))
        np.testing.assert_array_equal(new, reference_level_index(q, extreme))
        nan = q.level_changes(np.array([np.nan], dtype=dtype), np.ones(1, dtype=np.uint8))
        assert nan[0][0] == 0 and nan[2].tolist() == [0]  # as the arithmetic kernels give NaN


def test_scans_split_only_large_work_and_never_under_a_one_thread_budget():
    """scan_chunks: one pass below two grains of work, at most SCAN_PARTS chunks above; with
    OMP_NUM_THREADS=1 (sweep workers) every kernel runs as one pass in the calling thread."""
    import subprocess
    import sys

    from archsim.learning import kernels

    grain = kernels.SCAN_GRAIN["gather"]
    assert kernels.scan_chunks(2 * grain - 1, "gather") == 1
    assert 1 <= kernels.scan_chunks(10**8, "gather") <= kernels.SCAN_PARTS
    assert kernels.scan_chunks(10**8, "stream") == kernels.SCAN_PARTS
    code = ("from archsim.learning import kernels as k; "
            "print(k.THREADS, k.SCAN_PARTS, k.scan_chunks(10**8, 'stream'))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "1"]


def test_fused_sign_matches_numpy_where():
    from archsim.learning.network import sign

    x = np.random.default_rng(3).normal(size=(50, 70)).astype(np.float32)
    x.reshape(-1)[:7] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45]
    expected = np.where(x >= 0, np.float32(1.0), np.float32(-1.0))
    got = sign(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(sign(x[:, ::3]), expected[:, ::3])  # non-contiguous input


def test_kernels_called_from_several_threads_at_once_agree():
    """Threaded callers (e.g. Dask workers with several threads) take turns on the kernels."""
    from concurrent.futures import ThreadPoolExecutor

    q = Quantizer.from_config(4)
    w = np.random.default_rng(5).normal(0, 0.6, size=(300, 200)).astype(np.float32)
    expected = reference_level_index(q, w)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: q.level_index(w), range(16)))
    for got in results:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("levels", [None, 2, 3, 4])
def test_fused_meta_argument_matches_numpy(levels):
    """TanhMeta.tanh_argument (one compiled pass for uniform levels) against the numpy
    expression it replaced: np.abs, then *= m / (I / 2), in float32, bit for bit."""
    q = None if levels is None else Quantizer.from_config(levels)
    w = awkward_weights(np.random.default_rng(levels or 1), (64, 257), q or Quantizer.from_config(2))
    w.reshape(-1)[-3:] = [np.nan, np.inf, -np.inf]
    meta = TanhMeta(3.0, q)
    want = np.abs(w)
    want *= np.float32(3.0) / (np.float32(0.5) * np.float32(q.uniform_step)) if q else np.float32(3.0)
    out = np.full_like(w, 7.0)
    got = meta.tanh_argument(w, out=out)
    assert got is out
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.array_equal(meta.tanh_argument(w).view(np.uint32), want.view(np.uint32))
    strided = np.asfortranarray(w)  # not C-contiguous: the numpy path
    assert np.array_equal(meta.tanh_argument(strided), want, equal_nan=True)


@pytest.mark.parametrize("size", [1, 17, (1 << 18) - 1, 1 << 18, (1 << 18) + 37, 3 * (1 << 17) + 5])
def test_tanh_in_place_split_over_threads_equals_numpy(monkeypatch, size):
    from archsim.learning import kernels

    monkeypatch.setattr(kernels, "THREADS", 2)
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 4).astype(np.float32)
    x[: min(size, 6)] = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40], dtype=np.float32)[: min(size, 6)]
    want = np.tanh(x)
    got = x.copy()
    assert kernels.tanh_in_place(got) is got
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    grid = x[: size // 7 * 7].reshape(7, -1)  # a 2-D array, as the optimizer's scratch is
    want2 = np.tanh(grid)
    kernels.tanh_in_place(grid)
    assert np.array_equal(grid.view(np.uint32), want2.view(np.uint32))


def three_pass_meta_adam(param, grad, first, second, scratch, scale, adam_args):
    """The meta-Adam step as three whole-array passes (before the blocked kernel): the
    argument, numpy's tanh, the Adam kernel."""
    from archsim.learning import kernels

    kernels.scaled_abs_into(param, scale, scratch)
    np.tanh(scratch, out=scratch)
    kernels.adam_step(param, grad, first, second, scratch, 1, adam_args)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size, block", [(1, 64), (100, 64), (4096, 64), (5000, 96), (3 * 4096 + 77, 512)])
@pytest.mark.parametrize("decoupled, clip", [(0.0, 0.0), (0.02, 0.9)])
def test_meta_adam_in_blocks_equals_the_three_passes(monkeypatch, threads, size, block, decoupled, clip):
    """Blocks, block remainders and the helper thread's half: bit for bit the three passes,
    including awkward weights (thresholds, zeros, +-0, NaN, inf) and zero gradients."""
    from archsim.learning import kernels

    monkeypatch.setattr(kernels, "THREADS", threads)
    monkeypatch.setattr(kernels, "META_ADAM_BLOCK", block)
    monkeypatch.setattr(kernels, "HALVES_MIN", 64)
    rng = np.random.default_rng(size)
    q = Quantizer.from_config(4)
    param = awkward_weights(rng, (size,), q) if size > 60 else rng.normal(0, 0.6, size).astype(np.float32)
    if size > 100:
        param[-4:] = [np.nan, np.inf, -np.inf, -0.0]
    grad = rng.normal(0, 1e-2, size).astype(np.float32)
    grad[: size // 5] = 0.0
    first = rng.normal(0, 1e-3, size).astype(np.float32)
    second = rng.random(size).astype(np.float32) * np.float32(1e-4)
    f32 = np.float32
    adam_args = (f32(1e-6), f32(0.9), f32(0.1), f32(0.999), f32(0.001), f32(1.3), f32(1e-8), f32(0.004),
                 f32(0.004 * decoupled), f32(clip))
    scale = f32(3.0) / (f32(0.5) * f32(q.uniform_step))
    want = [a.copy() for a in (param, grad, first, second)]
    three_pass_meta_adam(*want, np.empty(size, np.float32), scale, adam_args)
    got = [a.copy() for a in (param, grad, first, second)]
    kernels.meta_adam_in_blocks(*got, np.empty(size, np.float32), scale, adam_args)
    for g, w in zip(got, want):
        assert np.array_equal(g.view(np.uint32), w.view(np.uint32))


def test_adam_takes_the_blocked_meta_path_only_for_a_uniform_tanh_meta(monkeypatch):
    """A uniform TanhMeta goes through the blocked kernel; a non-uniform level set and a
    generic callable keep the whole-array passes (checked bit for bit above)."""
    from archsim.learning import optimizer

    calls = []
    real = optimizer.meta_adam_in_blocks
    monkeypatch.setattr(optimizer, "meta_adam_in_blocks", lambda *a: calls.append(1) or real(*a))
    w = np.random.default_rng(0).normal(0, 0.5, (40, 30)).astype(np.float32)
    grad = np.full_like(w, 1e-3)
    uniform = TanhMeta(3.0, Quantizer.from_config(4))
    spaced = TanhMeta(3.0, Quantizer(np.array([-1.0, -0.2, 0.3, 1.0])))
    for meta, expect in ((uniform, 1), (TanhMeta(3.0), 1), (spaced, 0), (lambda h: uniform(h), 0), (None, 0)):
        calls.clear()
        opt = Adam(lr=0.01)
        opt.begin_step()
        opt.update(0, w.copy(), grad, meta)
        assert len(calls) == expect


@pytest.mark.parametrize("meta_mode", [0, 1, 2])
def test_adam_in_halves_equals_one_pass(monkeypatch, meta_mode):
    """A large layer's Adam step (no meta-function, a non-uniform meta-function's tanh, a
    generic factor) in halves on this and the helper thread: the same per element as one pass
    (the whole-array test above covers one pass against numpy)."""
    from archsim.learning import kernels, optimizer

    monkeypatch.setattr(kernels, "THREADS", 2)
    n = (1 << 18) + 1001
    rng = np.random.default_rng(meta_mode)
    param = awkward_weights(rng, (n,), Quantizer.from_config(4))
    grad = rng.normal(0, 1e-2, n).astype(np.float32)
    factor = np.tanh(rng.normal(0, 1, n)).astype(np.float32)
    meta = {0: None, 1: TanhMeta(3.0, Quantizer(np.array([-1.0, -0.2, 0.3, 1.0]))), 2: lambda h: factor}[meta_mode]
    results = []
    for halves_min in (64, 1 << 40):  # in halves, then one pass
        monkeypatch.setattr(kernels, "HALVES_MIN", halves_min)
        opt = optimizer.Adam(lr=0.01, weight_decay=1e-6)
        w = param.copy()
        for _ in range(2):
            opt.begin_step()
            opt.update(0, w, grad, meta, 1.0, 0.01, 0.9)
        results.append((w, opt.states[0].first, opt.states[0].second))
    for a, b in zip(*results):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_in_halves_called_on_the_helper_thread_runs_there_instead_of_waiting_on_itself(monkeypatch):
    from archsim.learning import kernels

    monkeypatch.setattr(kernels, "THREADS", 2)
    monkeypatch.setattr(kernels, "HALVES_MIN", 16)
    seen = []

    def work(start, stop):
        seen.append((start, stop, kernels.on_helper_thread()))

    kernels.in_halves(100, work)  # from the main thread: two halves, one of them on the helper
    assert sorted(seen) == [(0, 48, False), (48, 100, True)]
    seen.clear()
    kernels.helper_thread().submit(kernels.in_halves, 100, work).result(timeout=30)
    assert seen == [(0, 100, True)]


def test_meta_argument_in_halves_matches_one_pass(monkeypatch):
    """TanhMeta.tanh_argument cut in halves with the helper thread: the same bits as one pass."""
    from archsim.learning import kernels

    q = Quantizer.from_config(4)
    w = awkward_weights(np.random.default_rng(9), (97, 41), q)
    meta = TanhMeta(3.0, q)
    want = meta.tanh_argument(w)
    monkeypatch.setattr(kernels, "THREADS", 2)
    monkeypatch.setattr(kernels, "HALVES_MIN", 16)
    assert kernels.halves(w.size) > 0
    assert np.array_equal(meta.tanh_argument(w).view(np.uint32), want.view(np.uint32))
