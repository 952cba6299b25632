"""Travelling-wave paramp (TWPA) procedures on a :class:`cryodaq.instruments.ParametricAmplifier`
(``wave_mixing=4``, no flux bias): every grid is a sweep (interlocks, progress, Ctrl-C, resume).

The gain across a band (:class:`Band`) is |S21|² with the pump on over a pump-off reference taken
once, at the start (sweep ``twpa_reference``; read back on resume): a TWPA is broadband, so one
VNA trace gives the whole band, and the pump stays on between readings.

* :func:`run_twpa_gain_map` — sweep ``twpa_gain_map`` over pump frequency × pump power: the gain
  across the band per point (``gain_db``, dims frequency_hz), its mean, minimum, maximum and ripple
  (peak-to-peak about a quadratic trend).
* :func:`run_twpa_compression` — sweep ``twpa_compression`` over the band's frequencies: the VNA
  power sweep of ``ParametricAmplifier.p1db`` at each, P1dB referred to the TWPA input.
* :func:`run_twpa_noise_rise` — sweep ``twpa_noise_rise`` over pump (off, on) × frequency: the
  analyzer's noise and the VNA's S21 readings; :func:`noise_rise_analysis` gives the noise rise
  N_on/N_off, the gain and the SNR improvement G/(N_on/N_off) per frequency with GUM budgets
  (the readings' scatter, analyzer and VNA linearity from the station's calibrations).
* :func:`run_twpa_hold` — the overnight pump tune-up: a pump-power scan (sweep ``twpa_tune``)
  finds the power whose band-mean gain is ``target_gain_db``; then sweep ``twpa_hold`` checks the
  band every ``check_interval_s`` and, when the mean is more than ``tolerance_db`` off, re-tunes
  the pump power by secant steps (at most ``max_steps``, each at most ``max_step_db``, within
  ``pump_power_range_dbm`` — and the station's safety limit on the pump, enforced by its
  validator). Each check stores the gain before and after, the pump power, whether and how often
  it re-tuned. Resumed, the last stored pump power is applied first and the schedule kept.

:func:`analyze_twpa_run` writes the tables and plots of whichever of these a run holds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from cryodaq.metrology.calibrations import Calibration
from cryodaq.metrology.gum import Budget, Input, evaluate
from cryodaq.storage.sweep_store import read_sweep
from cryodaq.sweeps.axes import Axis
from cryodaq.sweeps.engine import Point
from cryodaq.sweeps.procedures.common import (
    jsonable_plan,
    plan_from_options,
    restore_quietly,
    scheduled_start,
    wait_until,
)

__all__ = ["Band", "TWPACompressionPlan", "TWPAHoldPlan", "TWPAMapPlan", "TWPANoisePlan", "TWPAReport",
           "analyze_twpa_run", "band_gain_db", "noise_rise_analysis", "run_twpa_compression", "run_twpa_gain_map",
           "run_twpa_hold", "run_twpa_noise_rise", "twpa_reference"]

log = logging.getLogger(__name__)

PROCEDURE = "cryodaq.sweeps.procedures.twpa"
REFERENCE, GAIN_MAP, COMPRESSION, NOISE_RISE, TUNE, HOLD = (
    "twpa_reference", "twpa_gain_map", "twpa_compression", "twpa_noise_rise", "twpa_tune", "twpa_hold")
SWEEPS = (REFERENCE, GAIN_MAP, COMPRESSION, NOISE_RISE, TUNE, HOLD)


@dataclass(frozen=True)
class Band:
    """The band the gain is read over: ``points`` VNA points from ``start_hz`` to ``stop_hz``."""

    start_hz: float
    stop_hz: float
    points: int = 21

    def __post_init__(self) -> None:
        if not self.stop_hz > self.start_hz or self.points < 2:
            raise ValueError(f"Band: need start_hz < stop_hz and points >= 2, got {self}")

    def frequencies(self) -> np.ndarray:
        return np.linspace(self.start_hz, self.stop_hz, self.points)


def _band(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> Band:
    b = {**defaults, **{k: v for k, v in options.items() if k in ("band_start_hz", "band_stop_hz", "band_points")}}
    return Band(float(b["band_start_hz"]), float(b["band_stop_hz"]), int(b.get("band_points", 21)))


# -- the pump-off reference and the band gain ------------------------------------------------------------

def twpa_reference(ctx: Any, twpa: Any, band: Band) -> np.ndarray:
    """S21 over the band with the pump off, measured once (sweep ``twpa_reference``; read back on resume)."""
    def measure(point: Point) -> dict[str, Any]:
        was_on = bool(twpa.pump_on())
        try:
            twpa.pump_on(False)
            freqs, s21 = twpa.s21_trace(band.start_hz, band.stop_hz, band.points)
        finally:
            restore_quietly(f"{twpa.name}: the pump output {was_on}", lambda: twpa.pump_on(was_on))
        return {"s21": xr.DataArray(s21, dims=["frequency_hz"], coords={"frequency_hz": freqs})}

    ctx.sweep(Axis("reference", [0]), measure, name=REFERENCE,
              attrs={"procedure": PROCEDURE, "band": jsonable_plan(band), "purpose": "pump-off S21 of the band"})
    ds = ctx.dataset(REFERENCE)
    stored = ds["frequency_hz"].values
    if stored.size != band.points or not np.allclose(stored, band.frequencies(), rtol=1e-12, atol=1e-3):
        raise ValueError(f"{ctx.run.path}: the stored twpa_reference covers {stored[0]:.6g}-{stored[-1]:.6g} Hz in "
                         f"{stored.size} points, not the band {band}; use the same band or a new run")
    return ds["s21"].isel(reference=0).values


def band_gain_db(twpa: Any, band: Band, reference: np.ndarray) -> np.ndarray:
    """Gain across the band now (pump as it is): 10 log10(|S21|² / |S21_ref|²)."""
    _, s21 = twpa.s21_trace(band.start_hz, band.stop_hz, band.points)
    return 10 * np.log10(np.abs(s21) ** 2 / np.maximum(np.abs(reference) ** 2, 1e-300))


def _band_figures(freqs: np.ndarray, gain: np.ndarray) -> dict[str, float]:
    x = (freqs - freqs.mean()) / max(np.ptp(freqs), 1.0)
    trend = np.polyval(np.polyfit(x, gain, 2), x) if gain.size >= 4 else np.full(gain.shape, gain.mean())
    return {"mean_gain_db": float(np.mean(gain)), "min_gain_db": float(np.min(gain)), "max_gain_db": float(np.max(gain)),
            "ripple_db": float(np.ptp(gain - trend))}


def _pump_state(twpa: Any) -> dict[str, Any]:
    return {"pump_frequency_hz": float(twpa.pump_frequency()), "pump_power_dbm": float(twpa.pump_power()),
            "pump_on": bool(twpa.pump_on())}


def _set_pump_state(twpa: Any, state: Mapping[str, Any]) -> None:
    twpa.set_pump(frequency_hz=float(state["pump_frequency_hz"]), power_dbm=float(state["pump_power_dbm"]),
                  on=bool(state["pump_on"]))


def _state_before(ctx: Any, name: str, present: dict[str, Any]) -> dict[str, Any]:
    if name in ctx.run.sweep_names():
        stored = ctx.dataset(name).attrs.get("state_before")
        if stored:
            return dict(stored)
    return present


# -- gain map -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TWPAMapPlan:
    """The gain across ``band`` over pump frequency × pump power (Hz, dBm at the source)."""

    band: Band
    pump_frequencies_hz: Sequence[float]
    pump_powers_dbm: Sequence[float]


def run_twpa_gain_map(ctx: Any, *, twpa: Any, plan: TWPAMapPlan) -> xr.Dataset:
    """Sweep ``twpa_gain_map`` (module docstring); the pump goes back as it was (also on a stop or an error)."""
    reference = twpa_reference(ctx, twpa, plan.band)
    freqs = plan.band.frequencies()
    before = _state_before(ctx, GAIN_MAP, _pump_state(twpa))

    def measure(point: Point) -> dict[str, Any]:
        twpa.pump_on(True)
        gain = band_gain_db(twpa, plan.band, reference)
        return {"gain_db": xr.DataArray(gain, dims=["frequency_hz"], coords={"frequency_hz": freqs},
                                        attrs={"units": "dB"}), **_band_figures(freqs, gain)}

    try:
        ctx.sweep(Axis("pump_frequency_hz", [float(f) for f in plan.pump_frequencies_hz],
                       lambda f: twpa.set_pump(frequency_hz=f), units="Hz"),
                  Axis("pump_power_dbm", [float(p) for p in plan.pump_powers_dbm],
                       lambda p: twpa.set_pump(power_dbm=p), units="dBm"),
                  measure, name=GAIN_MAP, attrs={"procedure": PROCEDURE, "band": jsonable_plan(plan.band),
                                                 "state_before": before})
    finally:
        restore_quietly(f"{twpa.name}: the pump {before}", lambda: _set_pump_state(twpa, before))
    return ctx.dataset(GAIN_MAP)


# -- compression ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TWPACompressionPlan:
    """P1dB at each of ``frequencies_hz``: VNA source powers from ``power_start_dbm`` to ``power_stop_dbm``."""

    frequencies_hz: Sequence[float]
    power_start_dbm: float = -80.0
    power_stop_dbm: float = -25.0
    points: int = 23


def run_twpa_compression(ctx: Any, *, twpa: Any, plan: TWPACompressionPlan) -> xr.Dataset:
    """Sweep ``twpa_compression`` over frequency: ``ParametricAmplifier.p1db`` at each (pump as it is)."""
    def measure(point: Point) -> dict[str, Any]:
        r = twpa.p1db(point["frequency_hz"], plan.power_start_dbm, plan.power_stop_dbm, plan.points)
        return {"p1db_input_dbm": r.p1db_input_dbm, "p1db_output_dbm": r.p1db_output_dbm,
                "small_signal_gain_db": r.small_signal_gain_db,
                "gain_vs_power_db": xr.DataArray(r.gain_db, dims=["input_power_dbm"],
                                                 coords={"input_power_dbm": r.input_powers_dbm}, attrs={"units": "dB"})}

    ctx.sweep(Axis("frequency_hz", [float(f) for f in plan.frequencies_hz], units="Hz"), measure, name=COMPRESSION,
              attrs={"procedure": PROCEDURE, "plan": jsonable_plan(plan), **_pump_state(twpa)})
    return ctx.dataset(COMPRESSION)


# -- noise rise -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TWPANoisePlan:
    """Noise rise at each of ``frequencies_hz`` (keep them away from the pump tone at the band's centre)."""

    frequencies_hz: Sequence[float]
    span_hz: float = 1e6
    points: int = 201
    rbw_hz: float = 10e3
    sweep_time_s: float | None = 1.0
    s21_points: int = 21


def run_twpa_noise_rise(ctx: Any, *, twpa: Any, plan: TWPANoisePlan) -> xr.Dataset:
    """Sweep ``twpa_noise_rise`` over pump (off, on) × frequency; returns :func:`noise_rise_analysis` of it."""
    before = _state_before(ctx, NOISE_RISE, {"pump_on": bool(twpa.pump_on())})

    def measure(point: Point) -> dict[str, Any]:
        f = point["frequency_hz"]
        n = twpa.noise_reading(f, span_hz=plan.span_hz, points=plan.points, rbw_hz=plan.rbw_hz,
                               sweep_time_s=plan.sweep_time_s)
        s = twpa.s21_reading(f, points=plan.s21_points)
        return {"noise_power_mw": n.mean_mw, "noise_power_u_mw": n.u_mw, "noise_power_dof": n.dof,
                "s21": s.mean, "s21_power_u": s.u_power, "s21_power_dof": s.dof}

    calibrations = {n: c.as_dict() for n, c in (getattr(getattr(ctx, "config", None), "calibrations", None)
                                                 or {}).items()}
    try:
        ctx.sweep(Axis("pump_on", [False, True], twpa.pump_on), Axis("frequency_hz", [float(f) for f in
                                                                                     plan.frequencies_hz], units="Hz"),
                  measure, name=NOISE_RISE, attrs={"procedure": PROCEDURE, "plan": jsonable_plan(plan),
                                                   "state_before": before, "calibrations": calibrations,
                                                   **_pump_state(twpa)})
    finally:
        restore_quietly(f"{twpa.name}: the pump output", lambda: twpa.pump_on(bool(before["pump_on"])))
    return noise_rise_analysis(ctx.dataset(NOISE_RISE))


def _noise_rise_model(*, n_on: Any, n_off: Any, s_on: Any, s_off: Any, analyzer_linearity: Any,
                      vna_linearity: Any) -> dict[str, Any]:
    """Noise rise, gain and SNR improvement in dB; a ratio read as R_dB·(1 + s) is R_dB/(1 + s)."""
    rise = 10 * np.log10(n_on / n_off) / (1 + analyzer_linearity)
    gain = 10 * np.log10(s_on / s_off) / (1 + vna_linearity)
    return {"noise_rise_db": rise, "gain_db": gain, "snr_improvement_db": gain - rise}


def noise_rise_budgets(ds: xr.Dataset, i: int, calibrations: Mapping[str, Calibration]) -> dict[str, Budget]:
    """The budgets of noise rise, gain and SNR improvement at frequency ``i`` of a ``twpa_noise_rise`` sweep."""
    def reading(name: str, u_name: str, dof_name: str, pump: bool, desc: str) -> Input:
        sel = {"pump_on": pump, "frequency_hz": float(ds["frequency_hz"].values[i])}
        raw = ds[name].sel(sel).values
        value = float(np.abs(raw) ** 2) if np.iscomplexobj(raw) else float(raw)
        key = ("n" if name.startswith("noise") else "s") + ("_on" if pump else "_off")
        return Input(key, value, float(ds[u_name].sel(sel)), dof=float(ds[dof_name].sel(sel)), kind="A",
                     distribution="student-t", source="scatter of the reading's points", description=desc)

    def stated(role: str) -> Input:
        cal = calibrations.get(role)
        if cal is None:
            return Input(role, 0.0, 0.0, unit="dB/dB", source="not stated in the station's calibrations")
        return cal.as_input(role, 0.0)

    inputs = [reading("noise_power_mw", "noise_power_u_mw", "noise_power_dof", True, "noise power, pump on"),
              reading("noise_power_mw", "noise_power_u_mw", "noise_power_dof", False, "noise power, pump off"),
              reading("s21", "s21_power_u", "s21_power_dof", True, "|S21|², pump on"),
              reading("s21", "s21_power_u", "s21_power_dof", False, "|S21|², pump off"),
              stated("analyzer_linearity"), stated("vna_linearity")]
    return evaluate(_noise_rise_model, inputs, units={"noise_rise_db": "dB", "gain_db": "dB",
                                                      "snr_improvement_db": "dB"})


def noise_rise_analysis(ds: xr.Dataset) -> xr.Dataset:
    """Per frequency: ``noise_rise_db``, ``gain_db``, ``snr_improvement_db``, each with ``_u``, ``_U`` (k = 2) and
    ``_dof`` (GUM budgets with the calibrations stored with the sweep); NaN where not both pump states are done."""
    cals = {n: Calibration.from_dict(d) for n, d in (ds.attrs.get("calibrations") or {}).items()}
    freqs = ds["frequency_hz"].values
    names = ("noise_rise_db", "gain_db", "snr_improvement_db")
    out = {f"{m}{sfx}": np.full(freqs.size, np.nan) for m in names for sfx in ("", "_u", "_U", "_dof")}
    complete = ds["done"].all("pump_on").values
    for i in range(freqs.size):
        if not complete[i]:
            continue
        budgets = noise_rise_budgets(ds, i, cals)
        for m in names:
            b = budgets[m]
            out[m][i], out[m + "_u"][i], out[m + "_U"][i], out[m + "_dof"][i] = b.value, b.u, b.U, b.dof
    data = {k: xr.DataArray(v, dims=["frequency_hz"], attrs={"units": "" if k.endswith("_dof") else "dB"})
            for k, v in out.items()}
    data["complete"] = xr.DataArray(complete, dims=["frequency_hz"])
    return xr.Dataset(data, coords={"frequency_hz": freqs}, attrs={"source": NOISE_RISE, "coverage_factor": 2.0})


# -- the overnight tune-up --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TWPAHoldPlan:
    """Find, then hold, ``target_gain_db`` as the band-mean gain (module docstring); powers in dBm at the source."""

    band: Band
    target_gain_db: float
    pump_frequency_hz: float
    #: the finding scan: pump powers, ascending
    pump_powers_dbm: Sequence[float]
    tolerance_db: float = 0.15
    check_interval_s: float = 300.0
    checks: int = 96
    max_steps: int = 4
    max_step_db: float = 0.5
    pump_power_range_dbm: tuple[float, float] = (-40.0, 0.0)
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if self.checks < 1 or self.max_steps < 1 or not self.tolerance_db > 0 or not self.max_step_db > 0:
            raise ValueError("TWPAHoldPlan: need checks >= 1, max_steps >= 1, tolerance_db > 0, max_step_db > 0")
        if len(self.pump_powers_dbm) < 2 or list(self.pump_powers_dbm) != sorted(self.pump_powers_dbm):
            raise ValueError("TWPAHoldPlan: pump_powers_dbm must hold at least two powers, ascending")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> TWPAHoldPlan:
        return plan_from_options(cls, {**options, "band": _band(options, defaults)},
                                 {k: v for k, v in defaults.items() if not k.startswith("band_")})


@dataclass
class HoldResult:
    """What :func:`run_twpa_hold` found and did."""

    found_pump_power_dbm: float
    slope_db_per_db: float
    hold: xr.Dataset


def _find_power(ds: xr.Dataset, target: float) -> tuple[float, float]:
    """The pump power where the band-mean gain first reaches ``target`` (linear interpolation) and the local slope."""
    p = ds["pump_power_dbm"].values
    g = ds["mean_gain_db"].where(ds["done"]).values
    ok = np.isfinite(g)
    p, g = p[ok], g[ok]
    above = np.flatnonzero(g >= target)
    if p.size < 2 or above.size == 0 or above[0] == 0:
        raise ValueError(f"TWPA tune-up: the band-mean gain {np.round(g, 2).tolist()} dB over pump powers "
                         f"{p.tolist()} dBm does not cross the target {target} dB from below; widen the scan")
    i = int(above[0])
    slope = (g[i] - g[i - 1]) / (p[i] - p[i - 1])
    return float(p[i - 1] + (target - g[i - 1]) / slope), float(slope)


def run_twpa_hold(ctx: Any, *, twpa: Any, plan: TWPAHoldPlan, clock: Callable[[], float] | None = None,
                  sleep: Callable[[float], Any] | None = None) -> HoldResult:
    """Find the pump power for ``plan.target_gain_db`` and hold it overnight (module docstring).

    ``clock``/``sleep``: the time base of the schedule, by default the context's (``ctx.clock``,
    ``ctx.sleep``: wall time, or a test's simulated night). The pump is left at the last held power, on.
    """
    clock = clock or getattr(ctx, "clock", time.time)
    sleep = sleep or getattr(ctx, "sleep", time.sleep)
    reference = twpa_reference(ctx, twpa, plan.band)
    freqs = plan.band.frequencies()
    lo, hi = plan.pump_power_range_dbm

    def tune_point(point: Point) -> dict[str, Any]:
        twpa.pump_on(True)
        gain = band_gain_db(twpa, plan.band, reference)
        return {"gain_db": xr.DataArray(gain, dims=["frequency_hz"], coords={"frequency_hz": freqs},
                                        attrs={"units": "dB"}), **_band_figures(freqs, gain)}

    twpa.set_pump(frequency_hz=plan.pump_frequency_hz)
    result = ctx.sweep(Axis("pump_power_dbm", [float(p) for p in plan.pump_powers_dbm],
                            lambda p: twpa.set_pump(power_dbm=p), units="dBm"),
                       tune_point, name=TUNE, attrs={"procedure": PROCEDURE, "plan": jsonable_plan(plan)})
    found, slope0 = _find_power(ctx.dataset(TUNE), plan.target_gain_db)
    found = float(np.clip(found, lo, hi))
    result.sink.set_attrs(found_pump_power_dbm=found, slope_db_per_db=slope0)
    log.info("TWPA tune-up: %.3f dBm for %.2f dB band-mean gain (slope %.2f dB/dB)", found, plan.target_gain_db,
             slope0)

    # resumed: continue from the last held power
    power = found
    if HOLD in ctx.run.sweep_names():
        held = ctx.dataset(HOLD)
        done = held["done"].values
        if done.any():
            power = float(held["pump_power_dbm"].values[np.flatnonzero(done)[-1]])
    twpa.set_pump(frequency_hz=plan.pump_frequency_hz, power_dbm=power, on=True)
    state = {"power": power, "slope": slope0}
    start = scheduled_start(ctx, HOLD, clock())
    control = getattr(ctx, "control", None)

    def wait_for_check(i: int) -> None:
        wait_until(start + i * plan.check_interval_s, clock=clock, sleep=sleep, control=control, poll_s=plan.poll_s)

    def mean_gain() -> tuple[float, np.ndarray]:
        g = band_gain_db(twpa, plan.band, reference)
        return float(np.mean(g)), g

    def check(point: Point) -> dict[str, Any]:
        t = clock()
        if not twpa.pump_on():  # an interlock's safe state may have switched it off: the point is redone with it on
            twpa.set_pump(power_dbm=state["power"], on=True)
        before, _ = mean_gain()
        g, p, steps = before, state["power"], 0
        while abs(g - plan.target_gain_db) > plan.tolerance_db and steps < plan.max_steps:
            step = float(np.clip((plan.target_gain_db - g) / state["slope"], -plan.max_step_db, plan.max_step_db))
            p_new = float(np.clip(p + step, lo, hi))
            if p_new == p:
                log.warning("TWPA hold: the pump power is at its range %s dBm; the gain is %.2f dB", (lo, hi), g)
                break
            twpa.set_pump(power_dbm=p_new)
            g_new, _ = mean_gain()
            secant = (g_new - g) / (p_new - p)
            if abs(p_new - p) > 0.005 and 0.25 * state["slope"] < secant < 4 * state["slope"]:
                state["slope"] = secant
            p, g, steps = p_new, g_new, steps + 1
        state["power"] = p
        if steps:
            log.info("TWPA hold: re-tuned in %d step(s) to %.3f dBm: band-mean gain %.2f -> %.2f dB", steps, p, before, g)
        return {"t_s": t, "gain_before_db": before, "gain_db": g, "pump_power_dbm": p, "retuned": bool(steps),
                "steps": float(steps), "slope_db_per_db": state["slope"]}

    ctx.sweep(Axis("check", list(range(plan.checks)), wait_for_check), check, name=HOLD,
              attrs={"procedure": PROCEDURE, "plan": jsonable_plan(plan), "schedule_start_s": start,
                     "target_gain_db": plan.target_gain_db, "tolerance_db": plan.tolerance_db,
                     "check_interval_s": plan.check_interval_s, "found_pump_power_dbm": found})
    return HoldResult(found, slope0, ctx.dataset(HOLD))


# -- analysis ---------------------------------------------------------------------------------------------

@dataclass
class TWPAReport:
    """What :func:`analyze_twpa_run` wrote, and the datasets it read."""

    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    datasets: dict[str, xr.Dataset] = field(default_factory=dict)
    noise: xr.Dataset | None = None


def analyze_twpa_run(run_path: str | Path, out_dir: str | Path | None = None) -> TWPAReport:
    """Tables (CSV) and plots (PNG) of the TWPA sweeps a run holds: ``twpa_gain_map.csv/png``,
    ``twpa_compression.csv/png``, ``twpa_noise_rise.csv/png``, ``twpa_hold.csv/png``."""
    from cryodaq.storage import open_run
    from cryodaq.sweeps.script import results_dir_for

    out = Path(out_dir) if out_dir is not None else results_dir_for(run_path)
    out.mkdir(parents=True, exist_ok=True)
    root = open_run(run_path).root
    present = set(root["sweeps"].group_keys()) if "sweeps" in root else set()
    report = TWPAReport()
    for name in SWEEPS:
        if name in present:
            report.datasets[name] = read_sweep(run_path, name)
    ds = report.datasets
    if GAIN_MAP in ds:
        _table(ds[GAIN_MAP], ["mean_gain_db", "min_gain_db", "max_gain_db", "ripple_db"], out / "twpa_gain_map.csv",
               report)
        report.plots.append(_plot_gain_map(ds[GAIN_MAP], out / "twpa_gain_map.png"))
    if COMPRESSION in ds:
        _table(ds[COMPRESSION], ["p1db_input_dbm", "p1db_output_dbm", "small_signal_gain_db"],
               out / "twpa_compression.csv", report)
        report.plots.append(_plot_xy(ds[COMPRESSION], "frequency_hz", ["p1db_input_dbm"], "P1dB at the TWPA input (dBm)",
                                     out / "twpa_compression.png", "TWPA 1 dB compression across the band"))
    if NOISE_RISE in ds:
        noise = noise_rise_analysis(ds[NOISE_RISE])
        report.noise = noise
        names = [str(v) for v in noise.data_vars if v != "complete"]
        noise[names].where(noise["complete"]).to_dataframe().reset_index().to_csv(out / "twpa_noise_rise.csv",
                                                                                   index=False)
        report.tables.append(out / "twpa_noise_rise.csv")
        report.plots.append(_plot_xy(noise, "frequency_hz", ["noise_rise_db", "gain_db", "snr_improvement_db"], "dB",
                                     out / "twpa_noise_rise.png", "TWPA noise rise, gain and SNR improvement (± U)"))
    if HOLD in ds:
        _table(ds[HOLD], ["t_s", "gain_before_db", "gain_db", "pump_power_dbm", "retuned", "steps"],
               out / "twpa_hold.csv", report)
        report.plots.append(_plot_hold(ds[HOLD], out / "twpa_hold.png"))
    return report


def _table(ds: xr.Dataset, names: list[str], path: Path, report: TWPAReport) -> None:
    names = [n for n in names if n in ds]
    frame = ds[names].where(ds["done"]).to_dataframe().reset_index()
    frame = frame[ds["done"].values.ravel()].drop(columns=["t"], errors="ignore")
    frame.to_csv(path, index=False)
    report.tables.append(path)


def _plot_gain_map(ds: xr.Dataset, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.13, top=0.88, wspace=0.35)
    ax, ax_c = fig.subplots(1, 2)
    mean = ds["mean_gain_db"].where(ds["done"])
    mesh = ax.pcolormesh(ds["pump_power_dbm"].values, ds["pump_frequency_hz"].values / 1e9, mean.values,
                         shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="band-mean gain (dB)")
    ax.set_xlabel("pump power (dBm, source)")
    ax.set_ylabel("pump frequency (GHz)")
    best = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(mean.values), mean.values, -np.inf))), mean.shape)
    curve = ds["gain_db"].isel(pump_frequency_hz=best[0])
    for j in range(ds.sizes["pump_power_dbm"]):
        if bool(ds["done"].isel(pump_frequency_hz=best[0], pump_power_dbm=j)):
            ax_c.plot(ds["frequency_hz"].values / 1e9, curve.isel(pump_power_dbm=j).values, lw=1,
                      label=f"{float(ds['pump_power_dbm'][j]):g} dBm")
    ax_c.set_xlabel("signal frequency (GHz)")
    ax_c.set_ylabel("gain (dB)")
    ax_c.set_title(f"pump {float(ds['pump_frequency_hz'][best[0]]) / 1e9:.4g} GHz", fontsize=9)
    ax_c.legend(fontsize=6)
    fig.suptitle("TWPA gain map over pump frequency x pump power", fontsize=10)
    fig.savefig(path, dpi=90)
    return path


