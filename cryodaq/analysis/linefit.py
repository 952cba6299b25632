"""Poisson maximum-likelihood fits of a line shape to a binned spectrum.

Model (``x``: the histogram's axis, eV for calibrated energies; ``gain`` = dx/dE, held fixed,
1 for energies)::

    E(x) = (x − position) / gain + E_peak
    μ_j  = integral · ∫_{bin j} pdf(E(x); fwhm) dx / gain  +  background + bg_slope · (x_j − x_mid)

``pdf`` is the line's natural shape convolved with the detector's Gaussian of FWHM ``fwhm`` (eV)
(:class:`~cryodaq.analysis.lines.SpectralLine`), optionally with a low-energy exponential tail: a
fraction ``tail_frac`` of the counts is convolved with ``exp(u/τ)/τ`` (u < 0, τ = ``tail_tau_ev``).
``position`` is where the line's natural maximum ``E_peak`` lies on the x axis; ``integral``
counts the line's events over all energies; ``background`` is counts per bin.

Cost: the Poisson deviance ``2 Σ [μ − n + n ln(n/μ)]`` (Baker & Cousins, NIM 221, 437 (1984);
Fowler, J. Low Temp. Phys. 176, 414 (2014)), minimised with scipy's bounded least squares on
the signed square roots of its terms, as NIST mass does. Where this differs from mass/mass2 on
purpose (docs/analysis.md):

- the model is **integrated over each bin** (sub-sampled finely enough for the sharpest
  feature); mass evaluates the density at the bin centre, which widens the fitted Gaussian by
  about ``0.231 w² / FWHM`` for bins of width ``w`` (``integrate=False`` reproduces mass);
- bin positions are true bin centres (mass2's ``midpoints_and_step_size`` labels bins by their
  upper edge: positions come out ½ bin high there);
- uncertainties come from the Poisson Fisher information ``I_kl = Σ ∂_kμ ∂_lμ / μ`` at the best
  fit, **not** scaled by the reduced χ² (lmfit's default, which mass2 keeps, makes them
  fluctuate with the data and shrink when χ²/dof < 1).

Goodness of fit: the deviance at the minimum (a χ² with ``nbins − nfree`` degrees of freedom for
large counts) and its reduced value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize
import scipy.stats

from cryodaq.analysis.lines import SpectralLine, get_line

__all__ = ["LineFit", "fit_line", "histogram", "line_model", "poisson_deviance"]

PARAMS = ("fwhm", "position", "integral", "background", "bg_slope", "tail_frac", "tail_tau_ev")


def poisson_deviance(counts: Any, mu: Any) -> float:
    """``2 Σ [μ − n + n ln(n/μ)]`` (``n ln`` → 0 for empty bins): −2 ln of the likelihood ratio to a perfect fit."""
    n = np.asarray(counts, dtype=float)
    m = np.maximum(np.asarray(mu, dtype=float), 1e-300)
    d = m - n
    nz = n > 0
    d[nz] += n[nz] * np.log(n[nz] / m[nz])
    return float(2.0 * d.sum())


def _signed_root_deviance(counts: np.ndarray, mu: np.ndarray) -> np.ndarray:
    m = np.maximum(mu, 1e-300)
    d = m - counts
    nz = counts > 0
    d[nz] += counts[nz] * np.log(counts[nz] / m[nz])
    r = np.sqrt(2.0 * np.maximum(d, 0.0))  # round-off can make a term slightly negative
    return np.where(m < counts, -r, r)


def histogram(values: Any, lo: float, hi: float, bin_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of ``values`` in uniform bins of ``bin_width`` over ``[lo, hi)`` (NaN ignored)."""
    if not hi > lo or not bin_width > 0:
        raise ValueError(f"histogram: need hi > lo and bin_width > 0, got [{lo}, {hi}), {bin_width}")
    n = max(int(round((hi - lo) / bin_width)), 1)
    edges = lo + bin_width * np.arange(n + 1)
    v = np.asarray(values, dtype=float)
    counts, _ = np.histogram(v[np.isfinite(v)], edges)
    return counts, edges


