"""Welch PSD/CSD: same numbers as scipy.signal, Parseval normalisation, many channels at once."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from cryodaq.backend import gpu_available
from cryodaq.dsp import csd, welch_psd


@pytest.mark.parametrize("nperseg", [256, 255])
@pytest.mark.parametrize("window", ["hann", ("tukey", 0.3), "boxcar"])
@pytest.mark.parametrize("detrend", ["constant", "linear", False])
def test_welch_matches_scipy(nperseg: int, window, detrend) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8000)) + np.linspace(0, 3, 8000)  # a trend for detrend to remove
    f, p = welch_psd(x, 1e3, nperseg, window=window, detrend=detrend)
    f2, p2 = scipy.signal.welch(x, 1e3, window=window, nperseg=nperseg, detrend=detrend)
    assert np.allclose(f, f2)
    assert p.shape == p2.shape == (5, nperseg // 2 + 1)
    assert np.allclose(p, p2, rtol=1e-9, atol=1e-12 * p2.max())


def test_axis_float32_and_complex() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6000, 3)).astype(np.float32)
    f, p = welch_psd(x, 2.0, 512, axis=0)
    _, p2 = scipy.signal.welch(x, 2.0, nperseg=512, axis=0)
    assert p.dtype == np.float32 and p.shape == p2.shape == (257, 3)
    assert np.allclose(p, p2, rtol=1e-4)
    z = (x[:, 0] + 1j * x[:, 1]).astype(np.complex64)
    f, p = welch_psd(z, 2.0, 512)
    f2, p2 = scipy.signal.welch(z, 2.0, nperseg=512)
    assert np.allclose(f, f2) and p.shape == (512,) and np.allclose(p, p2, rtol=1e-4)


def test_parseval_white_noise() -> None:
    """One-sided density integrates to the variance (DC and Nyquist not doubled)."""
    rng = np.random.default_rng(2)
    sigma, fs = 3.0, 5e4
    x = rng.normal(scale=sigma, size=(4, 400_000))
    f, p = welch_psd(x, fs, 1024)
    df = f[1] - f[0]
    assert np.allclose(p.sum(axis=-1) * df, sigma**2, rtol=0.01)
    assert np.allclose(p[:, 1:-1].mean(axis=-1), 2 * sigma**2 / fs, rtol=0.01)  # flat at 2 sigma^2/fs
    # DC and Nyquist carry half the density of the other bins on average (not doubled).
    assert p[:, -1].mean() == pytest.approx(sigma**2 / fs, rel=0.25)


def test_csd_matches_scipy_and_psd() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6000))
    y = 0.5 * np.roll(x, 3, axis=-1) + rng.normal(size=(3, 6000))
    f, pxy = csd(x, y, 100.0, 256)
    f2, pxy2 = scipy.signal.csd(x, y, 100.0, nperseg=256)
    assert np.allclose(f, f2) and np.allclose(pxy, pxy2, rtol=1e-9, atol=1e-12)
    _, pxx = csd(x, x, 100.0, 256)
    assert np.allclose(pxx.real, welch_psd(x, 100.0, 256)[1]) and np.allclose(pxx.imag, 0)


def test_errors() -> None:
    with pytest.raises(ValueError, match="nperseg"):
        welch_psd(np.zeros(100), 1.0, 200)
    with pytest.raises(ValueError, match="detrend"):
        welch_psd(np.zeros(100), 1.0, 50, detrend="quadratic")
    with pytest.raises(ValueError, match="same shape"):
        csd(np.zeros(100), np.zeros(200), 1.0, 50)


@pytest.mark.gpu
def test_gpu_welch_matches_numpy() -> None:
    pytest.importorskip("cupy")
    if not gpu_available():
        pytest.skip("no CUDA device")
    from cryodaq.backend import get_backend

    gpu = get_backend("cupy")
    x = np.random.default_rng(4).normal(size=(8, 20_000)).astype(np.float32)
    _, ref = welch_psd(x, 1e3, 1024)
    _, got = welch_psd(gpu.asarray(x), 1e3, 1024, backend=gpu)
    assert np.allclose(gpu.to_numpy(got), ref, rtol=1e-4)
