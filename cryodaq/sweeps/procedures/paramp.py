"""Parametric-amplifier procedures on a :class:`cryodaq.instruments.ParametricAmplifier`.

Both are sweeps (interlocks, progress, Ctrl-C, resume); the meta-instrument only makes the
single-shot readings at each point. Each puts the paramp back as it found it — on success,
on a stop, an abort or an error; after a resume, as it was when the sweep first began (the
group attr ``state_before``).

**Tune-up** (:func:`run_paramp_tuneup`): the gain at a target frequency over flux current ×
pump frequency × pump power (sweep ``paramp_gain_map``; outer to inner, so the slow flux
changes least often). Per point: ``gain_db`` at the target (pump-off reference at every
point, ``ParametricAmplifier.gain_at``); with ``curve_span_hz`` a gain curve around the target
instead (``gain_curve_db`` over ``curve_offset_hz``), and from its Lorentzian fit
``peak_gain_db``, ``center_hz``, ``bandwidth_hz``. The operating point is the grid point with
the highest gain at the target, among those not above ``max_gain_db`` (gain close to the
parametric threshold is unstable) and, with a curve, not narrower than ``min_bandwidth_hz``;
it is applied (pump on) unless ``apply`` is False and recorded in the group's attr
``operating_point``. Without ``apply``, or when no point meets the rule, flux and pump go back
to what they were.

**Noise temperature versus frequency** (:func:`run_noise_temperature`), with the paramp at its
operating point (run the tune-up first): sweep ``paramp_yfactor`` over ``hot_load`` (True: the hot
load, False: the cold one) × ``pump_on`` (False, True) × ``frequency_hz`` — the load switch, slowest
and the one that heats the mixing chamber, changes once; the pump four times; the analyzer's centre
at every point. (The load axis is a bool, not the text "hot"/"cold": the sweep store cannot yet
resume a sweep with a text coordinate.) Per point, single-shot readings at the present state:
``noise_power_mw`` (analyzer, mean over ``span_hz``) with ``noise_power_u_mw`` and
``noise_power_dof`` (the type A uncertainty from the scatter of the trace's points), ``s21`` (VNA,
for the gain; ``s21_power_u``, ``s21_power_dof`` likewise from ``s21_points`` points) and
``load_temperature_k`` (the selected load's thermometer); the station's calibrations
(``cryodaq.calibrations``) are stored with it (attr ``calibrations``). Then :func:`yfactor_analysis`
— per frequency the measurement model of :mod:`cryodaq.metrology.noise` (G = |S21 on|²/|S21 off|²,
mean over both loads; the Y factors; the line loss, mismatch and linearity corrections) and its
GUM budget — gives sweep ``paramp_noise``: added noise, receiver noise with the pump off and on,
gain, SNR improvement, each with ``_u``, ``_U`` (k = 2) and ``_dof``, the budget tables (sensitivity,
contribution and share of every input), Y factors and load temperatures; the plot adds the
standard quantum limit hf/2k_B.

Tables (CSV) and plots (PNG) go to ``ctx.results_dir``; :func:`analyze_paramp_run` redoes
them from a stored run (the noise temperatures from the stored raw powers).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import constants

from cryodaq.instruments.parametric_amplifier import NoiseTemperature
from cryodaq.metrology.calibrations import Calibration
from cryodaq.metrology.gum import Budget
from cryodaq.metrology.noise import (
    MEASURANDS,
    NoiseReading,
    S21Reading,
    YFactorPoint,
    cw_temperature_k,
    mean_of_readings,
    yfactor_budget,
)
from cryodaq.storage.sweep_store import read_sweep
from cryodaq.sweeps.axes import Axis
from cryodaq.sweeps.engine import Point
from cryodaq.sweeps.procedures.common import jsonable_plan, plan_from_options, restore_quietly

__all__ = ["NOISE_QUANTITIES", "NoisePlan", "ParampReport", "ParampTunePlan", "analyze_paramp_run",
           "ParampFiguresPlan", "calibrations_of", "measure_yfactor_point", "noise_budget_table", "noise_budgets",
           "paramp_figures", "pick_operating_point", "run_noise_temperature", "run_paramp_tuneup",
           "yfactor_analysis"]

log = logging.getLogger(__name__)

GAIN_MAP, YFACTOR, NOISE = "paramp_gain_map", "paramp_yfactor", "paramp_noise"
PROCEDURE = "cryodaq.sweeps.procedures.paramp"
#: the Y-factor sweep's outer axes (hot load?, pump on?), in sweep order: it ends on the cold load with the
#: pump on, as the paramp operates
HOT_LOAD, PUMP_STATES = (True, False), (False, True)
#: what ``paramp_noise`` holds per frequency: the fields of ``NoiseTemperature`` but the frequency, and the
#: SNR improvement; each measurand of ``cryodaq.metrology.noise.MEASURANDS`` also with ``_u`` (standard
#: uncertainty), ``_U`` (expanded, k = 2) and ``_dof`` (Welch–Satterthwaite)
NOISE_QUANTITIES = (*(f.name for f in fields(NoiseTemperature) if f.name != "frequency_hz"), "snr_improvement_db")
_NOISE_UNITS = {"y_pump_off": "", "y_pump_on": "", "gain_db": "dB", "snr_improvement_db": "dB"}
#: the budget arrays of ``paramp_noise`` (dims frequency_hz, measurand, input) and of its inputs (frequency_hz, input)
BUDGET_ARRAYS = ("budget_sensitivity", "budget_contribution", "budget_share")
INPUT_ARRAYS = ("input_value", "input_u", "input_dof")


@dataclass(frozen=True)
class ParampTunePlan:
    """Tune-up grid and how to pick the operating point (Hz, dBm, A)."""

    target_hz: float
    pump_powers_dbm: Sequence[float]
    pump_frequencies_hz: Sequence[float]
    #: None: only the present flux current
    flux_currents_a: Sequence[float] | None = None
    #: > 0: a gain curve of this span around the target at every point (adds bandwidth; slower)
    curve_span_hz: float = 0.0
    curve_points: int = 41
    max_gain_db: float | None = None
    min_bandwidth_hz: float = 0.0
    apply: bool = True
    averages: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> ParampTunePlan:
        """``defaults`` overridden by the matching ``options`` (``-p pump_powers_dbm=[-21,-20]``)."""
        return plan_from_options(cls, options, defaults)


@dataclass(frozen=True)
class NoisePlan:
    """Y-factor noise temperature at each of ``frequencies_hz``: analyzer settings of each noise
    reading (``ParametricAmplifier.noise_power_mw``) and VNA averages of each S21 reading."""

    frequencies_hz: Sequence[float]
    span_hz: float = 1e6
    points: int = 201
    rbw_hz: float = 10e3
    sweep_time_s: float | None = 1.0
    averages: int | None = None
    #: VNA points of each S21 reading (over 1 kHz): their scatter is the reading's type A uncertainty
    s21_points: int = 21

    def __post_init__(self) -> None:
        if not len(self.frequencies_hz):
            raise ValueError("NoisePlan: frequencies_hz must not be empty")
        if self.s21_points < 2:
            raise ValueError(f"NoisePlan: s21_points must be >= 2 (their scatter is the uncertainty), got "
                             f"{self.s21_points}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> NoisePlan:
        return plan_from_options(cls, options, defaults)


@dataclass
class ParampReport:
    """What :func:`analyze_paramp_run` found and wrote."""

    operating_point: dict[str, float] | None
    tables: list[Path]
    plots: list[Path]
    gain_map: xr.Dataset | None = None
    noise: xr.Dataset | None = None
    #: the raw Y-factor sweep (hot_load × pump_on × frequency_hz)
    yfactor: xr.Dataset | None = None


# -- the paramp's state, and putting it back ---------------------------------------------------------

def _state_before(ctx: Any, name: str, present: dict[str, Any]) -> dict[str, Any]:
    """The state to restore after sweep ``name``: as stored when it first began (a resumed run), else ``present``."""
    if name in ctx.run.sweep_names():
        stored = ctx.dataset(name).attrs.get("state_before")
        if stored:
            return dict(stored)
    return present


def _put_back(param: Any, value: Any) -> None:
    """Set ``param`` to ``value`` unless it is there already (a latching cryogenic switch heats on every pulse)."""
    if param() != value:
        param(value)


def _tune_state(paramp: Any) -> dict[str, Any]:
    return {"flux_current_a": float(paramp.flux_current()), "pump_frequency_hz": float(paramp.pump_frequency()),
            "pump_power_dbm": float(paramp.pump_power()), "pump_on": bool(paramp.pump_on())}


def _set_tune_state(paramp: Any, state: Mapping[str, Any]) -> None:
    paramp.set_flux(float(state["flux_current_a"]))
    paramp.set_pump(frequency_hz=float(state["pump_frequency_hz"]), power_dbm=float(state["pump_power_dbm"]),
                    on=bool(state["pump_on"]))


# -- tune-up ------------------------------------------------------------------------------------------

def _curve_values(paramp: Any, plan: ParampTunePlan) -> dict[str, Any]:
    half = plan.curve_span_hz / 2
    points = plan.curve_points | 1  # odd: the middle point is the target
    curve = paramp.gain_curve(plan.target_hz - half, plan.target_hz + half, points, averages=plan.averages)
    offsets = curve.frequencies_hz - plan.target_hz
    out: dict[str, Any] = {
        "gain_db": float(curve.gain_db[points // 2]),
        "gain_curve_db": xr.DataArray(curve.gain_db, dims=["curve_offset_hz"], coords={"curve_offset_hz": offsets},
                                      attrs={"units": "dB"}),
    }
    try:
        fit = paramp.gain_and_bandwidth(curve=curve)
        out.update(peak_gain_db=fit.peak_gain_db, center_hz=fit.center_hz, bandwidth_hz=fit.bandwidth_hz)
    except Exception as exc:  # a flat curve (pump far off) has no Lorentzian: keep the curve, NaN the fit
        log.info("gain curve fit failed at this point: %s", exc)
        out.update(peak_gain_db=math.nan, center_hz=math.nan, bandwidth_hz=math.nan)
    return out


def run_paramp_tuneup(ctx: Any, *, paramp: Any, plan: ParampTunePlan, analyze: bool = True) -> ParampReport | None:
    """Measure the gain map, pick (and apply) the operating point; see the module docstring."""
    fluxes = [float(paramp.flux_current())] if plan.flux_currents_a is None else [float(x) for x in
                                                                                  plan.flux_currents_a]
    before = _state_before(ctx, GAIN_MAP, _tune_state(paramp))

    def measure(point: Point) -> dict[str, Any]:
        if plan.curve_span_hz > 0:
            return _curve_values(paramp, plan)
        return {"gain_db": paramp.gain_at(plan.target_hz, averages=plan.averages)}

    try:
        result = ctx.sweep(
            Axis("flux_current_a", fluxes, paramp.set_flux, units="A"),
            Axis("pump_frequency_hz", [float(f) for f in plan.pump_frequencies_hz],
                 lambda f: paramp.set_pump(frequency_hz=f), units="Hz"),
            Axis("pump_power_dbm", [float(p) for p in plan.pump_powers_dbm], lambda p: paramp.set_pump(power_dbm=p),
                 units="dBm"),
            measure, name=GAIN_MAP,
            attrs={"procedure": PROCEDURE, "target_hz": plan.target_hz,
                   "probe_power_dbm": float(paramp.probe_power()), "state_before": before})
        best = pick_operating_point(ctx.dataset(GAIN_MAP), max_gain_db=plan.max_gain_db,
                                    min_bandwidth_hz=plan.min_bandwidth_hz)
        result.sink.set_attrs(operating_point=best, operating_point_rule={
            "max_gain_db": plan.max_gain_db, "min_bandwidth_hz": plan.min_bandwidth_hz})
    except BaseException:  # a stop, an abort, a refused setting: flux and pump as they were
        restore_quietly(f"{paramp.name}: flux and pump {before}", lambda: _set_tune_state(paramp, before))
        raise
    if best is not None and plan.apply:
        _set_tune_state(paramp, {**best, "pump_on": True})
        log.info("paramp operating point applied: %s", best)
    else:
        if best is None:
            log.warning("paramp tune-up: no grid point meets the rule; flux and pump go back to %s", before)
        _set_tune_state(paramp, before)
    return analyze_paramp_run(ctx.run.path, ctx.results_dir) if analyze else None


def pick_operating_point(ds: xr.Dataset, *, max_gain_db: float | None = None,
                         min_bandwidth_hz: float = 0.0) -> dict[str, float] | None:
    """The measured grid point with the highest gain at the target under the rule (module docstring)."""
    gain = ds["gain_db"].where(ds["done"])
    ok = np.isfinite(gain)
    if max_gain_db is not None:
        ok &= gain <= max_gain_db
    if min_bandwidth_hz > 0 and "bandwidth_hz" in ds:
        ok &= ds["bandwidth_hz"] >= min_bandwidth_hz
    if not bool(ok.any()):
        return None
    idx = np.unravel_index(int(np.nanargmax(gain.where(ok).values)), gain.shape)
    sel = dict(zip(gain.dims, idx))
    out = {dim: float(ds[dim].values[i]) for dim, i in sel.items()}
    out["gain_db"] = float(gain.isel(sel))
    if "bandwidth_hz" in ds:
        out["bandwidth_hz"] = float(ds["bandwidth_hz"].isel(sel))
    return out


# -- noise temperature (Y factor) ----------------------------------------------------------------------

def _yfactor_readings(paramp: Any, freq_hz: float, plan: NoisePlan) -> tuple[NoiseReading, S21Reading, float]:
    """The readings at the present load and pump state: the analyzer's and the VNA's, each mean with its
    type A uncertainty and degrees of freedom (the scatter of its points), and the load's thermometer."""
    noise = paramp.noise_reading(freq_hz, span_hz=plan.span_hz, points=plan.points, rbw_hz=plan.rbw_hz,
                                 sweep_time_s=plan.sweep_time_s)
    s21 = paramp.s21_reading(freq_hz, points=plan.s21_points, averages=plan.averages)
    return noise, s21, float(paramp.load_temperature())


