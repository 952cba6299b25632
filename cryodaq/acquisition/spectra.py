"""Periodic noise-spectrum snapshots of the live timestreams (for ``spectra/`` and the GUI)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp import welch_psd


class SpectrumMonitor:
    """Welch PSD of each channel over the latest ``n_average`` segments, every ``interval_s`` of data.

    Fed with the pipeline's timestreams (arrays of its backend: on a GPU the ring buffer and
    the PSD stay on the device, and a pipeline brings a due spectrum back with the block's
    other results). A gap clears the buffer so a spectrum never spans missing data.
    """

    def __init__(self, rate_hz: float, n_channels: int, *, nperseg: int = 1024, n_average: int = 8,
                 interval_s: float = 2.0, units: str = "", backend: Backend | None = None) -> None:
        self.units = units
        self.rate_hz, self.nperseg, self.interval_s = float(rate_hz), int(nperseg), float(interval_s)
        self.backend = backend or numpy_backend()
        # 50 % overlap: n_average segments span (n_average + 1) / 2 segment lengths
        self._length = self.nperseg * (n_average + 1) // 2
        self._ring = self.backend.xp.zeros((self._length, n_channels), np.float32)
        self._write = 0  # ring row the next sample goes to
        self._fill = 0
        self._since = 0
        self.freq = np.fft.rfftfreq(self.nperseg, 1.0 / self.rate_hz)

    def reset(self) -> None:
        """After a gap: the buffer refills before the next spectrum, but the data counted towards the
        interval are kept, so a gap delays a snapshot by the refill only (a short run with a gap still
        gets its spectra)."""
        self._fill = 0
        self._write = 0

    def push_backend(self, data: Any) -> Any | None:
        """Add ``data`` ((n, channels) backend array); a (freq, channel) backend PSD when one is due."""
        n = int(data.shape[0])
        if n == 0:
            return None
        length = self._length
        if n >= length:
            self._ring[:] = data[n - length:]
            self._write = 0
        else:
            first = min(n, length - self._write)
            self._ring[self._write:self._write + first] = data[:first]
            if first < n:
                self._ring[: n - first] = data[first:]
            self._write = (self._write + n) % length
        self._fill = min(length, self._fill + n)
        self._since += n
        if self._fill < length or self._since < self.interval_s * self.rate_hz:
            return None
        self._since = 0
        xp = self.backend.xp
        ordered = self._ring if self._write == 0 else xp.concatenate([self._ring[self._write:], self._ring[:self._write]])
        return welch_psd(ordered, self.rate_hz, self.nperseg, axis=0, backend=self.backend)[1]

    def push(self, data: Any, t_ns: np.ndarray) -> tuple[int, np.ndarray, np.ndarray] | None:
        """Add ``data`` with its times; ``(t_ns, freq, psd (channel, freq) on the host)`` when one is due."""
        psd = self.push_backend(self.backend.asarray(data))
        if psd is None:
            return None
        return int(t_ns[-1]), self.freq, self.host_psd(self.backend.to_numpy(psd))

    @staticmethod
    def host_psd(psd: np.ndarray) -> np.ndarray:
        """A (freq, channel) PSD brought to the host, as the sinks take it: (channel, freq) float32."""
        return np.ascontiguousarray(np.asarray(psd).T, dtype=np.float32)
