"""IQ calibrations (resonator fit, IQ-loop sweep): phase → fractional frequency shift, the pulse sign, dissipation."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.dsp.iq import IQCalibration
from cryodaq.dsp.iqcal import LoopSweep, calibration_from_fit, fractional_frequency_shift, loop_calibration
from cryodaq.dsp.resonator import fit_resonator, resonator_model

# two tones: (fr, Ql, |Qc|, phi, a, alpha, delay, geometry)
RESONATORS = [
    (4.5e9, 2.0e4, 3.0e4, 0.2, 0.6, 0.7, 45e-9, "notch"),
    (5.2e9, 5.0e4, 8.0e4, -0.3, 0.3, -2.0, 45e-9, "reflection"),
]


def sweep_fit(params, noise: float = 0.0, seed: int = 0):
    fr, ql, qc, phi, a, alpha, tau, geom = params
    f = np.linspace(fr * (1 - 4 / ql), fr * (1 + 4 / ql), 401)
    z = resonator_model(f, fr, ql, qc, phi, a, alpha, tau, geom)
    rng = np.random.default_rng(seed)
    z = z + noise * a * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    return fit_resonator(f, z, geom)


def tone_stream(params, f_tone: float, y: np.ndarray, qi_scale: np.ndarray | float = 1.0) -> np.ndarray:
    """IQ of a fixed tone while the resonance moves to fr' with (fr' - f_tone)/fr' = y."""
    fr, ql, qc, phi, a, alpha, tau, geom = params
    qi = 1 / (1 / ql - np.cos(phi) / qc)
    ql_now = 1 / (1 / (qi * np.asarray(qi_scale)) + np.cos(phi) / qc)
    fr_now = f_tone / (1 - y)
    x = f_tone / fr_now - 1
    c = 1.0 if geom == "notch" else 2.0
    env = a * np.exp(1j * alpha) * np.exp(-2j * np.pi * f_tone * tau)
    return env * (1 - c * (ql_now / qc) * np.exp(1j * phi) / (1 + 2j * ql_now * x))


def test_phase_maps_to_fractional_frequency_shift_for_two_tones() -> None:
    fits = [sweep_fit(p) for p in RESONATORS]
    cal = calibration_from_fit(fits)
    assert isinstance(cal, IQCalibration) and cal.n_tones == 2
    # a pulse: the resonance drops by up to 2 linewidths and recovers
    t = np.arange(2000)
    pulse = np.where(t > 100, np.exp(-(t - 100) / 300.0) - np.exp(-(t - 100) / 5.0), 0.0)
    y_true = np.stack([-2.0 / p[1] * pulse / pulse.max() for p in RESONATORS], axis=1)  # δfr/fr
    iq = np.stack([tone_stream(p, p[0], y_true[:, i]) for i, p in enumerate(RESONATORS)], axis=1)
    phase = np.asarray(cal.phase(iq), dtype=float)
    assert phase[0] == pytest.approx([0.0, 0.0], abs=1e-6)  # tone on resonance → phase 0
    assert np.all(phase[t > 110] > 0)  # fr drops → positive phase: photon pulses are positive
    ql = np.array([fit.Ql for fit in fits])
    y = fractional_frequency_shift(phase, ql)
    assert np.max(np.abs(y - y_true) * ql) < 1e-4  # in linewidths; phase is float32
    # the linearised form is fine for small excursions, 67 % low at the peak (θ = 2 arctan 4 ≈ 2.65 rad)
    y_lin = fractional_frequency_shift(phase, ql, small_angle=True)
    small = np.abs(phase) < 0.05
    assert np.max(np.abs(y_lin - y_true)[small] * np.broadcast_to(ql, y.shape)[small]) < 1e-4
    assert np.all(np.abs(y_lin[~small]) < np.abs(y_true[~small]))
    # pure frequency shifts stay on the circle
    assert np.max(np.abs(cal.dissipation(iq))) < 1e-5


def test_tone_off_resonance_and_loss_changes() -> None:
    params = RESONATORS[0]
    fit = sweep_fit(params, noise=2e-3)
    fr, ql = params[0], params[1]
    f_tone = fr * (1 + 0.3 / ql)  # tone parked 0.3 half-linewidths above fr
    cal = calibration_from_fit([fit], tone_freq_hz=[f_tone])
    y_true = np.linspace(-1.5, 1.5, 61) / ql
    phase = np.asarray(cal.phase(tone_stream(params, f_tone, y_true)[:, None]), dtype=float)[:, 0]
    y = fractional_frequency_shift(phase, fit.Ql)
    # the fit is from a noisy sweep: agreement to a few % of a linewidth
    assert np.max(np.abs(y - y_true)) * ql < 0.03
    # more loss (Qi halved) at fixed frequency pulls the point inside the circle: dissipation < 0
    lossy = tone_stream(params, f_tone, np.zeros(3), qi_scale=np.array([1.0, 0.7, 0.5]))
    diss = np.asarray(cal.dissipation(lossy[:, None]), dtype=float)[:, 0]
    assert abs(diss[0]) < 0.01 and diss[1] < -0.05 and diss[2] < diss[1]


def test_rotation_points_at_the_resonance() -> None:
    fit = sweep_fit(RESONATORS[1])
    cal = calibration_from_fit(fit)
    on_res = fit.model(np.array([fit.fr_hz]))[0]
    assert np.angle((on_res - cal.centre[0]) * np.exp(-1j * cal.rotation[0])) == pytest.approx(0.0, abs=1e-9)
    assert abs(on_res - cal.centre[0]) == pytest.approx(cal.radius[0], rel=1e-9)


def test_fractional_frequency_shift_formulas() -> None:
    theta = np.array([-1.0, -0.1, 0.0, 0.1, 1.0])
    np.testing.assert_allclose(fractional_frequency_shift(theta, 1e4), -np.tan(theta / 2) / 2e4)
    np.testing.assert_allclose(fractional_frequency_shift(theta, 1e4, small_angle=True), -theta / 4e4)


def test_calibration_input_checks() -> None:
    fit = sweep_fit(RESONATORS[0])
    with pytest.raises(ValueError, match="one per tone"):
        calibration_from_fit([fit, fit], tone_freq_hz=[4.5e9])
    with pytest.raises(ValueError, match="no resonator fits"):
        calibration_from_fit([])


def test_loop_calibration_of_a_synthetic_notch_loop():
    # S21 = a e^{iφ} (1 - r/(1 + 2j Ql x)): centre a e^{iφ}(1 - r/2), radius a r/2
    a, phi, r, ql, fr = 0.7, 0.9, 0.8, 1.6e5, 5e9
    offsets = np.linspace(-45e3, 45e3, 21)
    s21 = a * np.exp(1j * phi) * (1 - r / (1 + 2j * ql * offsets / fr))
    sweep = LoopSweep(offsets, s21[:, None], np.array([fr]))
    cal = loop_calibration(sweep)
    centre = a * np.exp(1j * phi) * (1 - r / 2)
    assert abs(cal.centre[0] - centre) < 1e-9 and cal.radius[0] == pytest.approx(a * r / 2, rel=1e-9)
    assert cal.phase(s21[10:11, None])[0, 0] == pytest.approx(0.0, abs=1e-6)  # operating point at phase 0
    # a resonance moving down (photon) looks like the tone moving up: positive phase
    assert np.all(np.diff(cal.phase(s21[10:, None], unwrap=False)[:, 0]) > 0)
    with pytest.raises(ValueError, match="odd number"):
        loop_calibration(LoopSweep(offsets + 2e3, s21[:, None], np.array([fr])))
