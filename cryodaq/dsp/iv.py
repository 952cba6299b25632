"""TES current–voltage (IV) curve analysis for a shunt-biased (voltage-biased) TES.

Circuit (Irwin & Hilton, "Transition-Edge Sensors", in Cryogenic Particle
Detection, Springer 2005, §2): the bias current ``I_bias`` divides between the
shunt ``R_sh`` and the TES branch (parasitic ``R_p`` in series with the TES ``R``)::

    I_tes (R_p + R) = (I_bias - I_tes) R_sh
    V_tes = I_bias R_sh - I_tes (R_sh + R_p),   R = V_tes / I_tes,   P = I_tes V_tes

Branches, in order of falling bias: *normal* (R = R_n: I_tes = I_bias R_sh/(R_sh + R_p + R_n),
a straight line through the origin), *transition* (electrothermal feedback holds
P nearly constant, so I_tes rises as the bias falls), *superconducting*
(R = 0: I_tes = I_bias R_sh/(R_sh + R_p), the steep line).  The SQUID reading
has an unknown offset; the normal branch must extrapolate through the origin,
which fixes it.  ``R_p`` comes from the superconducting slope alone (its offset
may differ after a flux jump at the transition–superconducting switch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IVResult", "analyze_iv"]


@dataclass(frozen=True)
class IVResult:
    """Result of :func:`analyze_iv` (SI units), per-point arrays in the input order.

    ``i_tes``: offset-corrected TES current; ``v_tes``, ``r_tes``, ``p_tes``: voltage,
    resistance and Joule power of the TES; ``frac_rn`` = ``r_tes / r_n``.  Masks
    ``normal``, ``superconducting``, ``transition`` say which branch each point is on.
    ``p_sat``: power where the falling-bias curve crosses ``p_sat_fraction × R_n``
    (NaN when it never does).  ``*_err``: 1σ from the branch line fits.  ``noise``: the point
    noise used (given or estimated); ``normal_points``/``sc_points`` and ``branches`` say which
    points each branch fit used and where (and why) an automatic branch stopped.
    """

    i_bias: np.ndarray
    i_tes: np.ndarray
    v_tes: np.ndarray
    r_tes: np.ndarray
    p_tes: np.ndarray
    frac_rn: np.ndarray
    normal: np.ndarray
    superconducting: np.ndarray
    transition: np.ndarray
    r_shunt: float
    r_n: float
    r_n_err: float
    r_p: float
    r_p_err: float
    offset: float
    offset_err: float
    p_sat: float
    p_sat_fraction: float
    noise: float
    normal_points: np.ndarray  # indices (input order) of the points the normal-branch fit used
    sc_points: np.ndarray  # ... and the superconducting-branch fit
    branches: str  # which points each branch used and why it stopped

    def branch_report(self) -> str:
        """A human-readable line on the branches (also in ``branches``)."""
        return self.branches


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares y = m x + c: (m, c, σ_m, σ_c) with the residual-scaled covariance."""
    design = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = max(len(x) - 2, 1)
    cov = np.linalg.pinv(design.T @ design) * float(resid @ resid) / dof
    return float(coef[0]), float(coef[1]), float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))


# 25th percentile of |N(0, 1)|: a chord deviation that is noise alone is below 0.3186 σ a quarter of the time
_HALF_NORMAL_Q25 = 0.31864


def _noise_estimate(x: np.ndarray, y: np.ndarray) -> float:
    """Robust σ of y: each point's deviation from the chord through its neighbours (x sorted).

    The lower quartile of the absolute deviations, scaled as for a half-normal: on a sparse curve
    most chords bend round the transition, and only those on the straight branches (a third or so)
    measure the noise; the lower quartile is theirs as long as a quarter of the chords are straight.
    """
    x0, x1, x2 = x[:-2], x[1:-1], x[2:]
    y0, y1, y2 = y[:-2], y[1:-1], y[2:]
    span = x2 - x0
    ok = span > 0
    w = np.where(ok, (x1 - x0) / np.where(ok, span, 1), 0.5)
    dev = (y1 - (y0 + (y2 - y0) * w)) / np.sqrt(1 + w**2 + (1 - w) ** 2)
    dev = dev[ok]
    if dev.size == 0:
        return 0.0
    return float(np.percentile(np.abs(dev), 25) / _HALF_NORMAL_Q25)


