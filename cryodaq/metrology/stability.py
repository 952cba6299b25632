"""Distributions over time, not single numbers: statistics of a figure measured again and again.

For a figure of merit (gain, T_n, fr, Qi ...) measured at regular intervals:

* :func:`summary` — n, mean, standard deviation, standard error, median, extremes, 5 and 95 %
  percentiles;
* :func:`allan_deviation` — the overlapping Allan deviation σ(τ) at τ = m·τ0 (NIST SP 1065,
  Riley 2008, eq. 14, with each y the figure itself): white scatter falls as τ^−½, a drift
  rises as τ, flicker stays flat. Windows that hold a missing point (NaN) are left out, so a
  series with gaps keeps its time base;
* :func:`linear_trend` — the least-squares slope of the figure against time (drift per hour) or
  against the fridge temperature (temperature coefficient), with the slope's standard
  uncertainty and the correlation coefficient.

Hand-written rather than taken from ``allantools``: the overlapping ADEV is ten lines of numpy,
and ours must skip missing points, which allantools' gap handling does differently per function.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Summary", "Trend", "allan_deviation", "linear_trend", "octave_taus", "summary"]


@dataclass(frozen=True)
class Summary:
    """Statistics of one series (NaNs left out)."""

    n: int
    mean: float
    std: float
    sem: float
    median: float
    min: float
    max: float
    p05: float
    p95: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trend:
    """y = intercept + slope·x by least squares: slope, its standard uncertainty, Pearson r, n."""

    slope: float
    slope_u: float
    intercept: float
    r: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary(values: Any) -> Summary:
    """:class:`Summary` of ``values`` (NaNs ignored; all NaN for an empty series)."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan, nan, nan)
    std = float(np.std(x, ddof=1)) if n > 1 else math.nan
    p05, p95 = (float(v) for v in np.percentile(x, [5, 95]))
    return Summary(n, float(np.mean(x)), std, std / math.sqrt(n) if n > 1 else math.nan, float(np.median(x)),
                   float(np.min(x)), float(np.max(x)), p05, p95)


def octave_taus(n: int) -> np.ndarray:
    """Averaging factors m = 1, 2, 4, ... up to n // 3 (so each σ(τ) has at least a few windows)."""
    if n < 3:
        return np.zeros(0, dtype=int)
    return 2 ** np.arange(int(math.floor(math.log2(max(n // 3, 1)))) + 1)


def allan_deviation(values: Any, tau0_s: float, m: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping Allan deviation of evenly spaced ``values`` (interval ``tau0_s``; NaN = missing).

    Returns (τ in s, σ(τ), number of window pairs used) for the averaging factors ``m``
    (default :func:`octave_taus`). σ²(τ) = ½⟨(ȳ_{k+m} − ȳ_k)²⟩ over all overlapping pairs of
    adjacent m-averages that hold no missing point; σ is NaN where there is none.
    """
    y = np.asarray(values, dtype=float).ravel()
    n = y.size
    ms = octave_taus(n) if m is None else np.atleast_1d(np.asarray(m, dtype=int))
    ok = np.isfinite(y)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    cbad = np.concatenate([[0], np.cumsum(~ok)])
    taus, adev, counts = [], [], []
    for mm in ms:
        mm = int(mm)
        if mm < 1 or 2 * mm > n:
            continue
        k = np.arange(n - 2 * mm + 1)
        first = (csum[k + mm] - csum[k]) / mm
        second = (csum[k + 2 * mm] - csum[k + mm]) / mm
        clean = (cbad[k + 2 * mm] - cbad[k]) == 0
        d = (second - first)[clean]
        taus.append(mm * tau0_s)
        counts.append(int(d.size))
        adev.append(math.sqrt(0.5 * float(np.mean(d * d))) if d.size else math.nan)
    return np.array(taus, dtype=float), np.array(adev, dtype=float), np.array(counts, dtype=int)


def linear_trend(x: Any, y: Any) -> Trend:
    """Least-squares line through the finite (x, y) pairs (:class:`Trend`); NaNs when fewer than 3 pairs
    or x does not vary."""
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    n = int(xa.size)
    nan = math.nan
    if n < 3 or np.ptp(xa) == 0:
        return Trend(nan, nan, nan, nan, n)
    xm, ym = xa.mean(), ya.mean()
    sxx = float(np.sum((xa - xm) ** 2))
    slope = float(np.sum((xa - xm) * (ya - ym)) / sxx)
    intercept = float(ym - slope * xm)
    resid = ya - (intercept + slope * xa)
    s2 = float(np.sum(resid ** 2) / (n - 2))
    syy = float(np.sum((ya - ym) ** 2))
    r = float(slope * math.sqrt(sxx / syy)) if syy > 0 else nan
    return Trend(slope, math.sqrt(s2 / sxx), intercept, r, n)
