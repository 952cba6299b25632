"""Periodic noise-spectrum snapshots of the live timestreams (for ``spectra/`` and the GUI)."""

from __future__ import annotations

import numpy as np

from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp import welch_psd


class SpectrumMonitor:
    """Welch PSD of each channel over the latest ``n_average`` segments, every ``interval_s`` of data.

    Fed with the pipeline's timestreams; a gap clears the buffer so a spectrum never
    spans missing data. Returns ``(t_ns, freq, psd (channel, freq))`` when one is due.
    """

    def __init__(self, rate_hz: float, n_channels: int, *, nperseg: int = 1024, n_average: int = 8,
                 interval_s: float = 2.0, units: str = "", backend: Backend | None = None) -> None:
        self.units = units
        self.rate_hz, self.nperseg, self.interval_s = float(rate_hz), int(nperseg), float(interval_s)
        self.backend = backend or numpy_backend()
        # 50 % overlap: n_average segments span (n_average + 1) / 2 segment lengths
        self._length = self.nperseg * (n_average + 1) // 2
        self._buf = np.zeros((self._length, n_channels), np.float32)
        self._fill = 0
        self._since = 0

    def reset(self) -> None:
        self._fill = 0
        self._since = 0

    def push(self, data: np.ndarray, t_ns: np.ndarray) -> tuple[int, np.ndarray, np.ndarray] | None:
        n = len(data)
        if n == 0:
            return None
        if n >= self._length:
            self._buf[:] = data[-self._length:]
        else:
            self._buf = np.roll(self._buf, -n, axis=0)
            self._buf[-n:] = data
        self._fill = min(self._length, self._fill + n)
        self._since += n
        if self._fill < self._length or self._since < self.interval_s * self.rate_hz:
            return None
        self._since = 0
        freq, psd = welch_psd(self.backend.asarray(self._buf), self.rate_hz, self.nperseg, axis=0,
                              backend=self.backend)
        return int(t_ns[-1]), freq, self.backend.to_numpy(psd).T.astype(np.float32)
