"""PFB channelizer: response vs design, tone placement, streaming == one-shot, time convention."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.backend import gpu_available, numpy_backend
from cryodaq.dsp import PFBChannelizer
from cryodaq.dsp._window import prototype_response

M = 64
FS = 2.048e6


def _tone(f_hz: float, n: int, complex_input: bool, amp: float = 1.0, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n) / FS
    if complex_input:
        return amp * np.exp(1j * (2 * np.pi * f_hz * t + phase))
    return amp * np.cos(2 * np.pi * f_hz * t + phase)


def _blockwise(pfb: PFBChannelizer, x: np.ndarray, sizes) -> np.ndarray:
    pfb.reset()
    out, i = [], 0
    for s in sizes:
        out.append(pfb.process(x[i : i + s]))
        i += s
        if i >= len(x):
            break
    if i < len(x):
        out.append(pfb.process(x[i:]))
    return np.concatenate(out)


def test_prototype_is_unit_dc_windowed_sinc() -> None:
    pfb = PFBChannelizer(M, 8)
    h = np.asarray(pfb.prototype, dtype=np.float64)
    assert h.shape == (8 * M,)
    assert h.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(h, h[::-1], atol=1e-9)  # symmetric: zero phase about the centre
    # Half power (-6 dB amplitude) at the bin edge, by design of a cutoff of 1/M.
    assert abs(prototype_response(pfb.prototype_host, [0.5 / M])[0]) == pytest.approx(0.5, abs=0.02)


def test_window_array_and_bad_arguments() -> None:
    w = np.hanning(4 * 16)
    pfb = PFBChannelizer(16, 4, window=w)
    assert np.allclose(pfb.prototype_host, w / w.sum())
    with pytest.raises(ValueError, match="shape"):
        PFBChannelizer(16, 4, window=np.ones(10))
    with pytest.raises(ValueError, match="oversampling"):
        PFBChannelizer(16, 4, oversampling=3)
    with pytest.raises(ValueError, match="1-D"):
        PFBChannelizer(16, 4).process(np.zeros((4, 4)))


@pytest.mark.parametrize("oversampling", [1, 2])
def test_channel_response_matches_design(oversampling: int) -> None:
    """Measured gain of channel k vs a tone's offset equals the prototype's response:
    flat passband, rejected stopband."""
    k = 10
    pfb = PFBChannelizer(M, 8, oversampling, real_input=False)
    offsets = np.linspace(-3, 3, 49)  # in bins
    measured = []
    for d in offsets:
        y = pfb.channelize(_tone((k + d) * FS / M, 40 * M, True))
        measured.append(np.abs(y[:, k]).mean())
    measured = np.array(measured)
    designed = np.abs(prototype_response(pfb.prototype_host, offsets / M))
    assert np.max(np.abs(measured - designed)) < 2e-5
    db = 20 * np.log10(np.maximum(measured, 1e-12))
    passband = np.abs(offsets) <= 0.25
    assert np.max(np.abs(db[passband])) < 0.1  # hann, 8 taps: ripple well under 0.1 dB
    assert np.max(db[np.abs(offsets) >= 1.0]) < -60
    assert np.max(db[np.abs(offsets) >= 0.75]) < -40


@pytest.mark.parametrize("oversampling", [1, 2])
@pytest.mark.parametrize("complex_input", [False, True])
def test_tone_lands_in_its_bin_with_its_amplitude(oversampling: int, complex_input: bool) -> None:
    k, amp, phase = 7, 3.0, 0.4
    if complex_input:
        k_signed = -5  # a negative frequency lands in bin M-5
        x = _tone(k_signed * FS / M, 50 * M, True, amp, phase)
        expected_bin, expected_amp = k_signed % M, amp
    else:
        x = _tone(k * FS / M, 50 * M, False, amp, phase)
        expected_bin, expected_amp = k, amp / 2  # a cosine's positive-frequency half
    pfb = PFBChannelizer(M, 8, oversampling, real_input=not complex_input)
    y = pfb.channelize(x)
    assert y.dtype == np.complex64
    assert y.shape == ((len(x) - 8 * M) // pfb.hop + 1, M // 2 + 1 if not complex_input else M)
    mag = np.abs(y).mean(axis=0)
    assert int(np.argmax(mag)) == expected_bin
    assert mag[expected_bin] == pytest.approx(expected_amp, rel=1e-5)
    others = np.delete(mag, expected_bin)
    assert others.max() < 1e-3 * expected_amp
    # Proper baseband: a bin-centred tone is a constant in its channel, phase included.
    assert np.allclose(np.angle(y[:, expected_bin]), phase, atol=1e-4)
    assert np.allclose(pfb.bin_frequencies(FS)[expected_bin], (k_signed if complex_input else k) * FS / M)


@pytest.mark.parametrize("oversampling", [1, 2])
def test_frame_time_convention(oversampling: int) -> None:
    """Frame j equals the channel's baseband signal at frame_sample_index(j): an off-centre
    tone rotates by exactly 2 pi offset t, with t the documented sample index."""
    k, offset = 12, 0.2 * FS / M
    f = k * FS / M + offset
    pfb = PFBChannelizer(M, 8, oversampling, real_input=False)
    y = pfb.channelize(_tone(f, 30 * M, True))[:, k]
    gain = prototype_response(pfb.prototype_host, [offset / FS])[0]
    n = pfb.frame_sample_index(np.arange(len(y)))
    assert n[0] == (8 * M - 1) / 2 and np.allclose(np.diff(n), pfb.hop)
    expected = gain * np.exp(2j * np.pi * offset * n / FS)
    assert np.max(np.abs(y - expected)) < 1e-4
    assert pfb.output_rate(FS) == FS / pfb.hop


@pytest.mark.parametrize("oversampling", [1, 2])
@pytest.mark.parametrize("sizes", [[1000] * 100, [777] * 100, "random"])
def test_blockwise_equals_one_shot(oversampling: int, sizes) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(scale=1000, size=40_000).astype(np.float32)
    pfb = PFBChannelizer(M, 8, oversampling)
    one = pfb.channelize(x)
    if sizes == "random":
        sizes = rng.integers(1, 3 * M, size=2000)
    got = _blockwise(pfb, x, sizes)
    assert got.shape == one.shape
    assert np.max(np.abs(got - one)) <= 1e-5 * np.max(np.abs(one))


@pytest.mark.parametrize("oversampling", [1, 2])
def test_int16_and_complex_blockwise(oversampling: int) -> None:
    rng = np.random.default_rng(4)
    x16 = rng.integers(-20000, 20000, size=30_000).astype(np.int16)
    pfb = PFBChannelizer(M, 8, oversampling)
    one = pfb.channelize(x16)
    assert np.max(np.abs(one - pfb.channelize(x16.astype(np.float32)))) == 0
    assert np.max(np.abs(_blockwise(pfb, x16, [333] * 200) - one)) <= 1e-5 * np.max(np.abs(one))
    xc = (rng.normal(size=30_000) + 1j * rng.normal(size=30_000)).astype(np.complex64)
    cpfb = PFBChannelizer(M, 8, oversampling, real_input=False)
    cone = cpfb.channelize(xc)
    assert cone.shape[1] == M
    assert np.max(np.abs(_blockwise(cpfb, xc, [901] * 100) - cone)) <= 1e-5 * np.max(np.abs(cone))
    with pytest.raises(TypeError):
        pfb.process(xc)


def test_short_blocks_and_reset() -> None:
    pfb = PFBChannelizer(16, 4)
    assert pfb.process(np.ones(63)).shape == (0, 9)  # one short of a full window
    assert pfb.process(np.ones(1)).shape == (1, 9)
    pfb.reset(first_sample=1000)
    assert pfb.process(np.ones(10)).shape == (0, 9)  # history forgotten
    assert pfb.frame_sample_index(0) == 1000 + (64 - 1) / 2


def test_threaded_cpu_path_matches() -> None:
    x = np.random.default_rng(5).normal(size=4096 * 20).astype(np.float32)
    single = PFBChannelizer(1024, 8).channelize(x)
    threaded = PFBChannelizer(1024, 8, backend=numpy_backend(fft_workers=2)).channelize(x)
    assert np.max(np.abs(single - threaded)) < 1e-6


@pytest.mark.gpu
def test_gpu_matches_numpy() -> None:
    pytest.importorskip("cupy")
    if not gpu_available():
        pytest.skip("no CUDA device")
    from cryodaq.backend import get_backend

    gpu, strict = get_backend("cupy"), get_backend("strict")  # the same device code path, numpy underneath
    x = np.random.default_rng(6).integers(-3000, 3000, size=200_000).astype(np.int16)
    for os_ in (1, 2):
        ref = strict.to_numpy(PFBChannelizer(256, 8, os_, backend=strict).channelize(strict.asarray(x)))
        pfb = PFBChannelizer(256, 8, os_, backend=gpu)
        got = gpu.to_numpy(pfb.channelize(gpu.asarray(x)))
        assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))
        pfb.reset()
        parts = [gpu.to_numpy(pfb.process(gpu.asarray(x[i : i + 7777]))) for i in range(0, len(x), 7777)]
        assert np.max(np.abs(np.concatenate(parts) - ref)) <= 1e-4 * np.max(np.abs(ref))
