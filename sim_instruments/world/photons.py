"""Photon arrivals: a Poisson process per resonator, energies from a line list, pulse shapes.

A line is monochromatic (its ``lines_ev`` value) unless ``line_shapes`` names a published natural
shape for it (e.g. ``MnKAlpha``: the Hölzer et al. 1997 multiplet, :mod:`cryodaq.analysis.lines`):
then each photon's energy is drawn from that shape, from a random stream of its own, so the
arrival times and line choices are the same either way. The truth log keeps every photon's
energy and which line it came from.

A photon of energy E arriving at time t0 shifts its resonator by
``δfr/fr = -rf_per_ev * E * p(t - t0)`` and ``δ(1/Qi) = rq_per_ev * E * p(t - t0)``, with
``p(t) = (exp(-t/τ_fall) - exp(-t/τ_rise)) / peak`` (peak value 1) for
0 <= t < pulse_length_taus * τ_fall. Arrival times are continuous (fractions of a
sample); a sample's value depends only on its own index, so any block split gives the
same samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRUTH_DTYPE = np.dtype([("sample", "i8"), ("t_sample", "f8"), ("resonator", "i4"), ("energy_ev", "f8"),
                        ("line", "i2")])


@dataclass
class PhotonConfig:
    """Photon source and detector response."""

    #: mean arrival rate per resonator (Hz); 0 disables photons
    rate_hz: float = 15.0
    lines_ev: list[float] = field(default_factory=lambda: [1.55, 3.1])
    weights: list[float] = field(default_factory=lambda: [0.7, 0.3])
    tau_rise_s: float = 15e-6
    tau_fall_s: float = 300e-6
    #: peak fractional frequency shift per eV (1.55 eV -> ~0.15 linewidth at Ql = 1.67e5)
    rf_per_ev: float = 5.8e-7
    #: peak change of 1/Qi per eV
    rq_per_ev: float = 3.5e-7
    pulse_length_taus: float = 12.0
    #: the truth log keeps at most this many of the latest arrivals
    truth_max: int = 1_000_000
    #: per line of ``lines_ev``: a tabulated natural shape to draw energies from (None: monochromatic); [] = none
    line_shapes: list[str | None] = field(default_factory=list)


def pulse_peak(tau_rise_s: float, tau_fall_s: float) -> float:
    """Peak of exp(-t/τf) - exp(-t/τr), reached at t* = τr τf/(τf - τr) ln(τf/τr)."""
    if not 0 < tau_rise_s < tau_fall_s:
        raise ValueError(f"photons: need 0 < tau_rise_s < tau_fall_s, got {tau_rise_s}, {tau_fall_s}")
    t_star = tau_rise_s * tau_fall_s / (tau_fall_s - tau_rise_s) * math.log(tau_fall_s / tau_rise_s)
    return math.exp(-t_star / tau_fall_s) - math.exp(-t_star / tau_rise_s)


def resolve_line_shapes(names: list[str | None], n_lines: int) -> list[Any]:
    """The natural shapes named per line (None: monochromatic); ``names`` empty: all monochromatic."""
    if not names:
        return [None] * n_lines
    if len(names) != n_lines:
        raise ValueError(f"photons.line_shapes must name one shape (or null) per line of lines_ev ({n_lines}), "
                         f"got {names!r}")
    from cryodaq.analysis.lines import get_line  # the published tables, shared with the analysis

    try:
        return [None if n is None else get_line(str(n)) for n in names]
    except KeyError as exc:
        raise ValueError(f"photons.line_shapes: {exc.args[0]}") from None


class PhotonTrains:
    """Poisson photon arrivals on ``n_res`` resonators, streamed forward in sample time."""

    _BATCH = 64

    def __init__(self, config: PhotonConfig, fs_hz: float, n_res: int, seed: int, key: tuple[int, ...]) -> None:
        lines = np.asarray(config.lines_ev, dtype=float)
        weights = np.asarray(config.weights, dtype=float)
        if lines.ndim != 1 or lines.size == 0 or lines.shape != weights.shape or np.any(weights < 0):
            raise ValueError(f"photons.lines_ev and photons.weights must be lists of equal length, got {lines}, {weights}")
        self.config = config
        self._lines = lines
        self._shapes = resolve_line_shapes(config.line_shapes, lines.size)
        self._p = weights / weights.sum()
        self._fs = fs_hz
        self._n = n_res
        self._tr = config.tau_rise_s * fs_hz  # in samples
        self._tf = config.tau_fall_s * fs_hz
        self._peak = pulse_peak(config.tau_rise_s, config.tau_fall_s)
        self._len = config.pulse_length_taus * self._tf
        self._mean_gap = fs_hz / config.rate_hz if config.rate_hz > 0 else math.inf
        self._rngs = [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(key) + (k,))))
            for k in range(n_res)
        ]
        # natural-shape energies come from streams of their own: arrivals stay as without shapes
        self._shape_rngs = [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(key) + (k, 1))))
            for k in range(n_res)
        ]
        self._last = [0.0] * n_res  # last generated arrival (samples)
        self._times = [np.empty(0) for _ in range(n_res)]
        self._energies = [np.empty(0) for _ in range(n_res)]
        self._truth: list[np.ndarray] = []
        self._truth_len = 0
        self._end = 0  # samples covered so far (exclusive)

    def _extend(self, k: int, until: float) -> None:
        while self._last[k] < until:
            rng = self._rngs[k]
            t = self._last[k] + np.cumsum(rng.exponential(self._mean_gap, self._BATCH))
            which = rng.choice(self._lines.size, size=self._BATCH, p=self._p)
            e = self._lines[which]
            for i, shape in enumerate(self._shapes):
                sel = which == i
                if shape is not None and sel.any():
                    e[sel] = shape.sample(int(sel.sum()), 0.0, self._shape_rngs[k])
            self._last[k] = float(t[-1])
            self._times[k] = np.concatenate([self._times[k], t])
            self._energies[k] = np.concatenate([self._energies[k], e])
            rec = np.empty(self._BATCH, dtype=TRUTH_DTYPE)
            rec["sample"] = np.ceil(t).astype(np.int64)
            rec["t_sample"], rec["resonator"], rec["energy_ev"], rec["line"] = t, k, e, which
            self._truth.append(rec)
            self._truth_len += rec.size
        while self._truth and self._truth_len - self._truth[0].size > self.config.truth_max:
            self._truth_len -= self._truth.pop(0).size

    def profile(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Σ E·p(t - t0) (eV) at samples ``first..first+n-1`` as (n_res, n) float64, and a per-resonator 'any pulse' mask."""
        out = np.zeros((self._n, n))
        active = np.zeros(self._n, dtype=bool)
        self._end = max(self._end, first + n)
        if not math.isfinite(self._mean_gap):
            return out, active
        for k in range(self._n):
            self._extend(k, first + n)
            times, energies = self._times[k], self._energies[k]
            start = int(np.searchsorted(times, first - self._len))
            if start:
                times, energies = times[start:], energies[start:]
                self._times[k], self._energies[k] = times, energies
            stop = int(np.searchsorted(times, first + n))
            for t0, e in zip(times[:stop].tolist(), energies[:stop].tolist()):
                lo = max(math.ceil(t0) - first, 0)
                hi = min(math.ceil(t0 + self._len) - first, n)
                if lo >= hi:
                    continue
                tt = (first + np.arange(lo, hi)) - t0
                out[k, lo:hi] += (e / self._peak) * (np.exp(-tt / self._tf) - np.exp(-tt / self._tr))
                active[k] = True
        return out, active

    def advance(self, until_sample: int) -> None:
        """Draw the arrivals before ``until_sample`` without computing pulses (skipped samples, rate checks)."""
        for k in range(self._n):
            if math.isfinite(self._mean_gap):
                self._extend(k, until_sample)
            start = int(np.searchsorted(self._times[k], until_sample - self._len))
            self._times[k], self._energies[k] = self._times[k][start:], self._energies[k][start:]
        self._end = max(self._end, until_sample)

    def truth(self) -> np.ndarray:
        """Arrivals before the end of the samples produced so far: fields sample, t_sample, resonator, energy_ev."""
        if not self._truth:
            return np.empty(0, dtype=TRUTH_DTYPE)
        rec = np.concatenate(self._truth)
        rec = rec[rec["t_sample"] < self._end]
        return rec[np.argsort(rec["t_sample"], kind="stable")]
