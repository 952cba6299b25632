"""Energy calibration: automatic assignment of the strongest peaks to lines, monotonic gain curves."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis import CalibrationPoint, GainCurve, assign_lines, find_line_peaks, get_line


def _saturating(e: np.ndarray) -> np.ndarray:
    return 1.0e-5 * np.tanh(e / 15_000.0) * 15_000.0 / 5898.8  # ~1e-5 A at Mn Ka, 7 % compressed at Cu Ka


def test_assigns_three_lines_among_extra_peaks_and_the_curve_goes_through_them() -> None:
    rng = np.random.default_rng(3)
    names = ["MnKAlpha", "CuKAlpha", "CuKBeta"]
    e = np.concatenate([get_line(n).sample(k, 4.0, rng) for n, k in zip(names, (6000, 3000, 800))])
    e = np.concatenate([e, rng.normal(3000.0, 5, 900), rng.normal(7400.0, 5, 700)])  # lines not in the list
    v = _saturating(e)
    pts = assign_lines(v, names)
    assert [p.line for p in pts] == ["MnKAlpha", "CuKAlpha", "CuKBeta"]
    for p, n in zip(pts, names):
        assert p.value == pytest.approx(float(_saturating(np.array(get_line(n).peak_energy))), rel=2e-3)
    curve = GainCurve(pts, kind="gain")
    np.testing.assert_allclose(curve([p.value for p in pts]), [p.energy_ev for p in pts], rtol=1e-9)
    grid = np.linspace(0, 1.25 * pts[-1].value, 500)[1:]
    assert np.all(np.diff(curve(grid)) > 0)
    assert curve.inverse(curve(pts[1].value)) == pytest.approx(pts[1].value, rel=1e-6)
    # the gain curve captures the saturation between the points far better than a straight line
    mid = _saturating(np.array(7000.0))
    assert abs(curve(mid) - 7000.0) < 0.1 * abs(GainCurve(pts, kind="linear")(mid) - 7000.0)
    again = GainCurve.from_dict(curve.as_dict())
    assert again(mid) == pytest.approx(curve(mid))


def test_curve_kinds_and_monotonic_check() -> None:
    pts = [CalibrationPoint("a", 1.0, 1000.0), CalibrationPoint("b", 2.0, 2100.0), CalibrationPoint("c", 3.0, 3000.0)]
    assert GainCurve(pts, kind="polynomial", degree=3)(2.0) == pytest.approx(2100.0, rel=1e-9)  # 3 points: exact
    assert GainCurve(pts, kind="polynomial", degree=2)(2.0) != pytest.approx(2100.0, rel=1e-3)  # least squares
    one = GainCurve(pts[:1], kind="gain")
    assert one(0.5) == pytest.approx(500.0)  # one point: E proportional to the value
    with pytest.raises(ValueError, match="not monotonic"):
        GainCurve([CalibrationPoint("a", 1.0, 1000.0), CalibrationPoint("b", 2.0, 4000.0),
                   CalibrationPoint("c", 3.0, 4100.0)], kind="polynomial", degree=3)
    with pytest.raises(ValueError, match="same order"):
        GainCurve([CalibrationPoint("a", 2.0, 1000.0), CalibrationPoint("b", 1.0, 2000.0)])
    with pytest.raises(ValueError, match="kind"):
        GainCurve(pts, kind="cubic")


def test_line_peaks_and_their_absence() -> None:
    rng = np.random.default_rng(4)
    v = np.concatenate([rng.normal(1.0, 0.01, 700), rng.normal(1.9, 0.02, 300)])
    np.testing.assert_allclose(find_line_peaks(v, 2), [1.0, 1.9], atol=0.01)
    assert find_line_peaks(rng.normal(1.0, 0.01, 100), 2) is None
    with pytest.raises(ValueError, match="need >="):
        assign_lines(v[:5], ["MnKAlpha"])
