"""Welch power and cross spectral densities for many channels at once, on any backend.

Same definitions and normalisation as :func:`scipy.signal.welch` / :func:`scipy.signal.csd`
(one-sided, units**2/Hz, ``scale = 1/(fs * sum(window**2))``, every bin doubled except
DC and, for even ``nperseg``, Nyquist; mean over segments).  Written with
``backend.xp`` + ``backend.fft`` rather than wrapping scipy so the cupy path is the
same code.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import scipy.signal

from ..backend import Backend, numpy_backend


def _segment_spectra(
    x: Any, fs: float, nperseg: int, noverlap: int | None, axis: int, window: Any, detrend: Any,
    backend: Backend,
) -> tuple[Any, Any, float]:
    """Windowed, detrended segment FFTs: (..., n_seg, n_freq) and the density scale."""
    xp = backend.xp
    x = backend.asarray(x)
    if not np.issubdtype(x.dtype, np.inexact):
        x = x.astype(np.float64)
    x = xp.ascontiguousarray(xp.moveaxis(x, axis, -1))
    n = x.shape[-1]
    if nperseg < 2 or nperseg > n:
        raise ValueError(f"nperseg={nperseg} must lie in 2..{n} (the length along axis {axis})")
    noverlap = nperseg // 2 if noverlap is None else int(noverlap)
    if not 0 <= noverlap < nperseg:
        raise ValueError(f"noverlap={noverlap} must lie in 0..{nperseg - 1}")
    step = nperseg - noverlap
    n_seg = (n - noverlap) // step
    lead = x.shape[:-1]
    flat = x.reshape(-1, n)
    item = flat.dtype.itemsize
    segs = xp.lib.stride_tricks.as_strided(
        flat, shape=(flat.shape[0], n_seg, nperseg), strides=(flat.strides[0], step * item, item)
    )
    real_dtype = np.float32 if flat.dtype in (np.float32, np.complex64) else np.float64
    if isinstance(window, (str, tuple, float)):
        win_host, win = _named_window(backend, window, nperseg, np.dtype(real_dtype).str)
    else:
        win_host = np.asarray(window, float)
        if win_host.shape != (nperseg,):
            raise ValueError(f"window array has shape {win_host.shape}; expected ({nperseg},)")
        win = backend.asarray(win_host.astype(real_dtype))
    if detrend == "constant":
        segs = segs - segs.mean(axis=-1, keepdims=True)
    elif detrend == "linear":
        t = xp.arange(nperseg, dtype=real_dtype) - (nperseg - 1) / 2.0
        slope = (segs * t).sum(axis=-1, keepdims=True) / float((t * t).sum())
        segs = segs - segs.mean(axis=-1, keepdims=True) - slope * t
    elif detrend not in (False, None):
        raise ValueError(f"detrend={detrend!r}: expected 'constant', 'linear' or False")
    kw = backend.fft_kwargs()
    if xp.iscomplexobj(segs):
        spec = backend.fft.fft(segs * win, axis=-1, **kw)
    else:
        spec = backend.fft.rfft(segs * win, axis=-1, **kw)
    scale = 1.0 / (fs * float((win_host**2).sum()))
    return spec.reshape(*lead, n_seg, spec.shape[-1]), scale, real_dtype


@lru_cache(maxsize=64)
def _named_window(backend: Backend, window: Any, nperseg: int, dtype: str) -> tuple[np.ndarray, Any]:
    """A named window on the host and on the backend, made once (periodic spectra upload nothing)."""
    host = scipy.signal.get_window(window, nperseg)
    return host, backend.asarray(host.astype(dtype))


def welch_psd(
    x: Any, fs: float, nperseg: int, axis: int = -1, window: Any = "hann", detrend: Any = "constant",
    noverlap: int | None = None, backend: Backend | None = None,
) -> tuple[np.ndarray, Any]:
    """One-sided (two-sided for complex ``x``) Welch PSD along ``axis``: ``(freqs, Pxx)``.

    ``freqs`` is host numpy; ``Pxx`` (units**2/Hz) is a backend array with the
    frequency axis where ``axis`` was.
    """
    b = backend or numpy_backend()
    xp = b.xp
    spec, scale, dt = _segment_spectra(x, fs, nperseg, noverlap, axis, window, detrend, b)
    p = (spec.real**2 + spec.imag**2).mean(axis=-2) * scale
    onesided = not np.iscomplexobj(x)
    freqs = np.fft.rfftfreq(nperseg, 1.0 / fs) if onesided else np.fft.fftfreq(nperseg, 1.0 / fs)
    return freqs, _move_back(_double(p, nperseg, onesided), axis, xp).astype(dt)


def csd(
    x: Any, y: Any, fs: float, nperseg: int, axis: int = -1, window: Any = "hann",
    detrend: Any = "constant", noverlap: int | None = None, backend: Backend | None = None,
) -> tuple[np.ndarray, Any]:
    """Welch cross spectral density ``conj(X) * Y`` (scipy's convention): ``(freqs, Pxy)``."""
    b = backend or numpy_backend()
    xp = b.xp
    sx, scale, _ = _segment_spectra(x, fs, nperseg, noverlap, axis, window, detrend, b)
    sy, _, _ = _segment_spectra(y, fs, nperseg, noverlap, axis, window, detrend, b)
    if sx.shape != sy.shape:
        raise ValueError(f"csd needs x and y of the same shape, got spectra {sx.shape} and {sy.shape}")
    p = (xp.conj(sx) * sy).mean(axis=-2) * scale
    onesided = not (np.iscomplexobj(x) or np.iscomplexobj(y))
    freqs = np.fft.rfftfreq(nperseg, 1.0 / fs) if onesided else np.fft.fftfreq(nperseg, 1.0 / fs)
    return freqs, _move_back(_double(p, nperseg, onesided), axis, xp)


def _double(p: Any, nperseg: int, onesided: bool) -> Any:
    """Fold the negative frequencies of a real signal into the positive ones."""
    if onesided:
        last = -1 if nperseg % 2 == 0 else None  # even nperseg: the last bin is Nyquist
        p[..., 1:last] *= 2
    return p


def _move_back(p: Any, axis: int, xp: Any) -> Any:
    return p if axis in (-1, p.ndim - 1) else xp.moveaxis(p, -1, axis)
