"""TES analysis: the pure computations of the TES procedures on measured data — no instruments, no files.

- :func:`clipped_mean` — a per-channel current level that particle pulses do not pull;
- :func:`analyze_iv_dataset` — :func:`~cryodaq.dsp.analyze_iv` on every IV of a stored ``tes_iv`` sweep
  (R_n, R_p, P_sat, offset-free curves and branch codes);
- :func:`fit_psat_vs_temperature`, :func:`thermal_fits` — P_sat(T_bath) = K (T_c^n − T_bath^n), G;
- :func:`capture_noise_psd` — a capture's noise PSD per channel, averaged over its gap-free records
  without particle pulses (each record's periodogram is :func:`~cryodaq.dsp.welch_psd`).

The procedures (:mod:`~cryodaq.sweeps.procedures.tes`) measure with these; the report
(:mod:`~cryodaq.sweeps.procedures.tes_report`) runs them again on a stored run. Both import this
module; it imports neither.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from scipy.optimize import curve_fit

from cryodaq.readout.capture import Capture
from cryodaq.dsp import analyze_iv, welch_psd
from cryodaq.dsp.stats import robust_sigma

__all__ = ["EXCLUDED", "IV", "IV_ANALYSIS", "NOISE", "NORMAL", "SUPERCONDUCTING", "TRANSITION", "ThermalFit",
           "analyze_iv_dataset", "as_range", "capture_noise_psd", "clipped_mean", "fit_psat_vs_temperature",
           "thermal_fits"]

log = logging.getLogger(__name__)

#: the sweeps the TES procedures write (``sweeps/<name>``)
IV, IV_ANALYSIS, NOISE = "tes_iv", "tes_iv_analysis", "tes_noise_vs_bias"
#: branch codes in ``tes_iv_analysis``'s ``branch``
EXCLUDED, NORMAL, TRANSITION, SUPERCONDUCTING = -1, 0, 1, 2


def as_range(value: Any, what: str) -> tuple[float, float] | None:
    """``value`` as a (low, high) pair of floats, or None; ``what`` names it in the error."""
    if value is None:
        return None
    lo_hi = tuple(float(v) for v in value)
    if len(lo_hi) != 2:
        raise ValueError(f"{what}: expected [low, high], got {value!r}")
    return lo_hi  # type: ignore[return-value]


@dataclass(frozen=True)
class ThermalFit:
    """P_sat(T_bath) = K (T_c^n − T_bath^n) of one channel (SI: W, K); G = n K T_c^(n−1) (W/K)."""

    channel: int
    k_w_per_k_n: float
    k_err: float
    n: float
    n_err: float
    tc_k: float
    tc_err: float
    g_w_per_k: float
    g_err: float
    residual_rms_w: float
    n_points: int
    ok: bool
    message: str = ""


def clipped_mean(data: np.ndarray, n_sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``data`` (n, channels): the mean of the samples within ``n_sigma`` robust σ
    (MAD) of the median, and the fraction left out — a level that particle pulses do not pull."""
    med = np.median(data, axis=0)
    sigma = robust_sigma(data)
    keep = np.abs(data - med) <= n_sigma * np.where(sigma > 0, sigma, np.inf)
    kept = keep.sum(axis=0)
    mean = np.where(kept > 0, np.where(keep, data, 0.0).sum(axis=0) / np.maximum(kept, 1), med)
    return mean, 1.0 - kept / data.shape[0]


# -- IV ----------------------------------------------------------------------------------------------------