def _subsamples(edges: np.ndarray, gain: float, line: SpectralLine, fwhm: float, integrate: bool) -> int:
    """Points per bin so the sampling step is ≤ 1/8 of the sharpest feature (1: bin centres, as mass)."""
    if not integrate:
        return 1
    width_e = (edges[1] - edges[0]) / gain
    sharp = line.narrowest_width(max(fwhm, 1e-9))
    return int(np.clip(math.ceil(8.0 * width_e / max(sharp, 1e-12)), 1, 256))


def _tail_smear(density: Any, grid_e: np.ndarray, frac: float, tau: float) -> np.ndarray:
    """``(1 − f)·ρ + f·(ρ ⊛ exp(u/τ)/τ, u < 0)`` on a uniform energy grid, by FFT on a padded grid."""
    step = grid_e[1] - grid_e[0]
    n_hi = int(math.ceil(10.0 * tau / step)) + 1  # low-energy tail counts come from above: pad there
    n_lo = 16
    ext = grid_e[0] + step * np.arange(-n_lo, len(grid_e) + n_hi)
    rho = density(ext)
    nu = np.fft.rfftfreq(len(ext), d=step)
    kernel = (1.0 - frac) + frac / (1.0 - 2j * np.pi * nu * tau)
    out = np.fft.irfft(np.fft.rfft(rho) * kernel, n=len(ext))
    return np.maximum(out[n_lo:n_lo + len(grid_e)], 0.0)


def line_model(edges: Any, line: SpectralLine, *, fwhm: float, position: float, integral: float,
               background: float = 0.0, bg_slope: float = 0.0, tail_frac: float = 0.0, tail_tau_ev: float = 10.0,
               gain: float = 1.0, subsamples: int | None = None) -> np.ndarray:
    """Expected counts in each bin of ``edges`` (uniform) for the model of the module docstring."""
    edges = np.asarray(edges, dtype=float)
    width = edges[1] - edges[0]
    m = subsamples or _subsamples(edges, gain, line, fwhm, True)
    # midpoints of m equal sub-intervals of every bin: a uniform grid (needed by the tail FFT)
    x = edges[0] + width * (np.arange(m * (len(edges) - 1)) + 0.5) / m
    e = (x - position) / gain + line.peak_energy
    if tail_frac > 1e-9:
        dens = _tail_smear(lambda en: line.pdf(en, fwhm), e, tail_frac, tail_tau_ev)
    else:
        dens = line.pdf(e, fwhm)
    signal = integral * dens.reshape(-1, m).mean(axis=1) * (width / gain)
    centres = 0.5 * (edges[1:] + edges[:-1])
    bg = background + bg_slope * (centres - 0.5 * (edges[0] + edges[-1]))
    return signal + np.maximum(bg, 0.0)


@dataclass(frozen=True)
class LineFit:
    """Result of :func:`fit_line`. ``errors`` are 1σ from the Poisson Fisher information (0 for fixed ones)."""

    line: str
    peak_energy: float  # eV, the line's natural maximum that ``position`` locates
    values: dict[str, float]
    errors: dict[str, float]
    free: tuple[str, ...]
    deviance: float
    dof: int
    gain: float
    integrate: bool
    edges: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    model: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)

    @property
    def fwhm(self) -> float:
        return self.values["fwhm"]

    @property
    def fwhm_err(self) -> float:
        return self.errors["fwhm"]

    @property
    def position(self) -> float:
        return self.values["position"]

    @property
    def position_err(self) -> float:
        return self.errors["position"]

    @property
    def reduced_chi2(self) -> float:
        return self.deviance / self.dof if self.dof > 0 else float("nan")

    @property
    def p_value(self) -> float:
        """Probability of a deviance at least this large for a correct model (χ² approximation)."""
        return float(scipy.stats.chi2.sf(self.deviance, self.dof)) if self.dof > 0 else float("nan")

    def curve(self, x: Any, params: dict[str, float] | None = None) -> np.ndarray:
        """The fitted density at ``x`` in counts per bin (for plots)."""
        v = {**self.values, **(params or {})}
        line = get_line_like(self.line, self.peak_energy)
        width = self.edges[1] - self.edges[0]
        x = np.asarray(x, dtype=float)
        e = (x - v["position"]) / self.gain + line.peak_energy
        if v.get("tail_frac", 0.0) > 1e-9:
            step = min(width, line.narrowest_width(v["fwhm"]) / 8)
            grid = np.arange(x.min() - width, x.max() + width, step)
            ge = (grid - v["position"]) / self.gain + line.peak_energy
            dens = np.interp(e, ge, _tail_smear(lambda en: line.pdf(en, v["fwhm"]), ge, v["tail_frac"],
                                               v["tail_tau_ev"]))
        else:
            dens = line.pdf(e, v["fwhm"])
        bg = v["background"] + v["bg_slope"] * (x - 0.5 * (self.edges[0] + self.edges[-1]))
        return v["integral"] * dens * width / self.gain + np.maximum(bg, 0.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"line": self.line, "peak_energy_ev": self.peak_energy, "values": dict(self.values),
                "errors": dict(self.errors), "free": list(self.free), "deviance": self.deviance, "dof": self.dof,
                "reduced_chi2": self.reduced_chi2, "p_value": self.p_value, "gain": self.gain,
                "integrated_over_bins": self.integrate, "bin_width": float(self.edges[1] - self.edges[0]),
                "range": [float(self.edges[0]), float(self.edges[-1])], "counts": int(self.counts.sum())}


