"""Resonator fit (Probst circle fit + full model) and resonance finding: real NPL data and simulations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

from cryodaq.dsp.resonator import (
    ResonatorFitError,
    circle_fit,
    find_resonators,
    fit_resonator,
    resonator_model,
)

NPL_FILE = "npl_mat58_figure27_notch_s21.txt"
NPL_FR_HZ = 6.07225567e9  # README: NLQFIT6
NPL_QL = {"NLQFIT6": 56020.0, "full-model LSQ": 53700.0}  # README


def simulate(rng: np.random.Generator, geometry: str = "notch", *, ratio: float | None = None,
             delay_s: float | None = None, noise_rel: float | None = None, npts: int = 201):
    """A resonator sweep with random parameters; returns f, s21, truth dict."""
    fr = rng.uniform(4e9, 7e9)
    qc = 10 ** rng.uniform(3.5, 5)
    qi = (10 ** rng.uniform(-1, 1) if ratio is None else ratio) * qc
    phi = rng.uniform(-0.5, 0.5)
    ql = 1 / (1 / qi + np.cos(phi) / qc)
    tau = rng.uniform(0, 100e-9) if delay_s is None else delay_s
    a, alpha = rng.uniform(0.01, 1), rng.uniform(-np.pi, np.pi)
    lw = fr / ql
    f = np.linspace(fr - 4 * lw, fr + 4 * lw, npts) + rng.uniform(-0.3, 0.3) * lw
    noise = a * (10 ** rng.uniform(-3, -1.5) if noise_rel is None else noise_rel)
    z = resonator_model(f, fr, ql, qc, phi, a, alpha, tau, geometry)  # type: ignore[arg-type]
    z = z + noise * (rng.standard_normal(npts) + 1j * rng.standard_normal(npts)) / np.sqrt(2)
    return f, z, {"fr_hz": fr, "Ql": ql, "Qc_abs": qc, "Qi": qi, "phi": phi, "delay_s": tau, "a": a}


def test_npl_notch_resonator_matches_published_values(shared_data: Path) -> None:
    data = np.loadtxt(shared_data / NPL_FILE)
    f, z = data[:, 0] * 1e9, data[:, 1] + 1j * data[:, 2]
    fit = fit_resonator(f, z, "notch")
    assert fit.success, fit.message
    assert abs(fit.fr_hz / NPL_FR_HZ - 1) < 1e-6
    for method, ql in NPL_QL.items():
        assert abs(fit.Ql / ql - 1) < 0.05, (method, fit.Ql)
    assert fit.Qi > 10 * fit.Qc_abs  # strongly over-coupled, as published

    # a plain least-squares fit of the same model from naive starting values does no better
    def resid(p: np.ndarray) -> np.ndarray:
        m = resonator_model(f, p[0] * 1e9, p[1] * 1e4, p[2] * 1e4, p[3], p[4], p[5], p[6] * 1e-9)
        return np.r_[(m - z).real, (m - z).imag]

    p0 = [f[np.argmin(np.abs(z))] / 1e9, 5.0, 5.0, 0.0, np.abs(z).max(), np.angle(z[0]), 0.0]
    naive = scipy.optimize.least_squares(resid, p0, method="lm", max_nfev=20000)
    naive_rms = np.sqrt(np.mean(np.abs(naive.fun[: f.size] + 1j * naive.fun[f.size :]) ** 2))
    ours_rms = np.sqrt(np.mean(np.abs(z - fit.s21_fit) ** 2))
    assert ours_rms == pytest.approx(fit.residual_rms, rel=1e-9)
    assert ours_rms <= naive_rms * (1 + 1e-6), (ours_rms, naive_rms)


@pytest.mark.parametrize("geometry", ["notch", "reflection"])
@pytest.mark.parametrize("ratio", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("delay_s", [0.0, 50e-9, 100e-9])
def test_truth_within_reported_uncertainty(geometry: str, ratio: float, delay_s: float) -> None:
    rng = np.random.default_rng(int(ratio * 10) + int(delay_s * 1e9) + (geometry == "reflection"))
    f, z, truth = simulate(rng, geometry, ratio=ratio, delay_s=delay_s, noise_rel=3e-3)
    fit = fit_resonator(f, z, geometry)  # type: ignore[arg-type]
    assert fit.success, fit.message
    for name, value in truth.items():
        err = getattr(fit, f"{name}_err")
        assert 0 < err < np.inf
        assert abs(getattr(fit, name) - value) < 4.5 * err, (name, getattr(fit, name), value, err)
    assert fit.Qi == pytest.approx(truth["Qi"], rel=0.2)
    assert fit.residual_rms == pytest.approx(3e-3 * truth["a"], rel=0.15)


def test_uncertainties_are_honest_over_many_resonators() -> None:
    rng = np.random.default_rng(2024)
    n = 200
    within = {"fr_hz": 0, "Ql": 0, "Qi": 0}
    for _ in range(n):
        f, z, truth = simulate(rng, "notch")
        fit = fit_resonator(f, z, "notch")
        for name in within:
            within[name] += abs(getattr(fit, name) - truth[name]) < getattr(fit, f"{name}_err")
    # 68.3 % expected; binomial σ for 200 trials is 3.3 %
    for name, k in within.items():
        assert 0.55 <= k / n <= 0.80, (name, k / n)


def test_loop_geometry_in_raw_iq_plane() -> None:
    fr, ql, qc, phi, a, alpha, tau = 5e9, 2e4, 3e4, 0.3, 0.5, 1.0, 40e-9
    f = np.linspace(fr * (1 - 3 / ql), fr * (1 + 3 / ql), 301)
    fit = fit_resonator(f, resonator_model(f, fr, ql, qc, phi, a, alpha, tau))
    # a tone at fr sees the delay phase at fr; the loop it traces is this circle:
    zf = resonator_model(f, fr, ql, qc, phi, a, alpha, 0.0) * np.exp(-2j * np.pi * fr * tau)
    assert np.allclose(np.abs(zf - fit.loop_centre), fit.loop_radius, rtol=1e-6)
    on_res = resonator_model(np.array([fr]), fr, ql, qc, phi, a, alpha, tau)[0]
    assert np.angle((on_res - fit.loop_centre) * np.exp(-1j * fit.loop_rotation)) == pytest.approx(0, abs=1e-6)
    assert fit.fr_hz == pytest.approx(fr, rel=1e-10)
    assert fit.Qi == pytest.approx(1 / (1 / ql - np.cos(phi) / qc), rel=1e-6)
    assert np.allclose(fit.s21_fit, resonator_model(f, fr, ql, qc, phi, a, alpha, tau), atol=1e-9)


def test_circle_fit_recovers_a_noisy_arc() -> None:
    rng = np.random.default_rng(3)
    t = np.linspace(0.2, 2.5, 100)  # a 130° arc
    z = (0.3 - 0.7j) + 1.9 * np.exp(1j * t) + 0.01 * (rng.standard_normal(100) + 1j * rng.standard_normal(100))
    centre, radius, rms = circle_fit(z)
    assert abs(centre - (0.3 - 0.7j)) < 0.03
    assert radius == pytest.approx(1.9, rel=0.01)
    assert rms == pytest.approx(0.01, rel=0.25)


def test_clear_errors_for_unfittable_data() -> None:
    f = np.linspace(5e9, 5.001e9, 200)
    with pytest.raises(ResonatorFitError, match=">= 20 points"):
        fit_resonator(f[:10], np.ones(10, complex))
    rng = np.random.default_rng(4)
    flat = 0.8 * np.exp(-2j * np.pi * f * 30e-9) + 1e-3 * (rng.standard_normal(200) + 1j * rng.standard_normal(200))
    with pytest.raises(ResonatorFitError, match="resonance"):
        fit_resonator(f, flat)
    with pytest.raises(ResonatorFitError, match="NaN"):
        fit_resonator(f, np.full(200, np.nan, complex))
    with pytest.raises(ValueError, match="geometry"):
        fit_resonator(f, flat, "transmission")  # type: ignore[arg-type]


def test_a_second_resonance_in_the_window_is_reported_as_unsuccessful() -> None:
    fr, ql = 5e9, 2e4
    f = np.linspace(fr * (1 - 4 / ql), fr * (1 + 4 / ql), 301)
    rng = np.random.default_rng(6)
    neighbour = 1 - 0.5 / (1 + 2j * 5e4 * (f / (fr * (1 + 1.5 / ql)) - 1))
    z = resonator_model(f, fr, ql, 3e4, 0.3, 0.5, 1.0, 40e-9) * neighbour
    z = z + 1e-3 * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    fit = fit_resonator(f, z)
    assert not fit.success
    assert "misses the data" in fit.message


def test_find_resonators_in_a_wide_sweep_with_sloped_rippled_background() -> None:
    rng = np.random.default_rng(5)
    f = np.linspace(4.0e9, 5.0e9, 100_001)  # 10 kHz steps
    truth = np.sort(rng.uniform(4.02e9, 4.98e9, 12))
    truth = truth[np.r_[True, np.diff(truth) > 5e6]]
    background = 10 ** ((-3 - 8 * (f - 4e9) / 1e9 + 1.0 * np.sin(2 * np.pi * f / 37e6)) / 20)
    z = background * np.exp(-2j * np.pi * f * 60e-9)
    qls = rng.uniform(1e4, 5e4, truth.size)
    depths = rng.uniform(0.3, 0.95, truth.size)  # Ql/Qc: dips of 3 to 26 dB
    for fr, ql, d in zip(truth, qls, depths):
        z = z * (1 - d / (1 + 2j * ql * (f / fr - 1)))
    z = z + 0.003 * np.abs(z).mean() * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    found = find_resonators(f, z, min_depth_db=2.0, min_separation_hz=2e6)
    assert len(found) == truth.size
    assert np.all(np.abs(found.freq_hz - truth) < truth / qls)  # within a linewidth
    assert np.allclose(found.depth_db, -20 * np.log10(1 - depths), atol=2.0)
    assert np.all((found.q_estimate > 0.3 * qls) & (found.q_estimate < 3 * qls))
    # the background alone yields nothing
    assert len(find_resonators(f, background, min_depth_db=2.0, min_separation_hz=2e6)) == 0
