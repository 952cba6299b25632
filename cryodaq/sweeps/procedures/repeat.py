"""Distributions, not single numbers: measure a set of figures every ``interval_s`` and keep them all.

:func:`run_repeat` is a sweep (``repeat``, one axis ``repeat`` = 0 … n − 1) whose axis waits
until the repeat's slot, start + i·``interval_s`` (the start is stored in the group attr
``schedule_start_s``, so a resumed run keeps its time base; slots missed while the run was
down are measured at once, their times stored as they were). At every point it reads the
fridge temperature before and after (``temperature_k``, their mean), the time (``t_s``, s
since the epoch) and calls each figure function: any number of named scalars or arrays
(``_U`` companions are expanded uncertainties, ``_err`` standard ones). Because it is a sweep
it has interlocks, progress, Ctrl-C and resume: a stop or an abort during a wait ends the
wait at once (a pause request ends it too; that point is measured, then the sweep pauses).

Figure functions shipped: :func:`~cryodaq.sweeps.procedures.paramp.paramp_figures` (gain,
bandwidth, P1dB, T_n with its budget) and
:func:`~cryodaq.sweeps.procedures.resonators.resonator_figures` (fr, Qi, Qc of each resonator).

:func:`analyze_repeat_run` turns a stored ``repeat`` sweep into time traces, histograms, the
statistics of each figure (:func:`cryodaq.metrology.stability.summary`), its Allan deviation at
τ = 1, 2, 4 … intervals, its drift per hour and its coefficient against the fridge temperature
(:func:`~cryodaq.metrology.stability.linear_trend`), as CSV tables and PNG plots.
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

from cryodaq.metrology.stability import allan_deviation, linear_trend, summary
from cryodaq.storage.sweep_store import read_sweep
from cryodaq.sweeps.axes import Axis
from cryodaq.sweeps.engine import Point
from cryodaq.sweeps.procedures.common import plan_from_options, scheduled_start, wait_until

__all__ = ["REPEAT", "RepeatPlan", "RepeatReport", "analyze_repeat_run", "figure_series", "repeat_statistics",
           "run_repeat"]

log = logging.getLogger(__name__)

REPEAT = "repeat"
PROCEDURE = "cryodaq.sweeps.procedures.repeat"
#: stored per point besides the figures
_BOOKKEEPING = ("t", "done", "t_s", "temperature_k", "temperature_before_k", "temperature_after_k")
_COMPANIONS = ("_U", "_u", "_err", "_dof")

FigureFunction = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class RepeatPlan:
    """How often and how many times (s); ``name`` is the sweep's name (several repeat sweeps may share a run)."""

    interval_s: float
    repeats: int
    name: str = REPEAT
    #: longest single sleep while waiting for a slot (operator requests are checked in between)
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.interval_s >= 0 or self.repeats < 1:
            raise ValueError(f"RepeatPlan: need interval_s >= 0 and repeats >= 1, got {self.interval_s}, "
                             f"{self.repeats}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> RepeatPlan:
        return plan_from_options(cls, options, defaults)


@dataclass
class RepeatReport:
    """What :func:`analyze_repeat_run` wrote, and the statistics (one row per figure)."""

    dataset: xr.Dataset
    statistics: Any
    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def run_repeat(ctx: Any, *, figures: FigureFunction | Sequence[FigureFunction], plan: RepeatPlan,
               temperature: Callable[[], float] | None = None, clock: Callable[[], float] | None = None,
               sleep: Callable[[float], Any] | None = None, attrs: Mapping[str, Any] | None = None,
               analyze: bool = True) -> RepeatReport | None:
    """Measure ``figures`` every ``plan.interval_s``, ``plan.repeats`` times (module docstring).

    ``temperature``: the fridge's mixing-chamber reading (e.g. ``fridge.mxc``); ``clock``/``sleep``:
    the time base, by default the context's (``ctx.clock``/``ctx.sleep``: wall time, or a test's
    simulated clock that runs a night in seconds). With ``analyze``, writes the tables and plots of
    :func:`analyze_repeat_run` to ``ctx.results_dir``.
    """
    clock = clock or getattr(ctx, "clock", time.time)
    sleep = sleep or getattr(ctx, "sleep", time.sleep)
    functions = [figures] if callable(figures) else list(figures)
    if not functions:
        raise ValueError("run_repeat: give at least one figure function")
    start = scheduled_start(ctx, plan.name, clock())
    control = getattr(ctx, "control", None)

    def wait_for_slot(i: int) -> None:
        wait_until(start + i * plan.interval_s, clock=clock, sleep=sleep, control=control, poll_s=plan.poll_s)

    def read_temperature() -> float:
        return float(temperature()) if temperature is not None else math.nan

    def measure(point: Point) -> dict[str, Any]:
        before = read_temperature()
        t = clock()
        out: dict[str, Any] = {}
        for fn in functions:
            values = fn()
            clash = set(values) & (set(out) | set(_BOOKKEEPING))
            if clash:
                raise ValueError(f"run_repeat: figure names {sorted(clash)} are given twice (or reserved)")
            out.update(values)
        after = read_temperature()
        out.update(t_s=t, temperature_before_k=before, temperature_after_k=after,
                   temperature_k=0.5 * (before + after))
        return out

    ctx.sweep(Axis("repeat", list(range(plan.repeats)), wait_for_slot), measure, name=plan.name,
              attrs={"procedure": PROCEDURE, "interval_s": plan.interval_s, "schedule_start_s": start,
                     **dict(attrs or {})})
    if not analyze:
        return None
    return analyze_repeat_run(ctx.run.path, ctx.results_dir, name=plan.name)


# -- analysis ---------------------------------------------------------------------------------------

def figure_series(ds: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray | None, str]]:
    """Every figure of a stored repeat sweep as one series per element: ``{label: (values over repeat,
    expanded uncertainty or None, unit)}`` — ``gain_db``, ``fr_hz[resonator=2]`` … (not-done points NaN)."""
    done = ds["done"].values.astype(bool)
    out: dict[str, tuple[np.ndarray, np.ndarray | None, str]] = {}
    for name in ds.data_vars:
        name = str(name)
        var = ds[name]
        if name in _BOOKKEEPING or name.endswith(_COMPANIONS) or var.dims[:1] != ("repeat",):
            continue
        if var.dtype.kind not in "iuf":
            continue
        unc = None
        for sfx, factor in (("_U", 1.0), ("_err", 2.0), ("_u", 2.0)):
            if name + sfx in ds:
                unc = ds[name + sfx] * factor
                break
        unit = str(var.attrs.get("units", ""))
        trailing = var.dims[1:]
        if not trailing:
            values = np.where(done, var.values.astype(float), np.nan)
            out[name] = (values, None if unc is None else np.where(done, unc.values, np.nan), unit)
            continue
        for idx in np.ndindex(*var.shape[1:]):
            label = name + "[" + ",".join(f"{d}={ds[d].values[i] if d in ds.coords else i}"
                                          for d, i in zip(trailing, idx)) + "]"
            sel = (slice(None), *idx)
            values = np.where(done, var.values[sel].astype(float), np.nan)
            out[label] = (values, None if unc is None else np.where(done, unc.values[sel], np.nan), unit)
    return out