def _yfactor_values(paramp: Any, freq_hz: float, plan: NoisePlan) -> dict[str, Any]:
    """One point of the Y-factor sweep: :func:`_yfactor_readings` as the values it stores."""
    noise, s21, t = _yfactor_readings(paramp, freq_hz, plan)
    return {"noise_power_mw": noise.mean_mw, "noise_power_u_mw": noise.u_mw, "noise_power_dof": noise.dof,
            "s21": s21.mean, "s21_power_u": s21.u_power, "s21_power_dof": s21.dof, "load_temperature_k": t}


def measure_yfactor_point(paramp: Any, freq_hz: float, plan: NoisePlan) -> YFactorPoint:
    """The four Y-factor states at one frequency, read now — hot and cold load, pump off and on, in the
    sweep's order — for a figure measured again and again (:func:`paramp_figures`); load and pump go
    back to what they were. A grid over frequencies is the sweep of :func:`run_noise_temperature`."""
    before_load, before_pump = str(paramp.load()), bool(paramp.pump_on())
    noise: dict[tuple[bool, bool], NoiseReading] = {}
    s21: dict[tuple[bool, bool], S21Reading] = {}
    temps: dict[bool, list[float]] = {True: [], False: []}
    try:
        for hot in HOT_LOAD:
            paramp.load("hot" if hot else "cold")
            for pump in PUMP_STATES:
                paramp.pump_on(pump)
                noise[hot, pump], s21[hot, pump], t = _yfactor_readings(paramp, freq_hz, plan)
                temps[hot].append(t)
    finally:
        restore_quietly(f"{paramp.name}: the load {before_load!r}", lambda: _put_back(paramp.load, before_load))
        restore_quietly(f"{paramp.name}: the pump output {before_pump}", lambda: _put_back(paramp.pump_on, before_pump))
    return YFactorPoint.from_readings(freq_hz, noise, s21, float(np.mean(temps[True])), float(np.mean(temps[False])))


