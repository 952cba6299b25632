"""Superconducting resonator models, circle fit, and resonance finding in VNA sweeps.

Model (Probst et al., Rev. Sci. Instrum. 86, 024706 (2015); Khalil et al.,
J. Appl. Phys. 111, 054510 (2012)), with ``x = f/fr - 1``::

    notch:      S21(f) = a e^{iα} e^{-2πifτ} [1 - (Ql/|Qc|) e^{iφ} / (1 + 2iQl x)]
    reflection: S11(f) = a e^{iα} e^{-2πifτ} [1 - 2(Ql/|Qc|) e^{iφ} / (1 + 2iQl x)]

``a``, ``α``: amplitude and phase of the environment (``α`` is the phase the
background would have at f = 0, as in Probst's formula); ``τ``: cable delay;
``φ``: impedance-mismatch (asymmetry) angle; ``Qc = |Qc| e^{-iφ}`` is the complex
coupling Q.  The internal Q follows from the diameter-corrected relation
``1/Qi = 1/Ql - Re(1/Qc) = 1/Ql - cos(φ)/|Qc|``.

After the delay is removed the data lie on a circle.  As ``f`` sweeps through the
resonance a point runs clockwise round the circle with angle
``θ(f) = θ0 + 2 arctan(2 Ql (1 - f/fr))`` about the centre; the off-resonance point
``a e^{iα'}`` (α' the background phase with the delay already removed) is the
circle point at angle ``θ0 + π`` and the resonance point ``f = fr`` sits opposite
it.  The fit follows Probst's recipe: delay → algebraic circle fit → phase fit →
geometry → a final least-squares of the full complex model.  None of scipy, lmfit or
scikit-rf packages this circle-fit pipeline (scikit-rf's ``Qfactor`` implements
NPL's NLQFIT method, which has no cable-delay term and no mismatch angle), hence
the hand-written steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.ndimage
import scipy.optimize
import scipy.signal

from cryodaq.errors import CryodaqError

__all__ = [
    "ResonatorFitError",
    "ResonatorFit",
    "FoundResonators",
    "resonator_model",
    "circle_fit",
    "fit_resonator",
    "find_resonators",
]

Geometry = Literal["notch", "reflection"]
_PARAMS = ("fr_hz", "Ql", "Qc_abs", "phi", "a", "alpha", "delay_s")


class ResonatorFitError(CryodaqError, ValueError):
    """The data cannot be fitted as a resonance (too few points, no resonance, bad input)."""


def _coupling_factor(geometry: str) -> float:
    if geometry == "notch":
        return 1.0
    if geometry == "reflection":
        return 2.0
    raise ValueError(f"geometry={geometry!r}: expected 'notch' or 'reflection'")


def resonator_model(
    freq_hz: np.ndarray,
    fr_hz: float,
    Ql: float,
    Qc_abs: float,
    phi: float,
    a: float = 1.0,
    alpha: float = 0.0,
    delay_s: float = 0.0,
    geometry: Geometry = "notch",
) -> np.ndarray:
    """Complex S21 (notch) or S11 (reflection) of the model in the module docstring."""
    f = np.asarray(freq_hz, dtype=float)
    c = _coupling_factor(geometry)
    env = a * np.exp(1j * alpha) * np.exp(-2j * np.pi * f * delay_s)
    return env * (1 - c * (Ql / Qc_abs) * np.exp(1j * phi) / (1 + 2j * Ql * (f / fr_hz - 1)))


# ---------------------------------------------------------------------------
# circle fit


def circle_fit(z: np.ndarray, refine: bool = True) -> tuple[complex, float, float]:
    """Fit a circle to complex points: returns (centre, radius, rms distance from the circle).

    Algebraic fit with Pratt's constraint (Pratt 1987; as used by Probst et al. 2015,
    §2.C): minimise Σ(A w + B x + C y + D)², w = x² + y², subject to
    B² + C² - 4AD = 1, i.e. the generalised eigenproblem M a = η P a with the
    smallest non-negative η.  Data are centred and scaled first for conditioning.
    ``refine`` then minimises the geometric distances (the maximum-likelihood circle
    for isotropic noise) starting from the algebraic one.
    """
    z = np.asarray(z, dtype=complex)
    if z.size < 3:
        raise ResonatorFitError(f"circle fit needs >= 3 points, got {z.size}")
    shift = z.mean()
    scale = np.sqrt(np.mean(np.abs(z - shift) ** 2))
    if not scale > 0:
        raise ResonatorFitError("circle fit: all points coincide")
    u = (z - shift) / scale
    x, y = u.real, u.imag
    w = x * x + y * y
    design = np.column_stack([w, x, y, np.ones_like(x)])
    moments = design.T @ design / len(x)
    constraint = np.array([[0, 0, 0, -2.0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [-2.0, 0, 0, 0]])
    eta, vecs = scipy.linalg.eig(moments, constraint)
    eta = np.real_if_close(eta, tol=1e6).real
    ok = np.isfinite(eta) & (eta >= -1e-12)
    if not ok.any():
        raise ResonatorFitError("circle fit: no admissible solution (points are collinear?)")
    k = np.flatnonzero(ok)[np.argmin(eta[ok])]
    A, B, C, D = np.real(vecs[:, k])
    if abs(A) < 1e-14 * max(abs(B), abs(C), 1e-300):
        raise ResonatorFitError("circle fit: points lie on a straight line, not a circle")
    cu = complex(-B / (2 * A), -C / (2 * A))
    ru = float(np.sqrt(max(B * B + C * C - 4 * A * D, 0.0)) / (2 * abs(A)))
    if refine:
        sol = scipy.optimize.least_squares(
            lambda p: np.abs(u - complex(p[0], p[1])) - p[2], [cu.real, cu.imag, ru], method="lm"
        )
        cu, ru = complex(sol.x[0], sol.x[1]), float(abs(sol.x[2]))
    rms = float(np.sqrt(np.mean((np.abs(u - cu) - ru) ** 2)))
    return shift + scale * cu, scale * ru, scale * rms


# ---------------------------------------------------------------------------
# fit result


@dataclass(frozen=True)
class ResonatorFit:
    """Result of :func:`fit_resonator` (SI units; angles in rad; 1σ errors from the covariance).

    ``loop_centre`` / ``loop_radius``: the resonance circle in the raw IQ plane with
    the cable-delay phase evaluated at ``fr`` — what a fixed readout tone near ``fr``
    traces as the resonance moves; ``loop_rotation``: angle of the resonance point
    ``S21(fr)`` seen from ``loop_centre`` (phase 0 of :class:`cryodaq.dsp.iq.IQCalibration`).
    ``covariance``: of the parameters in ``param_names`` order, with ``alpha``
    referred to ``f_ref_hz`` (the background phase there) to keep it well conditioned.
    """

    geometry: str
    fr_hz: float
    Ql: float
    Qc_abs: float
    Qi: float
    phi: float
    delay_s: float
    a: float
    alpha: float
    fr_hz_err: float
    Ql_err: float
    Qc_abs_err: float
    Qi_err: float
    phi_err: float
    delay_s_err: float
    a_err: float
    alpha_err: float
    residual_rms: float
    success: bool
    message: str
    freq_hz: np.ndarray = field(repr=False)
    s21: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    f_ref_hz: float = 0.0
    param_names: tuple[str, ...] = _PARAMS

    @property
    def Qc(self) -> complex:
        """Complex coupling Q, |Qc| e^{-iφ} (Probst's convention)."""
        return self.Qc_abs * np.exp(-1j * self.phi)

    def model(self, freq_hz: np.ndarray) -> np.ndarray:
        """The fitted model at ``freq_hz``."""
        p = (self.fr_hz, self.Ql, self.Qc_abs, self.phi, self.a, self.alpha, self.delay_s)
        return resonator_model(freq_hz, *p, geometry=self.geometry)  # type: ignore[arg-type]

    @property
    def loop_centre(self) -> complex:
        return self.iq_loop()[0]

    @property
    def loop_radius(self) -> float:
        return self.iq_loop()[1]

    @property
    def loop_rotation(self) -> float:
        return self.iq_loop()[2]

    def iq_loop(self, tone_freq_hz: float | None = None) -> tuple[complex, float, float]:
        """(centre, radius, rotation) of the loop a fixed tone at ``tone_freq_hz`` (default ``fr``) traces.

        As the resonance moves, the tone's S21 runs round the circle
        ``env (1 - (c Ql/2|Qc|) e^{iφ}) + radius e^{i(rotation + θ)}`` with the
        environment ``env = a e^{iα} e^{-2πi f_tone τ}`` (c = 1 notch, 2 reflection)
        and ``θ = -2 arctan(2 Ql (f_tone/fr' - 1))`` for the momentary resonance fr';
        ``rotation`` is the direction in which θ = 0, i.e. fr' = f_tone.
        """
        ft = self.fr_hz if tone_freq_hz is None else float(tone_freq_hz)
        env = self.a * np.exp(1j * self.alpha) * np.exp(-2j * np.pi * ft * self.delay_s)
        rn = _coupling_factor(self.geometry) * self.Ql / (2 * self.Qc_abs)
        centre = complex(env * (1 - rn * np.exp(1j * self.phi)))
        return centre, float(abs(self.a) * rn), float(np.angle(-env * np.exp(1j * self.phi)))

    @property
    def s21_fit(self) -> np.ndarray:
        """The fitted model at the measured frequencies."""
        return self.model(self.freq_hz)


# ---------------------------------------------------------------------------
# the fit steps


def _unwrapped_angle(z: np.ndarray) -> np.ndarray:
    return np.unwrap(np.angle(z))


def _guess_delay(f: np.ndarray, z: np.ndarray) -> float:
    """Delay from the phase slope of the outer fifths of the sweep (least affected by the resonance)."""
    ph = _unwrapped_angle(z)
    n = len(f)
    m = max(3, n // 5)
    idx = np.r_[0:m, n - m : n]
    # common slope, separate offsets on each side (a notch loop may add a phase step across resonance)
    design = np.column_stack([f[idx] - f.mean(), np.r_[np.ones(m), np.zeros(m)], np.r_[np.zeros(m), np.ones(m)]])
    slope = np.linalg.lstsq(design, ph[idx], rcond=None)[0][0]
    return float(-slope / (2 * np.pi))


def _circle_rms_for_delay(f: np.ndarray, z: np.ndarray, tau: float) -> float:
    zc = z * np.exp(2j * np.pi * (f - f.mean()) * tau)
    try:
        _, _, rms = circle_fit(zc, refine=False)
    except ResonatorFitError:
        return np.inf
    return rms  # absolute: rms/r would favour huge circles (a straight line fits any short arc)


def _fit_delay(f: np.ndarray, z: np.ndarray) -> float:
    """Delay that makes the data most circular (Probst §2.B), searched around the phase-slope guess."""
    span = f[-1] - f[0]
    centre = _guess_delay(f, z)
    window = 1.0 / span  # ±π phase change across the sweep either side of the guess
    grid = centre + np.linspace(-window, window, 41)
    cost = np.array([_circle_rms_for_delay(f, z, t) for t in grid])
    best = int(np.argmin(cost))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    res = scipy.optimize.minimize_scalar(
        lambda t: _circle_rms_for_delay(f, z, t), bounds=(lo, hi), method="bounded", options={"xatol": 1e-4 / span}
    )
    return float(res.x if res.fun <= cost[best] else grid[best])


def _fit_phase(f: np.ndarray, theta: np.ndarray) -> tuple[float, float, float]:
    """Fit θ(f) = θ0 + 2 arctan(2 Ql (1 - f/fr)) (angle about the circle centre); returns θ0, Ql, fr."""
    n = len(f)
    smooth = scipy.ndimage.uniform_filter1d(theta, size=max(3, n // 50), mode="nearest")
    slope = np.gradient(smooth, f)
    k = int(np.argmin(slope))  # fastest clockwise motion = resonance
    if slope[k] >= 0:
        raise ResonatorFitError(
            "the loop does not run clockwise with frequency; this fit expects the convention "
            "S21 ∝ 1 - .../(1 + 2iQl(f/fr-1)) — pass the complex conjugate of the data"
        )
    fr0 = f[k]
    ql0 = max(-slope[k] * fr0 / 4.0, 1.0)
    th0 = theta[k]

    def resid(p: np.ndarray) -> np.ndarray:
        th, ql, fr = p
        return np.angle(np.exp(1j * (theta - th - 2 * np.arctan(2 * ql * (1 - f / fr)))))

    span = f[-1] - f[0]
    lower, upper = [-np.inf, 0.5, f[0] - span], [np.inf, np.inf, f[-1] + span]
    best = None
    for ql_try in (ql0, ql0 * 3, ql0 / 3):
        x0 = [th0, max(ql_try, 1.0), fr0]
        sol = scipy.optimize.least_squares(resid, x0, x_scale=[1.0, x0[1], fr0 / x0[1]], bounds=(lower, upper))
        if best is None or sol.cost < best.cost:
            best = sol
    th, ql, fr = best.x
    if not (ql > 1.0 and f[0] - span < fr < f[-1] + span):
        raise ResonatorFitError(
            f"phase fit found no resonance in {f[0]:.6g}–{f[-1]:.6g} Hz (fr={fr:.6g} Hz, Ql={ql:.3g})"
        )
    return float(th), float(ql), float(fr)


@dataclass
class _Start:
    fr: float
    ql: float
    qc: float
    phi: float
    a: float
    alpha_ref: float
    tau: float


def _circle_estimate(f: np.ndarray, z: np.ndarray, geometry: str, tau: float, f_ref: float) -> tuple[_Start, float]:
    """Steps (b)–(d): circle, phase fit and geometry for a given delay; also the arc covered (rad)."""
    c = _coupling_factor(geometry)
    zd = z * np.exp(2j * np.pi * (f - f_ref) * tau)
    centre, r, _ = circle_fit(zd)
    theta = _unwrapped_angle(zd - centre)
    arc = float(np.ptp(theta))
    th0, ql, fr = _fit_phase(f, theta)
    off = centre + r * np.exp(1j * (th0 + np.pi))  # off-resonance point a e^{iα}
    a = abs(off)
    rn = r / a  # normalised radius = c Ql / (2|Qc|)
    qc = c * ql / (2 * rn)
    phi = float(np.angle(1 - centre / off))
    return _Start(fr, ql, qc, phi, a, float(np.angle(off)), tau), arc


def _residual_and_jac(p: np.ndarray, f: np.ndarray, z: np.ndarray, c: float, f_ref: float, fit_tau: bool):
    fr, ql, qc, phi, a, al, tau = p
    x = f / fr - 1
    d = 1 + 2j * ql * x
    g = a * np.exp(1j * al) * np.exp(-2j * np.pi * (f - f_ref) * tau)
    r_ = c * (ql / qc) * np.exp(1j * phi) / d
    s = g * (1 - r_)
    cols = [
        -g * r_ * 2j * ql * f / (fr * fr * d),  # ∂/∂fr
        -g * (r_ / ql - r_ * 2j * x / d),  # ∂/∂Ql
        g * r_ / qc,  # ∂/∂|Qc|
        -g * 1j * r_,  # ∂/∂φ
        s / a,  # ∂/∂a
        1j * s,  # ∂/∂α
        -2j * np.pi * (f - f_ref) * s,  # ∂/∂τ
    ]
    if not fit_tau:
        cols = cols[:-1]
    jc = np.column_stack(cols)
    res = s - z
    return np.r_[res.real, res.imag], np.vstack([jc.real, jc.imag])


def _covariance(jac: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """s² (JᵀJ)⁻¹ with s² = Σr²/(n - p); columns scaled for conditioning, pseudo-inverse via SVD."""
    n, p = jac.shape
    norms = np.linalg.norm(jac, axis=0)
    norms[norms == 0] = 1.0
    js = jac / norms
    _, sv, vt = np.linalg.svd(js, full_matrices=False)
    keep = sv > sv[0] * 1e-12
    inv = (vt[keep].T / sv[keep] ** 2) @ vt[keep]
    s2 = float(resid @ resid) / max(n - p, 1)
    return s2 * inv / np.outer(norms, norms)


def _significance(
    f: np.ndarray, z: np.ndarray, f_ref: float, p: np.ndarray, c: float, fit_tau: bool, n_par: int
) -> float:
    """Δχ² = (SSR_background − SSR_resonance) / s² of the resonance fit with parameters ``p``.

    The background model a e^{iα} e^{-2πi(f-f_ref)τ} is fitted by least squares and
    s² is the residual variance of the resonance fit.  Noise alone gives Δχ² of
    order 10 (4 extra parameters, searched over fr and Ql).
    """
    resid = _residual_and_jac(p, f, z, c, f_ref, fit_tau)[0]
    tau = p[-1]
    m0 = (z * np.exp(2j * np.pi * (f - f_ref) * tau)).mean()

    def bg(q: np.ndarray) -> np.ndarray:
        r = q[0] * np.exp(1j * q[1]) * np.exp(-2j * np.pi * (f - f_ref) * q[2]) - z
        return np.r_[r.real, r.imag]

    sol = scipy.optimize.least_squares(
        bg, [abs(m0), np.angle(m0), tau], x_scale=[abs(m0) or 1.0, 1.0, 1.0 / np.ptp(f)]
    )
    ssr_res = float(resid @ resid)
    s2 = ssr_res / max(resid.size - n_par, 1)
    return float((2 * sol.cost - ssr_res) / s2) if s2 > 0 else np.inf


def _dip_start(f: np.ndarray, z: np.ndarray, c: float, tau: float, f_ref: float) -> _Start:
    """Start values from the largest excursion of the smoothed, delay-free data from the off-resonance level."""
    n = len(f)
    zd = z * np.exp(2j * np.pi * (f - f_ref) * tau)
    k = max(3, n // 25)
    zs = scipy.ndimage.uniform_filter1d(zd.real, k, mode="nearest") + 1j * scipy.ndimage.uniform_filter1d(
        zd.imag, k, mode="nearest"
    )
    m = max(2, n // 20)
    off = 0.5 * (zd[:m].mean() + zd[-m:].mean())
    dev = np.abs(zs - off)
    kk = int(np.argmax(dev))
    above = dev >= dev[kk] / 2
    lo = kk
    while lo > 0 and above[lo - 1]:
        lo -= 1
    hi = kk
    while hi < n - 1 and above[hi + 1]:
        hi += 1
    width = max(f[hi] - f[lo], f[1] - f[0])
    ql = np.sqrt(3) * f[kk] / width  # |1/(1+2iQl x)| = 1/2 at 2Ql|x| = √3
    depth = dev[kk] / abs(off)
    return _Start(
        fr=float(f[kk]),
        ql=float(ql),
        qc=float(c * ql / max(depth, 1e-6)),
        phi=float(np.angle(-(zs[kk] - off) / off)),
        a=float(abs(off)),
        alpha_ref=float(np.angle(off)),
        tau=tau,
    )


def fit_resonator(
    freq_hz: np.ndarray,
    s21: np.ndarray,
    geometry: Geometry = "notch",
    *,
    delay_s: float | None = None,
    min_significance: float = 100.0,
) -> ResonatorFit:
    """Fit a resonance in a complex sweep (notch S21 or reflection S11) — Probst et al. 2015.

    Steps: (a) cable delay τ that makes the data most circular, starting from the
    phase slope of the sweep's outer parts (or the given ``delay_s``, then held
    fixed); (b) algebraic circle fit (Pratt) refined geometrically; (c) fit of the
    angle about the centre, ``θ0 + 2 arctan(2Ql(1 - f/fr))``, for fr and Ql;
    (d) ``a``, ``α``, ``|Qc|``, ``φ`` from the circle geometry; (e) least squares of
    the full complex model (module docstring) over all parameters, started from
    (a)–(d).  Uncertainties: covariance ``s² (JᵀJ)⁻¹`` at the optimum with the
    residual variance ``s²`` per real component; ``Qi_err`` by linear propagation.

    ``success`` is False when the optimiser failed, the result is unphysical, or
    the residual rms exceeds twice the point-to-point noise (second differences).
    Raises :class:`ResonatorFitError` for fewer than 20 points, non-finite input,
    or data without a resonance: loop covering too small an arc, fr outside the
    sweep, or a χ² improvement over a background-only model below
    ``min_significance``.
    """
    c = _coupling_factor(geometry)
    f = np.asarray(freq_hz, dtype=float)
    z = np.asarray(s21, dtype=complex)
    if f.ndim != 1 or f.shape != z.shape:
        raise ResonatorFitError(f"freq_hz and s21 must be 1-D of equal length, got {f.shape} and {z.shape}")
    if f.size < 20:
        raise ResonatorFitError(f"a resonator fit needs >= 20 points across the resonance, got {f.size}")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(z))):
        raise ResonatorFitError("freq_hz / s21 contain NaN or inf")
    order = np.argsort(f)
    f, z = f[order], z[order]
    if np.any(np.diff(f) <= 0):
        raise ResonatorFitError("freq_hz has repeated values")
    f_ref = float(f.mean())

    tau0 = _fit_delay(f, z) if delay_s is None else float(delay_s)
    fit_tau = delay_s is None

    def full(p: np.ndarray) -> np.ndarray:
        return p if fit_tau else np.r_[p, tau0]

    def solve(st: _Start) -> tuple[scipy.optimize.OptimizeResult, float]:
        p0 = np.array([st.fr, st.ql, st.qc, st.phi, st.a, st.alpha_ref, st.tau])[: 7 if fit_tau else 6]
        sol = scipy.optimize.least_squares(
            lambda p: _residual_and_jac(full(p), f, z, c, f_ref, fit_tau)[0],
            p0,
            jac=lambda p: _residual_and_jac(full(p), f, z, c, f_ref, fit_tau)[1],
            x_scale="jac",
            method="lm",
            xtol=1e-12,
            ftol=1e-12,
        )
        fr_, ql_ = sol.x[:2]
        if not (ql_ > 0 and f[0] <= fr_ <= f[-1] and np.isfinite(sol.cost)):
            return sol, -np.inf  # unphysical
        return sol, _significance(f, z, f_ref, full(sol.x), c, fit_tau, n_par)

    # primary start: the circle-fit estimate (Probst); fallback: the largest excursion of
    # the smoothed data from the off-resonance level, for small, noisy loops where the
    # circle estimate can lock onto noise
    n_par = 7 if fit_tau else 6
    candidates = []
    circle_problem = ""
    try:
        start, arc = _circle_estimate(f, z, geometry, tau0, f_ref)
        if arc < np.pi / 3:
            circle_problem = f"; the data cover only {np.degrees(arc):.0f}° of a circle"
        else:
            candidates.append(solve(start))
    except ResonatorFitError as exc:
        circle_problem = f"; {exc}"
    if not candidates or candidates[0][1] < min_significance:
        candidates.append(solve(_dip_start(f, z, c, tau0, f_ref)))
    sol, delta = min(candidates, key=lambda cand: cand[0].cost if cand[1] > -np.inf else np.inf)
    if delta == -np.inf:
        raise ResonatorFitError(
            f"no resonance in {f[0]:.6g}–{f[-1]:.6g} Hz: no fit puts fr inside the sweep{circle_problem}"
        )
    if delta < min_significance:
        raise ResonatorFitError(
            f"no significant resonance in {f[0]:.6g}–{f[-1]:.6g} Hz: a resonance model improves χ² over a plain "
            f"background by only {delta:.1f} (min_significance={min_significance:g}){circle_problem}"
        )
    p = full(sol.x)
    resid, jac = _residual_and_jac(p, f, z, c, f_ref, fit_tau)
    cov_fit = _covariance(jac, resid)
    cov = np.zeros((7, 7))
    cov[: cov_fit.shape[0], : cov_fit.shape[0]] = cov_fit
    err = np.sqrt(np.clip(np.diag(cov), 0, None))

    fr, ql, qc, phi, a, alpha_ref, tau = p
    if qc < 0:  # the model is invariant under (|Qc|, φ) → (-|Qc|, φ + π)
        qc, phi = -qc, phi + np.pi
    if a < 0:
        a, alpha_ref = -a, alpha_ref + np.pi
    phi = float(np.angle(np.exp(1j * phi)))
    alpha = float(np.angle(np.exp(1j * (alpha_ref + 2 * np.pi * f_ref * tau))))
    # α at f = 0 = α_ref + 2π f_ref τ
    alpha_err = float(np.sqrt(max(cov[5, 5] + (2 * np.pi * f_ref) ** 2 * cov[6, 6] + 4 * np.pi * f_ref * cov[5, 6], 0)))
    inv_qi = 1 / ql - np.cos(phi) / qc
    qi = 1 / inv_qi if inv_qi > 0 else np.inf
    grad = np.array([(1 / ql**2), -np.cos(phi) / qc**2, -np.sin(phi) / qc]) * qi**2
    sub = cov[np.ix_([1, 2, 3], [1, 2, 3])]
    qi_err = float(np.sqrt(max(grad @ sub @ grad, 0))) if np.isfinite(qi) else np.inf

    rms = float(np.sqrt(np.mean(np.abs(resid[: f.size] + 1j * resid[f.size :]) ** 2)))
    # point-to-point noise from second differences (model-free; over-estimates on coarse sweeps)
    noise = float(np.sqrt(np.mean(np.abs(z[2:] - 2 * z[1:-1] + z[:-2]) ** 2) / 6))
    ok = bool(sol.success and ql > 0 and qc > 0 and f[0] <= fr <= f[-1])
    message = str(sol.message)
    if not ok:
        message += "; fit outside the physical range (fr in sweep, Ql > 0, Qc > 0)"
    elif rms > 2 * noise:
        ok = False
        message += f"; residual rms {rms:.3g} is {rms / noise:.1f}x the point-to-point noise: the model misses the data"
    return ResonatorFit(
        geometry=geometry,
        fr_hz=float(fr),
        Ql=float(ql),
        Qc_abs=float(qc),
        Qi=float(qi),
        phi=phi,
        delay_s=float(tau),
        a=float(a),
        alpha=alpha,
        fr_hz_err=float(err[0]),
        Ql_err=float(err[1]),
        Qc_abs_err=float(err[2]),
        Qi_err=qi_err,
        phi_err=float(err[3]),
        delay_s_err=float(err[6]),
        a_err=float(err[4]),
        alpha_err=alpha_err,
        residual_rms=rms,
        success=ok,
        message=message,
        freq_hz=f,
        s21=z,
        covariance=cov,
        f_ref_hz=f_ref,
    )


# ---------------------------------------------------------------------------
# finding resonances in a wide sweep


@dataclass(frozen=True)
class FoundResonators:
    """Dips found in a wide sweep, sorted by frequency: centre frequency (Hz), depth
    below the local background (dB), and a rough loaded Q (f / full width at half depth in dB)."""

    freq_hz: np.ndarray
    depth_db: np.ndarray
    q_estimate: np.ndarray

    def __len__(self) -> int:
        return int(self.freq_hz.size)


def find_resonators(
    freq_hz: np.ndarray,
    s21: np.ndarray,
    *,
    min_depth_db: float = 3.0,
    min_separation_hz: float = 1e6,
    baseline_window_hz: float | None = None,
    baseline_percentile: float = 80.0,
) -> FoundResonators:
    """Find resonance dips in a wide VNA sweep of |S21| (any background slope, ripple, cable delay).

    The background is a running ``baseline_percentile`` of |S21| in dB over
    ``baseline_window_hz`` (default ``10 × min_separation_hz``; it must be much wider
    than a resonance and narrower than the background ripple), smoothed by a running
    mean of the same width; dips are peaks of (background − |S21|) with a
    prominence of at least ``min_depth_db`` (``scipy.signal.find_peaks``), at least
    ``min_separation_hz`` apart.  Cable delay only rotates the phase and does not
    affect |S21|.
    """
    f = np.asarray(freq_hz, dtype=float)
    z = np.asarray(s21)
    if f.ndim != 1 or f.shape != z.shape or f.size < 5:
        raise ResonatorFitError(f"freq_hz and s21 must be 1-D of equal length >= 5, got {f.shape} and {z.shape}")
    order = np.argsort(f)
    f, z = f[order], z[order]
    step = float(np.median(np.diff(f)))
    if not step > 0:
        raise ResonatorFitError("freq_hz must increase")
    mag_db = 20 * np.log10(np.maximum(np.abs(z), 1e-300))
    window_hz = 10 * min_separation_hz if baseline_window_hz is None else baseline_window_hz
    size = int(min(max(5, round(window_hz / step)), f.size)) | 1
    base = scipy.ndimage.percentile_filter(mag_db, baseline_percentile, size=size, mode="nearest")
    base = scipy.ndimage.uniform_filter1d(base, size=size, mode="nearest")
    depth = base - mag_db
    distance = max(1, int(round(min_separation_hz / step)))
    peaks, props = scipy.signal.find_peaks(depth, prominence=min_depth_db, distance=distance)
    if peaks.size == 0:
        empty = np.empty(0)
        return FoundResonators(empty, empty, empty)
    widths = scipy.signal.peak_widths(depth, peaks, rel_height=0.5, prominence_data=(
        props["prominences"], props["left_bases"], props["right_bases"]))[0]
    q = f[peaks] / np.maximum(widths * step, step)
    return FoundResonators(f[peaks], props["prominences"], q)
