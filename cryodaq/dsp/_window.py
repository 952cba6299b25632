"""Filter design shared by the channelizer and the tone DDC (host-side numpy).

Designs are small and done once, on the host, with scipy; the streaming objects
move the taps onto their backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.signal


def design_prototype(n_channels: int, n_taps: int, window: Any = "hann") -> np.ndarray:
    """Windowed-sinc prototype low-pass for an ``n_channels`` PFB, ``n_taps`` per branch.

    Cutoff 1/n_channels (cycles/sample), i.e. half a bin either side of each channel
    centre; normalised for unit DC gain (``sum(h) == 1``), so a complex tone of
    amplitude A at a bin centre comes out of that channel with amplitude A.
    ``window`` is any :func:`scipy.signal.get_window` name/tuple (symmetric form,
    so the filter is zero-phase about its centre) or an array of ``n_taps*n_channels``
    values used as the whole prototype (then only normalised).
    """
    length = n_taps * n_channels
    if isinstance(window, (str, tuple, float)):
        win = scipy.signal.get_window(window, length, fftbins=False)
        n = np.arange(length, dtype=np.float64) - (length - 1) / 2.0
        h = np.sinc(n / n_channels) * win
    else:
        h = np.asarray(window, dtype=np.float64)
        if h.shape != (length,):
            raise ValueError(
                f"PFB window array has shape {h.shape}; expected ({length},) = n_taps*n_channels"
            )
    total = h.sum()
    if not np.isfinite(total) or total == 0:
        raise ValueError("PFB prototype sums to zero or is not finite; cannot normalise DC gain")
    return h / total


def prototype_response(h: np.ndarray, freq_cycles: np.ndarray) -> np.ndarray:
    """Zero-phase (about the filter centre) response of ``h`` at ``freq_cycles`` (cycles/sample)."""
    h = np.asarray(h, dtype=np.float64)
    n = np.arange(h.size) - (h.size - 1) / 2.0
    f = np.atleast_1d(np.asarray(freq_cycles, dtype=np.float64))
    rows = max(1, (32 << 20) // (16 * h.size))  # ~32 MB of complex exponentials at a time (thousands of tones)
    return np.concatenate([(np.exp(2j * np.pi * f[i:i + rows, None] * n[None, :]) @ h).real
                           for i in range(0, f.size, rows)]) if f.size else np.zeros(0)


def lowpass_taps(numtaps: int, cutoff: float) -> np.ndarray:
    """Unit-DC-gain FIR low-pass (``scipy.signal.firwin``); ``cutoff`` as a fraction of Nyquist."""
    if numtaps < 1:
        raise ValueError(f"low-pass needs at least 1 tap, got {numtaps}")
    if numtaps == 1:
        return np.ones(1)
    if not 0 < cutoff < 1:
        raise ValueError(f"low-pass cutoff {cutoff} must lie in (0, 1) of the Nyquist frequency")
    return scipy.signal.firwin(numtaps, cutoff)