def _analyze_one(ib: np.ndarray, im: np.ndarray, r_shunt_ohm: float, r_parasitic_ohm: float | None,
                 p_sat_fraction: float, normal_range_a: Sequence[float] | None, sc_range_a: Sequence[float] | None,
                 normal_tolerance: float) -> Any:
    """``analyze_iv``, then while the automatic normal branch holds points with R < (1 − tol) R_n, drop them."""
    kw = {"r_parasitic": r_parasitic_ohm, "p_sat_fraction": p_sat_fraction,
          "sc_range": as_range(sc_range_a, "sc_range_a")}
    fixed = as_range(normal_range_a, "normal_range_a")
    result = analyze_iv(ib, im, r_shunt_ohm, normal_range=fixed, **kw)
    if fixed is not None:
        return result
    for _ in range(5):
        keep = result.normal & (result.frac_rn >= 1.0 - normal_tolerance)
        if keep.sum() == result.normal.sum() or keep.sum() < 3:
            break
        mag = np.abs(ib[keep])
        result = analyze_iv(ib, im, r_shunt_ohm, normal_range=(float(mag.min()), float(mag.max())), **kw)
    return result


def analyze_iv_dataset(ds: xr.Dataset, *, r_shunt_ohm: float, r_parasitic_ohm: float | None = None,
                       p_sat_fraction: float = 0.9, normal_range_a: Sequence[float] | None = None,
                       sc_range_a: Sequence[float] | None = None, normal_tolerance: float = 0.001) -> xr.Dataset:
    """Run :func:`~cryodaq.dsp.analyze_iv` on every (bath temperature, channel) IV of a ``tes_iv`` sweep.

    Uses the measured, unsaturated points (``i_raw_a``). Returns a Dataset over
    (``bath_temperature_k``, ``channel``): ``r_n_ohm``, ``r_p_ohm`` (and ``_err``), ``p_sat_w``,
    ``offset_a``, ``bath_k`` (mean measured bath temperature), ``n_points``, ``iv_ok``; and over
    (``bath_temperature_k``, ``bias_current_a``, ``channel``): ``i_tes_a`` (offset removed), ``v_tes_v``,
    ``r_tes_ohm``, ``p_tes_w``, ``frac_rn``, ``branch`` (−1 left out, 0 normal, 1 transition, 2 superconducting).
    """
    temps = ds["bath_temperature_k"].values
    biases = ds["bias_current_a"].values
    channels = ds["channel"].values
    n_t, n_b, n_c = len(temps), len(biases), len(channels)
    nan2, nan3 = np.full((n_t, n_c), np.nan), np.full((n_t, n_b, n_c), np.nan)
    out = {k: nan2.copy() for k in ("r_n_ohm", "r_n_ohm_err", "r_p_ohm", "r_p_ohm_err", "p_sat_w", "offset_a")}
    curves = {k: nan3.copy() for k in ("i_tes_a", "v_tes_v", "r_tes_ohm", "p_tes_w", "frac_rn")}
    branch = np.full((n_t, n_b, n_c), EXCLUDED, dtype=np.int8)
    n_points = np.zeros((n_t, n_c), dtype=np.int64)
    ok = np.zeros((n_t, n_c), dtype=bool)
    done = ds["done"].values
    current = ds["i_raw_a"].values
    saturated = ds["saturated"].values.astype(bool) if "saturated" in ds else np.zeros(current.shape, bool)
    bath = ds["bath_measured_k"].where(ds["done"]).values
    bath_k = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in bath])
    for it, ic in np.ndindex(n_t, n_c):
        use = done[it] & ~saturated[it, :, ic] & np.isfinite(current[it, :, ic])
        n_points[it, ic] = int(use.sum())
        if use.sum() < 10:
            continue
        idx = np.flatnonzero(use)
        try:
            r = _analyze_one(biases[idx], current[it, idx, ic], r_shunt_ohm, r_parasitic_ohm, p_sat_fraction,
                             normal_range_a, sc_range_a, normal_tolerance)
        except ValueError as exc:
            log.warning("IV analysis failed at %.4g K, channel %s: %s", temps[it], channels[ic], exc)
            continue
        ok[it, ic] = True
        for key, value in (("r_n_ohm", r.r_n), ("r_n_ohm_err", r.r_n_err), ("r_p_ohm", r.r_p),
                           ("r_p_ohm_err", r.r_p_err), ("p_sat_w", r.p_sat), ("offset_a", r.offset)):
            out[key][it, ic] = value
        for key, value in (("i_tes_a", r.i_tes), ("v_tes_v", r.v_tes), ("r_tes_ohm", r.r_tes),
                           ("p_tes_w", r.p_tes), ("frac_rn", r.frac_rn)):
            curves[key][it, idx, ic] = value
        branch[it, idx, ic] = np.where(r.normal, NORMAL, np.where(r.superconducting, SUPERCONDUCTING, TRANSITION))
    units = {"r_n_ohm": "Ohm", "r_n_ohm_err": "Ohm", "r_p_ohm": "Ohm", "r_p_ohm_err": "Ohm", "p_sat_w": "W",
             "offset_a": "A", "i_tes_a": "A", "v_tes_v": "V", "r_tes_ohm": "Ohm", "p_tes_w": "W", "frac_rn": ""}
    dims2, dims3 = ("bath_temperature_k", "channel"), ("bath_temperature_k", "bias_current_a", "channel")
    data = {k: xr.DataArray(v, dims=dims2, attrs={"units": units[k]}) for k, v in out.items()}
    data.update({k: xr.DataArray(v, dims=dims3, attrs={"units": units[k]}) for k, v in curves.items()})
    data["branch"] = xr.DataArray(branch, dims=dims3)
    data["n_points"] = xr.DataArray(n_points, dims=dims2)
    data["iv_ok"] = xr.DataArray(ok, dims=dims2)
    data["bath_k"] = xr.DataArray(np.broadcast_to(bath_k[:, None], (n_t, n_c)).copy(), dims=dims2,
                                  attrs={"units": "K"})
    return xr.Dataset(data, coords={"bath_temperature_k": temps, "bias_current_a": biases, "channel": channels},
                      attrs={"r_shunt_ohm": float(r_shunt_ohm), "p_sat_fraction": float(p_sat_fraction)})


