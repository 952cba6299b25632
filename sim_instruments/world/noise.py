"""Streaming noise sources whose output does not depend on how it is split into blocks.

* :class:`WhiteNoise`: unit Gaussian samples, generated in fixed chunks, each chunk
  from its own seed (``SeedSequence(seed, spawn_key=(..., chunk))``), so any sample
  range can be produced in any order and equals the same range of one long draw.
* :class:`TLSNoise`: 1/f (two-level-system-like) fractional-frequency noise, one
  independent series per resonator: a sum of AR(1) processes with log-spaced corner
  frequencies and equal variances, generated on a coarse grid (fs / decimation) in
  fixed chunks sequentially, and linearly interpolated to the sample times.

Why hand-written: scipy/numpy give the building blocks (``lfilter``, ``Generator``)
but no block-invariant streaming generator; this module only arranges them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass
class NoiseConfig:
    """Noise levels. ``white_counts_rms`` is referred to the ADC input with ATT:ADC = 0 dB."""

    #: amplifier (HEMT) white noise at the ADC, counts RMS, scaled by ATT:ADC like the signal
    white_counts_rms: float = 70.0
    #: the ADC's own noise, counts RMS, after the attenuator
    adc_counts_rms: float = 0.5
    #: one-sided fractional-frequency noise PSD S_xx at 1 Hz (1/Hz); S_xx(f) ≈ S_xx(1 Hz)/f
    tls_sxx_at_1hz: float = 5e-18
    tls_corner_min_hz: float = 0.1
    tls_corner_max_hz: float = 1000.0
    tls_corners_per_decade: float = 2.0
    #: the 1/f grid runs at fs / tls_decimation
    tls_decimation: int = 256


class WhiteNoise:
    """Unit-variance Gaussian float32 samples, random access by sample index."""

    def __init__(self, seed: int, key: tuple[int, ...], chunk: int = 1 << 16) -> None:
        self._seed, self._key, self._chunk = seed, tuple(key), chunk
        self._cache: dict[int, np.ndarray] = {}

    def _chunk_values(self, index: int) -> np.ndarray:
        values = self._cache.get(index)
        if values is None:
            ss = np.random.SeedSequence(self._seed, spawn_key=self._key + (index,))
            values = np.random.Generator(np.random.PCG64(ss)).standard_normal(self._chunk, dtype=np.float32)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = values
        return values

    def take(self, first: int, n: int) -> np.ndarray:
        """Samples ``first .. first+n-1`` (a read-only view when they lie in one chunk)."""
        c, off = divmod(first, self._chunk)
        if off + n <= self._chunk:
            view = self._chunk_values(c)[off : off + n]
            view.flags.writeable = False
            return view
        out = np.empty(n, dtype=np.float32)
        pos = 0
        while pos < n:
            s = first + pos
            c, off = divmod(s, self._chunk)
            k = min(n - pos, self._chunk - off)
            out[pos : pos + k] = self._chunk_values(c)[off : off + k]
            pos += k
        return out


def tls_corners(config: NoiseConfig) -> np.ndarray:
    """Log-spaced AR(1) corner frequencies (Hz)."""
    decades = np.log10(config.tls_corner_max_hz / config.tls_corner_min_hz)
    n = max(1, int(round(decades * config.tls_corners_per_decade)) + 1)
    return np.geomspace(config.tls_corner_min_hz, config.tls_corner_max_hz, n)


class TLSNoise:
    """1/f fractional-frequency noise of ``n_series`` resonators, streamed forward in time.

    With corners spaced by a factor r and equal variance σ² each, the sum's one-sided
    PSD between the corners is σ² / (f ln r); σ² is chosen to give ``tls_sxx_at_1hz``.
    """

    def __init__(self, config: NoiseConfig, fs_hz: float, n_series: int, seed: int, key: tuple[int, ...],
                 chunk: int = 512) -> None:
        self.decimation = int(config.tls_decimation)
        if self.decimation < 1:
            raise ValueError(f"noise.tls_decimation must be >= 1, got {config.tls_decimation}")
        self.grid_rate = fs_hz / self.decimation
        corners = tls_corners(config)
        if corners.max() >= self.grid_rate / 2:
            raise ValueError(
                f"noise.tls_corner_max_hz={config.tls_corner_max_hz} must be below half the 1/f grid rate "
                f"({self.grid_rate / 2:g} Hz)"
            )
        ratio = corners[1] / corners[0] if corners.size > 1 else 10.0
        sigma2 = config.tls_sxx_at_1hz * np.log(ratio)
        self._a = np.exp(-2.0 * np.pi * corners / self.grid_rate)
        self._b = np.sqrt(sigma2 * (1.0 - self._a**2))
        self._n = n_series
        self._chunk = chunk
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(key))))
        # stationary start: each AR state drawn from its stationary distribution
        self._state = np.sqrt(sigma2) * self._rng.standard_normal((corners.size, n_series))
        self._chunks: dict[int, np.ndarray] = {}
        self._next_chunk = 0
        self.enabled = config.tls_sxx_at_1hz > 0

    def _generate_chunk(self) -> None:
        w = self._rng.standard_normal((self._a.size, self._n, self._chunk))
        total = np.zeros((self._n, self._chunk))
        for p in range(self._a.size):
            a, b = self._a[p], self._b[p]
            y, zf = signal.lfilter([b], [1.0, -a], w[p], axis=-1, zi=(a * self._state[p])[:, None])
            self._state[p] = y[:, -1]
            total += y
        self._chunks[self._next_chunk] = total
        self._next_chunk += 1

    def grid(self, first: int, n: int) -> np.ndarray:
        """Grid values ``first .. first+n-1`` as (n_series, n); access must not go back before dropped chunks."""
        last_chunk = (first + n - 1) // self._chunk
        lo = first // self._chunk
        while self._next_chunk <= last_chunk:
            self._generate_chunk()
            for c in [c for c in self._chunks if c < lo]:
                del self._chunks[c]
        for c in [c for c in self._chunks if c < lo]:
            del self._chunks[c]
        if lo not in self._chunks:
            raise ValueError(f"TLS noise grid point {first} was already discarded (streams only move forward)")
        parts = [self._chunks[c] for c in range(lo, last_chunk + 1)]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        off = first - lo * self._chunk
        return joined[:, off : off + n]

    def take(self, first_sample: int, n: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Fractional-frequency noise at samples ``first_sample ..`` as float32 (n_series, n).

        ``rows`` selects (and orders) the series returned, e.g. one per tone.
        """
        n_rows = self._n if rows is None else len(rows)
        if not self.enabled:
            return np.zeros((n_rows, n), dtype=np.float32)
        d = self.decimation
        g0 = first_sample // d
        g1 = -(-(first_sample + n) // d)  # grid cells [g0, g1) cover the samples
        grid = self.grid(g0, g1 - g0 + 1)
        grid = (grid if rows is None else grid[rows]).astype(np.float32)
        left = grid[:, :-1, None]
        slope = (grid[:, 1:] - grid[:, :-1])[:, :, None]
        frac = (np.arange(d, dtype=np.float32) / np.float32(d))[None, None, :]
        cells = (left + slope * frac).reshape(n_rows, -1)
        off = first_sample - g0 * d
        return cells[:, off : off + n]

    def advance_to(self, first_sample: int) -> None:
        """Generate (and drop) everything before ``first_sample`` so a jump forward keeps continuity."""
        g0 = first_sample // self.decimation
        self.grid(g0, 1)
