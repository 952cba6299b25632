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
channel, P_sat(T_bath) = K (T_c^n − T_bath^n) is fitted
(:func:`~cryodaq.sweeps.procedures.tes_analysis.fit_psat_vs_temperature`) for
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

The computations on measured data are in :mod:`~cryodaq.sweeps.procedures.tes_analysis`. Tables
(CSV) and PNG plots (:mod:`~cryodaq.sweeps.procedures.tes_report`) go to ``ctx.results_dir``;
:func:`~cryodaq.sweeps.procedures.tes_report.analyze_tes_run` redoes them from a stored run (with
other analysis settings if wanted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr
from qcodes.parameters import ParameterBase

from cryodaq.readout.capture import capture_stream
from cryodaq.sweeps.axes import Axis
from cryodaq.sweeps.engine import Point
from cryodaq.sweeps.procedures.common import jsonable_plan, plan_from_options, restore_quietly
from cryodaq.sweeps.procedures.tes_analysis import (
    IV,
    IV_ANALYSIS,
    NOISE,
    analyze_iv_dataset,
    as_range,
    capture_noise_psd,
    clipped_mean,
    thermal_fits,
)
from cryodaq.sweeps.procedures.tes_report import TESReport, analyze_tes_run

__all__ = ["IVPlan", "NoiseBiasPlan", "bias_parameter", "run_noise_vs_bias", "run_tes_iv"]

log = logging.getLogger(__name__)

PROCEDURE = "cryodaq.sweeps.procedures.tes"



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
        as_range(self.normal_range_a, "IVPlan.normal_range_a")
        as_range(self.sc_range_a, "IVPlan.sc_range_a")

    def biases(self) -> np.ndarray:
        """The bias currents (A) in sweep order."""
        if self.bias_currents_a is not None:
            return np.asarray([float(b) for b in self.bias_currents_a])
        return np.linspace(float(self.bias_max_a), float(self.bias_min_a), int(self.bias_points))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> IVPlan:
        """``defaults`` overridden by the matching ``options`` (``-p bath_temperatures_k=[0.04,0.08]``)."""
        return plan_from_options(cls, options, defaults)


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
        as_range(self.white_band_hz, "NoiseBiasPlan.white_band_hz")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> NoiseBiasPlan:
        return plan_from_options(cls, options, defaults)


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


def _channel_da(values: Any, channels: np.ndarray, units: str = "") -> xr.DataArray:
    return xr.DataArray(np.asarray(values), dims=["channel"], coords={"channel": channels}, attrs={"units": units})


# -- IV versus bath temperature ------------------------------------------------------------------------

def run_tes_iv(ctx: Any, *, fridge: Any, bias_source: Any, readout: Any, plan: IVPlan, squid: Any = None,
               analyze: bool = True) -> TESReport | None:
    """Measure IV curves at every bath temperature, analyze them and fit P_sat(T) (module docstring).

    ``fridge``: a :class:`cryodaq.instruments.Fridge`; ``bias_source``: a Keithley 2450 (or the bias
    parameter); ``readout``: a :class:`cryodaq.instruments.TESReadoutBoard`; ``squid``: a
    :class:`cryodaq.instruments.SQUIDController`, needed only with ``plan.squid_feedback_gain_v_per_phi0``.
    With ``analyze``, writes tables and plots to ``ctx.results_dir`` and returns what it wrote.
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
                  attrs={"procedure": PROCEDURE, "plan": jsonable_plan(plan), "r_shunt_ohm": plan.r_shunt_ohm,
                         "bias_parameter": str(param.full_name), "readout": str(readout.name),
                         "squid_feedback_gain_v_per_phi0": plan.squid_feedback_gain_v_per_phi0})
    finally:
        if saved_bias is not None:
            restore_quietly(f"the bias {param.full_name} = {saved_bias:g} A", lambda: param.set(saved_bias))
        if saved_gains is not None:
            for ch, gain in zip(squid.channels, saved_gains):
                restore_quietly(f"the FLL gain of {ch.full_name}", lambda ch=ch, gain=gain: ch.feedback_gain(gain))

    analysis = analyze_iv_dataset(ctx.dataset(IV), **_iv_settings(plan))
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
    return analyze_tes_run(ctx.run.path, ctx.results_dir) if analyze else None


def _iv_settings(plan: IVPlan) -> dict[str, Any]:
    return {"r_shunt_ohm": float(plan.r_shunt_ohm), "r_parasitic_ohm": plan.r_parasitic_ohm,
            "p_sat_fraction": float(plan.p_sat_fraction),
            "normal_range_a": None if plan.normal_range_a is None else list(as_range(plan.normal_range_a, "")),
            "sc_range_a": None if plan.sc_range_a is None else list(as_range(plan.sc_range_a, "")),
            "normal_tolerance": float(plan.normal_tolerance)}



# -- noise versus bias ---------------------------------------------------------------------------------


def _white_band(plan: NoiseBiasPlan, fs: float) -> tuple[float, float]:
    band = as_range(plan.white_band_hz, "white_band_hz")
    return band if band is not None else (fs / 50.0, fs / 4.0)


def run_noise_vs_bias(ctx: Any, *, bias_source: Any, readout: Any, plan: NoiseBiasPlan, fridge: Any = None,
                      analyze: bool = True) -> TESReport | None:
    """Noise PSD per channel at each bias current (module docstring); ``fridge`` adds the bath reading."""
    param = bias_parameter(bias_source)
    channels = np.arange(int(readout.n_channels()))
    fs = float(readout.sample_rate())
    band = _white_band(plan, fs)
    saved_bias = float(param.get()) if plan.restore_bias else None

    def measure(point: Point) -> dict[str, Any]:
        cap = capture_stream(readout, plan.capture_s, on_gap="flag")
        freqs, psd, used, total = capture_noise_psd(cap, int(plan.nperseg), reject_pulses=plan.reject_pulses,
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
                  attrs={"procedure": PROCEDURE, "plan": jsonable_plan(plan), "white_band_hz": list(band),
                         "bias_parameter": str(param.full_name), "readout": str(readout.name)})
    finally:
        if saved_bias is not None:
            restore_quietly(f"the bias {param.full_name} = {saved_bias:g} A", lambda: param.set(saved_bias))
    return analyze_tes_run(ctx.run.path, ctx.results_dir) if analyze else None