@dataclass(frozen=True)
class ParampFiguresPlan:
    """What :func:`paramp_figures` measures at ``frequency_hz`` each time: the gain curve's Lorentzian fit
    over ``bandwidth_span_hz`` (0: skip), P1dB from a VNA power sweep (``p1db_points`` = 0: skip) and the
    Y-factor noise with its budget (``noise``: the analyzer settings; None: skip)."""

    frequency_hz: float
    bandwidth_span_hz: float = 60e6
    bandwidth_points: int = 201
    p1db_start_dbm: float = -80.0
    p1db_stop_dbm: float = -30.0
    p1db_points: int = 21
    noise: NoisePlan | None = None


def paramp_figures(paramp: Any, plan: ParampFiguresPlan, calibrations: Mapping[str, Calibration] | None = None
                   ) -> Callable[[], dict[str, Any]]:
    """A figure function for :func:`~cryodaq.sweeps.procedures.repeat.run_repeat`: peak gain, centre and
    −3 dB bandwidth (with the fit's standard errors, ``_err``), P1dB referred to the paramp input, and
    T_n (pump on), the paramp's added noise, the gain and the SNR improvement at the frequency, each with
    its expanded uncertainty ``_U`` from the GUM budget (the station's ``calibrations``). A fit that
    fails, or a P1dB the sweep does not reach, is NaN: the night goes on."""
    cals = dict(calibrations or {})

    def figures() -> dict[str, Any]:
        out: dict[str, Any] = {}
        if plan.bandwidth_span_hz > 0:
            try:
                gb = paramp.gain_and_bandwidth(span_hz=plan.bandwidth_span_hz, points=plan.bandwidth_points)
                out.update(peak_gain_db=gb.peak_gain_db, peak_gain_db_err=gb.peak_gain_db_stderr,
                           bandwidth_hz=gb.bandwidth_hz, bandwidth_hz_err=gb.bandwidth_hz_stderr, center_hz=gb.center_hz)
            except Exception as exc:  # a fit that fails is a NaN point, not the end of the night
                log.warning("paramp figures: gain curve fit failed: %s", exc)
                out.update(peak_gain_db=math.nan, peak_gain_db_err=math.nan, bandwidth_hz=math.nan,
                           bandwidth_hz_err=math.nan, center_hz=math.nan)
        if plan.p1db_points > 0:
            r = paramp.p1db(plan.frequency_hz, plan.p1db_start_dbm, plan.p1db_stop_dbm, plan.p1db_points)
            out["p1db_input_dbm"] = r.p1db_input_dbm
        if plan.noise is not None:
            budgets = yfactor_budget(measure_yfactor_point(paramp, plan.frequency_hz, plan.noise), cals)
            for m in ("receiver_noise_on_k", "paramp_added_noise_k", "gain_db", "snr_improvement_db"):
                out[m], out[m + "_U"] = budgets[m].value, budgets[m].U
        return {name: xr.DataArray(float(v), attrs={"units": _FIGURE_UNITS.get(
            name.removesuffix("_err").removesuffix("_U"), "")}) for name, v in out.items()}

    return figures


