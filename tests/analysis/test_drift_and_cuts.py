"""Drift correction (NIST mass2's own test case, and the same in amperes: the method must not depend on the
units) and named, stored, combinable cuts."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis import Cut, CutSet, auto_cuts, drift_correct


@pytest.mark.parametrize("scale", [1.0, 1e-7])
def test_recovers_the_gain_slope_in_any_units(scale: float) -> None:
    """mass2 tests/core/test_driftcorrect.py: a, b ~ N(100, 1), b (1 - 0.01 (a - 100)) -> slope 0.01 +- 1e-3."""
    rng = np.random.default_rng(5)
    a = rng.normal(100, 1, 50_000) * scale
    b = rng.normal(100, 1, 50_000) * scale
    tilted = b * (1 - 0.01 / scale * (a - 100 * scale))
    dc = drift_correct(tilted, a)
    assert dc.slope * scale == pytest.approx(0.01, abs=1e-3)  # corrected = v (1 + slope (p - offset))
    assert dc.offset == pytest.approx(100 * scale, rel=1e-3)
    assert dc.entropy_after < dc.entropy_before


def test_narrows_a_drifting_line_and_leaves_a_clean_one_alone() -> None:
    rng = np.random.default_rng(6)
    ptm = np.cumsum(rng.normal(0, 0.02, 20_000)) + 50.0
    line = rng.normal(5000.0, 1.0, ptm.size)
    drifting = line * (1 + 4e-4 * (ptm - 50.0))
    dc = drift_correct(drifting, ptm)
    assert dc.width_after < 0.5 * dc.width_before
    assert np.std(dc.apply(drifting, ptm) - line * (1 - 4e-4 * 0)) < 2.0
    clean = drift_correct(line, ptm)
    assert abs(clean.slope) * np.ptp(ptm) * 5000 < 1.0  # well below the line width
    with pytest.raises(ValueError, match="usable pulses"):
        drift_correct(line[:10], ptm[:10])


def test_cuts_are_named_combinable_and_round_trip() -> None:
    rng = np.random.default_rng(1)
    ch = np.repeat([0, 1], 500)
    rms = np.where(ch == 0, 1.0, 3.0) + rng.normal(0, 0.05, 1000)
    rms[[3, 600]] = [2.0, 9.0]  # outliers of each channel (2.0 would pass channel 1's limit)
    peak = rng.uniform(3, 10, 1000)
    peak[9] = 1.0
    cols = {"pretrig_rms": rms, "peak_value": peak, "flags": np.where(np.arange(1000) == 7, 1, 0)}
    cuts = CutSet([Cut("flags", "flags", {-1: (1 | 2, None)}, "flags"),
                   Cut("small", "peak_value", {-1: (2.0, None)})])
    for c in auto_cuts(cols, ch, n_sigma=8):
        cuts.add(c)
    mask = cuts.evaluate(cols, ch)
    assert mask[3] == cuts.bit("auto_pretrig_rms") and mask[600] & cuts.bit("auto_pretrig_rms")
    assert mask[7] == cuts.bit("flags") and mask[9] == cuts.bit("small")
    only_flags = cuts.good(mask, ["flags"])
    assert not only_flags[7] and only_flags[3]
    assert (cuts.good(mask) == ((mask == 0))).all()
    again = CutSet.from_list(cuts.as_list())
    np.testing.assert_array_equal(again.evaluate(cols, ch), mask)
    with pytest.raises(ValueError, match="twice"):
        cuts.add(Cut("small", "peak_value"))
    with pytest.raises(KeyError, match="needs column"):
        Cut("x", "missing").passes(cols, ch)
