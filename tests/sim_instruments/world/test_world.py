"""The simulated world: determinism, seamless blocks, physics directions and sizes, noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sim_instruments.world.noise import NoiseConfig, TLSNoise
from sim_instruments.world.photons import PhotonConfig, PhotonTrains, pulse_peak
from sim_instruments.world.world import World, WorldConfig

FROZEN = {"clock": lambda: 0.0}


def test_two_blocks_equal_one_block():
    n = 4096 * 6 + 123
    one = World(**FROZEN).adc_block(0, n)
    w = World(**FROZEN)
    parts = [w.adc_block(0, 1000), w.adc_block(1000, 4096), w.adc_block(5096, n - 5096)]
    assert np.array_equal(one, np.concatenate(parts))
    assert one.dtype == np.int16
    assert one.std() > 100  # a real signal, not zeros


def test_jump_forward_gives_the_same_samples_as_one_block():
    n = 4096
    one = World(**FROZEN).adc_block(0, 5 * n)
    w = World(**FROZEN)
    a = w.adc_block(0, n)
    b = w.adc_block(3 * n, 2 * n)  # samples n..3n skipped, like SIM:FAULT:SKIP
    assert np.array_equal(one[:n], a)
    assert np.array_equal(one[3 * n:], b)


def test_blocks_cannot_go_back():
    w = World(**FROZEN)
    w.adc_block(0, 100)
    with pytest.raises(ValueError, match="only move forward"):
        w.adc_block(50, 100)


def test_seed_determines_everything():
    a = World({"seed": 5}, **FROZEN)
    b = World({"seed": 5}, **FROZEN)
    c = World({"seed": 6}, **FROZEN)
    assert np.array_equal(a.adc_block(0, 20000), b.adc_block(0, 20000))
    assert np.array_equal(a.resonator_params()[0], b.resonator_params()[0])
    assert not np.array_equal(a.resonator_params()[0], c.resonator_params()[0])


def test_default_layout_matches_pfb_bins():
    w = World(**FROZEN)
    fr, qi, qc = w.resonator_params()
    cfg = w.config
    spacing = cfg.fs_hz / cfg.feedline.pfb_channels
    offsets = (fr - cfg.lo_hz) - np.array(cfg.feedline.if_bins) * spacing
    assert fr.size == 8
    assert np.all(np.abs(offsets) <= cfg.feedline.random_offset_hz + 1)
    ql = 1 / (1 / qi + 1 / qc)
    linewidth = fr / ql
    assert np.all((linewidth > 25e3) & (linewidth < 50e3))
    assert np.allclose(w.readout_state().tone_freqs_hz, fr, rtol=0, atol=1e-3)  # tones on resonance


def test_temperature_moves_resonances_down_and_lowers_qi():
    w = World(**FROZEN)
    temps = np.linspace(0.05, 0.3, 11)
    params = [w.resonator_params(t) for t in temps]
    fr = np.array([p[0] for p in params])
    qi = np.array([p[1] for p in params])
    assert np.all(np.diff(fr, axis=0) <= 0) and np.all(np.diff(qi, axis=0) <= 0)
    fr_cold, qi_cold, qc = params[0]
    fr_hot, qi_hot, _ = params[-1]
    linewidth_cold = fr_cold * (1 / qi_cold + 1 / qc)
    assert np.all((fr_cold - fr_hot) > 0.5 * linewidth_cold)
    assert np.all(qi_hot < 0.5 * qi_cold)


def test_feedline_s21_has_a_dip_of_the_notch_depth_at_each_resonance():
    w = World(**FROZEN)
    fr, qi, qc = w.resonator_params()
    ql = 1 / (1 / qi + 1 / qc)
    env = abs(w.feedline.environment(fr[0]))
    f = np.linspace(fr[0] - 20e3, fr[0] + 20e3, 4001)
    mag = np.abs(w.feedline_s21(f))
    assert abs(f[np.argmin(mag)] - fr[0]) < 50
    # at fr the notch depth is 1 - Ql/Qc (the neighbour 3 linewidths away adds a few %)
    assert mag.min() == pytest.approx(env * (1 - ql[0] / qc[0]), rel=0.05)
    assert np.abs(w.feedline_s21(fr[0] + 40e3)) > 0.8 * env


def test_poisson_rate_and_line_weights():
    cfg = PhotonConfig(rate_hz=15.0)
    fs = 2.048e6
    trains = PhotonTrains(cfg, fs, 8, seed=3, key=(0,))
    seconds = 100
    trains.advance(int(seconds * fs))
    truth = trains.truth()
    expected = 8 * 15.0 * seconds
    assert abs(truth.size - expected) < 5 * np.sqrt(expected)
    frac = np.mean(truth["energy_ev"] == 1.55)
    assert frac == pytest.approx(0.7, abs=5 * np.sqrt(0.7 * 0.3 / truth.size))
    per_res = np.bincount(truth["resonator"], minlength=8)
    assert np.all(np.abs(per_res - expected / 8) < 5 * np.sqrt(expected / 8))


def test_pulse_profile_peaks_at_the_photon_energy():
    fs = 2.048e6
    cfg = PhotonConfig(rate_hz=50.0)
    trains = PhotonTrains(cfg, fs, 1, seed=4, key=(0,))
    n = int(0.2 * fs)
    prof, active = trains.profile(0, n)
    truth = trains.truth()
    assert active[0] and truth.size > 2
    t0, e = truth["t_sample"][0], truth["energy_ev"][0]
    t_star = cfg.tau_rise_s * cfg.tau_fall_s / (cfg.tau_fall_s - cfg.tau_rise_s) * np.log(cfg.tau_fall_s / cfg.tau_rise_s)
    i_peak = int(round(t0 + t_star * fs))
    if truth.size > 1 and truth["t_sample"][1] - t0 < 12 * cfg.tau_fall_s * fs:
        pytest.skip("first two photons pile up for this seed")
    assert prof[0, i_peak] == pytest.approx(e, rel=1e-3)
    assert prof[0, int(t0) - 1] == 0.0
    assert pulse_peak(cfg.tau_rise_s, cfg.tau_fall_s) > 0


def test_photon_pulse_is_a_clear_phase_pulse_in_the_tone_channel():
    """1.55 eV photon -> phase pulse of 20..60 degrees, far above the white noise."""
    cfg = {"photons": {"rate_hz": 40.0, "lines_ev": [1.55], "weights": [1.0]}}
    w = World(cfg, **FROZEN)
    fs = w.config.fs_hz
    n = int(0.25 * fs)
    x = w.adc_block(0, n).astype(float)
    truth = w.truth()
    k = 2
    if_hz = w.readout_state().tone_freqs_hz[k] - w.config.lo_hz
    h = signal.firwin(1023, 14e3, fs=fs)
    z = signal.fftconvolve(x * np.exp(-2j * np.pi * if_hz * np.arange(n) / fs), h, mode="same")[::64]
    mine = truth[truth["resonator"] == k]["sample"] // 64
    quiet = np.ones(z.size, bool)
    for i in mine:
        quiet[max(0, i - 10): i + 150] = False
    quiet[:20] = quiet[-20:] = False
    phase = np.angle(z / z[quiet].mean())
    noise = phase[quiet].std()
    peaks = [np.abs(phase[i:i + 40]).max() for i in mine if 20 < i < z.size - 60]
    assert peaks, "no photon on this resonator in the window"
    peak = np.median(peaks)
    assert np.radians(20) < peak < np.radians(60)
    assert 15 < peak / noise < 60


def test_tls_noise_psd_slope_is_minus_one():
    cfg = NoiseConfig()
    fs = 2.048e6
    tls = TLSNoise(cfg, fs, 2, seed=9, key=(0,))
    grid = tls.grid(0, 1 << 18)
    f, p = signal.welch(grid, fs=tls.grid_rate, nperseg=1 << 15, axis=-1)
    band = (f > 0.5) & (f < 100)
    slope = np.polyfit(np.log10(f[band]), np.log10(p[:, band].mean(axis=0)), 1)[0]
    assert -1.25 < slope < -0.75
    # and the level matches the configured S_xx(1 Hz) within a factor 2
    level = np.interp(10.0, f, p.mean(axis=0)) * 10.0
    assert cfg.tls_sxx_at_1hz / 2 < level < cfg.tls_sxx_at_1hz * 2


def test_tls_noise_blocks_join_seamlessly():
    cfg = NoiseConfig()
    a = TLSNoise(cfg, 2.048e6, 3, seed=2, key=(1,))
    b = TLSNoise(cfg, 2.048e6, 3, seed=2, key=(1,))
    one = a.take(0, 300_000)
    two = np.concatenate([b.take(0, 123_457), b.take(123_457, 300_000 - 123_457)], axis=1)
    assert np.array_equal(one, two)


def test_adc_clips_instead_of_wrapping():
    w = World({"readout": {"loop_gain_db": 10.0}, "feedline": {"amplitude": 1.0}}, **FROZEN)
    s = w.readout_state()
    # one full-scale tone at a low IF, far from the resonators: ~3x the ADC range
    s.tone_freqs_hz, s.tone_amps, s.tone_phases_rad = np.array([w.config.lo_hz + 5e3]), np.array([1.0]), np.zeros(1)
    w.set_readout(s)
    x = w.adc_block(0, 50_000).astype(int)
    assert x.max() == 32767 and x.min() == -32768
    assert np.mean(np.abs(x) >= 32767) > 0.3  # long clipped stretches
    assert np.abs(np.diff(x)).max() < 3000  # a wrap would jump by ~65535


def test_adc_attenuator_scales_signal_and_noise():
    a = World(**FROZEN).adc_block(0, 100_000).astype(float)
    w = World(**FROZEN)
    s = w.readout_state()
    s.att_adc_db = 20.0
    w.set_readout(s)
    b = w.adc_block(0, 100_000).astype(float)
    assert b.std() == pytest.approx(a.std() / 10, rel=0.05)


def test_tone_frequency_change_keeps_carrier_phase_continuous():
    w = World({"noise": {"white_counts_rms": 0, "adc_counts_rms": 0, "tls_sxx_at_1hz": 0},
               "photons": {"rate_hz": 0}}, **FROZEN)
    s = w.readout_state()
    s.tone_freqs_hz = s.tone_freqs_hz[:1] + 500e3  # one tone, far from every resonance
    s.tone_amps, s.tone_phases_rad = np.array([0.5]), np.array([0.0])
    w.set_readout(s)
    a = w.adc_block(0, 4096).astype(float)
    s = w.readout_state()
    s.tone_freqs_hz = s.tone_freqs_hz + 1.0  # 1 Hz change: the waveform continues smoothly
    w.set_readout(s)
    b = w.adc_block(4096, 4096).astype(float)
    x = np.concatenate([a, b])
    step = np.abs(np.diff(x))
    assert step[4094:4097].max() < 1.5 * step[:4090].max()


def test_world_config_from_dict_and_errors(tmp_path):
    cfg = WorldConfig.from_dict({"seed": 3, "fridge": {"tau_s": 0.1}, "photons": {"rate_hz": 5}})
    assert cfg.seed == 3 and cfg.fridge.tau_s == 0.1 and cfg.photons.rate_hz == 5
    assert cfg.feedline.qc == 2e5  # untouched defaults stay
    with pytest.raises(ValueError, match=r"world\.fridge: unknown key\(s\) \['tau'\]"):
        WorldConfig.from_dict({"fridge": {"tau": 1}})
    path = tmp_path / "w.yaml"
    path.write_text("seed: 9\nnoise: {white_counts_rms: 10}\n")
    assert WorldConfig.from_yaml(path).noise.white_counts_rms == 10


def test_readout_power_follows_the_dac_attenuator():
    w = World(**FROZEN)
    p0 = w.readout_power_dbm()
    s = w.readout_state()
    s.att_dac_db = 10.0
    w.set_readout(s)
    assert np.allclose(w.readout_power_dbm(), p0 - 10.0)