def repeat_statistics(ds: xr.Dataset) -> Any:
    """One row per figure (a pandas DataFrame): summary statistics, Allan deviation at τ0 and the longest τ,
    drift per hour ± u, coefficient against the fridge temperature ± u, correlation with temperature."""
    import pandas as pd

    interval = float(ds.attrs.get("interval_s", math.nan))
    t_s = np.where(ds["done"].values, ds["t_s"].values, np.nan) if "t_s" in ds else None
    temp = np.where(ds["done"].values, ds["temperature_k"].values, np.nan) if "temperature_k" in ds else None
    rows = []
    for label, (values, unc, unit) in figure_series(ds).items():
        s = summary(values)
        row: dict[str, Any] = {"figure": label, "unit": unit, **s.as_dict()}
        row["median_expanded_uncertainty"] = float(np.nanmedian(unc)) if unc is not None and np.isfinite(unc).any() \
            else math.nan
        taus, adev, _ = allan_deviation(values, interval if interval > 0 else 1.0)
        row["adev_tau0_s"], row["adev_tau0"] = (float(taus[0]), float(adev[0])) if taus.size else (math.nan, math.nan)
        row["adev_taumax_s"], row["adev_taumax"] = (float(taus[-1]), float(adev[-1])) if taus.size else (
            math.nan, math.nan)
        if t_s is not None:
            drift = linear_trend((t_s - np.nanmin(t_s)) / 3600.0, values)
            row.update(drift_per_hour=drift.slope, drift_per_hour_u=drift.slope_u)
        if temp is not None:
            tc = linear_trend(temp, values)
            row.update(per_kelvin=tc.slope, per_kelvin_u=tc.slope_u, r_temperature=tc.r)
        rows.append(row)
    return pd.DataFrame(rows)


