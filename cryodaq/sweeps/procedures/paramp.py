"""Parametric-amplifier procedures on a :class:`cryodaq.instruments.ParametricAmplifier`.

**Tune-up** (:func:`run_paramp_tuneup`): the gain at a target frequency over flux current ×
pump frequency × pump power (sweep ``paramp_gain_map``; outer to inner, so the slow flux
changes least often). Per point: ``gain_db`` at the target (pump-off reference at every
point, ``ParametricAmplifier.gain_at``); with ``curve_span_hz`` a gain curve around the target
instead (``gain_curve_db`` over ``curve_offset_hz``), and from its Lorentzian fit
``peak_gain_db``, ``center_hz``, ``bandwidth_hz``. The operating point is the grid point with
the highest gain at the target, among those not above ``max_gain_db`` (gain close to the
parametric threshold is unstable) and, with a curve, not narrower than ``min_bandwidth_hz``;
it is applied (pump on) unless ``apply`` is False and recorded in the group's attr
``operating_point``.

**Noise temperature versus frequency** (:func:`run_noise_temperature`): the Y-factor
measurement (``ParametricAmplifier.noise_temperature_yfactor``) at each frequency (sweep
``paramp_noise``), with the paramp as it is (run the tune-up first): added noise, receiver
noise with the pump off and on, gain, and the standard quantum limit hf/2k_B for comparison.

Tables (CSV) and plots (PNG) go to ``ctx.results_dir``; :func:`analyse_paramp_run` redoes
them from a stored run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import constants

from cryodaq.storage.sweep_store import read_sweep
from cryodaq.sweeps.axes import Axis
from cryodaq.sweeps.engine import Point

__all__ = ["NoisePlan", "ParampReport", "ParampTunePlan", "analyse_paramp_run", "pick_operating_point",
           "run_noise_temperature", "run_paramp_tuneup"]

log = logging.getLogger(__name__)

GAIN_MAP, NOISE = "paramp_gain_map", "paramp_noise"


def _from_options(cls: type, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{**defaults, **{k: v for k, v in options.items() if k in names}})


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
        return _from_options(cls, options, defaults)


@dataclass(frozen=True)
class NoisePlan:
    """Y-factor noise temperature at each of ``frequencies_hz`` (analyzer settings as in
    ``ParametricAmplifier.noise_temperature_yfactor``)."""

    frequencies_hz: Sequence[float]
    span_hz: float = 1e6
    points: int = 201
    rbw_hz: float = 10e3
    sweep_time_s: float | None = 1.0
    averages: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> NoisePlan:
        return _from_options(cls, options, defaults)


@dataclass
class ParampReport:
    """What :func:`analyse_paramp_run` found and wrote."""

    operating_point: dict[str, float] | None
    tables: list[Path]
    plots: list[Path]
    gain_map: xr.Dataset | None = None
    noise: xr.Dataset | None = None


# -- measuring ---------------------------------------------------------------------------------------

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


def run_paramp_tuneup(ctx: Any, *, paramp: Any, plan: ParampTunePlan, analyse: bool = True) -> ParampReport | None:
    """Measure the gain map, pick (and apply) the operating point; see the module docstring."""
    fluxes = [float(paramp.flux_current())] if plan.flux_currents_a is None else [float(x) for x in
                                                                                  plan.flux_currents_a]

    def measure(point: Point) -> dict[str, Any]:
        if plan.curve_span_hz > 0:
            return _curve_values(paramp, plan)
        return {"gain_db": paramp.gain_at(plan.target_hz, averages=plan.averages)}

    result = ctx.sweep(
        Axis("flux_current_a", fluxes, paramp.set_flux, units="A"),
        Axis("pump_frequency_hz", [float(f) for f in plan.pump_frequencies_hz],
             lambda f: paramp.set_pump(frequency_hz=f), units="Hz"),
        Axis("pump_power_dbm", [float(p) for p in plan.pump_powers_dbm], lambda p: paramp.set_pump(power_dbm=p),
             units="dBm"),
        measure, name=GAIN_MAP,
        attrs={"procedure": "cryodaq.sweeps.procedures.paramp", "target_hz": plan.target_hz,
               "probe_power_dbm": float(paramp.probe_power())})
    best = pick_operating_point(ctx.dataset(GAIN_MAP), max_gain_db=plan.max_gain_db,
                                min_bandwidth_hz=plan.min_bandwidth_hz)
    result.sink.set_attrs(operating_point=best, operating_point_rule={
        "max_gain_db": plan.max_gain_db, "min_bandwidth_hz": plan.min_bandwidth_hz})
    if best is None:
        log.warning("paramp tune-up: no grid point meets the rule; the pump and flux are left as they are")
    elif plan.apply:
        paramp.set_flux(best["flux_current_a"])
        paramp.set_pump(frequency_hz=best["pump_frequency_hz"], power_dbm=best["pump_power_dbm"], on=True)
        log.info("paramp operating point applied: %s", best)
    return analyse_paramp_run(ctx.run.path, ctx.results_dir) if analyse else None


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


def run_noise_temperature(ctx: Any, *, paramp: Any, plan: NoisePlan, analyse: bool = True) -> ParampReport | None:
    """Y-factor noise temperature at each frequency, with the paramp as it is; see the module docstring."""

    def measure(point: Point) -> dict[str, Any]:
        result = paramp.noise_temperature_yfactor(point["frequency_hz"], span_hz=plan.span_hz, points=plan.points,
                                                  rbw_hz=plan.rbw_hz, sweep_time_s=plan.sweep_time_s,
                                                  averages=plan.averages)
        values = dataclasses.asdict(result)
        values.pop("frequency_hz")
        return {k: float(v) for k, v in values.items()}

    ctx.sweep(Axis("frequency_hz", [float(f) for f in plan.frequencies_hz], units="Hz"), measure, name=NOISE,
              attrs={"procedure": "cryodaq.sweeps.procedures.paramp", "pump_frequency_hz": float(paramp.pump_frequency()),
                     "pump_power_dbm": float(paramp.pump_power()), "flux_current_a": float(paramp.flux_current())})
    return analyse_paramp_run(ctx.run.path, ctx.results_dir) if analyse else None


# -- analysis -------------------------------------------------------------------------------------------

def analyse_paramp_run(run_path: str | Path, out_dir: str | Path | None = None) -> ParampReport:
    """Tables and plots of the paramp sweeps a run holds (``paramp_gain_map``, ``paramp_noise``).

    Writes ``paramp_gain_map.csv``, ``paramp_operating_point.csv``, ``paramp_gain_map.png``;
    ``paramp_noise.csv``, ``paramp_noise.png`` — for the sweeps present.
    """
    from cryodaq.storage import open_run
    from cryodaq.sweeps.script import results_dir_for

    out = Path(out_dir) if out_dir is not None else results_dir_for(run_path)
    out.mkdir(parents=True, exist_ok=True)
    root = open_run(run_path).root
    present = set(root["sweeps"].group_keys()) if "sweeps" in root else set()
    report = ParampReport(None, [], [])
    if GAIN_MAP in present:
        ds = read_sweep(run_path, GAIN_MAP)
        report.gain_map = ds
        best = ds.attrs.get("operating_point") or pick_operating_point(ds)
        report.operating_point = best
        scalars = [v for v in ds.data_vars if ds[v].dims == ds["done"].dims and v != "done"]
        table = ds[scalars].where(ds["done"]).to_dataframe().reset_index()
        table = table[ds["done"].values.ravel()].drop(columns=["t", "done"], errors="ignore")
        table.to_csv(out / "paramp_gain_map.csv", index=False)
        report.tables.append(out / "paramp_gain_map.csv")
        if best is not None:
            import pandas as pd

            pd.DataFrame([best]).to_csv(out / "paramp_operating_point.csv", index=False)
            report.tables.append(out / "paramp_operating_point.csv")
        report.plots.append(_plot_gain_map(ds, best, out / "paramp_gain_map.png"))
    if NOISE in present:
        ds = read_sweep(run_path, NOISE)
        report.noise = ds
        table = ds.where(ds["done"]).to_dataframe().reset_index()
        table = table[ds["done"].values.ravel()].drop(columns=["t", "done"], errors="ignore")
        table.to_csv(out / "paramp_noise.csv", index=False)
        report.tables.append(out / "paramp_noise.csv")
        report.plots.append(_plot_noise(ds, out / "paramp_noise.png"))
    return report


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


def _plot_noise(ds: xr.Dataset, path: Path) -> Path:
    from matplotlib.figure import Figure

    f = ds["frequency_hz"].values
    done = ds["done"].values
    fig = Figure(figsize=(7, 5.5))
    fig.subplots_adjust(left=0.12, right=0.96, bottom=0.1, top=0.93, hspace=0.3)
    ax, ax_g = fig.subplots(2, 1, sharex=True)
    for name, label in (("paramp_added_noise_k", "paramp added noise"),
                        ("receiver_noise_on_k", "receiver, pump on"),
                        ("receiver_noise_off_k", "receiver, pump off (HEMT chain)")):
        ax.plot(f[done] / 1e9, ds[name].values[done], "o-", ms=4, label=label)
    ax.plot(f / 1e9, constants.h * f / (2 * constants.k), "k--", lw=1, label="quantum limit hf/2k")
    ax.set_yscale("log")
    ax.set_ylabel("noise temperature (K)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax_g.plot(f[done] / 1e9, ds["gain_db"].values[done], "o-", ms=4, color="C3")
    ax_g.set_ylabel("gain (dB)")
    ax_g.set_xlabel("frequency (GHz)")
    ax_g.grid(alpha=0.3)
    fig.suptitle("paramp noise temperature (Y factor)", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
