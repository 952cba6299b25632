"""Photon energies from published natural line shapes: the demo ⁵⁵Fe source draws the Mn Kα multiplet, not one
energy, and the arrivals are the same as without shapes."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis import get_line
from sim_instruments.world.photons import PhotonConfig, PhotonTrains


def _trains(shapes: list) -> PhotonTrains:
    cfg = PhotonConfig(rate_hz=400.0, lines_ev=[5898.8, 6490.5], weights=[0.88, 0.12], line_shapes=shapes)
    t = PhotonTrains(cfg, 1e5, 2, seed=3, key=(9,))
    t.advance(5_000_000)
    return t


def test_energies_follow_the_natural_shape_and_arrivals_do_not_change() -> None:
    shaped = _trains(["MnKAlpha", "MnKBeta"]).truth()
    plain = _trains([]).truth()
    np.testing.assert_array_equal(shaped["t_sample"], plain["t_sample"])
    np.testing.assert_array_equal(shaped["line"], plain["line"])
    assert set(np.unique(plain["energy_ev"])) == {5898.8, 6490.5}
    ka = np.sort(shaped["energy_ev"][shaped["line"] == 0])
    mn = get_line("MnKAlpha")
    assert ka.size > 10_000
    # the fraction within the Ka1 peak region and the Ka2 shoulder, against the tabulated shape
    grid = np.linspace(5700, 6100, 400_001)
    cdf = np.cumsum(mn.pdf(grid)) * (grid[1] - grid[0])
    for lo, hi in ((5896.0, 5901.0), (5884.0, 5892.0)):
        expected = np.interp(hi, grid, cdf) - np.interp(lo, grid, cdf)
        got = np.mean((ka >= lo) & (ka < hi))
        assert got == pytest.approx(expected, abs=4 * np.sqrt(expected / ka.size))


def test_a_shape_per_line_is_checked() -> None:
    with pytest.raises(ValueError, match="one shape"):
        _trains(["MnKAlpha"])
    with pytest.raises(ValueError, match="unknown line"):
        _trains(["MnKAlpha", "NoSuchLine"])
