"""Tone DDC and ToneChannelizer against a direct per-tone down-conversion; IQ to phase."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from cryodaq.backend import gpu_available
from cryodaq.dsp import IQCalibration, PFBChannelizer, ToneChannelizer, ToneDDC, iq_to_dissipation, iq_to_phase

FS = 2.048e6
M = 64
BINS = np.array([4, 7, 10, 13, 16, 19, 22, 25])
OFFSETS = np.array([3.1e3, -2.2e3, 1.0e3, 4.2e3, -4.4e3, 2.5e3, 0.0, -1.3e3])
TONES = BINS * FS / M + OFFSETS


def _envelopes(n: int) -> np.ndarray:
    """Slow complex envelope per tone: constant amplitude/phase plus a phase pulse (like an MKID)."""
    t = np.arange(n) / FS
    amps = np.linspace(2000, 900, TONES.size)
    phases = np.linspace(-2.5, 2.9, TONES.size)
    onset = np.linspace(4e-3, 9e-3, TONES.size)
    dt = np.clip(t[:, None] - onset, 0, None)
    pulse = 0.8 * (dt / 0.5e-3) ** 2 * np.exp(-dt / 0.5e-3)  # smooth onset: band-limited enough
    return amps * np.exp(1j * (phases + pulse))


def _adc(n: int) -> tuple[np.ndarray, np.ndarray]:
    env = _envelopes(n)
    t = np.arange(n) / FS
    x = np.real(env * np.exp(2j * np.pi * TONES * t[:, None])).sum(axis=1)
    return x, env


def _reference(x: np.ndarray, f: float, centres: np.ndarray, half_width: int = 1024) -> np.ndarray:
    """Direct down-conversion: mix by exp(-2 pi i f n / fs), low-pass with a zero-phase
    windowed sinc (cutoff 8 kHz) evaluated at the (possibly half-integer) centres."""
    n = np.arange(len(x))
    z = x * np.exp(-2j * np.pi * f * n / FS)
    frac = centres[0] - np.floor(centres[0])
    taps = np.arange(-half_width + 1, half_width + 1) - frac  # sample offsets from the centre
    kernel = np.sinc(2 * 8e3 / FS * taps) * scipy.signal.windows.hann(taps.size + 2)[1:-1]
    kernel /= kernel.sum()
    start = np.floor(centres).astype(np.int64) - half_width + 1
    ok = (start >= 0) & (start + taps.size <= len(x))
    idx = start[ok, None] + np.arange(taps.size)
    out = np.full(centres.shape, np.nan + 0j)
    out[ok] = z[idx] @ kernel
    return out


@pytest.mark.parametrize("oversampling,decimation", [(1, 2), (2, 4), (1, 1)])
def test_pfb_ddc_equals_direct_downconversion(oversampling: int, decimation: int) -> None:
    n = 40_000 if oversampling == 1 else 30_000
    x, _ = _adc(n)
    tc = ToneChannelizer(TONES, FS, M, 8, decimation=decimation, oversampling=oversampling)
    assert np.array_equal(tc.bins, BINS) and np.allclose(tc.offsets_hz, OFFSETS)
    iq = tc.process(x)
    assert iq.dtype == np.complex64 and iq.shape[1] == TONES.size
    assert tc.output_rate == FS / (M // oversampling) / decimation
    centres = tc.sample_index(np.arange(iq.shape[0]))
    assert np.allclose(np.diff(centres), (M // oversampling) * decimation)
    for i, f in enumerate(TONES):
        ref = _reference(x, f, centres)
        ok = ~np.isnan(ref)
        assert ok.sum() > 100
        # A real cosine's positive-frequency half: the reference mixer sees it too.
        err = np.abs(iq[ok, i] - ref[ok]) / np.abs(ref[ok])
        assert np.max(err) < 1e-3, (i, np.max(err))  # a half-sample slip would cost 5e-3


def test_blockwise_equals_one_shot_with_int16() -> None:
    x, _ = _adc(30_000)
    x16 = np.round(x).astype(np.int16)
    one = ToneChannelizer(TONES, FS, M, 8, decimation=2).process(x16)
    tc = ToneChannelizer(TONES, FS, M, 8, decimation=2)
    rng = np.random.default_rng(0)
    parts, i = [], 0
    while i < len(x16):
        s = int(rng.integers(1, 2500))
        parts.append(tc.process(x16[i : i + s]))
        i += s
    got = np.concatenate(parts)
    assert got.shape == one.shape
    assert np.max(np.abs(got - one)) <= 2e-6 * np.max(np.abs(one))


def test_phase_continuous_across_reset_at_any_sample() -> None:
    """After a gap the pipeline resets at the new sample index: the IQ of a steady tone
    is the same complex number (no phase jump), whatever the index."""
    n = 60_000
    t = np.arange(n) / FS
    x = (1000 * np.cos(2 * np.pi * TONES[:, None] * t + 0.7)).sum(axis=0)
    tc = ToneChannelizer(TONES, FS, M, 8, decimation=2)
    before = tc.process(x[:20_000])[-1]
    s0 = 31_337  # not a multiple of the hop
    tc.reset(first_sample=s0)
    after = tc.process(x[s0:])
    assert tc.sample_index(0) > s0
    assert np.allclose(after, before, atol=1e-3 * 500)
    assert np.allclose(np.angle(after[0]), 0.7, atol=2e-3)
    assert np.allclose(np.abs(after[0]), 500, rtol=2e-3)


def test_tones_sharing_a_bin_each_get_their_own_mixer() -> None:
    tones = np.array([10 * FS / M + 5e3, 10 * FS / M - 9e3, 20 * FS / M])
    amps = np.array([300.0, 700.0, 500.0])
    t = np.arange(40_000) / FS
    x = (amps[:, None] * np.cos(2 * np.pi * tones[:, None] * t)).sum(axis=0)
    tc = ToneChannelizer(tones, FS, M, 8, decimation=2, lowpass_taps=65)
    assert list(tc.bins) == [10, 10, 20]
    iq = tc.process(x)
    assert np.allclose(np.abs(iq).mean(axis=0), amps / 2, rtol=5e-3)
    assert np.max(np.abs(np.angle(iq))) < 1e-2


def test_ddc_on_its_own_and_errors() -> None:
    pfb = PFBChannelizer(M, 8)
    ddc = ToneDDC(TONES[:2], FS, pfb, decimation=1)
    assert ddc.n_taps_lowpass == 1 and ddc.output_rate == FS / M
    x, _ = _adc(20_000)
    frames = pfb.process(x)
    out = ddc.process(frames)
    assert out.shape == (frames.shape[0], 2)
    assert ddc.sample_index(0) == pfb.frame_sample_index(0)
    with pytest.raises(ValueError, match="outside"):
        ToneDDC([FS * 0.6], FS, pfb)
    with pytest.raises(ValueError, match="shape"):
        ddc.process(np.zeros((3, 5), np.complex64))
    # Complex input: negative tones map to the upper bins.
    cpfb = PFBChannelizer(M, 8, real_input=False)
    cddc = ToneDDC([-3 * FS / M + 1e3], FS, cpfb)
    assert cddc.bins[0] == M - 3 and cddc.offsets_hz[0] == pytest.approx(1e3)


def test_iq_phase_and_dissipation() -> None:
    rng = np.random.default_rng(1)
    rot = np.array([0.3, -2.0])
    radius = np.array([2.0, 5.0])
    dphi = np.zeros((500, 2))
    dphi[200:220] = [0.4, -0.25]
    dr = np.zeros((500, 2))
    dr[200:220] = [-0.1, 0.05]
    iq = radius * (1 + dr) * np.exp(1j * (rot + dphi)) + 0.0 * rng.normal(size=(500, 2))
    phase = iq_to_phase(iq, rotation=rot)
    assert phase.dtype == np.float32
    assert np.allclose(phase, dphi, atol=1e-6)
    assert np.allclose(iq_to_dissipation(iq, radius=radius), dr, atol=1e-6)
    # Default rotation: the mean operating point sits at 0 rad.
    centred = np.abs(iq) * np.exp(1j * iq_to_phase(iq))
    assert np.allclose(np.angle(centred.mean(axis=0)), 0, atol=1e-6)
    # Unwrapping: a phase ramp past pi stays continuous.
    ramp = np.exp(1j * np.linspace(0, 4 * np.pi, 200))
    assert np.allclose(iq_to_phase(ramp, rotation=0.0), np.linspace(0, 4 * np.pi, 200), atol=1e-5)
    cal = IQCalibration.from_baseline(iq[:150])
    assert np.allclose(cal.rotation, rot) and np.allclose(cal.radius, radius)
    assert np.allclose(cal.phase(iq), dphi, atol=1e-6)
    assert np.allclose(cal.dissipation(iq), dr, atol=1e-6)
    with pytest.raises(ValueError, match="one value per tone"):
        IQCalibration(np.zeros(2), np.zeros(3), np.ones(2))



def _phase_kernel(iq: np.ndarray, centre: np.ndarray, phasor: np.ndarray, sign: np.ndarray,
                  unwrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """(the fused CPU kernel's float32 phase, numpy's float64 reference) for the same inputs."""
    from cryodaq.dsp.cpu_kernels import iq_phase

    out = np.empty(iq.shape, np.float32)
    iq_phase(iq, centre, phasor, sign, unwrap, out)
    p = np.angle((iq.astype(np.complex128) - centre) * phasor)
    return out, sign * (np.unwrap(p, axis=0) if unwrap else p)


def test_iq_phase_kernel_matches_numpy() -> None:
    """The CPU kernel's branch-free float32 atan2 and unwrap against numpy in float64."""
    rng = np.random.default_rng(7)
    # Random points, centres and rotations, magnitudes 1e-30 to 1e30; few rows keep |phase| < ~20.
    rows, tones = 6, 2048
    scale = 10.0 ** rng.integers(-30, 31, tones)
    iq = ((rng.normal(size=(rows, tones)) + 1j * rng.normal(size=(rows, tones))) * scale).astype(np.complex64)
    centre = ((rng.normal(size=tones) + 1j * rng.normal(size=tones)) * 0.3 * scale).astype(np.complex64)
    phasor = np.exp(1j * rng.uniform(-np.pi, np.pi, tones)).astype(np.complex64)
    sign = rng.choice(np.float32([-1, 1]), tones)
    for unwrap in (False, True):
        out, ref = _phase_kernel(iq, centre, phasor, sign, unwrap)
        small = np.abs(ref) <= 10
        assert small.mean() > 0.5 and np.abs(out - ref)[small].max() <= 1e-6
        assert np.all(np.abs(out - ref) <= 1e-6 + 1e-7 * np.abs(ref))
    # Exact axes, signed zeros, subnormals and the largest floats (z = iq here): atan2 as libm.
    x = np.float32([1, -1, -1, 0, 0, 0, -0.0, 0, -0.0, -2, 3e38, 1e-38, 1e-45, -1e-45, 5, -5, 1, -7])
    y = np.float32([0, 0, -0.0, 1, -1, 0, 0, -0.0, -0.0, 1e-30, 1e-38, 3e38, 1e-45, -1e-45, 5, -5, -3e-40, -1e-44])
    edge = (x + 1j * y).astype(np.complex64)[None, :]
    out, ref = _phase_kernel(edge, np.zeros(x.size, np.complex64), np.ones(x.size, np.complex64),
                             np.ones(x.size, np.float32), False)
    assert np.all(np.abs(out - ref) <= 3e-7)
    assert np.array_equal(np.signbit(out), np.signbit(ref))  # atan2(-0, x>0) = -0, (+-0, -0) = +-pi
    # Near the cut: alternating pi - e and -pi + e unwraps to pi - e, pi + e, pi - e, ...
    eps = np.array([0, 1e-7, 3e-7, 1e-6, 1e-5, 1e-3, 0.1, 1.0])
    k = np.arange(64)[:, None]
    ang = np.where(k % 2 == 0, np.pi - eps, -np.pi + eps)
    mags = 10.0 ** rng.integers(-30, 31, eps.size)
    cut = (mags * np.exp(1j * ang)).astype(np.complex64)
    cut[0::2, 0] = complex(-mags[0], 0.0)  # the cut itself, from both sides: +pi, -pi, +pi, ...
    cut[1::2, 0] = complex(-mags[0], -0.0)
    ones, zeros = np.ones(eps.size, np.complex64), np.zeros(eps.size, np.complex64)
    out, ref = _phase_kernel(cut, zeros, ones, np.ones(eps.size, np.float32), True)
    assert np.abs(ref).max() < np.pi + 1.01 and np.abs(out - ref).max() <= 1e-6
    # A long ramp per tone, crossing pi many times (both ways, up to 3 rad per sample): error
    # stays at the float32 rounding of the unwrapped value.
    n = 20_000
    rates = np.array([0.031, -0.0437, 0.0999, -0.1234, 3.0, -3.1, 0.5, 1.7])
    c = (rng.normal(size=rates.size) + 1j * rng.normal(size=rates.size)).astype(np.complex64)
    rot = np.exp(1j * rng.uniform(-3, 3, rates.size)).astype(np.complex64)
    phi = np.arange(n)[:, None] * rates + rng.uniform(-3, 3, rates.size)
    ramp = (c + 2.0 * np.exp(1j * phi) / rot).astype(np.complex64)
    out, ref = _phase_kernel(ramp, c, rot, np.float32([1, -1, 1, -1, 1, 1, -1, 1]), True)
    assert np.abs(ref).max() > 1e4
    small = np.abs(ref) <= 10
    assert np.abs(out - ref)[small].max() <= 1e-6
    assert np.all(np.abs(out - ref) <= 1e-6 + 1.5e-7 * np.abs(ref))
    # The same through IQCalibration.phase, which runs the kernel on 2-D input on the CPU.
    signs = np.array([1, -1, 1, -1, 1, 1, -1, 1])
    cal = IQCalibration(c, -np.angle(rot), np.full(rates.size, 2.0), sign=signs)
    phasor = np.exp(-1j * cal.rotation).astype(np.complex64)
    ref = signs * np.unwrap(np.angle((ramp.astype(np.complex128) - c) * phasor), axis=0)
    assert np.all(np.abs(cal.phase(ramp) - ref) <= 1e-6 + 1.5e-7 * np.abs(ref))

@pytest.mark.gpu
def test_gpu_tone_channelizer_matches_numpy() -> None:
    pytest.importorskip("cupy")
    if not gpu_available():
        pytest.skip("no CUDA device")
    from cryodaq.backend import get_backend

    gpu, strict = get_backend("cupy"), get_backend("strict")  # the same device code path, numpy underneath
    x, _ = _adc(40_000)
    x16 = np.round(x).astype(np.int16)
    ref = strict.to_numpy(ToneChannelizer(TONES, FS, M, 8, decimation=2, backend=strict).process(strict.asarray(x16)))
    tc = ToneChannelizer(TONES, FS, M, 8, decimation=2, backend=gpu)
    parts = [gpu.to_numpy(tc.process(gpu.asarray(x16[i : i + 4096]))) for i in range(0, len(x16), 4096)]
    got = np.concatenate(parts)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))
    ph = gpu.to_numpy(iq_to_phase(gpu.asarray(got), backend=gpu))
    assert np.allclose(ph, iq_to_phase(got), atol=1e-4)