def _curvature_z(xs: np.ndarray, ys: np.ndarray, sigma: float) -> float:
    """Significance (in σ of the expected point noise) of the quadratic term of a parabola through the points."""
    if xs.size < 4 or sigma <= 0:
        return 0.0
    u = (xs - xs.mean()) / max(np.ptp(xs), 1e-300)  # scaled: a well-conditioned design
    design = np.column_stack([np.ones_like(u), u, u * u])
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    cov = np.linalg.pinv(design.T @ design) * sigma**2
    return float(abs(coef[2]) / np.sqrt(max(cov[2, 2], 1e-300)))


def _grow_branch(
    x: np.ndarray, y: np.ndarray, order: np.ndarray, n_start: int, sigma: float, n_sigma: float,
    curvature_sigma: float,
) -> tuple[np.ndarray, str]:
    """Indices (into x) of the straight run that starts with ``order[:n_start]`` and grows along ``order``,
    and why it stopped.

    A point joins while (a) it lies within ``n_sigma`` of the line fitted to the points so far (σ
    times the line's prediction error) and (b) a parabola through the points so far and it has no
    quadratic term larger than ``curvature_sigma`` times its σ (from the expected point noise
    ``sigma``): a curve that bends gently away over several sparse points passes (a) point by point
    but not (b). The first point that fails ends the branch.
    """
    members = list(order[:n_start])
    for j in order[n_start:]:
        xs, ys = x[members], y[members]
        m, c, _, _ = _line_fit(xs, ys)
        sxx = float(np.sum((xs - xs.mean()) ** 2))
        lever = (x[j] - xs.mean()) ** 2 / sxx if sxx > 0 else 0.0
        pred_err = sigma * np.sqrt(1 + 1 / len(xs) + lever)
        off = abs(y[j] - (m * x[j] + c)) / max(pred_err, 1e-300)
        if off > n_sigma:
            return np.array(members, dtype=int), f"next point (|I_bias| {abs(x[j]):.4g} A) {off:.1f} sigma off the line"
        curv = _curvature_z(np.append(xs, x[j]), np.append(ys, y[j]), sigma)
        if curv > curvature_sigma:
            return np.array(members, dtype=int), (f"next point (|I_bias| {abs(x[j]):.4g} A) bends the branch: "
                                                  f"curvature {curv:.1f} sigma")
        members.append(j)
    return np.array(members, dtype=int), "all points"


def _range_mask(i_bias: np.ndarray, rng: tuple[float, float], name: str) -> np.ndarray:
    lo, hi = sorted(float(v) for v in rng)
    mask = (np.abs(i_bias) >= lo) & (np.abs(i_bias) <= hi)
    if np.count_nonzero(mask) < 3:
        raise ValueError(f"analyze_iv: {name}=({lo:g}, {hi:g}) A selects {np.count_nonzero(mask)} points; need >= 3")
    return mask


