"""Drift correction: the gain of the filtered value against the pretrigger mean, by minimum entropy.

A detector whose bath or bias drifts shows it in the baseline (the pretrigger mean) and in the
gain. NIST mass corrects ``v' = v · (1 + a · (p − p̃))`` (``p``: the indicator, usually the
pretrigger mean, ``p̃`` its median) with the slope ``a`` that minimises the Shannon entropy of
the smoothed histogram of ``v'``: sharp lines have low entropy. This does the same, with two
changes so it works in any units (mass's smoothing width is 0.5 raw ADC units and its search
starts at a slope bracket of [0, 0.001] per ADC unit, which fit ADC counts only):

- the histogram smoothing σ is half the robust width of the dominant peak of the values
  (or given), and the histogram covers the populated range (1st percentile to 1.25× the 99th);
- the slope is searched in units of the indicator's robust σ: a scan over gains of ±10 %
  per 5σ of indicator, then a bounded Brent refinement around the best scan point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.optimize

from cryodaq.dsp.stats import robust_sigma

__all__ = ["DriftCorrection", "drift_correct", "peak_width"]


@dataclass(frozen=True)
class DriftCorrection:
    """``corrected = value · (1 + slope · (indicator − offset))``, and what it did to the dominant peak."""

    slope: float  # per indicator unit
    offset: float  # median of the indicator
    indicator: str
    smooth_sigma: float  # histogram smoothing, in the value's units
    entropy_before: float
    entropy_after: float
    width_before: float  # robust FWHM (2.355 x 1.4826 MAD) of the dominant peak, value units
    width_after: float
    n_used: int

    def apply(self, values: Any, indicator: Any) -> np.ndarray:
        """The corrected values."""
        return np.asarray(values, dtype=float) * (1.0 + self.slope * (np.asarray(indicator, dtype=float) - self.offset))

    def as_dict(self) -> dict[str, Any]:
        return {"type": "gain_vs_" + self.indicator, "slope": self.slope, "offset": self.offset,
                "indicator": self.indicator, "smooth_sigma": self.smooth_sigma,
                "entropy_before": self.entropy_before, "entropy_after": self.entropy_after,
                "peak_fwhm_before": self.width_before, "peak_fwhm_after": self.width_after, "n_used": self.n_used}


def _dominant_peak(values: np.ndarray) -> tuple[float, np.ndarray]:
    """Centre of the most populated narrow peak and the values within ±2 % of it."""
    lo, hi = np.percentile(values, [1, 99])
    if not hi > lo:
        return float(np.median(values)), values
    counts, edges = np.histogram(values, bins=512, range=(lo, hi))
    k = int(np.argmax(scipy.ndimage.uniform_filter1d(counts.astype(float), 3)))
    centre = 0.5 * (edges[k] + edges[k + 1])
    near = values[np.abs(values - centre) <= 0.02 * abs(centre)] if centre else values
    return float(np.median(near)) if near.size else centre, near if near.size else values


def peak_width(values: Any) -> float:
    """Robust FWHM of the dominant peak of ``values`` (2.355 × 1.4826 × MAD of the values near it)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 3:
        return float("nan")
    centre, near = _dominant_peak(v)
    near = near[np.abs(near - centre) <= 3 * 1.4826 * np.median(np.abs(near - centre)) + 1e-300]
    return float(2.3548 * robust_sigma(near[:, None])[0]) if near.size > 2 else float("nan")


class _Entropy:
    """Entropy of the Gaussian-smoothed, normalised histogram of ``v (1 + a d)`` on a fixed grid."""

    def __init__(self, v: np.ndarray, d: np.ndarray, smooth: float) -> None:
        self.v, self.d = v, d
        lo, hi = np.percentile(v, 1), 1.25 * np.percentile(v, 99)
        if hi <= lo:
            hi = lo + 1.0
        self.step = smooth * 0.4
        n = int(np.clip(np.ceil((hi - lo) / self.step), 64, 1 << 20))
        self.edges = np.linspace(lo, hi, n + 1)
        self.sigma_bins = smooth / (self.edges[1] - self.edges[0])

    def __call__(self, a: float) -> float:
        h, _ = np.histogram(self.v * (1.0 + a * self.d), self.edges)
        s = scipy.ndimage.gaussian_filter1d(h.astype(float), self.sigma_bins, mode="constant")
        total = s.sum()
        if total <= 0:
            return 0.0
        p = s[s > 0] / total
        return float(-(p * np.log(p)).sum())


def drift_correct(
    values: Any,
    indicator: Any,
    *,
    smooth_sigma: float | None = None,
    indicator_name: str = "pretrig_mean",
    max_gain_change: float = 0.1,
) -> DriftCorrection:
    """The entropy-minimising gain slope of ``values`` against ``indicator`` (module docstring).

    Use the good pulses only (cuts applied). ``max_gain_change``: the scan covers slopes that
    change the gain by up to this fraction over 5 robust σ of the indicator.
    """
    v = np.asarray(values, dtype=float)
    p = np.asarray(indicator, dtype=float)
    ok = np.isfinite(v) & np.isfinite(p)
    v, p = v[ok], p[ok]
    if v.size < 50:
        raise ValueError(f"drift_correct: {v.size} usable pulses; need >= 50")
    offset = float(np.median(p))
    d = p - offset
    spread = float(robust_sigma(d[:, None])[0]) or float(np.std(d))
    if smooth_sigma is None:
        w = peak_width(v)
        smooth_sigma = 0.5 * w / 2.3548 if np.isfinite(w) and w > 0 else 0.01 * abs(float(np.median(v)))
    if not spread > 0:  # a constant indicator: nothing to correct against
        h = _Entropy(v, d, smooth_sigma)(0.0)
        w = peak_width(v)
        return DriftCorrection(0.0, offset, indicator_name, smooth_sigma, h, h, w, w, int(v.size))
    entropy = _Entropy(v, d / spread, smooth_sigma)
    scan = np.linspace(-max_gain_change / 5, max_gain_change / 5, 81)
    h = np.array([entropy(a) for a in scan])
    k = int(np.argmin(h))
    step = scan[1] - scan[0]
    res = scipy.optimize.minimize_scalar(entropy, bounds=(scan[k] - step, scan[k] + step), method="bounded",
                                         options={"xatol": 1e-7})
    best = float(res.x) if res.fun <= h[k] else float(scan[k])
    slope = best / spread
    corr = DriftCorrection(slope, offset, indicator_name, float(smooth_sigma), float(entropy(0.0)),
                           float(entropy(best)), peak_width(v), 0.0, int(v.size))
    return DriftCorrection(**{**corr.__dict__, "width_after": peak_width(corr.apply(v, p))})