def _psat_model(t: np.ndarray, p0: float, tc: float, n: float) -> np.ndarray:
    return p0 * (1.0 - (t / tc) ** n)


def fit_psat_vs_temperature(t_bath_k: Sequence[float], p_sat_w: Sequence[float], *, n: float | None = None,
                            channel: int = 0) -> ThermalFit:
    """Least-squares fit of P_sat = K (T_c^n − T_bath^n); ``n`` fixes the exponent.

    Fitted as P_sat = P0 (1 − (T_bath/T_c)^n) in pW (well conditioned: K alone spans decades with n),
    with ``scipy.optimize.curve_fit``; K = P0 / T_c^n, G = n K T_c^(n−1) = n P0 / T_c, their 1σ errors
    propagated with the full covariance (scaled by the residuals). Needs one point more than free
    parameters; otherwise ``ok`` is False and the numbers are NaN.
    """
    t = np.asarray(t_bath_k, dtype=float)
    p = np.asarray(p_sat_w, dtype=float) * 1e12
    good = np.isfinite(t) & np.isfinite(p) & (p > 0)
    t, p = t[good], p[good]
    free = 3 if n is None else 2
    nan = math.nan

    def failed(message: str) -> ThermalFit:
        return ThermalFit(channel, nan, nan, nan, nan, nan, nan, nan, nan, nan, int(t.size), False, message)

    if t.size < free + 1:
        return failed(f"{t.size} usable bath temperatures; the fit needs >= {free + 1}")
    n0 = 3.5 if n is None else float(n)
    # start: with n fixed at n0 the model is linear in T^n0 (P = P0 - K' T^n0)
    slope, p0 = np.polyfit(t**n0, p, 1)
    tc0 = (p0 / -slope) ** (1.0 / n0) if slope < 0 and p0 > 0 else 1.2 * t.max()
    tc0 = max(tc0, 1.01 * t.max())
    p0 = max(p0, p.max())
    try:
        if n is None:
            popt, pcov = curve_fit(_psat_model, t, p, p0=[p0, tc0, n0],
                                   bounds=([0.0, t.max(), 0.5], [np.inf, np.inf, 10.0]), maxfev=20000)
        else:
            popt2, pcov2 = curve_fit(lambda x, a, b: _psat_model(x, a, b, float(n)), t, p, p0=[p0, tc0],
                                     bounds=([0.0, t.max()], [np.inf, np.inf]), maxfev=20000)
            popt = np.array([*popt2, float(n)])
            pcov = np.zeros((3, 3))
            pcov[:2, :2] = pcov2
    except (RuntimeError, ValueError) as exc:
        return failed(f"curve_fit: {exc}")
    if not np.all(np.isfinite(pcov)):
        return failed("singular covariance (the temperatures do not constrain every parameter)")
    a, tc, nn = (float(v) for v in popt)
    k = a * 1e-12 / tc**nn
    g = nn * a * 1e-12 / tc
    jk = np.array([1e-12 / tc**nn, -nn * k / tc, -k * math.log(tc)])
    jg = np.array([nn * 1e-12 / tc, -g / tc, a * 1e-12 / tc])
    resid = (p - _psat_model(t, a, tc, nn)) * 1e-12
    errs = np.sqrt(np.clip(np.diag(pcov), 0, None))
    return ThermalFit(channel, k, float(np.sqrt(max(jk @ pcov @ jk, 0.0))), nn, float(errs[2]), tc, float(errs[1]),
                      g, float(np.sqrt(max(jg @ pcov @ jg, 0.0))), float(np.sqrt(np.mean(resid**2))), int(t.size),
                      True)