def analyze_iv(
    i_bias: np.ndarray,
    i_tes_measured: np.ndarray,
    r_shunt: float,
    *,
    r_parasitic: float | None = None,
    normal_range: tuple[float, float] | None = None,
    sc_range: tuple[float, float] | None = None,
    p_sat_fraction: float = 0.9,
    n_sigma: float = 5.0,
    point_noise: float | None = None,
    curvature_sigma: float = 4.0,
) -> IVResult:
    """Analyse a TES IV curve: offset, R_n, R_p, and V, R, P, %R_n at every bias point.

    ``i_bias``: bias currents (A) into the shunt–TES network; ``i_tes_measured``:
    TES current read by the SQUID (A, calibrated, with an arbitrary offset);
    ``r_shunt``: shunt resistance (Ω).  ``r_parasitic``: the TES branch's series
    resistance if known; otherwise it comes from the superconducting branch slope.
    ``normal_range`` / ``sc_range``: |I_bias| intervals (A) of the normal and
    superconducting branches; when ``None`` each is found by growing a straight
    line from the highest (normal) or lowest (superconducting) |I_bias| while
    every new point lies within ``n_sigma`` of it and does not make the branch
    bend (a parabola's quadratic term within ``curvature_sigma``), σ being
    ``point_noise`` (the expected σ of one reading, A) or, when not given, the
    noise estimated from neighbour chords.  The branch starts from 3 points
    on a sparse curve (5 from 100 points on), so an IV with only 3–4 normal
    points does not drag transition points into R_n.  ``p_sat_fraction``: R/R_n at which the
    saturation power ``P_sat`` is read (linear interpolation between the bracketing
    transition points on the falling-bias side; for a sweep through zero the
    positive-bias half is used).
    """
    ib = np.asarray(i_bias, dtype=float)
    im = np.asarray(i_tes_measured, dtype=float)
    if ib.ndim != 1 or ib.shape != im.shape:
        raise ValueError(
            f"analyze_iv: i_bias and i_tes_measured must be 1-D of equal length, got {ib.shape}, {im.shape}"
        )
    if ib.size < 10:
        raise ValueError(f"analyze_iv: an IV curve needs >= 10 points, got {ib.size}")
    if not (np.all(np.isfinite(ib)) and np.all(np.isfinite(im))):
        raise ValueError("analyze_iv: i_bias / i_tes_measured contain NaN or inf")
    if not r_shunt > 0:
        raise ValueError(f"analyze_iv: r_shunt must be > 0 Ω, got {r_shunt}")
    if not 0 < p_sat_fraction < 1:
        raise ValueError(f"analyze_iv: p_sat_fraction must lie in (0, 1), got {p_sat_fraction}")
    n = ib.size
    by_bias = np.argsort(ib, kind="stable")
    if point_noise is not None and not point_noise > 0:
        raise ValueError(f"analyze_iv: point_noise must be > 0 A, got {point_noise}")
    sigma = float(point_noise) if point_noise is not None else _noise_estimate(ib[by_bias], im[by_bias])
    sigma = max(sigma, 1e-9 * float(np.max(np.abs(im))))  # a computed, noiseless curve: float rounding only
    mag = np.abs(ib)
    n_start = max(3, min(5, n // 20))

    # normal branch → offset and slope
    if normal_range is None:
        order = np.argsort(-mag, kind="stable")
        normal_idx, normal_stop = _grow_branch(ib, im, order, n_start, sigma, n_sigma, curvature_sigma)
    else:
        normal_idx, normal_stop = np.flatnonzero(_range_mask(ib, normal_range, "normal_range")), "normal_range given"
    m_n, offset, m_n_err, offset_err = _line_fit(ib[normal_idx], im[normal_idx])
    if not m_n > 0:
        raise ValueError(
            f"analyze_iv: the normal branch ({normal_idx.size} points at |I_bias| >= {mag[normal_idx].min():.3g} A) "
            f"has slope {m_n:.3g} <= 0; is the sign of the SQUID current inverted, or the sweep not normal at the top?"
        )

    # superconducting branch → R_p
    sc_idx = np.empty(0, dtype=int)
    sc_stop = "none found"
    m_sc = m_sc_err = np.nan
    if sc_range is not None:
        sc_idx, sc_stop = np.flatnonzero(_range_mask(ib, sc_range, "sc_range")), "sc_range given"
    else:
        order = np.argsort(mag, kind="stable")
        order = order[~np.isin(order, normal_idx)]
        if order.size >= 3:
            cand, stop = _grow_branch(ib, im, order, 3, sigma, n_sigma, curvature_sigma)
            if cand.size >= 3 and np.ptp(ib[cand]) > 0:
                m, _, _, _ = _line_fit(ib[cand], im[cand])
                if m > 1.5 * m_n:  # steeper than normal: R_p < R_n + R_p
                    sc_idx, sc_stop = cand, stop
    if sc_idx.size >= 3:
        m_sc, _, m_sc_err, _ = _line_fit(ib[sc_idx], im[sc_idx])
    if r_parasitic is not None:
        r_p, r_p_err = float(r_parasitic), 0.0
    elif sc_idx.size >= 3 and m_sc > 0:
        r_p = r_shunt / m_sc - r_shunt
        r_p_err = r_shunt * m_sc_err / m_sc**2
    else:
        raise ValueError(
            "analyze_iv: no superconducting branch found (need >= 3 points on a line steeper than the normal branch "
            "at the lowest |I_bias|); pass r_parasitic= or sc_range="
        )
    r_n = r_shunt / m_n - r_shunt - r_p
    r_n_err = float(np.hypot(r_shunt * m_n_err / m_n**2, r_p_err))

    i_tes = im - offset
    v_tes = ib * r_shunt - i_tes * (r_shunt + r_p)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_tes = np.where(i_tes != 0, v_tes / i_tes, np.nan)
    p_tes = i_tes * v_tes
    frac = r_tes / r_n

    normal = np.zeros(n, dtype=bool)
    normal[normal_idx] = True
    sc = np.zeros(n, dtype=bool)
    sc[sc_idx] = True
    sc &= ~normal
    transition = ~(normal | sc)

    p_sat = _p_sat(ib, frac, p_tes, sc, p_sat_fraction)
    branches = (f"normal: {normal_idx.size} points, |I_bias| {_span(mag[normal_idx])} ({normal_stop}); "
                f"superconducting: {sc_idx.size} points, |I_bias| {_span(mag[sc_idx])} ({sc_stop}); "
                f"point noise {sigma:.3g} A ({'given' if point_noise is not None else 'estimated'})")
    return IVResult(
        i_bias=ib,
        i_tes=i_tes,
        v_tes=v_tes,
        r_tes=r_tes,
        p_tes=p_tes,
        frac_rn=frac,
        normal=normal,
        superconducting=sc,
        transition=transition,
        r_shunt=float(r_shunt),
        r_n=float(r_n),
        r_n_err=r_n_err,
        r_p=float(r_p),
        r_p_err=float(r_p_err),
        offset=float(offset),
        offset_err=float(offset_err),
        p_sat=p_sat,
        p_sat_fraction=float(p_sat_fraction),
        noise=sigma,
        normal_points=np.sort(normal_idx),
        sc_points=np.sort(sc_idx[~np.isin(sc_idx, normal_idx)]),
        branches=branches,
    )


def _span(values: np.ndarray) -> str:
    return f"{values.min():.4g}-{values.max():.4g} A" if values.size else "-"


def _p_sat(ib: np.ndarray, frac: np.ndarray, p: np.ndarray, sc: np.ndarray, level: float) -> float:
    """P where R/R_n first falls below ``level`` going down in bias (off the superconducting branch)."""
    side = ib > 0 if np.any(ib > 0) else ib < 0
    idx = np.flatnonzero(side & ~sc & np.isfinite(frac))
    idx = idx[np.argsort(-np.abs(ib[idx]), kind="stable")]
    fr, pw = frac[idx], p[idx]
    below = np.flatnonzero((fr[1:] < level) & (fr[:-1] >= level))
    if below.size == 0:
        return float("nan")
    k = below[0]
    w = (fr[k] - level) / (fr[k] - fr[k + 1])
    return float(pw[k] + w * (pw[k + 1] - pw[k]))