def _plot_xy(ds: xr.Dataset, x: str, names: list[str], ylabel: str, path: Path, title: str) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.9)
    ax = fig.add_subplot()
    ok = ds["complete"].values if "complete" in ds else ds["done"].values
    for name in names:
        err = ds[name + "_U"].values[ok] if name + "_U" in ds else None
        ax.errorbar(ds[x].values[ok] / 1e9, ds[name].values[ok], yerr=err, fmt="o-", ms=4, capsize=2, label=name)
    ax.set_xlabel("frequency (GHz)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=90)
    return path


def _plot_hold(ds: xr.Dataset, path: Path) -> Path:
    from matplotlib.figure import Figure

    done = ds["done"].values
    t_h = (ds["t_s"].values[done] - ds["t_s"].values[done][0]) / 3600 if done.any() else np.zeros(0)
    target, tol = float(ds.attrs.get("target_gain_db", math.nan)), float(ds.attrs.get("tolerance_db", math.nan))
    fig = Figure(figsize=(8, 5))
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.1, top=0.92, hspace=0.3)
    ax, ax_p = fig.subplots(2, 1, sharex=True)
    ax.axhspan(target - 0.5, target + 0.5, color="C2", alpha=0.15, label="target ± 0.5 dB")
    ax.axhline(target, color="C2", lw=1)
    ax.plot(t_h, ds["gain_before_db"].values[done], ".", color="C3", label="at the check")
    ax.plot(t_h, ds["gain_db"].values[done], "o", ms=3, color="C0", label="after re-tuning")
    ax.set_ylabel("band-mean gain (dB)")
    ax.legend(fontsize=7)
    ax_p.step(t_h, ds["pump_power_dbm"].values[done], where="post")
    ax_p.set_ylabel("pump power (dBm, source)")
    ax_p.set_xlabel("time (h)")
    fig.suptitle(f"TWPA overnight hold: {int(ds['retuned'].values[done].sum())} re-tunes in {int(done.sum())} checks "
                 f"(tolerance ± {tol:g} dB)", fontsize=10)
    fig.savefig(path, dpi=90)
    return path
