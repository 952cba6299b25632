"""Energy calibration: peaks of a pulse-height feature, their assignment to known lines, a gain curve.

A feature value ``v`` (optimal-filter amplitude, drift-corrected) becomes an energy through a
monotonic curve through calibration points ``(v_i, E_i)``:

- ``gain`` (NIST mass's default): a natural cubic spline of the gain ``G = v/E`` against ``v``,
  ``E = v / G(v)``, extrapolated linearly in ``G``; one point → constant gain (E ∝ v), two →
  a linear gain (the curvature a saturating detector shows);
- ``polynomial``: ``E = Σ_{k=1..d} c_k v^k`` through the origin, least squares, degree
  ``d = min(degree, points)``;
- ``linear``: ``E = c v``.

Every curve is checked to rise monotonically from 0 to 1.25× its highest point (an error names
the points otherwise). Points come from a calibration plan (feature value → named line) or from
:func:`assign_lines`, which matches the strongest peaks of the feature to a list of lines.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.interpolate
import scipy.ndimage
import scipy.signal

from cryodaq.analysis.lines import get_line

__all__ = ["CURVE_KINDS", "CalibrationPoint", "GainCurve", "assign_lines", "find_line_peaks", "line_energy"]

CURVE_KINDS = ("gain", "polynomial", "linear")


def line_energy(line: str | float) -> float:
    """Reference energy (eV) of a named line (its natural peak) or of a number (itself)."""
    return get_line(line).peak_energy


@dataclass(frozen=True)
class CalibrationPoint:
    """One anchor: the feature value where ``line`` lies, and that line's energy."""

    line: str
    value: float
    energy_ev: float
    value_err: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "value": self.value, "energy_ev": self.energy_ev, "value_err": self.value_err}


def find_line_peaks(values: Any, n_lines: int, *, min_count: int = 5) -> np.ndarray | None:
    """Positions (ascending) of the ``n_lines`` most populated peaks of a 1-D distribution, or None.

    A Gaussian kernel density with Scott's bandwidth (``scipy.stats.gaussian_kde``'s default),
    binned on 1024 points, gives the peaks; the most populated are kept, each refined to the
    median of the values within half a bandwidth.
    """
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if a.size < max(min_count, n_lines) or np.ptp(a) == 0:
        return None
    width = float(np.std(a, ddof=1) * a.size ** (-1.0 / 5.0))  # Scott's rule
    counts, edges = np.histogram(a, bins=1024, range=(a.min(), a.max()))
    grid = 0.5 * (edges[1:] + edges[:-1])
    density = scipy.ndimage.gaussian_filter1d(counts.astype(float), width / (edges[1] - edges[0]), mode="constant")
    peaks, _ = scipy.signal.find_peaks(np.concatenate([[0.0], density, [0.0]]))
    peaks -= 1
    if peaks.size < n_lines:
        return None
    top = np.sort(peaks[np.argsort(density[peaks])[::-1][:n_lines]])
    out = []
    for p in grid[top]:
        near = a[np.abs(a - p) <= 0.5 * width]
        out.append(float(np.median(near)) if near.size else float(p))
    return np.asarray(out)


