"""Optimal filter and template: resolution vs theory, bias, timing, χ², template building."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from cryodaq.backend import gpu_available, numpy_backend
from cryodaq.dsp.optimal_filter import OptimalFilter, build_template

N = 512  # samples per record
FS = 1.0e6  # Hz
PRE = 128  # presamples
SIGMA_WHITE = 0.01  # rms of the white part, in units of the pulse peak
KNEE_HZ = 10e3  # 1/f knee


def pulse(t0: float, rise: float = 3.0, fall: float = 60.0, n: int = N) -> np.ndarray:
    """Two-pole TES pulse starting at ``t0`` samples, averaged over each sample period (ADC-like)."""
    t = np.arange(n)[:, None] + (np.arange(16) + 0.5) / 16 - 0.5 - t0
    tc = np.clip(t, 0, None)
    return np.where(t > 0, np.exp(-tc / fall) - np.exp(-tc / rise), 0.0).mean(axis=1)


TEMPLATE = pulse(PRE) / pulse(PRE).max()


def one_sided_psd(f: np.ndarray, knee: float = KNEE_HZ) -> np.ndarray:
    """White + 1/f one-sided PSD (units²/Hz); white part 2σ²/fs."""
    return 2 * SIGMA_WHITE**2 / FS * (1 + knee / np.maximum(f, 1e-300))


def circular_noise(rng: np.random.Generator, n_rec: int, knee: float = KNEE_HZ) -> np.ndarray:
    """Records of noise with exactly the PSD above: white noise coloured in each record's own spectrum."""
    f = np.fft.rfftfreq(N, 1 / FS)
    gain = np.sqrt(one_sided_psd(f, knee) / (2 / FS))
    gain[0] = 0.0
    return np.fft.irfft(np.fft.rfft(rng.standard_normal((n_rec, N)), axis=1) * gain, n=N, axis=1)


def stream_noise(rng: np.random.Generator, n_rec: int, knee: float) -> np.ndarray:
    """Records cut from one long coloured stream (1/f leaks in from below the record's lowest bin)."""
    length = n_rec * N
    f = np.fft.rfftfreq(length, 1 / FS)
    gain = np.sqrt(one_sided_psd(f, knee) / (2 / FS))
    gain[0] = 0.0
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(length)) * gain, n=length).reshape(n_rec, N)


def welch_psd_of(noise: np.ndarray) -> np.ndarray:
    # rectangular window: the PSD then describes the records exactly as the filter sees them
    _, psd = scipy.signal.welch(noise, FS, window="boxcar", nperseg=N, axis=-1)
    return psd.mean(axis=0)


def test_resolution_matches_spread_with_analytic_psd() -> None:
    rng = np.random.default_rng(1)
    psd = one_sided_psd(np.fft.rfftfreq(N, 1 / FS))
    of = OptimalFilter(TEMPLATE, psd, FS)
    res = of.apply(0.7 * TEMPLATE + circular_noise(rng, 4000))
    ratio = np.std(res.amplitude_nodelay) / of.resolution()
    assert abs(ratio - 1) < 0.05, ratio  # statistical error of the spread: 1.1 %


def test_resolution_matches_spread_with_welch_psd_from_separate_records() -> None:
    rng = np.random.default_rng(2)
    of = OptimalFilter(TEMPLATE, welch_psd_of(circular_noise(rng, 3000)), FS)
    res = of.apply(2.0 * TEMPLATE + circular_noise(rng, 4000))
    ratio = np.std(res.amplitude_nodelay) / of.resolution()
    assert abs(ratio - 1) < 0.05, ratio
    # and the figure is the right one: with the white level alone, σ_A would be much smaller
    white_only = OptimalFilter(TEMPLATE, one_sided_psd(np.fft.rfftfreq(N, 1 / FS), knee=0.0), FS)
    assert white_only.resolution() < 0.8 * of.resolution()


def test_from_noise_builds_the_rectangular_window_psd() -> None:
    rng = np.random.default_rng(10)
    noise = circular_noise(rng, 3000)
    of = OptimalFilter.from_noise(TEMPLATE, noise, FS, max_delay=10)
    ref = OptimalFilter(TEMPLATE, welch_psd_of(noise), FS)
    assert of.resolution() == pytest.approx(ref.resolution(), rel=1e-9)
    assert of.max_delay == 10
    res = of.apply(TEMPLATE + circular_noise(rng, 4000))
    assert abs(np.std(res.amplitude_nodelay) / of.resolution() - 1) < 0.05
    with pytest.raises(ValueError, match=r"\(n, 512\)"):
        OptimalFilter.from_noise(TEMPLATE, noise[:, :100], FS)


