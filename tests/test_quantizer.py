"""Quantizer properties (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from archsim.learning.quantizer import Quantizer, uniform_levels

weights = hnp.arrays(
    np.float32, st.integers(1, 200), elements=st.floats(-3, 3, width=32, allow_nan=False)
)


@given(levels=st.integers(2, 17), w=weights)
def test_output_is_always_a_level(levels, w):
    q = Quantizer.from_config(levels)
    out = q.quantize(w)
    assert np.all(np.isin(out, q.values.astype(np.float32)))


@given(levels=st.integers(2, 17), w=weights)
def test_nearest_level(levels, w):
    q = Quantizer.from_config(levels)
    out = q.quantize(w).astype(np.float64)
    distances = np.abs(w.astype(np.float64)[:, None] - q.values[None, :])
    assert np.all(np.abs(out - w) <= distances.min(axis=1) + 1e-6)


@given(levels=st.integers(2, 17), w=weights)
def test_monotone_and_odd_symmetric(levels, w):
    q = Quantizer.from_config(levels)
    order = np.argsort(w, kind="stable")
    out = q.quantize(w[order])
    assert np.all(np.diff(out) >= 0)
    # Symmetric level set: Q(-w) = -Q(w) away from the decision thresholds.
    away = np.min(np.abs(w[:, None] - q.thresholds[None, :]), axis=1) > 1e-4
    assert np.array_equal(q.quantize(-w)[away], -q.quantize(w)[away])


@given(levels=st.integers(2, 17))
def test_levels_are_fixed_points_and_uniform(levels):
    q = Quantizer.from_config(levels)
    values = q.values.astype(np.float32)
    assert np.array_equal(q.quantize(values), values)
    assert np.allclose(np.diff(uniform_levels(levels)), 2 / (levels - 1))
    assert q.values[0] == -1 and q.values[-1] == 1


@settings(max_examples=50)
@given(
    values=st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=9, unique=True),
    w=weights,
)
def test_non_uniform_level_set_agrees_with_brute_force(values, w):
    values = sorted(values)
    if np.min(np.diff(values)) < 1e-3:
        return
    q = Quantizer(np.array(values))
    index = q.level_index(w)
    brute = np.abs(w.astype(np.float64)[:, None] - q.values[None, :]).argmin(axis=1)
    ties = np.isclose(np.abs(w[:, None] - q.thresholds[None, :]).min(axis=1), 0, atol=1e-5)
    assert np.array_equal(index[~ties], brute[~ties])


def test_two_levels_is_sign():
    q = Quantizer.from_config(2)
    w = np.array([-0.3, -1e-6, 1e-6, 0.7], dtype=np.float32)
    assert np.array_equal(q.quantize(w), np.sign(w))


def test_interval_width_non_uniform():
    q = Quantizer(np.array([-1.0, 0.0, 0.5, 1.0]))
    assert np.allclose(q.interval_width(np.array([-0.5, 0.2, 0.7, 3.0, -3.0])), [1, 0.5, 0.5, 0.5, 1])
