"""TES procedures: IV curves versus bath temperature (R_n, R_p, P_sat(T), thermal conductance G) and
noise PSD versus bias, read from the streaming TES readout board.

**IV versus bath temperature** (:func:`run_tes_iv`): sweep ``tes_iv`` over bath temperature
(fridge setpoint, then ``wait_until_stable``) × bias current, **from high to low** (the normal
branch first, as real IV sweeps do: coming down from the normal state the TES does not latch
superconducting). The bias is set through the bias source's qcodes parameter (a Keithley 2450's
``source.current``), so the station's safety limits apply. At each point a short capture of the
stream (:func:`~cryodaq.readout.capture.capture_stream`) gives per channel (dim ``channel``)
the TES current in amperes — ``counts / counts_per_ampere``, still carrying the SQUID's unknown
offset, which :func:`~cryodaq.dsp.analyze_iv` removes by making the normal branch pass through the
origin: ``i_raw_a``, the mean of the samples within ``clip_sigma`` robust σ of the median (what the
analysis uses: a 5.9 keV pulse in a 50 ms window moves the plain mean by ~1 %, and a median of
int16 codes is stuck on the ADC's count grid, while the clipped mean keeps the noise's dither),
``pulse_fraction`` (the share of samples clipped), ``i_raw_mean_a``, ``i_raw_std_a``,
``saturated`` (a sample sat on an ADC rail: the point is left out of the analysis) and the
measured bath temperature ``bath_measured_k``. Optionally the SQUIDs' FLL gain is lowered for the
IV (``squid_feedback_gain_v_per_phi0``) so the large superconducting-branch currents stay inside
the ADC range; it is restored afterwards, as is the bias.

Then per temperature and channel :func:`~cryodaq.dsp.analyze_iv` gives R_n, R_p and P_sat at
``p_sat_fraction`` × R_n (sweep ``tes_iv_analysis``: axis ``bath_temperature_k``, dims
``channel`` and, for the per-point curves, ``bias_current_a``). The automatic normal branch is
trimmed of points whose R is measurably below R_n (more than ``normal_tolerance``; at a low bath
temperature the top of the transition can pass analyze_iv's noise test) and refitted. Per
channel, P_sat(T_bath) = K (T_c^n − T_bath^n) is fitted (:func:`fit_psat_vs_temperature`) for
K, n, T_c and G = n K T_c^(n−1) with 1σ uncertainties; the fit is stored in the analysis
group's attr ``thermal_fit``. T_c so defined is where P_sat extrapolates to zero: the TES
temperature at ``p_sat_fraction`` × R_n without current (a little above the foot of the
transition), and G the conductance there.

**Noise versus bias** (:func:`run_noise_vs_bias`): sweep ``tes_noise_vs_bias`` over bias
current; at each point ``capture_s`` of stream cut into non-overlapping records of ``nperseg``
samples inside contiguous segments, records holding a particle pulse rejected per channel
(``pulse_threshold_sigma`` × the white-noise σ from first differences), the Hann-windowed
periodograms of the rest averaged (:func:`~cryodaq.dsp.welch_psd`, one segment per record):
``psd`` (A²/Hz, dims ``channel``, ``freq_hz``), ``white_level_a2_per_hz`` (mean over
``white_band_hz``), ``records_used``.

Tables (CSV) and PNG plots (:mod:`~cryodaq.sweeps.procedures.tes_report`) go to ``ctx.results_dir``;
:func:`analyse_tes_run` redoes them from a stored run (with other analysis settings if wanted).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from qcodes.parameters import ParameterBase
from scipy.optimize import curve_fit

from cryodaq.readout.capture import Capture, capture_stream
from cryodaq.dsp import analyze_iv, welch_psd
from cryodaq.dsp.stats import robust_sigma
from cryodaq.storage.sweep_store import read_sweep
from cryodaq.sweeps.axes import Axis
from cryodaq.sweeps.engine import Point

__all__ = ["IVPlan", "NoiseBiasPlan", "TESReport", "ThermalFit", "analyse_iv_dataset", "analyse_tes_run",
           "bias_parameter", "clipped_mean", "fit_psat_vs_temperature", "noise_psd", "run_noise_vs_bias", "run_tes_iv"]

log = logging.getLogger(__name__)

IV, IV_ANALYSIS, NOISE = "tes_iv", "tes_iv_analysis", "tes_noise_vs_bias"
PROCEDURE = "cryodaq.sweeps.procedures.tes"
#: branch codes in ``tes_iv_analysis``'s ``branch``
EXCLUDED, NORMAL, TRANSITION, SUPERCONDUCTING = -1, 0, 1, 2


def _from_options(cls: type, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{**defaults, **{k: v for k, v in options.items() if k in names}})


def _pair(value: Any, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    lo_hi = tuple(float(v) for v in value)
    if len(lo_hi) != 2:
        raise ValueError(f"{what}: expected [low, high], got {value!r}")
    return lo_hi  # type: ignore[return-value]


@dataclass(frozen=True)
class IVPlan:
    """IV curves at each bath temperature (K), bias currents in A from high to low.

    ``bias_currents_a`` lists them; when None, ``bias_points`` values from ``bias_max_a`` down to
    ``bias_min_a``. ``capture_s`` of stream per point, after ``settle_s``. ``r_shunt_ohm`` is the
    shunt (not measurable from the IV); ``r_parasitic_ohm`` when known, else from the
    superconducting slope. ``normal_range_a`` / ``sc_range_a``: fixed |I_bias| ranges of the
    branches instead of the automatic ones. ``thermal_exponent``: fix n in the P_sat(T) fit.
    """

    bath_temperatures_k: Sequence[float]
    r_shunt_ohm: float
    bias_currents_a: Sequence[float] | None = None
    bias_max_a: float = 1.0e-3
    bias_min_a: float = 0.0
    bias_points: int = 61
    capture_s: float = 0.05
    settle_s: float = 0.0
    #: samples farther than this many robust σ from a point's median (particle pulses) are left out of its mean
    clip_sigma: float = 5.0
    r_parasitic_ohm: float | None = None
    p_sat_fraction: float = 0.9
    normal_range_a: Sequence[float] | None = None
    sc_range_a: Sequence[float] | None = None
    normal_tolerance: float = 0.001
    thermal_exponent: float | None = None
    #: FLL gain (V/Φ0) during the IV, to keep the superconducting branch inside the ADC range; None: as it is
    squid_feedback_gain_v_per_phi0: float | None = None
    restore_bias: bool = True
    #: temperature steps: fridge.wait_until_stable(tolerance_k, hold_time_s, timeout_s, poll_s), then temperature_settle_s
    tolerance_k: float = 1e-3
    hold_time_s: float = 30.0
    timeout_s: float = 1800.0
    poll_s: float = 1.0
    temperature_settle_s: float = 0.0

    def __post_init__(self) -> None:
        if not len(self.bath_temperatures_k):
            raise ValueError("IVPlan: bath_temperatures_k must not be empty")
        if not self.r_shunt_ohm > 0:
            raise ValueError(f"IVPlan: r_shunt_ohm must be > 0 Ω, got {self.r_shunt_ohm!r}")
        if not self.capture_s > 0:
            raise ValueError(f"IVPlan: capture_s must be > 0 s, got {self.capture_s!r}")
        if not 0 < self.p_sat_fraction < 1:
            raise ValueError(f"IVPlan: p_sat_fraction must lie in (0, 1), got {self.p_sat_fraction!r}")
        biases = self.biases()
        if biases.size < 10:
            raise ValueError(f"IVPlan: an IV curve needs >= 10 bias points, got {biases.size}")
        if not np.all(np.diff(np.abs(biases)) < 0):
            raise ValueError("IVPlan: bias currents must run from high to low |I_bias| (the normal branch first, "
                             f"so the TES does not latch superconducting), got {biases.tolist()}")
        _pair(self.normal_range_a, "IVPlan.normal_range_a")
        _pair(self.sc_range_a, "IVPlan.sc_range_a")

    def biases(self) -> np.ndarray:
        """The bias currents (A) in sweep order."""
        if self.bias_currents_a is not None:
            return np.asarray([float(b) for b in self.bias_currents_a])
        return np.linspace(float(self.bias_max_a), float(self.bias_min_a), int(self.bias_points))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> IVPlan:
        """``defaults`` overridden by the matching ``options`` (``-p bath_temperatures_k=[0.04,0.08]``)."""
        return _from_options(cls, options, defaults)


@dataclass(frozen=True)
class NoiseBiasPlan:
    """Noise PSD at each bias current (A): ``capture_s`` of stream per point, records of ``nperseg``.

    ``white_band_hz``: where the white level is read (default fs/50 … fs/4). ``pulse_threshold_sigma``:
    records whose excursion from their median exceeds it (in white-noise σ) are left out.
    """

    bias_currents_a: Sequence[float]
    capture_s: float = 1.0
    nperseg: int = 2048
    reject_pulses: bool = True
    pulse_threshold_sigma: float = 6.0
    white_band_hz: Sequence[float] | None = None
    settle_s: float = 0.05
    restore_bias: bool = True

    def __post_init__(self) -> None:
        if not len(self.bias_currents_a):
            raise ValueError("NoiseBiasPlan: bias_currents_a must not be empty")
        if not self.capture_s > 0 or not int(self.nperseg) >= 16:
            raise ValueError(f"NoiseBiasPlan: need capture_s > 0 and nperseg >= 16, got {self.capture_s!r}, "
                             f"{self.nperseg!r}")
        _pair(self.white_band_hz, "NoiseBiasPlan.white_band_hz")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> NoiseBiasPlan:
        return _from_options(cls, options, defaults)


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


@dataclass
class TESReport:
    """What :func:`analyse_tes_run` found and wrote."""

    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    iv: xr.Dataset | None = None
    thermal: list[ThermalFit] | None = None
    noise: xr.Dataset | None = None


# -- instruments ---------------------------------------------------------------------------------------

def bias_parameter(bias_source: Any) -> ParameterBase:
    """The qcodes parameter that sets the bias current: ``bias_source`` itself if it is a parameter,
    else a Keithley 2450's ``source.current`` (its source function must be current, its output on)."""
    if isinstance(bias_source, ParameterBase):
        return bias_source
    name = getattr(bias_source, "name", repr(bias_source))
    if not (hasattr(bias_source, "source_function") and hasattr(bias_source, "source")):
        raise TypeError(f"bias source {name!r}: expected a qcodes parameter or a Keithley 2450 "
                        f"(source_function, source.current), got {type(bias_source).__name__}")
    function = bias_source.source_function()
    if function != "current":
        raise ValueError(f"bias source {name!r}: source_function is {function!r}; a TES bias needs 'current' "
                         "(set it in the station file)")
    if hasattr(bias_source, "output_enabled") and not bias_source.output_enabled():
        raise ValueError(f"bias source {name!r}: the output is off; switch it on before biasing the TES")
    return bias_source.source.current