def _candidate_peaks(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` peaks of a smoothed histogram, ranked by prominence: (positions, prominences)."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    counts, edges = np.histogram(values, bins=2048, range=(lo, hi + 0.25 * (hi - lo)))
    centres = 0.5 * (edges[1:] + edges[:-1])
    smooth = scipy.ndimage.gaussian_filter1d(counts.astype(float), 4.0)
    idx, props = scipy.signal.find_peaks(np.concatenate([[0.0], smooth, [0.0]]), prominence=0)
    idx -= 1
    order = np.argsort(props["prominences"])[::-1][:n]
    return centres[idx[order]], props["prominences"][order]


def assign_lines(values: Any, lines: list[str | float], *, n_extra: int = 3,
                 through_origin: bool = True) -> list[CalibrationPoint]:
    """Match the strongest peaks of ``values`` to ``lines`` (names or energies), in ascending order.

    The ``len(lines) + n_extra`` most prominent peaks are candidates; every ascending choice of
    ``len(lines)`` of them is scored by how well each interior line's energy is predicted by
    linear interpolation between its neighbours (with the origin as an extra neighbour when
    ``through_origin``: pulse heights grow from zero), and the best choice wins (mass2's
    combinatoric rough calibration). Peak positions are refined with :func:`find_line_peaks`.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    names = [str(x) for x in lines]
    energies = np.array([line_energy(x) for x in lines])
    order = np.argsort(energies)
    names, energies = [names[i] for i in order], energies[order]
    n = len(names)
    if n == 0:
        raise ValueError("assign_lines: no lines given")
    if v.size < 10 * n:
        raise ValueError(f"assign_lines: {v.size} values for {n} lines; need >= {10 * n}")
    cand, prom = _candidate_peaks(v, n + n_extra)
    if cand.size < n:
        raise ValueError(f"assign_lines: found {cand.size} peaks for {n} lines {names}")
    best: tuple[float, tuple[int, ...]] | None = None
    for combo in itertools.combinations(range(cand.size), n):
        pos = np.sort(cand[list(combo)])
        score = _interp_score(pos, energies, through_origin)
        # prefer prominent peaks when scores tie (<= 2 lines without the origin always tie)
        score -= 1e-9 * float(prom[list(combo)].sum())
        if best is None or score < best[0]:
            best = (score, combo)
    assert best is not None
    pos = np.sort(cand[list(best[1])])
    points = []
    for name, e, p in zip(names, energies, pos):
        # the peak's own neighbourhood (±0.3 %): a wider one would pull the median towards a line's shoulder
        near = v[np.abs(v - p) <= 0.003 * abs(p)]
        points.append(CalibrationPoint(name, float(np.median(near)) if near.size else float(p), float(e)))
    return points


def _interp_score(pos: np.ndarray, energies: np.ndarray, through_origin: bool) -> float:
    """RMS relative error of each interior energy predicted by linear interpolation between neighbours."""
    if through_origin:
        pos, energies = np.concatenate([[0.0], pos]), np.concatenate([[0.0], energies])
    if np.any(np.diff(pos) <= 0):
        return math.inf
    if pos.size < 3:
        return 0.0
    x0, x1, x2 = pos[:-2], pos[1:-1], pos[2:]
    e0, e2 = energies[:-2], energies[2:]
    pred = e0 + (e2 - e0) * (x1 - x0) / (x2 - x0)
    return float(np.sqrt(np.mean(((pred - energies[1:-1]) / (e2 - e0)) ** 2)))


@dataclass
class GainCurve:
    """A monotonic feature → energy curve through calibration points (module docstring)."""

    points: list[CalibrationPoint]
    kind: str = "gain"
    degree: int = 2
    _coef: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    _spline: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in CURVE_KINDS:
            raise ValueError(f"calibration curve kind {self.kind!r}: expected one of {list(CURVE_KINDS)}")
        if not self.points:
            raise ValueError("calibration curve: no calibration points")
        self.points = sorted(self.points, key=lambda p: p.energy_ev)
        v = np.array([p.value for p in self.points])
        e = np.array([p.energy_ev for p in self.points])
        desc = ", ".join(f"{p.line}: {p.value:.6g} -> {p.energy_ev:.6g} eV" for p in self.points)
        if np.any(v <= 0) or np.any(e <= 0) or np.any(np.diff(v) <= 0) or np.any(np.diff(e) <= 0):
            raise ValueError(f"calibration points are not positive and in the same order in value and energy: {desc}")
        if self.kind == "gain":
            g = v / e
            if v.size >= 3:
                self._spline = scipy.interpolate.CubicSpline(v, g, bc_type="natural", extrapolate=False)
            self._coef = np.polyfit(v, g, 1) if v.size >= 2 else np.array([0.0, g[0]])
        elif self.kind == "linear":
            self._coef = np.array([float(np.sum(v * e) / np.sum(v * v))])
        else:
            d = max(1, min(int(self.degree), v.size))
            design = np.stack([v**k for k in range(1, d + 1)], axis=1)
            self._coef, *_ = np.linalg.lstsq(design, e, rcond=None)
        grid = np.linspace(0, 1.25 * v.max(), 2001)[1:]
        eg = self(grid)
        if not (np.all(np.isfinite(eg)) and np.all(np.diff(eg) > 0) and eg[0] > 0):
            raise ValueError(f"the {self.kind} calibration curve through {desc} is not monotonic from 0 to "
                             f"{1.25 * v.max():.6g}; use fewer points, kind 'linear', or check the assignment")

    def _gain(self, v: np.ndarray) -> np.ndarray:
        if self._spline is None:
            return np.polyval(self._coef, v)
        vp = np.array([p.value for p in self.points])
        g = self._spline(v)
        # linear extrapolation of G outside the points, with the spline's end slopes
        d = self._spline.derivative()
        lo, hi = vp[0], vp[-1]
        g = np.where(v < lo, self._spline(lo) + d(lo) * (v - lo), g)
        return np.where(v > hi, self._spline(hi) + d(hi) * (v - hi), g)

    def __call__(self, values: Any) -> np.ndarray:
        """Energies (eV) of ``values``."""
        v = np.asarray(values, dtype=float)
        if self.kind == "gain":
            with np.errstate(divide="ignore", invalid="ignore"):
                return v / self._gain(v)
        if self.kind == "linear":
            return self._coef[0] * v
        return sum(c * v ** (k + 1) for k, c in enumerate(self._coef))

    def slope(self, values: Any) -> np.ndarray:
        """dE/dv at ``values`` (eV per feature unit), by central differences."""
        v = np.asarray(values, dtype=float)
        h = 1e-6 * max(p.value for p in self.points)
        return (self(v + h) - self(v - h)) / (2 * h)

    def inverse(self, energies: Any) -> np.ndarray:
        """Feature values of ``energies`` (eV), by interpolation on the monotonic curve."""
        vmax = 4.0 * max(p.value for p in self.points)
        grid = np.linspace(0, vmax, 40001)
        return np.interp(np.asarray(energies, dtype=float), self(grid[1:]), grid[1:])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (points, kind, coefficients) from which :meth:`from_dict` rebuilds it."""
        return {"kind": self.kind, "degree": self.degree, "points": [p.as_dict() for p in self.points],
                "coefficients": self._coef.tolist()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> GainCurve:
        pts = [CalibrationPoint(p["line"], float(p["value"]), float(p["energy_ev"]), float(p.get("value_err", 0.0)))
               for p in doc["points"]]
        return cls(pts, kind=doc.get("kind", "gain"), degree=int(doc.get("degree", 2)))
