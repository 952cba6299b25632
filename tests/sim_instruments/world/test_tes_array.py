"""The TES array world component (world.tes): steady state, IV curves, pulses, noise, SQUIDs, streams."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.dsp import analyze_iv, welch_psd
from sim_instruments.world.world import World

FROZEN = {"clock": lambda: 0.0}


BIAS = 3.5e-4


def tes_world(**tes: object) -> World:
    return World({"tes": {"enabled": True, **tes}}, **FROZEN)


def biased(**tes: object) -> World:
    w = tes_world(**tes)
    w.tes.set_bias(w.tes.channels, BIAS)
    return w


def test_bad_tes_config_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="world.tes: unknown key"):
        World({"tes": {"enabled": True, "rn": 1}})
    with pytest.raises(ValueError, match="world.tes.rn_ohm"):
        World({"tes": {"enabled": True, "rn_ohm": -1.0}})


def test_iv_curve_analysis_recovers_rn_and_rp():
    w = tes_world()
    c = w.tes.config
    i_bias = np.linspace(1e-3, 0.0, 301)
    i_tes = w.tes.iv_curve(i_bias, t_bath=0.05, channel=3)
    res = analyze_iv(i_bias, i_tes + 2.5e-6, c.r_shunt_ohm)  # a SQUID offset the analysis must remove
    assert res.r_n == pytest.approx(c.rn_ohm, rel=0.01)
    assert res.r_p == pytest.approx(c.r_parasitic_ohm, rel=0.02)
    assert res.offset == pytest.approx(2.5e-6, rel=0.01)
    # three branches: superconducting at the bottom, normal at the top, transition between
    assert res.superconducting[i_bias < 1.5e-4].all() and res.normal[i_bias > 0.85e-3].all()
    assert res.transition.sum() > 50
    # in the transition the Joule power is near P_sat = K (Tc^n - Tb^n) (Tc lowered a little by the current)
    psat = c.k_w_per_k_n * (w.tes.tc_k[3] ** c.thermal_exponent - 0.05**c.thermal_exponent)
    assert res.p_sat == pytest.approx(psat, rel=0.1)


def test_iv_curve_follows_the_bath_temperature():
    w = tes_world()
    c = w.tes.config
    i_bias = np.linspace(1e-3, 0.0, 201)
    cold = analyze_iv(i_bias, w.tes.iv_curve(i_bias, t_bath=0.03), c.r_shunt_ohm).p_sat
    warm = analyze_iv(i_bias, w.tes.iv_curve(i_bias, t_bath=0.08), c.r_shunt_ohm).p_sat
    assert 0 < warm < 0.8 * cold
    # above Tc the pixel is normal at every bias: a straight line through the origin
    hot = w.tes.iv_curve(i_bias, t_bath=0.12)
    slope = c.r_shunt_ohm / (c.r_shunt_ohm + c.r_parasitic_ohm + c.rn_ohm)
    np.testing.assert_allclose(hot, i_bias * slope, rtol=1e-6, atol=1e-12)


def test_operating_point_in_transition_and_follows_the_fridge():
    w = biased()
    op = w.tes.current_operating_point()
    assert op.t_bath == pytest.approx(w.fridge.mxc_k())
    assert np.all((op.frac_rn > 0.15) & (op.frac_rn < 0.5))
    assert np.all(op.loop_gain > 10) and np.all(op.responsivity_a_per_w < 0)
    # strong electrothermal feedback: ∂I/∂P ≈ -1/V_tes (times 1/(1 - R_L/R) and β corrections) ...
    assert np.all((op.responsivity_a_per_w * op.v_tes < -0.9) & (op.responsivity_a_per_w * op.v_tes > -1.3))
    # ... and equal to the steady-state solver's: extra heat δP acts like a bath with Tb'^n = Tb^n + δP/K
    c = w.tes.config
    dp = 1e-15
    tb2 = (op.t_bath**c.thermal_exponent + dp / c.k_w_per_k_n) ** (1 / c.thermal_exponent)
    di = w.tes.operating_point(BIAS, t_bath=tb2).i_tes - op.i_tes
    np.testing.assert_allclose(di / dp, op.responsivity_a_per_w, rtol=0.01)
    heated = w.tes.operating_point(BIAS, t_bath=0.09)
    assert np.all(heated.frac_rn > op.frac_rn)  # less bath cooling -> higher in the transition
    assert np.all(np.abs(heated.i_tes) < np.abs(op.i_tes))


def test_stream_blocks_do_not_depend_on_the_split():
    n = 5000
    one = biased(rate_hz=200.0).tes.block(0, 3 * n)
    w = biased(rate_hz=200.0)
    parts = [w.tes.block(0, 700), w.tes.block(700, n), w.tes.block(700 + n, 2 * n - 700)]
    assert np.array_equal(one, np.concatenate(parts))
    assert one.shape == (3 * n, 8) and one.dtype == np.int16
    w2 = biased(rate_hz=200.0)
    head, tail = w2.tes.block(0, n), w2.tes.block(2 * n, n)  # a jump forward (skipped packets)
    assert np.array_equal(one[:n], head) and np.array_equal(one[2 * n:], tail)
    with pytest.raises(ValueError, match="only move forward"):
        w2.tes.block(0, 10)


def test_noise_psd_matches_the_documented_analytic_psd():
    w = biased(rate_hz=0.0, one_over_f_knee_hz=300.0)
    fs = w.tes.config.fs_hz
    x = w.tes.block(0, 1 << 18).astype(float)
    f, p = welch_psd(x.T, fs, 8192)
    p = np.asarray(p)
    model = w.tes.noise_psd_counts(f)
    white = (f > 5e3) & (f < 45e3)
    ratio_white = p[:, white].mean() / model[:, white].mean()
    assert ratio_white == pytest.approx(1.0, abs=0.1)
    low = (f > 20) & (f < 120)
    assert p[:, low].mean() / model[:, low].mean() == pytest.approx(1.0, abs=0.15)
    floor = model[:, -1].mean()
    slope = np.polyfit(np.log(f[low]), np.log(p[:, low].mean(axis=0) - floor), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.2)
    # and the model itself is S_w (1 + f_knee / f) between the corners (A²/Hz)
    s_w = w.tes.config.white_noise_a_per_rthz ** 2
    fa = np.array([1.0, 10.0, 100.0])
    np.testing.assert_allclose(w.tes.noise_psd_a2_per_hz(fa), s_w * (1 + 300.0 / fa), rtol=0.1)


def _pulse_heights(block: np.ndarray, truth: np.ndarray, fs: float, isolation_s: float = 0.015) -> list:
    """(channel, energy, height in counts) of pulses with no other arrival within ``isolation_s``."""
    out = []
    gap = int(isolation_s * fs)
    for ch in np.unique(truth["resonator"]):
        arrivals = truth[truth["resonator"] == ch]
        s = arrivals["sample"]
        for k, rec in enumerate(arrivals):
            i = int(rec["sample"])
            if (k and s[k] - s[k - 1] < gap) or (k + 1 < len(s) and s[k + 1] - i < gap):
                continue
            if i < 60 or i + 200 > block.shape[0]:
                continue
            base = np.median(block[i - 50:i - 2, ch])
            out.append((int(ch), float(rec["energy_ev"]), float(base - block[i:i + 200, ch].min())))
    return out


@pytest.mark.parametrize("saturation", [True, False])
def test_pulse_heights_follow_energy_and_the_model(saturation):
    w = biased(rate_hz=15.0, saturation=saturation)
    x = w.tes.block(0, 150_000)
    pulses = _pulse_heights(x, w.tes.truth(), w.tes.config.fs_hz)
    assert len(pulses) > 50
    cpa = w.tes.counts_per_ampere()
    op = w.tes.current_operating_point()
    lines = w.tes.config.lines_ev
    means = {}
    for ch, e, height in pulses:
        expected = w.tes.pulse_height_a(e, op)[ch] * cpa[ch]
        assert height == pytest.approx(expected, rel=0.01)
        means.setdefault(e, []).append(height / cpa[ch] / op.pulse_a_per_ev[ch])  # in eV of the linear scale
    ratio = np.mean(means[lines[1]]) / np.mean(means[lines[0]])
    if saturation:
        assert 1.0 < ratio < lines[1] / lines[0]  # mildly compressive
        assert ratio == pytest.approx(lines[1] / lines[0], rel=0.02)
    else:
        assert ratio == pytest.approx(lines[1] / lines[0], rel=1e-3)
    assert np.all([h > 1000 for _, _, h in pulses])  # negative-going in counts, thousands of counts


def test_arrival_rate_matches_the_configuration():
    w = biased(rate_hz=40.0)
    w.tes.block(0, 200_000)  # 2 s
    truth = w.tes.truth()
    expected = 40.0 * 2.0 * 8
    assert abs(truth.size - expected) < 4 * np.sqrt(expected)
    assert set(np.unique(truth["resonator"])) == set(range(8))
    assert np.all(np.isin(truth["energy_ev"], w.tes.config.lines_ev))


def test_squid_relock_jumps_by_whole_flux_quanta_and_unlocked_output_is_periodic():
    w = biased(rate_hz=0.0, white_noise_a_per_rthz=0.0, one_over_f_knee_hz=0.0)
    tes = w.tes
    step = tes.config.feedback_gain_v_per_phi0 * tes.config.adc_counts_per_volt  # counts per Φ0
    first = 0
    levels = []
    for _ in range(12):
        tes.reset(2)
        levels.append(float(tes.block(first, 64)[:, 2].mean()))
        first += 64
    quanta = (np.array(levels) - levels[0]) / step
    np.testing.assert_allclose(quanta, np.round(quanta), atol=1e-3)
    assert np.any(np.round(quanta) != 0)
    assert np.all(tes.squid_state().locked)
    # unlocked: the output is the V-Φ curve, bounded by the swing whatever the current
    tes.set_locked(2, False)
    swing = tes.config.unlocked_swing_v * tes.config.adc_counts_per_volt
    phi = tes.current_operating_point().i_tes[2] / tes.config.input_current_per_phi0_a
    out = tes.block(first, 64)[:, 2]
    assert np.all(np.abs(out) <= swing + 1)
    assert out.mean() == pytest.approx(swing * np.sin(2 * np.pi * phi), abs=1.0)
    # feedback gain and flux offset scale and shift the locked output
    tes.set_locked(2, True)
    before = tes.block(first + 64, 64)[:, 2].mean()
    tes.set_flux_offset(2, 0.25)
    after = tes.block(first + 128, 64)[:, 2].mean()
    assert before - after == pytest.approx(0.25 * step, abs=1.0)