_FIGURE_UNITS = {"peak_gain_db": "dB", "bandwidth_hz": "Hz", "center_hz": "Hz", "p1db_input_dbm": "dBm",
                 **MEASURANDS}


def calibrations_of(ctx_or_config: Any) -> dict[str, Calibration]:
    """The station's calibrations (``cryodaq.calibrations``) from a sweep context or a station config."""
    config = getattr(ctx_or_config, "config", ctx_or_config)
    return dict(getattr(config, "calibrations", None) or {})


def _operating_attrs(paramp: Any) -> dict[str, float]:
    return {"pump_frequency_hz": float(paramp.pump_frequency()), "pump_power_dbm": float(paramp.pump_power()),
            "flux_current_a": float(paramp.flux_current())}


def run_noise_temperature(ctx: Any, *, paramp: Any, plan: NoisePlan, analyze: bool = True) -> ParampReport | None:
    """Y-factor noise temperature at each frequency, with the paramp as it is; see the module docstring.

    Needs a paramp with an analyzer and a load switch. Pump and load go back to what they were.
    """
    if getattr(paramp, "load_switch", None) is None:
        raise ValueError(f"{paramp.name}: the Y-factor noise temperature needs a hot/cold load switch "
                         "(ParametricAmplifier(..., load_switch=...))")
    paramp.analyzer  # noqa: B018 - raises now, naming what is missing, rather than at the first point
    freqs = [float(f) for f in plan.frequencies_hz]
    before = _state_before(ctx, YFACTOR, {"pump_on": bool(paramp.pump_on()), "load": str(paramp.load())})
    operating = _operating_attrs(paramp)

    def select_hot_load(hot: bool) -> None:
        paramp.load("hot" if hot else "cold")

    def measure(point: Point) -> dict[str, Any]:
        return _yfactor_values(paramp, point["frequency_hz"], plan)

    calibrations = {name: cal.as_dict() for name, cal in calibrations_of(ctx).items()}
    try:
        ctx.sweep(Axis("hot_load", HOT_LOAD, select_hot_load),
                  Axis("pump_on", PUMP_STATES, paramp.pump_on),
                  Axis("frequency_hz", freqs, units="Hz"),
                  measure, name=YFACTOR,
                  attrs={"procedure": PROCEDURE, "plan": jsonable_plan(plan), "state_before": before,
                         "calibrations": calibrations, **operating})
    finally:
        restore_quietly(f"{paramp.name}: the load {before['load']!r}", lambda: _put_back(paramp.load, before["load"]))
        restore_quietly(f"{paramp.name}: the pump output {before['pump_on']}",
                        lambda: _put_back(paramp.pump_on, before["pump_on"]))
    analysis = yfactor_analysis(ctx.dataset(YFACTOR))

    def store(point: Point) -> dict[str, Any]:
        row = analysis.isel(frequency_hz=point.index[0])
        out: dict[str, Any] = {name: float(row[name]) for name in _scalar_names(analysis)}
        for name in (*BUDGET_ARRAYS, *INPUT_ARRAYS):
            out[name] = row[name].drop_vars("frequency_hz", errors="ignore")
        return out

    ctx.sweep(Axis("frequency_hz", freqs, units="Hz"), store, name=NOISE,
              attrs={"procedure": PROCEDURE, "source": f"sweeps/{YFACTOR}", **operating,
                     **{k: v for k, v in analysis.attrs.items() if k != "source"}})
    return analyze_paramp_run(ctx.run.path, ctx.results_dir) if analyze else None


