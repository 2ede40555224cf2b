"""Meta-function and metaplastic optimizer properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from archsim.learning.meta import bnn_meta_factor, qnn_meta_factor
from archsim.learning.optimizer import Adam
from archsim.learning.quantizer import Quantizer

weights = hnp.arrays(np.float32, st.integers(1, 100), elements=st.floats(-4, 4, width=32))


@given(levels=st.integers(2, 9), w=weights)
def test_m_star_zero_gives_one(levels, w):
    assert np.all(qnn_meta_factor(w, Quantizer.from_config(levels), 0.0) == 1.0)


@given(w=weights, m=st.floats(0, 6))
def test_two_levels_is_the_bnn_formula(w, m):
    expected = 1.0 - np.tanh(m * np.abs(w.astype(np.float64))) ** 2
    got = qnn_meta_factor(w, Quantizer.from_config(2), m)
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(bnn_meta_factor(w, m), expected, atol=1e-6)


@given(levels=st.integers(2, 9), w=weights, m=st.floats(0.1, 6))
def test_factor_in_unit_interval_and_decreasing_in_magnitude(levels, w, m):
    q = Quantizer.from_config(levels)
    f = qnn_meta_factor(w, q, m)
    assert np.all((f >= 0) & (f <= 1))
    order = np.argsort(np.abs(w))
    assert np.all(np.diff(f[order].astype(np.float64)) <= 1e-6)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_only_magnitude_decreasing_updates_are_attenuated(sign):
    """Same gradient pushing W_H inwards vs outwards: only the inward step is damped."""
    q = Quantizer.from_config(3)
    meta = lambda w: qnn_meta_factor(w, q, 3.0)  # noqa: E731
    w0 = np.array([sign * 0.8, sign * 0.8], dtype=np.float32)
    grad = np.array([sign * 1.0, -sign * 1.0], dtype=np.float32)  # inward, outward
    plain, damped = w0.copy(), w0.copy()
    for opt, param, m in ((Adam(lr=0.01), plain, None), (Adam(lr=0.01), damped, meta)):
        opt.begin_step()
        opt.update(0, param, grad, m)
    step_plain = np.abs(plain - w0)
    step_damped = np.abs(damped - w0)
    assert step_damped[0] < 0.1 * step_plain[0]  # inward: attenuated by M(0.8) = 1 - tanh^2(4.8)
    assert np.isclose(step_damped[1], step_plain[1])  # outward: unchanged
    assert np.sign(damped[1] - w0[1]) == sign  # and it indeed moved outwards


@given(
    hnp.arrays(np.float32, 16, elements=st.floats(-2, 2, width=32)),
    st.floats(0.0, 50.0),
)
def test_decoupled_decay_shrinks_without_crossing_zero_and_is_damped_by_meta(w, decay):
    """No gradient: the only step is the AdamW shrink lr*decay*W_H, times M(W_H) with a meta."""
    q = Quantizer.from_config(4)
    meta = lambda h: qnn_meta_factor(h, q, 3.0)  # noqa: E731
    for m in (None, meta):
        param = w.copy()
        opt = Adam(lr=0.01)
        opt.begin_step()
        opt.update(0, param, np.zeros_like(param), m, decoupled_decay=decay)
        factor = np.float32(1.0) if m is None else m(w)
        expected = w - np.float32(0.01 * decay) * w * factor
        np.testing.assert_allclose(param, expected, rtol=1e-5, atol=1e-7)
        assert np.all(np.abs(param) <= np.abs(w))
        assert np.all(param * w >= 0)  # never across zero (lr * decay <= 0.5 here)
