"""The next reads' noise drawn while the commit runs (archsim/devices/readahead.py): the same
draws and the same generator state as drawing at the read, whatever happens in between."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.config import DeviceConfig
from archsim.devices import DeviceStore, readahead
from archsim.devices.pcg64 import outputs_between
from archsim.learning.quantizer import Quantizer

NOISY = dict(c2c_sigma=0.03, max_pulses=30, tolerance=0.01, d2d_gain_sigma=0.2, read_noise_sigma=0.02)


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 17, 1 << 20, 123_456_789, (1 << 100) + 5, (1 << 128) - 1])
def test_outputs_between_inverts_advance(steps):
    start = np.random.PCG64(11)
    end = np.random.PCG64(11)
    end.advance(steps)
    state = start.state["state"]
    assert outputs_between(state["state"], end.state["state"]["state"], state["inc"]) == steps


def test_outputs_between_counts_draws():
    bitgen = np.random.PCG64(3)
    before = bitgen.state["state"]
    np.random.Generator(bitgen).standard_normal(10_001)  # float64: one output per try
    bitgen.random_raw(7)
    after = bitgen.state["state"]["state"]
    assert outputs_between(before["state"], after, before["inc"]) >= 10_008


def stores(shapes=((60, 40), (40, 7)), **device):
    """Two identical stores, the second without read-ahead."""
    rng = np.random.default_rng(0)
    hidden = [rng.uniform(-1.2, 1.2, size=s).astype(np.float32) for s in shapes]
    q = Quantizer.from_config(5)
    config = DeviceConfig(**{**NOISY, **device})
    ahead = DeviceStore([h.copy() for h in hidden], q, config, np.random.default_rng(1))
    plain = DeviceStore([h.copy() for h in hidden], q, config, np.random.default_rng(1))
    plain.read_ahead = None
    return ahead, plain, hidden


@pytest.fixture
def enabled(monkeypatch):
    monkeypatch.setattr(readahead, "ENABLED", True)


def step(store: DeviceStore, hidden: list[np.ndarray], rng: np.random.Generator, between=None):
    """Commit every layer's moved hidden weights, then read every layer (copies)."""
    for layer, h in enumerate(hidden):
        h += rng.normal(0.0, 0.08, size=h.shape).astype(np.float32)
        store.commit(layer, h)
    if between is not None:
        between(store)
    return [store.read(layer).copy() for layer in range(len(hidden))]


def assert_same_run(ahead, plain, hidden, steps=8, between=None):
    ra, rp = np.random.default_rng(5), np.random.default_rng(5)
    ha, hp = [h.copy() for h in hidden], [h.copy() for h in hidden]
    for _ in range(steps):
        got = step(ahead, ha, ra, between)
        want = step(plain, hp, rp, between)
        for g, w in zip(got, want):
            assert np.array_equal(g.view(np.uint32), w.view(np.uint32))
        assert ahead.rng.bit_generator.state == plain.rng.bit_generator.state
    for la, lp in zip(ahead.layers, plain.layers):
        for pa, pp in zip(la.planes, lp.planes):
            assert np.array_equal(pa.g, pp.g) and np.array_equal(pa.pulses, pp.pulses)


def test_reads_drawn_ahead_equal_reads_drawn_at_the_read(enabled):
    ahead, plain, hidden = stores()
    assert_same_run(ahead, plain, hidden)
    assert ahead.read_ahead.outcomes["used"] >= 8  # it was used, not only tried


def test_a_buffered_half_word_before_the_read_is_drawn_first(enabled):
    """A float32 draw between the commit and the read leaves a half-word buffered (genuine or
    stale): the first draw takes it, and the rest still come from the drawn-ahead values."""
    ahead, plain, hidden = stores()
    assert_same_run(ahead, plain, hidden, between=lambda s: s.rng.random(3, dtype=np.float32))
    assert ahead.read_ahead.outcomes["used"] >= 8


def test_skipping_too_far_falls_back_to_drawing(enabled, monkeypatch):
    monkeypatch.setattr(readahead, "SKIP_FRACTION", 3.0)
    ahead, plain, hidden = stores()
    assert_same_run(ahead, plain, hidden)
    assert ahead.read_ahead.outcomes["missed"] > 0


def test_drawing_too_few_ahead_completes_in_order(enabled, monkeypatch):
    monkeypatch.setattr(readahead, "SKIP_FRACTION", 0.0)
    monkeypatch.setattr(readahead, "MARGIN_FRACTION", 0.0)  # the skipped outputs eat the reads' share
    ahead, plain, hidden = stores()
    assert_same_run(ahead, plain, hidden)
    assert ahead.read_ahead.outcomes["short"] > 0


def test_many_draws_between_commit_and_read(enabled):
    """Other use of the generator in between (more than the whole read-ahead): still exact."""
    ahead, plain, hidden = stores()
    assert_same_run(ahead, plain, hidden, between=lambda s: s.rng.standard_normal(50_000))


def test_evaluation_reads_after_the_training_reads(enabled):
    ahead, plain, hidden = stores()
    assert_same_run(ahead, plain, hidden, steps=2)
    for _ in range(3):  # reads with no commit in between
        for layer in range(len(hidden)):
            assert np.array_equal(ahead.read(layer), plain.read(layer))
    assert ahead.rng.bit_generator.state == plain.rng.bit_generator.state


def test_disabled_with_one_thread_and_for_other_samplers(monkeypatch):
    monkeypatch.setattr(readahead, "ENABLED", False)
    ahead, plain, hidden = stores()
    assert_same_run(ahead, plain, hidden, steps=2)
    assert ahead.read_ahead.outcomes == {"used": 0, "missed": 0, "short": 0}
    box, _, _ = stores(read_noise_sampler="box-muller")
    assert box.read_ahead is None