def analyze_repeat_run(run_path: str | Path, out_dir: str | Path | None = None, *, name: str = REPEAT
                       ) -> RepeatReport:
    """Tables and plots of a stored repeat sweep (any status; points not done are left out).

    Writes ``<name>_timetrace.csv`` (one row per repeat: time, temperature, every figure),
    ``<name>_statistics.csv`` (:func:`repeat_statistics`), ``<name>_allan.csv`` (figure, τ, σ(τ),
    pairs) and ``<name>_timetrace.png``, ``<name>_histograms.png``, ``<name>_allan.png``,
    ``<name>_vs_temperature.png``.
    """
    import pandas as pd

    from cryodaq.sweeps.script import results_dir_for

    ds = read_sweep(run_path, name)
    out = Path(out_dir) if out_dir is not None else results_dir_for(run_path)
    out.mkdir(parents=True, exist_ok=True)
    series = figure_series(ds)
    done = ds["done"].values.astype(bool)
    trace = {"repeat": ds["repeat"].values[done]}
    for col in ("t_s", "temperature_k"):
        if col in ds:
            trace[col] = ds[col].values[done]
    for label, (values, unc, _) in series.items():
        trace[label] = values[done]
        if unc is not None:
            trace[label + "_U"] = unc[done]
    tables = [out / f"{name}_timetrace.csv", out / f"{name}_statistics.csv", out / f"{name}_allan.csv"]
    pd.DataFrame(trace).to_csv(tables[0], index=False)
    stats = repeat_statistics(ds)
    stats.to_csv(tables[1], index=False)
    interval = float(ds.attrs.get("interval_s", 1.0)) or 1.0
    allan_rows = []
    for label, (values, _, _) in series.items():
        taus, adev, pairs = allan_deviation(values, interval)
        allan_rows += [{"figure": label, "tau_s": t, "adev": a, "pairs": p} for t, a, p in zip(taus, adev, pairs)]
    pd.DataFrame(allan_rows, columns=["figure", "tau_s", "adev", "pairs"]).to_csv(tables[2], index=False)
    plots = _plots(ds, series, out, name, interval)
    log.info("repeat analysis of %s: %d figures, %d repeats done", run_path, len(series), int(done.sum()))
    return RepeatReport(ds, stats, tables, plots)


#: figures drawn per plot page (the tables hold every figure)
PLOT_FIGURES = 12


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(1, n))
    return int(math.ceil(n / cols)), cols


