"""The paramp model (world.paramp): flux tuning, gain, compression, noise, TWPA, config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.constants import h, k
from scipy.optimize import brentq

from sim_instruments.world.paramp import effective_temperature_k
from sim_instruments.world.world import World

JPA = {"paramp": {"enabled": True}}


def test_disabled_paramp_leaves_the_chain_unchanged_and_pump_off_is_unity():
    world = World()
    assert world.paramp not in world.amplifiers and not world.config.paramp.enabled
    f = np.linspace(4.9e9, 5.1e9, 101)
    np.testing.assert_array_equal(world.chain_s21(f, -100.0), world.feedline_s21(f))
    world.paramp.set_pump(frequency_hz=10e9, power_dbm=-20.5, on=True)
    assert world.paramp.peak_gain() == 1.0  # no paramp installed: pumping does nothing

    jpa = World(JPA)
    assert jpa.amplifiers == [jpa.paramp]
    np.testing.assert_array_equal(jpa.paramp.s21(f, -100.0), np.ones(f.size))  # pump off: passes
    jpa.paramp.set_pump(frequency_hz=10e9, power_dbm=-20.5, on=True)
    ratio = jpa.chain_s21(f, -150.0) / jpa.feedline_s21(f)
    np.testing.assert_allclose(np.abs(ratio) ** 2, jpa.paramp.gain(f), rtol=1e-12)


def test_flux_tuning_threshold_gain_and_gain_bandwidth_product():
    pa = World(JPA).paramp
    c = pa.config
    assert pa.resonance_hz() == c.f_max_hz
    pa.set_flux_current(1 / 3 / c.flux_quanta_per_amp)  # Φ = Φ0/3: |cos| = 1/2
    assert pa.resonance_hz() == pytest.approx(c.f_max_hz * math.sqrt(0.5), rel=1e-12)
    f0 = pa.resonance_hz()
    # on resonance: G0 = 1/(1 - P/P_th)^2 with P = P_source - line attenuation
    pa.set_pump(frequency_hz=2 * f0, power_dbm=c.pump_threshold_dbm + c.pump_attenuation_db + 10 * math.log10(0.9),
                on=True)
    assert pa.peak_gain() == pytest.approx(100.0, rel=1e-9)
    assert pa.center_hz() == f0
    assert math.sqrt(pa.peak_gain()) * pa.lorentz_width_hz() == pytest.approx(c.linewidth_hz, rel=1e-12)
    # the -3 dB full width of the profile, found numerically, is the closed form bandwidth_hz()
    upper = brentq(lambda f: 10 * math.log10(pa.small_signal_gain(f) / 100.0) + 10 * math.log10(2),
                   f0, f0 + 10 * pa.lorentz_width_hz())
    assert 2 * (upper - f0) == pytest.approx(pa.bandwidth_hz(), rel=1e-9)
    # detuning the pump by 2δ = κ doubles the threshold: the ratio falls from 0.9 to 0.45
    pa.set_pump(frequency_hz=2 * f0 + c.linewidth_hz)
    assert pa.peak_gain() == pytest.approx(1 / (1 - 0.45) ** 2, rel=1e-9)
    # above threshold the gain is capped at max_gain_db
    pa.set_pump(frequency_hz=2 * f0, power_dbm=c.pump_threshold_dbm + c.pump_attenuation_db + 3)
    assert 10 * math.log10(pa.peak_gain()) == pytest.approx(c.max_gain_db, abs=1e-9)


def test_compression_point_is_where_the_gain_falls_by_1_db():
    pa = World(JPA).paramp
    pa.set_pump(frequency_hz=14e9, power_dbm=-20.5, on=True)
    fc = pa.center_hz()
    g_small = float(pa.gain_db(fc))
    p1 = brentq(lambda p: float(pa.gain_db(fc, p)) - (g_small - 1.0), -160, -40)
    assert pa.p1db_dbm() == pytest.approx(p1, abs=1e-6)
    # P1dB ≈ P_sat − 10 log10 G − 5.87 dB at high gain
    assert pa.p1db_dbm() == pytest.approx(pa.config.saturation_power_dbm - g_small - 5.87, abs=0.25)
    # more gain compresses earlier
    pa.set_pump(power_dbm=-20.2)
    assert pa.gain_db(fc) > g_small and pa.p1db_dbm() < p1


def test_noise_model_pump_off_is_the_hemt_and_pump_on_is_near_the_quantum_limit():
    pa = World(JPA).paramp
    c = pa.config
    f = 7e9
    assert float(pa.noise_temperature_k(f)) == c.hemt_noise_k  # pump off: the HEMT alone
    pa.set_pump(frequency_hz=2 * f, power_dbm=-20.5, on=True)
    g = float(pa.small_signal_gain(f))
    assert float(pa.added_noise_k(f)) == pytest.approx(c.t_added_k * (1 - 1 / g))
    assert float(pa.noise_temperature_k(f)) == pytest.approx(c.t_added_k * (1 - 1 / g) + c.hemt_noise_k / g)
    # Callen–Welton: hf/2k at T -> 0, T at T >> hf/k
    assert float(effective_temperature_k(0.0, f)) == pytest.approx(h * f / (2 * k))
    assert float(effective_temperature_k(300.0, f)) == pytest.approx(300.0, rel=1e-6)
    t_cold = effective_temperature_k(pa.load_temperature_k("cold"), f)
    assert pa.snr_improvement(f) == pytest.approx((t_cold + c.hemt_noise_k) / (t_cold + pa.noise_temperature_k(f)))


def test_bad_paramp_config_names_the_key():
    with pytest.raises(ValueError, match=r"world.paramp.linewidth_hz.*1.0e\+9"):
        World({"paramp": {"linewidth_hz": "100e6"}})
    with pytest.raises(ValueError, match="world.paramp.kind"):
        World({"paramp": {"kind": "maser"}})
