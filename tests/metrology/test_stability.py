"""Statistics over time: Allan deviation against the known laws of white noise and drift, missing points,
trends with their uncertainties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryodaq.metrology.stability import allan_deviation, linear_trend, octave_taus, summary


def test_allan_deviation_of_white_noise_falls_as_one_over_root_tau_and_a_drift_rises_as_tau():
    rng = np.random.default_rng(2)
    white = rng.normal(0, 1.0, 8192)
    taus, adev, pairs = allan_deviation(white, 60.0)
    assert taus[0] == 60.0 and pairs[0] == 8192 - 1
    np.testing.assert_allclose(adev[:6], 1.0 / np.sqrt(taus[:6] / 60.0), rtol=0.1)  # σ(τ) = σ/√m
    drift = 0.01 * np.arange(1000)  # a linear drift of 0.01 per interval: σ(τ) = rate·τ/√2
    taus, adev, _ = allan_deviation(drift, 1.0)
    np.testing.assert_allclose(adev, 0.01 * taus / math.sqrt(2), rtol=1e-9)


def test_missing_points_keep_the_time_base_and_are_left_out():
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1.0, 4096)
    holed = y.copy()
    holed[1000:1100] = np.nan
    t1, a1, p1 = allan_deviation(y, 1.0)
    t2, a2, p2 = allan_deviation(holed, 1.0)
    assert np.array_equal(t1, t2) and (p2 < p1).all()
    np.testing.assert_allclose(a2, a1, rtol=0.1)
    assert octave_taus(2).size == 0 and octave_taus(12).tolist() == [1, 2, 4]


def test_summary_and_trends():
    s = summary([1.0, 2.0, 3.0, np.nan, 4.0])
    assert (s.n, s.mean, s.median, s.min, s.max) == (4, 2.5, 2.5, 1.0, 4.0)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1)) and s.sem == pytest.approx(s.std / 2)
    rng = np.random.default_rng(4)
    x = np.linspace(0, 10, 200)
    y = 3.0 - 0.5 * x + rng.normal(0, 0.1, x.size)
    t = linear_trend(x, y)
    assert t.slope == pytest.approx(-0.5, abs=3 * t.slope_u) and t.slope_u == pytest.approx(0.1 / np.sqrt(
        np.sum((x - x.mean()) ** 2)), rel=0.15)
    assert t.r < -0.99 and t.n == 200
    assert math.isnan(linear_trend([1, 1, 1], [1, 2, 3]).slope)  # x does not vary