def _scalar_names(analysis: xr.Dataset) -> list[str]:
    return [str(v) for v in analysis.data_vars if analysis[v].dims == ("frequency_hz",) and v != "complete"]


def _reading(ds: xr.Dataset, name: str, u_name: str, dof_name: str, sel: dict[str, Any]) -> tuple[float, float, float]:
    """(mean, u, dof) of one stored reading (|S21|² for the complex ``s21``); runs stored before the
    uncertainties have (mean, nan, nan)."""
    raw = ds[name].sel(sel).values
    value = float(np.abs(raw) ** 2) if np.iscomplexobj(raw) else float(raw)
    if u_name not in ds:
        return value, math.nan, math.nan
    return value, float(ds[u_name].sel(sel)), float(ds[dof_name].sel(sel))


def _point(ds: xr.Dataset, i: int) -> YFactorPoint:
    """The readings of frequency ``i`` of a ``paramp_yfactor`` sweep: powers per (load, pump); |S21|² per pump
    (the mean of the two loads' readings, ``mean_of_readings``); the thermometers' means."""
    f = float(ds["frequency_hz"].values[i])
    sel = {"frequency_hz": f}

    def power(hot: bool, pump: bool) -> tuple[float, float, float]:
        return _reading(ds, "noise_power_mw", "noise_power_u_mw", "noise_power_dof",
                        {**sel, "hot_load": hot, "pump_on": pump})

    def s21_power(pump: bool) -> tuple[float, float, float]:
        return mean_of_readings(_reading(ds, "s21", "s21_power_u", "s21_power_dof",
                                         {**sel, "hot_load": hot, "pump_on": pump}) for hot in HOT_LOAD)

    t = ds["load_temperature_k"].sel(sel).mean("pump_on", skipna=False)
    return YFactorPoint(freq_hz=f, p_hot_off=power(True, False), p_cold_off=power(False, False),
                        p_hot_on=power(True, True), p_cold_on=power(False, True), s21_sq_on=s21_power(True),
                        s21_sq_off=s21_power(False), t_hot_k=float(t.sel(hot_load=True)),
                        t_cold_k=float(t.sel(hot_load=False)))


def _stored_calibrations(ds: xr.Dataset) -> dict[str, Calibration]:
    return {name: Calibration.from_dict(d) for name, d in (ds.attrs.get("calibrations") or {}).items()}


