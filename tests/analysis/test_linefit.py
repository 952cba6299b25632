"""Line shapes and Poisson maximum-likelihood line fits, judged against NIST mass2's documented fit and
against known truth (the error bars must cover it as often as they claim)."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.analysis import LINES, fit_line, get_line, histogram
from cryodaq.analysis.linefit import line_model, poisson_deviance


@pytest.mark.parametrize("name, peak", [("MnKAlpha", 5898.8019), ("MnKBeta", 6490.6020), ("FeKAlpha", 6404.0080),
                                        ("CuKAlpha", 8047.8262), ("CuKBeta", 8905.4136), ("AlKAlpha", 1486.7001),
                                        ("MgKAlpha", 1253.6459)])
def test_natural_shapes_peak_where_the_published_tables_put_them(name: str, peak: float) -> None:
    """Peak energies of the natural shapes as NIST mass computes them from the same tables (1e-3 eV)."""
    line = get_line(name)
    assert line.peak_energy == pytest.approx(peak, abs=2e-3)
    e = np.linspace(line.peak_energy - 3000, line.peak_energy + 3000, 60_001)
    assert np.trapezoid(line.pdf(e, 2.0), e) == pytest.approx(1.0, abs=1e-3)  # Lorentzian wings beyond ±3 keV
    assert "doi" in line.reference


def test_reproduces_the_mass2_documented_mn_kalpha_fit() -> None:
    """mass2 docs/line_fitting.md: 1e5 draws (rng 1066, FWHM 2.2 eV), 120 bins on [5865, 5925], bin-centre
    model: fwhm 2.21558094, peak 5898.79525. Same draws, bin-centre evaluation (integrate=False)."""
    mn = get_line("MnKAlpha")
    energies = mn.sample(100_000, 2.2, np.random.default_rng(1066))
    counts, edges = np.histogram(energies, 120, range=(5865, 5925))
    mass_like = fit_line(counts, edges, mn, integrate=False)
    assert mass_like.fwhm == pytest.approx(2.21558094, abs=2e-4)
    assert mass_like.position == pytest.approx(5898.79525, abs=2e-4)
    assert mass_like.values["integral"] == pytest.approx(99986.5425, rel=1e-5)
    # mass's quoted errors are Fisher errors x sqrt(reduced chi2 = 0.867); ours are the unscaled Fisher errors
    assert mass_like.fwhm_err * np.sqrt(mass_like.reduced_chi2) == pytest.approx(0.02687437, rel=0.01)
    # integrating the model over each bin removes mass's +0.231 w^2/FWHM widening (w = 0.5 eV)
    integrated = fit_line(counts, edges, mn)
    assert mass_like.fwhm - integrated.fwhm == pytest.approx(0.231 * 0.25 / 2.2, rel=0.25)
    assert integrated.position == pytest.approx(mass_like.position, abs=1e-3)


def test_bin_integration_is_unbiased_for_coarse_bins() -> None:
    mn = get_line("MnKAlpha")
    energies = mn.sample(200_000, 4.0, np.random.default_rng(7))
    counts, edges = histogram(energies, 5850, 5950, 2.0)
    centre = fit_line(counts, edges, mn, integrate=False)
    integ = fit_line(counts, edges, mn)
    assert abs(integ.fwhm - 4.0) < 3 * integ.fwhm_err
    assert centre.fwhm - 4.0 > 4 * centre.fwhm_err  # the bin-centre model widens by ~0.23 eV here


def test_gaussian_line_errors_cover_the_truth() -> None:
    """30 spectra of a Gaussian line: the pulls (fit - truth)/error have unit spread."""
    rng = np.random.default_rng(11)
    pulls_w, pulls_x = [], []
    for _ in range(30):
        v = rng.normal(1.55, 0.12 / 2.3548, 3000)
        v = np.concatenate([v, rng.uniform(1.2, 1.9, 300)])
        counts, edges = histogram(v, 1.2, 1.9, 0.01)
        f = fit_line(counts, edges, 1.55)
        pulls_w.append((f.fwhm - 0.12) / f.fwhm_err)
        pulls_x.append((f.position - 1.55) / f.position_err)
    for pulls in (pulls_w, pulls_x):
        assert abs(np.mean(pulls)) < 0.6 and 0.6 < np.std(pulls) < 1.5


def test_low_energy_tail_is_fitted_and_model_matches_counts() -> None:
    rng = np.random.default_rng(154)
    mn = get_line("MnKAlpha")
    v = mn.sample(100_000, 2.5, rng)
    tail = rng.uniform(size=v.size) < 0.08
    v[tail] -= rng.standard_exponential(tail.sum()) * 10.0
    counts, edges = histogram(v, 5850, 5950, 0.5)
    f = fit_line(counts, edges, mn, tail=True, start={"tail_frac": 0.1, "tail_tau_ev": 20.0})
    assert abs(f.values["tail_frac"] - 0.08) < 4 * f.errors["tail_frac"]
    assert abs(f.values["tail_tau_ev"] - 10.0) < 4 * f.errors["tail_tau_ev"]
    assert abs(f.fwhm - 2.5) < 4 * f.fwhm_err
    assert f.model.sum() == pytest.approx(counts.sum(), rel=1e-3)  # Poisson ML: the model keeps the counts
    assert f.deviance == pytest.approx(poisson_deviance(counts, f.model))
    no_tail = fit_line(counts, edges, mn)
    assert no_tail.reduced_chi2 > 3 * f.reduced_chi2


def test_model_and_inputs() -> None:
    mn = LINES["MnKAlpha"]
    edges = np.linspace(5800, 6000, 401)
    mu = line_model(edges, mn, fwhm=3.0, position=mn.peak_energy, integral=1000.0)
    assert mu.sum() == pytest.approx(1000.0 * 0.985, rel=0.01)  # most of the Lorentzian wings inside ±100 eV
    with pytest.raises(ValueError, match="counts"):
        fit_line(np.zeros(50), np.linspace(0, 1, 51), mn)
    with pytest.raises(ValueError, match="edges"):
        fit_line(np.ones(50), np.linspace(0, 1, 50), mn)
    with pytest.raises(KeyError, match="unknown line"):
        get_line("UnobtainiumKAlpha")
