"""Resonator characterisation versus temperature and readout power: scan → find → fit.

1. At the first temperature, one wide VNA scan (sweep ``wide_scan``) and
   :func:`~cryodaq.dsp.resonator.find_resonators` locate the resonances (unless the plan lists
   them). On resume the stored scan is read back, so the same resonators are found again.
2. Sweep ``resonators`` over temperature (fridge setpoint, then ``wait_until_stable``) ×
   readout power (VNA source power) × resonator: a VNA scan of ``span_hz`` around each located
   resonance, fitted with :func:`~cryodaq.dsp.resonator.fit_resonator`. Stored per point: the
   raw trace (``s21``, ``freq_hz``; dim ``scan_point``), the fit (``fr_hz``, ``Ql``, ``Qi``,
   ``Qc``, ``phi``, each with ``<name>_err``, ``residual_rms``, ``fit_ok``) and the mixing-chamber
   temperature read before and after the scan (``temperature_measured_k``, their mean). A
   failed fit stores NaN and ``fit_ok = False``: the trace is kept for a refit, the night goes on.
3. Tables (CSV) and plots (PNG) of Qi(T), Qc(T) and the fractional frequency shift
   δfr/fr(T), plus example fits, in ``ctx.results_dir`` — or from any stored run with
   :func:`analyze_resonator_run`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from cryodaq.dsp.resonator import ResonatorFitError, find_resonators, fit_resonator
from cryodaq.instruments.vna import measure_s21
from cryodaq.storage.sweep_store import read_sweep
from cryodaq.sweeps.axes import Axis, zip_axes
from cryodaq.sweeps.engine import Point
from cryodaq.sweeps.procedures.common import plan_from_options

__all__ = ["FIT_QUANTITIES", "ResonatorPlan", "ResonatorReport", "analyze_resonator_run", "fit_scan",
           "locate_resonators", "resonator_figures", "resonator_table", "run_resonator_characterisation"]

log = logging.getLogger(__name__)

WIDE_SCAN, RESONATORS = "wide_scan", "resonators"
#: fitted quantities stored per point (each also as ``<name>_err``)
FIT_QUANTITIES = ("fr_hz", "Ql", "Qi", "Qc", "phi")


@dataclass(frozen=True)
class ResonatorPlan:
    """What to measure. Frequencies in Hz, powers in dBm at the VNA port, temperatures in K."""

    temperatures_k: Sequence[float]
    powers_dbm: Sequence[float]
    #: known resonance frequencies; when None, a wide scan at the first temperature finds them
    resonators_hz: Sequence[float] | None = None
    wide_start_hz: float | None = None
    wide_stop_hz: float | None = None
    wide_points: int = 5001
    wide_power_dbm: float = -30.0
    wide_ifbw_hz: float = 1e4
    min_depth_db: float = 3.0
    min_separation_hz: float = 1e6
    #: per-resonator scans: span around the located frequency (must cover the shift with temperature)
    span_hz: float = 2e6
    points: int = 801
    ifbw_hz: float = 1e3
    averages: int = 1
    geometry: str = "notch"
    #: temperature steps: fridge.wait_until_stable(tolerance_k, hold_time_s, timeout_s, poll_s), then settle_s
    tolerance_k: float = 1e-3
    hold_time_s: float = 30.0
    timeout_s: float = 1800.0
    poll_s: float = 1.0
    settle_s: float = 0.0

    def __post_init__(self) -> None:
        if not len(self.temperatures_k) or not len(self.powers_dbm):
            raise ValueError("ResonatorPlan: temperatures_k and powers_dbm must not be empty")
        if self.resonators_hz is None and (self.wide_start_hz is None or self.wide_stop_hz is None):
            raise ValueError("ResonatorPlan: give resonators_hz, or wide_start_hz and wide_stop_hz for a wide scan")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> ResonatorPlan:
        """``defaults`` overridden by the matching ``options`` (e.g. ``-p temperatures_k=[0.05,0.1]``)."""
        return plan_from_options(cls, options, defaults)


@dataclass
class ResonatorReport:
    """What :func:`analyze_resonator_run` wrote: the tables and plots, and the dataset they came from."""

    dataset: xr.Dataset
    tables: list[Path]
    plots: list[Path]


# -- measuring -------------------------------------------------------------------------------------

def _temperature_axis(fridge: Any, plan: ResonatorPlan, temperatures: Sequence[float]) -> Axis:
    def set_temperature(kelvin: float) -> None:
        fridge.setpoint(kelvin)
        fridge.wait_until_stable(tolerance_k=plan.tolerance_k, hold_time_s=plan.hold_time_s,
                                 timeout_s=plan.timeout_s, poll_s=plan.poll_s)
        if plan.settle_s > 0:
            time.sleep(plan.settle_s)

    return Axis("temperature_k", [float(t) for t in temperatures], set_temperature, units="K")


def locate_resonators(ctx: Any, fridge: Any, vna: Any, plan: ResonatorPlan) -> np.ndarray:
    """Resonance frequencies (Hz): ``plan.resonators_hz``, or found in a wide scan at the first temperature.

    The wide scan is the sweep ``wide_scan`` (one point); resumed, it is read back, not retaken.
    """
    if plan.resonators_hz is not None:
        return np.sort(np.asarray(plan.resonators_hz, dtype=float))

    def wide(point: Point) -> dict[str, Any]:
        s = measure_s21(vna, plan.wide_start_hz, plan.wide_stop_hz, plan.wide_points, plan.wide_power_dbm,
                        plan.wide_ifbw_hz)
        return {"s21": xr.DataArray(s.s21, dims=["frequency"], coords={"frequency": s.freqs}),
                "temperature_measured_k": float(fridge.mxc())}

    ctx.sweep(_temperature_axis(fridge, plan, plan.temperatures_k[:1]), wide, name=WIDE_SCAN,
              attrs={"purpose": "locate the resonators (find_resonators)"})
    ds = ctx.dataset(WIDE_SCAN)
    trace = ds["s21"].isel(temperature_k=0)
    found = find_resonators(ds["frequency"].values, trace.values, min_depth_db=plan.min_depth_db,
                            min_separation_hz=plan.min_separation_hz)
    if not len(found):
        raise ResonatorFitError(f"no resonance deeper than {plan.min_depth_db} dB in the wide scan "
                                f"{plan.wide_start_hz:.6g}–{plan.wide_stop_hz:.6g} Hz")
    log.info("found %d resonators at %s Hz", len(found), np.array2string(found.freq_hz, precision=6))
    return found.freq_hz


def _fit_values(freqs: np.ndarray, s21: np.ndarray, geometry: str) -> dict[str, Any]:
    nan = float("nan")
    try:
        fit = fit_resonator(freqs, s21, geometry)  # type: ignore[arg-type]
    except ResonatorFitError as exc:
        log.warning("resonator fit failed: %s", exc)
        out: dict[str, Any] = {q: nan for q in FIT_QUANTITIES}
        out.update({f"{q}_err": nan for q in FIT_QUANTITIES})
        out.update(residual_rms=nan, fit_ok=False)
        return out
    return {"fr_hz": fit.fr_hz, "fr_hz_err": fit.fr_hz_err, "Ql": fit.Ql, "Ql_err": fit.Ql_err,
            "Qi": fit.Qi, "Qi_err": fit.Qi_err, "Qc": fit.Qc_abs, "Qc_err": fit.Qc_abs_err,
            "phi": fit.phi, "phi_err": fit.phi_err, "residual_rms": fit.residual_rms, "fit_ok": bool(fit.success)}


def fit_scan(vna: Any, centre_hz: float, span_hz: float, points: int, power_dbm: float, ifbw_hz: float,
             averages: int = 1, geometry: str = "notch") -> tuple[Any, dict[str, Any]]:
    """One VNA scan of ``span_hz`` around ``centre_hz`` and its resonator fit: (the ``VNASweep``, the fitted
    quantities of :data:`FIT_QUANTITIES` with ``_err``, ``residual_rms`` and ``fit_ok``; NaN and False
    when the fit fails)."""
    half = span_hz / 2
    s = measure_s21(vna, centre_hz - half, centre_hz + half, points, power_dbm, ifbw_hz, averages)
    return s, _fit_values(s.freqs, s.s21, geometry)


def resonator_figures(vna: Any, resonators_hz: Sequence[float], *, span_hz: float = 2e6, points: int = 801,
                      power_dbm: float = -40.0, ifbw_hz: float = 1e3, averages: int = 1, geometry: str = "notch"
                      ) -> Any:
    """A figure function for :func:`~cryodaq.sweeps.procedures.repeat.run_repeat`: each resonator scanned
    around its located frequency and fitted (:func:`fit_scan`), the fit's ``fr_hz``, ``Qi``, ``Qc``, ``Ql``
    with ``_err`` and ``fit_ok``, as arrays over ``resonator``."""
    centres = [float(f) for f in resonators_hz]
    names = ("fr_hz", "fr_hz_err", "Qi", "Qi_err", "Qc", "Qc_err", "Ql", "Ql_err", "fit_ok")
    units = {"fr_hz": "Hz", "fr_hz_err": "Hz"}

    def figures() -> dict[str, Any]:
        fits = [fit_scan(vna, f0, span_hz, points, power_dbm, ifbw_hz, averages, geometry)[1] for f0 in centres]
        coords = {"resonator": np.arange(len(centres))}
        return {q: xr.DataArray(np.array([f[q] for f in fits]), dims=["resonator"], coords=coords,
                                attrs={"units": units.get(q, "")}) for q in names}

    return figures


def run_resonator_characterisation(ctx: Any, *, fridge: Any, vna: Any, plan: ResonatorPlan,
                                   analyze: bool = True) -> ResonatorReport | None:
    """Locate, then scan and fit every resonator at every temperature × power (module docstring).

    ``fridge``: a :class:`cryodaq.instruments.Fridge` (``setpoint``, ``wait_until_stable``, ``mxc``);
    ``vna``: a qcodes PNA or ZNB driver (:func:`cryodaq.instruments.vna.measure_s21`). With
    ``analyze``, writes the tables and plots to ``ctx.results_dir`` and returns what it wrote.
    """
    f0 = locate_resonators(ctx, fridge, vna, plan)

    def scan_and_fit(point: Point) -> dict[str, Any]:
        centre, power = float(point["f0_hz"]), float(point["power_dbm"])
        t_before = float(fridge.mxc())
        s, fit = fit_scan(vna, centre, plan.span_hz, plan.points, power, plan.ifbw_hz, plan.averages, plan.geometry)
        t_after = float(fridge.mxc())
        out = {"s21": (("scan_point",), s.s21), "freq_hz": (("scan_point",), s.freqs),
               "temperature_measured_k": 0.5 * (t_before + t_after), "power_measured_dbm": s.power_dbm}
        out.update(fit)
        return out

    resonators = zip_axes(Axis("resonator", np.arange(len(f0))), Axis("f0_hz", f0, units="Hz"))
    ctx.sweep(_temperature_axis(fridge, plan, plan.temperatures_k), Axis("power_dbm", plan.powers_dbm, units="dBm"),
              resonators, scan_and_fit, name=RESONATORS,
              attrs={"procedure": "cryodaq.sweeps.procedures.resonators", "geometry": plan.geometry,
                     "span_hz": plan.span_hz, "points": plan.points, "ifbw_hz": plan.ifbw_hz})
    if not analyze:
        return None
    return analyze_resonator_run(ctx.run.path, ctx.results_dir)


# -- analysis ---------------------------------------------------------------------------------------

def resonator_table(ds: xr.Dataset) -> Any:
    """One row per measured point: axes, measured temperature and every fitted quantity (a pandas DataFrame)."""
    scalars = [v for v in ds.data_vars if ds[v].dims == ds["done"].dims and v != "done"]
    frame = ds[scalars].where(ds["done"]).to_dataframe().reset_index()
    keep = ["temperature_k", "power_dbm", "resonator", "f0_hz", *scalars]
    frame = frame[[c for c in keep if c in frame.columns]]
    frame = frame[ds["done"].values.ravel()].reset_index(drop=True)
    if "fit_ok" in frame:
        frame["fit_ok"] = frame["fit_ok"].astype(bool)
    return frame


def analyze_resonator_run(run_path: str | Path, out_dir: str | Path | None = None, *,
                          sweep: str = RESONATORS) -> ResonatorReport:
    """Tables and plots of a stored resonator sweep (any status; points not done are left out).

    Writes to ``out_dir`` (default ``<run_id>.results/`` beside the run): ``resonator_fits.csv``
    (one row per point), ``Qi_vs_T.csv`` / ``Qc_vs_T.csv`` / ``fr_vs_T.csv`` (temperature ×
    resonator, per power), and ``Qi_vs_T.png``, ``Qc_vs_T.png``, ``fr_shift_vs_T.png``,
    ``example_fits.png``.
    """
    from cryodaq.sweeps.script import results_dir_for

    ds = read_sweep(run_path, sweep)
    out = Path(out_dir) if out_dir is not None else results_dir_for(run_path)
    out.mkdir(parents=True, exist_ok=True)
    table = resonator_table(ds)
    tables = [out / "resonator_fits.csv"]
    table.to_csv(tables[0], index=False)
    for quantity, fname in (("Qi", "Qi_vs_T.csv"), ("Qc", "Qc_vs_T.csv"), ("fr_hz", "fr_vs_T.csv")):
        wide = table.pivot_table(index="temperature_k", columns=["power_dbm", "resonator"], values=quantity)
        wide.columns = [f"{quantity}_p{p:g}dBm_r{r}" for p, r in wide.columns]
        wide.to_csv(out / fname)
        tables.append(out / fname)
    plots = _plot_all(ds, out)
    log.info("resonator analysis of %s: %d tables, %d plots in %s", run_path, len(tables), len(plots), out)
    return ResonatorReport(ds, tables, plots)


def _good(ds: xr.Dataset, name: str) -> xr.DataArray:
    ok = ds["done"] & ds["fit_ok"].astype(bool) if "fit_ok" in ds else ds["done"]
    return ds[name].where(ok)


def _plot_all(ds: xr.Dataset, out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    temps = ds["temperature_measured_k"].where(ds["done"])
    powers = ds["power_dbm"].values
    n_res = ds.sizes["resonator"]
    colours = [f"C{i % 10}" for i in range(n_res)]
    markers = "os^Dv<>p*h"
    paths = []

    def per_point_plot(quantity: str, transform: Any, ylabel: str, fname: str, logy: bool) -> None:
        fig = Figure(figsize=(7, 4.5))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)  # no layout engine: 3x faster
        ax = fig.add_subplot()
        for r in range(n_res):
            for j, p in enumerate(powers):
                x = temps.isel(resonator=r, power_dbm=j).values
                y, yerr = transform(r, j)
                ok = np.isfinite(x) & np.isfinite(y)
                if not ok.any():
                    continue
                ax.errorbar(x[ok], y[ok], yerr=None if yerr is None else yerr[ok], color=colours[r],
                            marker=markers[j % len(markers)], ms=4, lw=1, capsize=2,
                            label=f"r{r} ({float(ds['f0_hz'][r]) / 1e9:.4f} GHz), {p:g} dBm")
        ax.set_xlabel("mixing-chamber temperature (K)")
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        ax.set_title(f"{quantity} vs temperature")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=max(1, n_res // 4))
        path = out / fname
        fig.savefig(path, dpi=120)
        paths.append(path)

    def q(name: str) -> Any:
        return lambda r, j: (_good(ds, name).isel(resonator=r, power_dbm=j).values,
                             _good(ds, f"{name}_err").isel(resonator=r, power_dbm=j).values)

    per_point_plot("Qi", q("Qi"), "internal quality factor Qi", "Qi_vs_T.png", True)
    per_point_plot("Qc", q("Qc"), "coupling quality factor |Qc|", "Qc_vs_T.png", True)
    fr = _good(ds, "fr_hz")
    ref = fr.isel(temperature_k=int(np.argmin(ds["temperature_k"].values)))  # per power and resonator

    def shift(r: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        f = fr.isel(resonator=r, power_dbm=j).values
        f_ref = float(ref.isel(resonator=r, power_dbm=j))
        err = _good(ds, "fr_hz_err").isel(resonator=r, power_dbm=j).values
        return (f - f_ref) / f_ref * 1e6, err / f_ref * 1e6

    per_point_plot("fractional frequency shift", shift, "δfr / fr (ppm, from the lowest temperature)",
                   "fr_shift_vs_T.png", False)
    paths.append(_plot_examples(ds, out, colours))
    return paths


def _plot_examples(ds: xr.Dataset, out: Path, colours: list[str]) -> Path:
    """|S21| and the IQ loop of each resonator at the lowest temperature and highest power, with the fit."""
    from matplotlib.figure import Figure

    n_res = ds.sizes["resonator"]
    fig = Figure(figsize=(3.2 * n_res, 6.0))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.86, wspace=0.45, hspace=0.35)
    axes = fig.subplots(2, n_res, squeeze=False)
    i_t = int(np.argmin(ds["temperature_k"].values))
    i_p = int(np.argmax(ds["power_dbm"].values))
    for r in range(n_res):
        ax_mag, ax_iq = axes[0, r], axes[1, r]
        sel = {"temperature_k": i_t, "power_dbm": i_p, "resonator": r}
        if not bool(ds["done"].isel(sel)):
            ax_mag.set_title(f"r{r}: not measured")
            continue
        f = ds["freq_hz"].isel(sel).values
        z = ds["s21"].isel(sel).values
        ax_mag.plot((f - f.mean()) / 1e3, 20 * np.log10(np.abs(z)), ".", ms=2, color=colours[r])
        ax_iq.plot(z.real, z.imag, ".", ms=2, color=colours[r])
        try:
            fit = fit_resonator(f, z, str(ds.attrs.get("geometry", "notch")))  # type: ignore[arg-type]
            model = fit.model(f)
            ax_mag.plot((f - f.mean()) / 1e3, 20 * np.log10(np.abs(model)), "k-", lw=0.8)
            ax_iq.plot(model.real, model.imag, "k-", lw=0.8)
            ax_mag.set_title(f"r{r}: fr={fit.fr_hz / 1e9:.6f} GHz\nQi={fit.Qi:.3g} Qc={fit.Qc_abs:.3g}", fontsize=8)
        except ResonatorFitError as exc:
            ax_mag.set_title(f"r{r}: no fit ({exc})"[:60], fontsize=8)
        ax_mag.set_xlabel("f - centre (kHz)")
        ax_mag.set_ylabel("|S21| (dB)")
        ax_iq.set_xlabel("I")
        ax_iq.set_ylabel("Q")
        ax_iq.set_aspect("equal", adjustable="datalim")
    fig.suptitle(f"example fits at {float(ds['temperature_k'][i_t]):g} K, {float(ds['power_dbm'][i_p]):g} dBm")
    path = out / "example_fits.png"
    fig.savefig(path, dpi=110)
    return path