def noise_budgets(ds: xr.Dataset, calibrations: dict[str, Calibration] | None = None) -> list[dict[str, Budget] | None]:
    """The GUM budget of every measurand at each frequency of a ``paramp_yfactor`` sweep
    (``cryodaq.metrology.noise.yfactor_budget``), with the calibrations stored with the sweep
    unless others are given; None where the frequency is not complete."""
    cals = _stored_calibrations(ds) if calibrations is None else calibrations
    complete = ds["done"].all(("hot_load", "pump_on")).values
    return [yfactor_budget(_point(ds, i), cals) if complete[i] else None for i in range(ds.sizes["frequency_hz"])]


def yfactor_analysis(ds: xr.Dataset, calibrations: dict[str, Calibration] | None = None) -> xr.Dataset:
    """Noise temperatures with their uncertainty budgets per frequency from a stored ``paramp_yfactor`` sweep.

    Per frequency, the measurement model of :mod:`cryodaq.metrology.noise` (the four powers, G =
    |S21 on|²/|S21 off|² from the mean of both loads' readings, the thermometers' mean readings,
    and the corrections the calibrations stored with the sweep state) gives every measurand of
    ``MEASURANDS`` with its budget: ``<m>_u``, ``<m>_U`` (k = 2), ``<m>_dof``; the budget tables
    ``budget_sensitivity`` / ``budget_contribution`` / ``budget_share`` (frequency_hz, measurand,
    input) and the inputs ``input_value`` / ``input_u`` / ``input_dof`` (frequency_hz, input), whose
    units, distributions, kinds and sources are in the attrs. Also the Y factors and the loads'
    temperatures (physical and Callen–Welton), and ``complete`` (all four points measured; the
    others are NaN). Without calibrations the corrections are neutral and only the readings'
    scatter enters the budgets.
    """
    freqs = ds["frequency_hz"].values
    budgets = noise_budgets(ds, calibrations)
    first = next((b for b in budgets if b is not None), None)
    measurands = list(MEASURANDS)
    inputs = [r.name for r in first[measurands[0]].rows] if first else []
    n_f, n_m, n_i = len(freqs), len(measurands), len(inputs)
    scalars: dict[str, np.ndarray] = {name: np.full(n_f, np.nan) for name in NOISE_QUANTITIES}
    for m in measurands:
        for suffix in ("_u", "_U", "_dof"):
            scalars[m + suffix] = np.full(n_f, np.nan)
    tables = {name: np.full((n_f, n_m, n_i), np.nan) for name in BUDGET_ARRAYS}
    inputs_arr = {name: np.full((n_f, n_i), np.nan) for name in INPUT_ARRAYS}
    dominant: list[str] = []
    for i, b in enumerate(budgets):
        if b is None:
            dominant.append("")
            continue
        point = _point(ds, i)
        for j, m in enumerate(measurands):
            scalars[m][i] = b[m].value
            scalars[m + "_u"][i], scalars[m + "_U"][i], scalars[m + "_dof"][i] = b[m].u, b[m].U, b[m].dof
            tables["budget_sensitivity"][i, j] = [r.sensitivity for r in b[m].rows]
            tables["budget_contribution"][i, j] = [r.contribution for r in b[m].rows]
            tables["budget_share"][i, j] = [r.share for r in b[m].rows]
        rows = b[measurands[0]].rows
        inputs_arr["input_value"][i] = [r.value for r in rows]
        inputs_arr["input_u"][i] = [r.u for r in rows]
        inputs_arr["input_dof"][i] = [r.dof for r in rows]
        t_on, t_off = b["receiver_noise_on_k"].value, b["receiver_noise_off_k"].value
        scalars["system_noise_off_k"][i] = b["system_noise_on_k"].value - t_on + t_off
        scalars["y_pump_off"][i] = point.p_hot_off[0] / point.p_cold_off[0]
        scalars["y_pump_on"][i] = point.p_hot_on[0] / point.p_cold_on[0]
        scalars["t_hot_k"][i], scalars["t_cold_k"][i] = point.t_hot_k, point.t_cold_k
        scalars["t_hot_cw_k"][i] = float(cw_temperature_k(point.t_hot_k, freqs[i]))
        scalars["t_cold_cw_k"][i] = float(cw_temperature_k(point.t_cold_k, freqs[i]))
        dominant.append(b["receiver_noise_on_k"].dominant().name)
    units = {m: MEASURANDS.get(m, _NOISE_UNITS.get(m, "K")) for m in NOISE_QUANTITIES}
    units.update({m + sfx: MEASURANDS[m] for m in measurands for sfx in ("_u", "_U")})
    units.update({m + "_dof": "" for m in measurands})
    data = {name: xr.DataArray(v, dims=["frequency_hz"], attrs={"units": units[name]}) for name, v in scalars.items()}
    for name, v in tables.items():
        data[name] = xr.DataArray(v, dims=["frequency_hz", "measurand", "input"])
    for name, v in inputs_arr.items():
        data[name] = xr.DataArray(v, dims=["frequency_hz", "input"])
    data["complete"] = xr.DataArray(ds["done"].all(("hot_load", "pump_on")).values, dims=["frequency_hz"])
    attrs: dict[str, Any] = {"source": YFACTOR, "coverage_factor": 2.0,
                             "uncertainty_method": "GUM (JCGM 100:2008): cryodaq.metrology.noise",
                             "dominant_receiver_noise_on": dominant}
    if first is not None:
        rows = first[measurands[0]].rows
        attrs["inputs"] = [{"name": r.name, "unit": r.unit, "kind": r.kind, "distribution": r.distribution,
                            "source": r.source, "description": r.description} for r in rows]
        attrs["measurand_units"] = dict(MEASURANDS)
    attrs["calibrations"] = ds.attrs.get("calibrations", {}) if calibrations is None else {
        k: c.as_dict() for k, c in calibrations.items()}
    return xr.Dataset(data, coords={"frequency_hz": freqs, "measurand": measurands, "input": inputs}, attrs=attrs)


