"""The four-wave-mixing TWPA model (world.paramp.kind: twpa): its closed-form gain against a numerical
integration of the coupled-mode equations, phase matching, ripple, pump depletion, idler noise, pump drift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.constants import h, k
from scipy.integrate import solve_ivp

from sim_instruments.world.twpa import TWPAConfig, TWPAGain
from sim_instruments.world.world import World

TWPA = {"paramp": {"enabled": True, "kind": "twpa", "wave_mixing": 4, "pump_attenuation_db": 50.0}}
P_REF_SOURCE = -10.0  # dBm at the source: -60 dBm at the line, the reference power


def coupled_modes_gain(phi: float, kappa: float) -> float:
    """|a_s(L)|² from d(a_s, a_i*)/dz = [[iκ/2, iφ], [−iφ, −iκ/2]]·(a_s, a_i*), a_s(0) = 1, a_i(0) = 0 (L = 1):
    the signal-idler equations of degenerate 4WM with an undepleted pump (Agrawal §10.2, O'Brien et al. 2014)."""
    m = np.array([[0.5j * kappa, 1j * phi], [-1j * phi, -0.5j * kappa]])
    sol = solve_ivp(lambda z, y: m @ y, (0.0, 1.0), np.array([1.0 + 0j, 0j]), rtol=1e-10, atol=1e-12)
    return float(abs(sol.y[0, -1]) ** 2)


def test_the_closed_form_gain_is_the_coupled_mode_solution():
    model = TWPAGain(TWPAConfig())
    p_ref = 10 ** (-60 / 10)
    for f_s, pump_mw in ((5.0e9, p_ref), (4.2e9, 1.1 * p_ref), (6.9e9, 0.8 * p_ref), (5.9e9, 1.3 * p_ref)):
        phi = float(model.phase(pump_mw))
        kappa = float(model.mismatch(np.array([f_s]), 6.0e9, pump_mw)[0])
        assert float(model.small_signal_gain(f_s, 6.0e9, pump_mw)) == pytest.approx(coupled_modes_gain(phi, kappa),
                                                                                  rel=1e-6)


def test_phase_matched_gain_band_pump_power_and_frequency():
    world = World(TWPA)
    pa = world.paramp
    f = np.linspace(4.0e9, 8.0e9, 401)
    assert np.all(pa.small_signal_gain(f) == 1.0)  # pump off
    pa.set_pump(frequency_hz=6.0e9, power_dbm=P_REF_SOURCE, on=True)
    g = 10 * np.log10(pa.small_signal_gain(f))
    near = np.abs(f - 6e9) < 0.2e9
    assert g[near] == pytest.approx(10 * np.log10(math.cosh(3.0) ** 2), abs=0.3)  # phase matched: cosh²φ
    assert (g[np.abs(f - 6e9) < 1.0e9] > 17).all() and g.min() < g.max() - 3  # broad, and it ends
    pa.set_pump(power_dbm=P_REF_SOURCE + 0.2)
    assert 10 * np.log10(float(pa.small_signal_gain(5.5e9))) - float(g[f == 5.5e9][0]) == pytest.approx(1.2, abs=0.4)
    pa.set_pump(power_dbm=P_REF_SOURCE, frequency_hz=6.25e9)  # off the phase-matched pump frequency
    assert float(pa.small_signal_gain(5.5e9)) < 10 ** (g[f == 5.5e9][0] / 10) / 3
    pa.set_flux_current(0.3e-3)  # no flux dependence
    assert pa.peak_gain() == pytest.approx(float(pa.small_signal_gain(6.25e9)))


def test_ripple_compression_idler_noise_and_pump_leakage():
    world = World(TWPA)
    pa = world.paramp
    f = np.linspace(5.0e9, 5.3e9, 601)
    off = np.abs(pa.s21(f, -150.0)) ** 2
    assert np.ptp(10 * np.log10(off)) < 0.05  # bare line: ripple ~ Γ² = 0.0025
    pa.set_pump(frequency_hz=6.0e9, power_dbm=P_REF_SOURCE, on=True)
    ratio = 10 * np.log10(np.abs(pa.s21(f, -150.0)) ** 2 / off / pa.small_signal_gain(f))
    assert 0.2 < np.ptp(ratio) < 1.0  # the round trip is amplified once: ripple ~ Γ²√G
    # compression from pump depletion: 1 dB down where the amplified tones take ~1 % of the pump
    p1 = pa.p1db_dbm(5.2e9)
    assert -110 < p1 < -85
    assert float(pa.gain_db(5.2e9, p1)) == pytest.approx(float(pa.gain_db(5.2e9)) - 1.0, abs=0.01)
    # noise: the idler port's vacuum makes the added noise at least the quantum limit hf/2k at high gain
    t_added = float(pa.added_noise_k(5.2e9))
    assert t_added > h * 5.2e9 / (2 * k) * (1 - 1 / float(pa.small_signal_gain(5.2e9)))
    assert pa.pump_tone()[0] == 6.0e9


def test_the_pump_line_drifts_with_world_time():
    world = World({**TWPA, "paramp": {**TWPA["paramp"], "pump_drift_db_per_hour": 0.5, "pump_wander_db": 0.1,
                                      "pump_wander_period_s": 7200.0}})
    now = [1000.0]
    world.set_clock(lambda: now[0])
    pa = world.paramp
    pa.set_pump(frequency_hz=6.0e9, power_dbm=P_REF_SOURCE, on=True)
    start = pa.pump_power_at_paramp_dbm()
    now[0] += 1800.0  # half an hour: 0.25 dB of drift and a quarter wander period
    assert pa.pump_power_at_paramp_dbm() - start == pytest.approx(0.25 + 0.1, abs=0.01)