def thermal_fits(analysis: xr.Dataset, n: float | None = None) -> list[ThermalFit]:
    """:func:`fit_psat_vs_temperature` per channel of an :func:`analyze_iv_dataset` result."""
    fits = []
    for c in analysis["channel"].values:
        row = analysis.sel(channel=c)
        fits.append(fit_psat_vs_temperature(row["bath_k"].values, row["p_sat_w"].values, n=n, channel=int(c)))
    return fits


# -- noise -------------------------------------------------------------------------------------------------

def capture_noise_psd(cap: Capture, nperseg: int, *, reject_pulses: bool = True,
                      threshold_sigma: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-channel noise PSD of a capture from its gap-free, pulse-free records:
    ``(freqs, psd (n_channels, n_freq), records_used, records_total)``.

    Non-overlapping records of ``nperseg`` samples inside each contiguous segment (a record never
    spans a gap); with ``reject_pulses`` a record is left out of a channel's average when its largest
    excursion from its median exceeds ``threshold_sigma`` × that channel's white-noise σ (first
    differences, MAD: blind to pulses and to slow drifts). Each record's periodogram is
    :func:`~cryodaq.dsp.welch_psd` with one segment (Hann window, mean removed).
    """
    records = [cap.data[s + i * nperseg: s + (i + 1) * nperseg]
               for s, e in cap.segments for i in range((e - s) // nperseg)]
    n_ch = cap.n_channels
    freqs = np.fft.rfftfreq(nperseg, 1.0 / cap.fs)
    if not records:
        return freqs, np.full((n_ch, freqs.size), np.nan), np.zeros(n_ch, dtype=np.int64), 0
    rec = np.stack(records)                                            # (n_rec, nperseg, n_ch)
    _, per_record = welch_psd(rec, cap.fs, nperseg, axis=1, noverlap=0)  # (n_rec, n_freq, n_ch)
    per_record = np.asarray(per_record)
    clean = np.ones((rec.shape[0], n_ch), dtype=bool)
    if reject_pulses:
        diffs = np.diff(cap.data, axis=0)
        sigma = robust_sigma(diffs) / math.sqrt(2.0)
        excursion = np.max(np.abs(rec - np.median(rec, axis=1, keepdims=True)), axis=1)  # (n_rec, n_ch)
        clean = excursion <= threshold_sigma * np.where(sigma > 0, sigma, np.inf)
    used = clean.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        psd = np.einsum("rfc,rc->cf", per_record, clean.astype(float)) / used[:, None]
    return freqs, psd, used.astype(np.int64), int(rec.shape[0])