# -- analysis of a stored run -------------------------------------------------------------------------

def _done_table(ds: xr.Dataset, names: Sequence[str], mask: np.ndarray) -> Any:
    """``names`` of ``ds`` as a flat table (one row per grid point), the rows where ``mask`` is set."""
    table = ds[list(names)].to_dataframe().reset_index()
    return table[np.asarray(mask).ravel()].drop(columns=["t", "done"], errors="ignore")


def analyze_paramp_run(run_path: str | Path, out_dir: str | Path | None = None) -> ParampReport:
    """Tables and plots of the paramp sweeps a run holds (``paramp_gain_map``, ``paramp_yfactor``).

    Writes ``paramp_gain_map.csv``, ``paramp_operating_point.csv``, ``paramp_gain_map.png``;
    ``paramp_yfactor.csv`` (the raw readings), ``paramp_noise.csv`` (the measurands with ``_u``,
    ``_U``, ``_dof``), ``paramp_noise_budget.csv`` (:func:`noise_budget_table`), ``paramp_noise.png``
    (± U) — the noise temperatures and their budgets computed again from the raw readings and the
    calibrations stored with them; from the stored ``paramp_noise`` for runs made before the raw
    readings were kept — for the sweeps present.
    """
    from cryodaq.storage import open_run
    from cryodaq.sweeps.script import results_dir_for

    out = Path(out_dir) if out_dir is not None else results_dir_for(run_path)
    out.mkdir(parents=True, exist_ok=True)
    root = open_run(run_path).root
    present = set(root["sweeps"].group_keys()) if "sweeps" in root else set()
    report = ParampReport(None, [], [])
    if GAIN_MAP in present:
        _gain_map_outputs(read_sweep(run_path, GAIN_MAP), out, report)
    noise, mask = None, None
    if YFACTOR in present:
        raw = read_sweep(run_path, YFACTOR)
        report.yfactor = raw
        report.tables.append(_yfactor_table(raw, out / "paramp_yfactor.csv"))
        noise = yfactor_analysis(raw)
        mask = noise["complete"].values
    elif NOISE in present:
        noise = read_sweep(run_path, NOISE)
        mask = noise["done"].values
    if noise is not None:
        report.noise = noise
        names = [n for n in _scalar_names(noise) if n in noise]
        _done_table(noise, names, mask).to_csv(out / "paramp_noise.csv", index=False)
        report.tables.append(out / "paramp_noise.csv")
        if "budget_share" in noise:
            noise_budget_table(noise, mask).to_csv(out / "paramp_noise_budget.csv", index=False)
            report.tables.append(out / "paramp_noise_budget.csv")
        report.plots.append(_plot_noise(noise, mask, out / "paramp_noise.png"))
    return report


def noise_budget_table(noise: xr.Dataset, mask: Any = None) -> Any:
    """The budgets of a ``paramp_noise`` analysis as one flat table (a pandas DataFrame): one row per
    frequency × measurand × input — the input's value, standard uncertainty, unit, kind, distribution,
    degrees of freedom and source, its sensitivity coefficient, contribution and share."""
    import pandas as pd

    info = {d["name"]: d for d in noise.attrs.get("inputs", [])}
    freqs = noise["frequency_hz"].values
    keep = np.ones(freqs.size, bool) if mask is None else np.asarray(mask, bool)
    rows = []
    for i, f in enumerate(freqs):
        if not keep[i]:
            continue
        for m in noise["measurand"].values:
            for j, name in enumerate(noise["input"].values):
                meta = info.get(str(name), {})
                rows.append({
                    "frequency_hz": float(f), "measurand": str(m), "measurand_value": float(noise[str(m)][i]),
                    "measurand_unit": MEASURANDS.get(str(m), ""), "input": str(name),
                    "value": float(noise["input_value"][i, j]), "standard_uncertainty": float(noise["input_u"][i, j]),
                    "unit": meta.get("unit", ""), "kind": meta.get("kind", ""),
                    "distribution": meta.get("distribution", ""), "dof": float(noise["input_dof"][i, j]),
                    "source": meta.get("source", ""),
                    "sensitivity": float(noise["budget_sensitivity"].sel(measurand=m)[i, j]),
                    "contribution": float(noise["budget_contribution"].sel(measurand=m)[i, j]),
                    "share": float(noise["budget_share"].sel(measurand=m)[i, j])})
    return pd.DataFrame(rows)


