"""Gaussian fit of the main peak of a histogram: the FWHM readout of the energy/amplitude histogram."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class PeakFit:
    """A Gaussian ``height * exp(-(x - mu)^2 / (2 sigma^2))`` fitted to histogram counts."""

    height: float
    mu: float
    sigma: float
    mu_err: float
    sigma_err: float
    n_events: int  # events in the fitted window

    @property
    def fwhm(self) -> float:
        return FWHM_PER_SIGMA * self.sigma

    @property
    def fwhm_err(self) -> float:
        return FWHM_PER_SIGMA * self.sigma_err

    def curve(self, x: np.ndarray) -> np.ndarray:
        return gaussian(x, self.height, self.mu, self.sigma)


def gaussian(x: np.ndarray, height: float, mu: float, sigma: float) -> np.ndarray:
    return height * np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def histogram(values: np.ndarray, bins: int = 80, quantiles: tuple[float, float] = (0.005, 0.995)
              ) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges over the central quantiles of ``values`` (outliers do not squash the peak)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return np.zeros(0, np.int64), np.zeros(1)
    lo, hi = np.quantile(values, quantiles)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.histogram(values, bins=bins, range=(lo, hi))


def fit_peak(counts: np.ndarray, edges: np.ndarray, *, window_sigma: float = 2.5, min_events: int = 20
             ) -> PeakFit | None:
    """Fit a Gaussian to the highest peak of a histogram, within ``window_sigma`` of it.

    The starting width comes from the half-maximum crossings around the highest
    bin; the fit then uses bins inside ``mu ± window_sigma * sigma`` only, so a
    second line or a tail does not pull it. Counts are weighted as Poisson
    (``sqrt(max(n, 1))``). Returns None when there are too few events or the fit
    does not converge.
    """
    counts = np.asarray(counts, float)
    if counts.sum() < min_events or len(counts) < 5:
        return None
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    k = int(np.argmax(counts))
    half = counts[k] / 2
    below = np.flatnonzero(counts[:k] < half)
    above = np.flatnonzero(counts[k:] < half)
    left = centres[below[-1]] if len(below) else centres[0]
    right = centres[k + above[0]] if len(above) else centres[-1]
    sigma0 = max((right - left) / FWHM_PER_SIGMA, width)
    mu0 = centres[k]
    win = np.abs(centres - mu0) <= window_sigma * sigma0
    if win.sum() < 4:
        win = np.abs(centres - mu0) <= 2 * width
    x, y = centres[win], counts[win]
    try:
        popt, pcov = curve_fit(gaussian, x, y, p0=(counts[k], mu0, sigma0), sigma=np.sqrt(np.maximum(y, 1.0)),
                               absolute_sigma=True, maxfev=2000)
    except (RuntimeError, ValueError):
        return None
    height, mu, sigma = popt
    err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    if not (np.all(np.isfinite(popt)) and sigma != 0 and edges[0] <= mu <= edges[-1]):
        return None
    return PeakFit(float(height), float(mu), float(abs(sigma)), float(err[1]), float(err[2]), int(y.sum()))