def get_line_like(name: str, peak_energy: float) -> SpectralLine:
    """The tabulated line ``name``, or a Gaussian line at ``peak_energy`` when it is not tabulated."""
    try:
        return get_line(name)
    except KeyError:
        return SpectralLine.gaussian(name, peak_energy)


def _half_max_width(counts: np.ndarray, centres: np.ndarray) -> float:
    """Full width at half maximum of a (lightly smoothed) histogram around its tallest bin."""
    c = np.convolve(counts.astype(float), np.ones(3) / 3, mode="same")
    k = int(np.argmax(c))
    half = 0.5 * c[k]
    lo = k
    while lo > 0 and c[lo] > half:
        lo -= 1
    hi = k
    while hi < len(c) - 1 and c[hi] > half:
        hi += 1
    return float(max(centres[hi] - centres[lo], centres[1] - centres[0]))


def _guess(counts: np.ndarray, edges: np.ndarray, line: SpectralLine, gain: float) -> dict[str, float]:
    centres = 0.5 * (edges[1:] + edges[:-1])
    k = max(1, len(counts) // 20)
    background = float(max(min(counts[:k].mean(), counts[-k:].mean()), 0.0))
    smooth = np.convolve(counts.astype(float), np.ones(3) / 3, mode="same")
    position = float(centres[int(np.argmax(smooth))])
    width_e = _half_max_width(counts, centres) / gain
    natural = _natural_fwhm(line)
    fwhm = math.sqrt(max(width_e**2 - natural**2, (0.3 * width_e) ** 2))
    integral = float(max(counts.sum() - background * len(counts), max(counts.sum(), 1.0) * 0.5))
    return {"fwhm": fwhm, "position": position, "integral": integral, "background": background,
            "bg_slope": 0.0, "tail_frac": 0.05, "tail_tau_ev": max(3.0 * fwhm, 1e-3 * line.peak_energy)}


def _natural_fwhm(line: SpectralLine) -> float:
    """Half-maximum width of the natural shape around its peak (0 for a Gaussian line)."""
    if line.is_gaussian:
        return 0.0
    span = 10 * max(line.lorentzian_fwhm)
    e = np.linspace(line.peak_energy - span, line.peak_energy + span, 40001)
    p = line.pdf(e)
    above = e[p >= 0.5 * p.max()]
    return float(above.max() - above.min())


def fit_line(
    counts: Any,
    edges: Any,
    line: SpectralLine | str | float,
    *,
    start: dict[str, float] | None = None,
    fixed: dict[str, float] | None = None,
    tail: bool = False,
    gain: float = 1.0,
    integrate: bool = True,
) -> LineFit:
    """Poisson-MLE fit of ``line`` to the histogram ``counts`` over uniform ``edges`` (module docstring).

    Free by default: ``fwhm``, ``position``, ``integral``, ``background`` (≥ 0); ``bg_slope`` is
    held at 0, and the tail parameters are free only with ``tail=True``. ``start`` overrides
    starting values, ``fixed`` holds parameters at the given values. ``line``: a
    :class:`SpectralLine`, a tabulated name (``"MnKAlpha"``) or an energy (a Gaussian line).
    """
    line = line if isinstance(line, SpectralLine) else get_line(line)
    n = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    if n.ndim != 1 or edges.shape != (n.size + 1,):
        raise ValueError(f"fit_line: counts {n.shape} need edges of length {n.size + 1}, got {edges.shape}")
    widths = np.diff(edges)
    if n.size < 5 or not np.allclose(widths, widths[0], rtol=1e-6) or not widths[0] > 0:
        raise ValueError("fit_line: need >= 5 uniform, increasing bins")
    if n.sum() < 10:
        raise ValueError(f"fit_line: {int(n.sum())} counts in the window [{edges[0]:g}, {edges[-1]:g}); need >= 10")
    if not gain > 0:
        raise ValueError(f"fit_line: gain must be > 0, got {gain}")
    p = _guess(n, edges, line, gain)
    p.update(start or {})
    fixed = dict(fixed or {})
    p.update(fixed)
    if not tail:
        p["tail_frac"] = 0.0
        fixed.setdefault("tail_frac", 0.0)
        fixed.setdefault("tail_tau_ev", p["tail_tau_ev"])
    fixed.setdefault("bg_slope", p["bg_slope"])
    free = tuple(k for k in PARAMS if k not in fixed)
    span = edges[-1] - edges[0]
    floor = max(1e-6 * line.peak_energy, 0.01 * (edges[1] - edges[0]) / gain)  # far below any measurable width
    bounds = {"fwhm": (floor, 0.5 * span / gain + 10 * _natural_fwhm(line)),
              "position": (edges[0] - 0.25 * span, edges[-1] + 0.25 * span),
              "integral": (0.0, np.inf), "background": (0.0, np.inf), "bg_slope": (-np.inf, np.inf),
              "tail_frac": (0.0, 1.0), "tail_tau_ev": (1e-3, 0.2 * line.peak_energy)}
    lo = np.array([bounds[k][0] for k in free])
    hi = np.array([bounds[k][1] for k in free])
    pad_lo = np.where(np.isfinite(lo), lo + 1e-9 * np.maximum(np.abs(np.nan_to_num(lo)), 1.0), -np.inf)
    pad_hi = np.where(np.isfinite(hi), hi - 1e-9 * np.maximum(np.abs(np.nan_to_num(hi)), 1.0), np.inf)
    x0 = np.clip(np.array([float(p[k]) for k in free]), pad_lo, pad_hi)

    def params(theta: np.ndarray) -> dict[str, float]:
        q = dict(p)
        q.update(zip(free, (float(t) for t in theta)))
        return q

    sub = _subsamples(edges, gain, line, float(p["fwhm"]) * 0.5, integrate)

    def model(theta: np.ndarray) -> np.ndarray:
        return line_model(edges, line, gain=gain, subsamples=sub, **params(theta))

    theta = x0
    for _ in range(2):  # refit once if the fitted width needs finer sub-sampling than the start did
        res = scipy.optimize.least_squares(lambda t: _signed_root_deviance(n, model(t)), theta, bounds=(lo, hi),
                                           method="trf", x_scale="jac", xtol=1e-9, ftol=1e-9, gtol=1e-9,
                                           max_nfev=400)
        theta = res.x
        need = _subsamples(edges, gain, line, params(theta)["fwhm"], integrate)
        if need <= sub:
            break
        sub = need
    mu = model(theta)
    cov = _fisher_covariance(model, theta, mu, lo, hi)
    values = params(theta)
    errors = {k: 0.0 for k in PARAMS}
    errors.update({k: float(math.sqrt(max(cov[i, i], 0.0))) for i, k in enumerate(free)})
    return LineFit(line.name, line.peak_energy, values, errors, free, poisson_deviance(n, mu), n.size - len(free),
                   float(gain), integrate, edges, n, mu, cov)


def _fisher_covariance(model: Any, theta: np.ndarray, mu: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Inverse of the Poisson Fisher information ``Σ_j ∂μ_j/∂θ_k ∂μ_j/∂θ_l / μ_j`` (central differences)."""
    jac = np.empty((mu.size, theta.size))
    for i in range(theta.size):
        h = 1e-5 * max(abs(theta[i]), 1e-3)
        up, dn = theta.copy(), theta.copy()
        up[i] = min(theta[i] + h, hi[i])
        dn[i] = max(theta[i] - h, lo[i])
        jac[:, i] = (model(up) - model(dn)) / (up[i] - dn[i])
    fisher = jac.T @ (jac / np.maximum(mu, 1e-300)[:, None])
    try:
        return np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(fisher)