def _restore(what: str, action: Any) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - restoring must not hide why the sweep ended
        log.warning("could not restore %s: %s", what, exc)


def clipped_mean(data: np.ndarray, n_sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``data`` (n, channels): the mean of the samples within ``n_sigma`` robust σ
    (MAD) of the median, and the fraction left out — a level that particle pulses do not pull."""
    med = np.median(data, axis=0)
    sigma = robust_sigma(data)
    keep = np.abs(data - med) <= n_sigma * np.where(sigma > 0, sigma, np.inf)
    kept = keep.sum(axis=0)
    mean = np.where(kept > 0, np.where(keep, data, 0.0).sum(axis=0) / np.maximum(kept, 1), med)
    return mean, 1.0 - kept / data.shape[0]


def _channel_da(values: Any, channels: np.ndarray, units: str = "") -> xr.DataArray:
    return xr.DataArray(np.asarray(values), dims=["channel"], coords={"channel": channels}, attrs={"units": units})


# -- IV versus bath temperature ------------------------------------------------------------------------

def run_tes_iv(ctx: Any, *, fridge: Any, bias_source: Any, readout: Any, plan: IVPlan, squid: Any = None,
               analyse: bool = True) -> TESReport | None:
    """Measure IV curves at every bath temperature, analyse them and fit P_sat(T) (module docstring).

    ``fridge``: a :class:`cryodaq.instruments.Fridge`; ``bias_source``: a Keithley 2450 (or the bias
    parameter); ``readout``: a :class:`cryodaq.instruments.TESReadoutBoard`; ``squid``: a
    :class:`cryodaq.instruments.SQUIDController`, needed only with ``plan.squid_feedback_gain_v_per_phi0``.
    With ``analyse``, writes tables and plots to ``ctx.results_dir`` and returns what it wrote.
    """
    param = bias_parameter(bias_source)
    if plan.squid_feedback_gain_v_per_phi0 is not None and squid is None:
        raise ValueError("IVPlan.squid_feedback_gain_v_per_phi0 is set: pass squid= (the SQUID controller)")
    n_ch = int(readout.n_channels())
    channels = np.arange(n_ch)
    biases = plan.biases()
    saved_bias = float(param.get()) if plan.restore_bias else None
    saved_gains: list[float] | None = None
    if plan.squid_feedback_gain_v_per_phi0 is not None:
        saved_gains = [float(ch.feedback_gain()) for ch in squid.channels]
        for ch in squid.channels:
            ch.feedback_gain(float(plan.squid_feedback_gain_v_per_phi0))

    def set_temperature(kelvin: float) -> None:
        fridge.setpoint(kelvin)
        fridge.wait_until_stable(tolerance_k=plan.tolerance_k, hold_time_s=plan.hold_time_s,
                                 timeout_s=plan.timeout_s, poll_s=plan.poll_s)
        if plan.temperature_settle_s > 0:
            time.sleep(plan.temperature_settle_s)

    def measure(point: Point) -> dict[str, Any]:
        cap = capture_stream(readout, plan.capture_s, on_gap="flag")
        mean, clipped = clipped_mean(cap.data, plan.clip_sigma)
        return {"i_raw_a": _channel_da(mean, channels, cap.units),
                "pulse_fraction": _channel_da(clipped, channels),
                "i_raw_mean_a": _channel_da(cap.data.mean(axis=0), channels, cap.units),
                "i_raw_std_a": _channel_da(cap.data.std(axis=0), channels, cap.units),
                "saturated": _channel_da(cap.saturated, channels),
                "n_gaps": len(cap.gaps),
                "bath_measured_k": float(fridge.mxc())}

    try:
        ctx.sweep(Axis("bath_temperature_k", [float(t) for t in plan.bath_temperatures_k], set_temperature, units="K"),
                  Axis("bias_current_a", biases, param, delay_s=plan.settle_s, units="A"),
                  measure, name=IV,
                  attrs={"procedure": PROCEDURE, "plan": _jsonable_plan(plan), "r_shunt_ohm": plan.r_shunt_ohm,
                         "bias_parameter": str(param.full_name), "readout": str(readout.name),
                         "squid_feedback_gain_v_per_phi0": plan.squid_feedback_gain_v_per_phi0})
    finally:
        if saved_bias is not None:
            _restore(f"the bias {param.full_name} = {saved_bias:g} A", lambda: param.set(saved_bias))
        if saved_gains is not None:
            for ch, gain in zip(squid.channels, saved_gains):
                _restore(f"the FLL gain of {ch.full_name}", lambda ch=ch, gain=gain: ch.feedback_gain(gain))

    analysis = analyse_iv_dataset(ctx.dataset(IV), **_iv_settings(plan))
    per_t = [v for v in analysis.data_vars if "bath_temperature_k" in analysis[v].dims]

    def store(point: Point) -> dict[str, Any]:
        row = analysis.isel(bath_temperature_k=point.index[0])
        return {v: row[v] for v in per_t}

    result = ctx.sweep(Axis("bath_temperature_k", analysis["bath_temperature_k"].values, units="K"), store,
                       name=IV_ANALYSIS, attrs={"procedure": PROCEDURE, "source": f"sweeps/{IV}",
                                                **_iv_settings(plan)})
    fits = thermal_fits(analysis, n=plan.thermal_exponent)
    result.sink.set_attrs(thermal_fit=[asdict(f) for f in fits])
    for f in fits:
        log.info("TES channel %d: G = %.4g ± %.2g W/K at Tc = %.6g ± %.2g K, n = %.3g ± %.2g%s", f.channel,
                 f.g_w_per_k, f.g_err, f.tc_k, f.tc_err, f.n, f.n_err, "" if f.ok else f" (fit failed: {f.message})")
    return analyse_tes_run(ctx.run.path, ctx.results_dir) if analyse else None


def _jsonable_plan(plan: Any) -> dict[str, Any]:
    out = {}
    for k, v in asdict(plan).items():
        out[k] = list(v) if isinstance(v, (tuple, np.ndarray)) else v
    return out


def _iv_settings(plan: IVPlan) -> dict[str, Any]:
    return {"r_shunt_ohm": float(plan.r_shunt_ohm), "r_parasitic_ohm": plan.r_parasitic_ohm,
            "p_sat_fraction": float(plan.p_sat_fraction),
            "normal_range_a": None if plan.normal_range_a is None else list(_pair(plan.normal_range_a, "")),
            "sc_range_a": None if plan.sc_range_a is None else list(_pair(plan.sc_range_a, "")),
            "normal_tolerance": float(plan.normal_tolerance)}


def _analyze_one(ib: np.ndarray, im: np.ndarray, r_shunt_ohm: float, r_parasitic_ohm: float | None,
                 p_sat_fraction: float, normal_range_a: Sequence[float] | None, sc_range_a: Sequence[float] | None,
                 normal_tolerance: float) -> Any:
    """``analyze_iv``, then while the automatic normal branch holds points with R < (1 − tol) R_n, drop them."""
    kw = {"r_parasitic": r_parasitic_ohm, "p_sat_fraction": p_sat_fraction,
          "sc_range": _pair(sc_range_a, "sc_range_a")}
    fixed = _pair(normal_range_a, "normal_range_a")
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


def analyse_iv_dataset(ds: xr.Dataset, *, r_shunt_ohm: float, r_parasitic_ohm: float | None = None,
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
    """:func:`fit_psat_vs_temperature` per channel of an :func:`analyse_iv_dataset` result."""
    fits = []
    for c in analysis["channel"].values:
        row = analysis.sel(channel=c)
        fits.append(fit_psat_vs_temperature(row["bath_k"].values, row["p_sat_w"].values, n=n, channel=int(c)))
    return fits


# -- noise versus bias ---------------------------------------------------------------------------------

def noise_psd(cap: Capture, nperseg: int, *, reject_pulses: bool = True,
              threshold_sigma: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-channel noise PSD of a capture: ``(freqs, psd (n_channels, n_freq), records_used, records_total)``.

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


def _white_band(plan: NoiseBiasPlan, fs: float) -> tuple[float, float]:
    band = _pair(plan.white_band_hz, "white_band_hz")
    return band if band is not None else (fs / 50.0, fs / 4.0)


def run_noise_vs_bias(ctx: Any, *, bias_source: Any, readout: Any, plan: NoiseBiasPlan, fridge: Any = None,
                      analyse: bool = True) -> TESReport | None:
    """Noise PSD per channel at each bias current (module docstring); ``fridge`` adds the bath reading."""
    param = bias_parameter(bias_source)
    channels = np.arange(int(readout.n_channels()))
    fs = float(readout.sample_rate())
    band = _white_band(plan, fs)
    saved_bias = float(param.get()) if plan.restore_bias else None

    def measure(point: Point) -> dict[str, Any]:
        cap = capture_stream(readout, plan.capture_s, on_gap="flag")
        freqs, psd, used, total = noise_psd(cap, int(plan.nperseg), reject_pulses=plan.reject_pulses,
                                            threshold_sigma=plan.pulse_threshold_sigma)
        in_band = (freqs >= band[0]) & (freqs <= band[1])
        units = f"{cap.units}^2/Hz"
        out = {"psd": xr.DataArray(psd, dims=["channel", "freq_hz"], coords={"channel": channels, "freq_hz": freqs},
                                   attrs={"units": units}),
               "white_level_a2_per_hz": _channel_da(np.mean(psd[:, in_band], axis=1), channels, units),
               "records_used": _channel_da(used, channels), "records_total": total,
               "i_raw_a": _channel_da(clipped_mean(cap.data)[0], channels, cap.units),
               "saturated": _channel_da(cap.saturated, channels), "n_gaps": len(cap.gaps)}
        if fridge is not None:
            out["bath_measured_k"] = float(fridge.mxc())
        return out

    try:
        ctx.sweep(Axis("bias_current_a", [float(b) for b in plan.bias_currents_a], param, delay_s=plan.settle_s,
                       units="A"),
                  measure, name=NOISE,
                  attrs={"procedure": PROCEDURE, "plan": _jsonable_plan(plan), "white_band_hz": list(band),
                         "bias_parameter": str(param.full_name), "readout": str(readout.name)})
    finally:
        if saved_bias is not None:
            _restore(f"the bias {param.full_name} = {saved_bias:g} A", lambda: param.set(saved_bias))
    return analyse_tes_run(ctx.run.path, ctx.results_dir) if analyse else None


# -- analysis of a stored run --------------------------------------------------------------------------

def analyse_tes_run(run_path: str | Path, out_dir: str | Path | None = None, **iv_settings: Any) -> TESReport:
    """Tables and plots of the TES sweeps a run holds (``tes_iv``, ``tes_noise_vs_bias``).

    The IV is analysed again from the stored currents with the settings it was measured with
    (``tes_iv`` attrs), overridden by ``iv_settings`` (``r_shunt_ohm``, ``r_parasitic_ohm``,
    ``p_sat_fraction``, ``normal_range_a``, ``sc_range_a``, ``normal_tolerance``, and
    ``thermal_exponent`` for the P_sat(T) fit). Writes ``tes_iv_results.csv`` (R_n, R_p, P_sat per
    temperature and channel), ``tes_iv_points.csv``, ``tes_thermal_fit.csv`` (K, n, T_c, G per
    channel), ``tes_iv_curves.png``, ``tes_pr_curves.png``, ``tes_psat_vs_t.png``; and
    ``tes_noise_vs_bias.csv``, ``tes_noise_psd.csv``, ``tes_noise_psd.png``, ``tes_noise_white_vs_bias.png``
    — for the sweeps present.
    """
    from cryodaq.storage import open_run
    from cryodaq.sweeps.procedures.tes_report import write_iv_report, write_noise_report
    from cryodaq.sweeps.script import results_dir_for

    out = Path(out_dir) if out_dir is not None else results_dir_for(run_path)
    out.mkdir(parents=True, exist_ok=True)
    root = open_run(run_path).root
    present = set(root["sweeps"].group_keys()) if "sweeps" in root else set()
    report = TESReport()
    if IV in present:
        raw = read_sweep(run_path, IV)
        plan = dict(raw.attrs.get("plan") or {})
        settings = {k: plan.get(k) for k in ("r_shunt_ohm", "r_parasitic_ohm", "p_sat_fraction", "normal_range_a",
                                             "sc_range_a", "normal_tolerance") if plan.get(k) is not None}
        settings.update({k: v for k, v in iv_settings.items() if k != "thermal_exponent"})
        if "r_shunt_ohm" not in settings:
            raise ValueError(f"{run_path}: sweeps/{IV} does not record r_shunt_ohm; pass r_shunt_ohm=")
        n_fixed = iv_settings.get("thermal_exponent", plan.get("thermal_exponent"))
        analysis = analyse_iv_dataset(raw, **settings)
        fits = thermal_fits(analysis, n=n_fixed)
        report.iv, report.thermal = analysis, fits
        tables, plots = write_iv_report(analysis, fits, out)
        report.tables += tables
        report.plots += plots
    if NOISE in present:
        ds = read_sweep(run_path, NOISE)
        report.noise = ds
        tables, plots = write_noise_report(ds, out)
        report.tables += tables
        report.plots += plots
    log.info("TES analysis of %s: %d tables, %d plots in %s", run_path, len(report.tables), len(report.plots), out)
    return report