def _gain_map_outputs(ds: xr.Dataset, out: Path, report: ParampReport) -> None:
    """The gain map's table, operating point and plot, into ``report``."""
    report.gain_map = ds
    best = ds.attrs.get("operating_point") or pick_operating_point(ds)
    report.operating_point = best
    scalars = [v for v in ds.data_vars if ds[v].dims == ds["done"].dims and v not in ("done", "t")]
    table = _done_table(ds[scalars].where(ds["done"]), scalars, ds["done"].values)
    table.to_csv(out / "paramp_gain_map.csv", index=False)
    report.tables.append(out / "paramp_gain_map.csv")
    if best is not None:
        import pandas as pd

        pd.DataFrame([best]).to_csv(out / "paramp_operating_point.csv", index=False)
        report.tables.append(out / "paramp_operating_point.csv")
    report.plots.append(_plot_gain_map(ds, best, out / "paramp_gain_map.png"))


def _yfactor_table(raw: xr.Dataset, path: Path) -> Path:
    """The raw Y-factor readings, one row per measured point, with the powers also in dBm and |S21| in dB."""
    table = raw[["noise_power_mw", "load_temperature_k"]].assign(
        noise_power_dbm=10 * np.log10(raw["noise_power_mw"]),
        s21_db=20 * np.log10(np.abs(raw["s21"])))
    rows = _done_table(table, ["noise_power_mw", "noise_power_dbm", "s21_db", "load_temperature_k"], raw["done"].values)
    rows.insert(1, "load", np.where(rows["hot_load"], "hot", "cold"))
    rows.to_csv(path, index=False)
    return path


def _plot_gain_map(ds: xr.Dataset, best: dict[str, float] | None, path: Path) -> Path:
    from matplotlib.figure import Figure

    gain = ds["gain_db"].where(ds["done"])
    n_flux = ds.sizes["flux_current_a"]
    fig = Figure(figsize=(4.2 * n_flux + 1.0, 4.0))
    fig.subplots_adjust(left=0.1, right=0.9, bottom=0.14, top=0.86, wspace=0.35)
    axes = fig.subplots(1, n_flux, squeeze=False)[0]
    finite = gain.values[np.isfinite(gain.values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    mesh = None
    fp = ds["pump_frequency_hz"].values / 1e9
    pp = ds["pump_power_dbm"].values
    for i, ax in enumerate(axes):
        flux = float(ds["flux_current_a"][i])
        mesh = ax.pcolormesh(pp, fp, gain.isel(flux_current_a=i).values, shading="nearest", vmin=vmin, vmax=vmax,
                             cmap="viridis")
        if best is not None and math.isclose(best["flux_current_a"], flux, rel_tol=0, abs_tol=1e-15):
            ax.plot(best["pump_power_dbm"], best["pump_frequency_hz"] / 1e9, "r*", ms=14, mec="w")
        ax.set_title(f"flux {flux * 1e3:.5g} mA", fontsize=9)
        ax.set_xlabel("pump power (dBm)")
        ax.set_ylabel("pump frequency (GHz)")
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label=f"gain at {float(ds.attrs.get('target_hz', math.nan)) / 1e9:.6g} GHz (dB)")
    title = "paramp gain map"
    if best is not None:
        title += (f" — operating point: {best['gain_db']:.1f} dB at {best['pump_power_dbm']:g} dBm, "
                  f"{best['pump_frequency_hz'] / 1e9:.6g} GHz, {best['flux_current_a'] * 1e3:.5g} mA")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    return path


def _plot_noise(ds: xr.Dataset, done: np.ndarray, path: Path) -> Path:
    from matplotlib.figure import Figure

    f = ds["frequency_hz"].values
    done = np.asarray(done, dtype=bool)
    fig = Figure(figsize=(7, 5.5))
    fig.subplots_adjust(left=0.12, right=0.96, bottom=0.1, top=0.93, hspace=0.3)
    ax, ax_g = fig.subplots(2, 1, sharex=True)
    for name, label in (("paramp_added_noise_k", "paramp added noise"),
                        ("receiver_noise_on_k", "receiver, pump on"),
                        ("receiver_noise_off_k", "receiver, pump off (HEMT chain)")):
        err = ds[name + "_U"].values[done] if name + "_U" in ds else None
        ax.errorbar(f[done] / 1e9, ds[name].values[done], yerr=err, fmt="o-", ms=4, capsize=2,
                    label=label + (" ± U (k = 2)" if err is not None else ""))
    ax.plot(f / 1e9, constants.h * f / (2 * constants.k), "k--", lw=1, label="quantum limit hf/2k")
    ax.set_yscale("log")
    ax.set_ylabel("noise temperature (K)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    gain_err = ds["gain_db_U"].values[done] if "gain_db_U" in ds else None
    ax_g.errorbar(f[done] / 1e9, ds["gain_db"].values[done], yerr=gain_err, fmt="o-", ms=4, capsize=2, color="C3")
    ax_g.set_ylabel("gain (dB)")
    ax_g.set_xlabel("frequency (GHz)")
    ax_g.grid(alpha=0.3)
    fig.suptitle("paramp noise temperature (Y factor)", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