def _plots(ds: xr.Dataset, series: dict[str, Any], out: Path, name: str, interval: float) -> list[Path]:
    """Four pages (time traces with the fridge temperature, histograms, Allan deviations, figure against
    temperature) of up to :data:`PLOT_FIGURES` figures each: a readable page; the tables hold them all."""
    from matplotlib.figure import Figure

    labels = list(series)[:PLOT_FIGURES]
    if not labels:
        return []
    done = ds["done"].values.astype(bool)
    t = ds["t_s"].values if "t_s" in ds else ds["repeat"].values.astype(float)
    t_h = (t - np.nanmin(np.where(done, t, np.nan))) / 3600.0
    temp = ds["temperature_k"].values if "temperature_k" in ds else np.full(t.shape, np.nan)
    paths = []

    def page(n: int, title: str, fname: str, draw: Callable[[Any, int], None]) -> None:
        rows, cols = _grid(n)
        fig = Figure(figsize=(3.2 * cols, 2.4 * rows))
        fig.subplots_adjust(left=0.09, right=0.97, bottom=0.1, top=0.88, wspace=0.5, hspace=0.75)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for i, ax in enumerate(axes[:n]):
            draw(ax, i)
            ax.tick_params(labelsize=6)
            if ax.get_xscale() == "linear":  # a log axis (Allan deviation) has a locator without nbins
                ax.locator_params(axis="x", nbins=4)
            if ax.get_yscale() == "linear":
                ax.ticklabel_format(axis="y", useOffset=False, style="sci", scilimits=(-4, 5))
        for ax in axes[n:]:
            ax.set_visible(False)
        fig.suptitle(f"{name}: {title}", fontsize=9)
        paths.append(out / fname)
        fig.savefig(paths[-1], dpi=80)

    def timetrace(ax: Any, i: int) -> None:
        if i == 0:  # the fridge first: every figure below shares its time axis
            ax.plot(t_h[done], 1e3 * temp[done], "o-", ms=2, color="C3")
            ax.set_title("mixing chamber (mK)", fontsize=8)
        else:
            values, unc, unit = series[labels[i - 1]]
            ax.errorbar(t_h[done], values[done], yerr=None if unc is None else unc[done], fmt="o-", ms=2, capsize=2)
            ax.set_title(f"{labels[i - 1]} ({unit})" if unit else labels[i - 1], fontsize=7)
        ax.set_xlabel("time (h)", fontsize=6)

    def histogram(ax: Any, i: int) -> None:
        values = series[labels[i]][0]
        ok = values[np.isfinite(values)]
        if ok.size:
            ax.hist(ok, bins=max(5, min(30, ok.size // 2)), color="C0", alpha=0.8)
            ax.axvline(float(np.mean(ok)), color="k", lw=1)
        ax.set_title(labels[i], fontsize=7)
        ax.set_xlabel(series[labels[i]][2], fontsize=6)

    def allan(ax: Any, i: int) -> None:
        taus, adev, _ = allan_deviation(series[labels[i]][0], interval)
        ok = np.isfinite(adev) & (adev > 0)
        if ok.any():
            ax.loglog(taus[ok], adev[ok], "o-", ms=3)
        ax.set_title(labels[i], fontsize=7)
        ax.set_xlabel("τ (s)", fontsize=6)

    def against_temperature(ax: Any, i: int) -> None:
        ax.plot(1e3 * temp, series[labels[i]][0], "o", ms=3)
        ax.set_title(labels[i], fontsize=7)
        ax.set_xlabel("mixing chamber (mK)", fontsize=6)

    page(len(labels) + 1, "time traces (± U where stated)", f"{name}_timetrace.png", timetrace)
    page(len(labels), "distributions (black: mean)", f"{name}_histograms.png", histogram)
    page(len(labels), "overlapping Allan deviation σ(τ)", f"{name}_allan.png", allan)
    page(len(labels), "against the fridge temperature", f"{name}_vs_temperature.png", against_temperature)
    return paths