def test_resolution_holds_for_records_cut_from_a_stream() -> None:
    rng = np.random.default_rng(3)
    noise = stream_noise(rng, 7000, knee=2e3)
    of = OptimalFilter(TEMPLATE, welch_psd_of(noise[4000:]), FS)
    res = of.apply(noise[:4000] + TEMPLATE)
    ratio = np.std(res.amplitude_nodelay) / of.resolution()
    assert abs(ratio - 1) < 0.05, ratio


def test_white_noise_resolution_has_closed_form() -> None:
    # white noise σ² → J = 2σ²/fs → σ_A⁻² = Σ_{0<k<N/2} 2|S_k|²/(N σ²)
    s = np.fft.rfft(TEMPLATE)[1 : N // 2]
    expected = (np.sum(2 * np.abs(s) ** 2) / (N * SIGMA_WHITE**2)) ** -0.5
    of = OptimalFilter(TEMPLATE, np.full(N // 2 + 1, 2 * SIGMA_WHITE**2 / FS), FS)
    assert of.resolution() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("amplitude", [0.05, 1.0, 30.0])
def test_amplitude_is_unbiased(amplitude: float) -> None:
    rng = np.random.default_rng(4)
    psd = one_sided_psd(np.fft.rfftfreq(N, 1 / FS))
    of = OptimalFilter(TEMPLATE, psd, FS, max_delay=20)
    res = of.apply(amplitude * TEMPLATE + circular_noise(rng, 1000))
    se = of.resolution() / np.sqrt(1000)
    assert abs(res.amplitude_nodelay.mean() - amplitude) < 4 * se
    if amplitude > 0.5:  # well above noise the delay-fitted amplitude is unbiased too
        assert res.amplitude.mean() == pytest.approx(amplitude, rel=2e-3)
    noiseless = of.apply(amplitude * TEMPLATE)
    assert noiseless.amplitude_nodelay[0] == pytest.approx(amplitude, rel=1e-12)
    assert noiseless.amplitude[0] == pytest.approx(amplitude, rel=1e-9)
    assert noiseless.chi2[0] == pytest.approx(0.0, abs=1e-6 * noiseless.dof)


@pytest.mark.parametrize("subsample", ["parabolic", "fourier"])
@pytest.mark.parametrize("shift", [0.25, 0.5, 2.3, -5.6, 40.75])
def test_arrival_time_to_sub_sample_precision(shift: float, subsample: str) -> None:
    rng = np.random.default_rng(5)
    psd = one_sided_psd(np.fft.rfftfreq(N, 1 / FS))
    of = OptimalFilter(TEMPLATE, psd, FS, subsample=subsample)
    recs = pulse(PRE + shift) / pulse(PRE).max() + circular_noise(rng, 200)
    res = of.apply(recs)
    assert abs(np.mean(res.delay) - shift) < 0.05  # bias
    assert np.std(res.delay) < 0.05  # noise at SNR ~ 400
    assert res.amplitude.mean() == pytest.approx(1.0, abs=2e-3)
    # a whole-sample-rounded estimate would be off by up to 0.5 sample
    assert np.mean(np.abs(res.delay - shift)) < 0.06


def test_fourier_subsample_is_exact_for_band_limited_shifts() -> None:
    of = OptimalFilter(TEMPLATE, one_sided_psd(np.fft.rfftfreq(N, 1 / FS)), FS, subsample="fourier")
    k = np.arange(N // 2 + 1)
    for shift in (0.37, -3.81):
        shifted = np.fft.irfft(np.fft.rfft(TEMPLATE) * np.exp(-2j * np.pi * k * shift / N), n=N)
        res = of.apply(2.5 * shifted)
        assert res.delay[0] == pytest.approx(shift, abs=1e-6)
        assert res.amplitude[0] == pytest.approx(2.5, rel=1e-9)


def test_chi2_expectation_is_dof_and_flags_wrong_shapes() -> None:
    rng = np.random.default_rng(6)
    psd = one_sided_psd(np.fft.rfftfreq(N, 1 / FS))
    of = OptimalFilter(TEMPLATE, psd, FS, max_delay=20)
    assert of.dof == 2 * (N // 2 - 1) - 2
    noise = circular_noise(rng, 2000)
    res = of.apply(TEMPLATE + noise)
    # χ² of 2000 records with dof ~508: relative standard error of the mean ~0.14 %
    assert res.chi2.mean() / of.dof == pytest.approx(1.0, abs=0.01)
    assert res.chi2_nodelay.mean() / (of.dof + 1) == pytest.approx(1.0, abs=0.01)
    # a pile-up record (second pulse) and a slow pulse of another shape stand far out
    bad = np.stack([TEMPLATE + 0.5 * np.roll(TEMPLATE, 150), pulse(PRE, rise=20, fall=150) / 0.6]) + noise[:2]
    chi_bad = of.apply(bad).chi2
    assert np.all(chi_bad > np.quantile(res.chi2, 0.999) * 3)


def test_a_constant_baseline_changes_nothing() -> None:
    psd = one_sided_psd(np.fft.rfftfreq(N, 1 / FS))
    of = OptimalFilter(TEMPLATE, psd, FS)
    rec = 3.0 * TEMPLATE + np.random.default_rng(7).normal(0, SIGMA_WHITE, N)
    a, b = of.apply(rec), of.apply(rec + 123.4)
    assert b.amplitude_nodelay[0] == pytest.approx(a.amplitude_nodelay[0], rel=1e-9)
    assert b.chi2[0] == pytest.approx(a.chi2[0], rel=1e-6)


def test_bad_inputs_are_refused_with_a_reason() -> None:
    psd = one_sided_psd(np.fft.rfftfreq(N, 1 / FS))
    with pytest.raises(ValueError, match="nperseg=512"):
        OptimalFilter(TEMPLATE, psd[:-1], FS)
    bad = psd.copy()
    bad[5] = 0.0
    with pytest.raises(ValueError, match="> 0"):
        OptimalFilter(TEMPLATE, bad, FS)
    of = OptimalFilter(TEMPLATE, psd, FS)
    with pytest.raises(ValueError, match=r"\(n, 512\)"):
        of.apply(np.zeros((3, 500)))


def test_build_template_averages_aligns_and_rejects_pileup() -> None:
    rng = np.random.default_rng(8)
    n_rec = 300
    jitter = rng.uniform(-3, 3, n_rec)
    amps = rng.uniform(0.8, 1.2, n_rec)
    recs = np.stack([a * pulse(PRE + j) for a, j in zip(amps, jitter)]) / pulse(PRE).max()
    recs += rng.normal(0, SIGMA_WHITE, recs.shape) + rng.normal(5.0, 1.0, (n_rec, 1))  # noise + baselines
    pileup = np.arange(0, n_rec, 30)  # 10 records with a second pulse on the tail
    recs[pileup] += 0.6 * np.roll(TEMPLATE, 120)
    tpl = build_template(recs, PRE, align="rise")
    assert tpl.template.max() == pytest.approx(1.0)
    assert not tpl.used[pileup].any()
    assert tpl.n_used >= n_rec - len(pileup) - 5
    # the template is the pulse (up to the median alignment offset)
    truth = pulse(PRE + np.median(jitter)) / pulse(PRE + np.median(jitter)).max()
    assert np.max(np.abs(tpl.template - truth)) < 0.02
    assert np.corrcoef(tpl.template, truth)[0, 1] > 0.9995
    assert np.abs(tpl.shifts + jitter - np.median(jitter)).max() < 0.3
    # without alignment the jitter smears the rising edge
    smeared = build_template(recs, PRE, align="none")
    assert np.max(np.abs(smeared.template - truth)) > 2 * np.max(np.abs(tpl.template - truth))
    peak_aligned = build_template(recs, PRE, align="peak")
    assert np.all(peak_aligned.shifts == np.round(peak_aligned.shifts))  # whole-sample shifts
    assert np.corrcoef(peak_aligned.template, truth)[0, 1] > 0.995


def test_build_template_input_checks() -> None:
    with pytest.raises(ValueError, match="presamples"):
        build_template(np.zeros((3, 100)), 100)
    with pytest.raises(ValueError, match="align"):
        build_template(np.ones((3, 100)), 10, align="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative-going"):
        build_template(-np.tile(TEMPLATE, (3, 1)), PRE)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs cupy and a CUDA device")
def test_cupy_backend_matches_numpy() -> None:
    from cryodaq.backend import get_backend

    gpu = get_backend("cupy")
    rng = np.random.default_rng(9)
    psd = one_sided_psd(np.fft.rfftfreq(N, 1 / FS))
    recs = 1.3 * TEMPLATE + circular_noise(rng, 64)
    for subsample in ("parabolic", "fourier"):
        ref = OptimalFilter(TEMPLATE, psd, FS, numpy_backend(), subsample=subsample).apply(recs)
        got = OptimalFilter(TEMPLATE, psd, FS, gpu, subsample=subsample).apply(gpu.asarray(recs)).to_numpy()
        for name in ("amplitude", "delay", "amplitude_nodelay", "chi2"):
            np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-9, atol=1e-9)
