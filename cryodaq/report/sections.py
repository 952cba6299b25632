"""The report's sections: what each kind of stored measurement contributes to a characterisation report.

A section turns the sweeps (or stream groups) of one procedure into rows of the report's tables
(docs/report-format.md): results with their uncertainties, budget lines, distributions over time
(statistics, time traces, Allan deviations), and the procedure's own tables and plots, written by
the same analysis functions the procedures use (``analyze_*_run``) into ``procedures/``.

=====================  ========================  ==============================================
section                reads                     gives
=====================  ========================  ==============================================
``paramp_noise``       ``paramp_yfactor``        T_n (pump on/off), added noise, gain, SNR
                       (or ``paramp_noise``)     improvement per frequency, each with its budget
``paramp_tuneup``      ``paramp_gain_map``       the operating point
``repeat:<name>``      a ``repeat`` sweep        every figure's mean ± its standard error, its
                                                 statistics, time trace and Allan deviation
``resonators``         ``resonators``            fr, Qi, Qc per temperature × power × resonator
``twpa``               ``twpa_*`` sweeps         P1dB over the band, noise rise, gain and SNR
                                                 improvement with budgets, the overnight hold
=====================  ========================  ==============================================
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Section", "result_id", "sections_for_run"]


@dataclass
class Section:
    """What one section adds to the report (the rows of its tables, docs/report-format.md)."""

    name: str
    subject: str
    description: str
    results: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    statistics: list[dict[str, Any]] = field(default_factory=list)
    timetraces: list[dict[str, Any]] = field(default_factory=list)
    allan: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _fmt(v: Any) -> str:
    return f"{v:.9g}" if isinstance(v, (float, np.floating)) else str(v)


def result_id(section: str, quantity: str, conditions: dict[str, Any]) -> str:
    """``<section>/<quantity>[k=v,...]`` with numbers in ``%.9g``: the key two reports are matched on."""
    cond = ",".join(f"{k}={_fmt(v)}" for k, v in conditions.items())
    return f"{section}/{quantity}" + (f"[{cond}]" if cond else "")


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _result(section: str, quantity: str, unit: str, value: Any, *, u: Any = None, big_u: Any = None, k: Any = None,
            dof: Any = None, method: str, conditions: dict[str, Any] | None = None, source: str = "",
            dominant: str | None = None) -> dict[str, Any]:
    conditions = {key: (_num(v) if isinstance(v, (float, int, np.number)) else v) for key, v in
                  (conditions or {}).items()}
    dof_v = _num(dof)
    return {"id": result_id(section, quantity, conditions), "section": section, "quantity": quantity, "unit": unit,
            "value": _num(value), "standard_uncertainty": _num(u), "expanded_uncertainty": _num(big_u),
            "coverage_factor": _num(k), "effective_dof": "inf" if dof is not None and dof_v is None and
            float(dof) == math.inf else dof_v, "method": method, "conditions": conditions,
            "dominant_input": dominant, "source": source}


# -- paramp ------------------------------------------------------------------------------------------

def _paramp_sections(run_path: Path, present: set[str], out: Path) -> list[Section]:
    from cryodaq.metrology.noise import MEASURANDS
    from cryodaq.sweeps.procedures.paramp import GAIN_MAP, NOISE, YFACTOR, analyze_paramp_run, noise_budget_table

    if not present & {GAIN_MAP, NOISE, YFACTOR}:
        return []
    report = analyze_paramp_run(run_path, out)
    sections = []
    if report.gain_map is not None:
        sec = Section("paramp_tuneup", "paramp", "operating point from the gain map over flux × pump frequency × "
                      "pump power (sweep paramp_gain_map)")
        best = report.operating_point or {}
        units = {"flux_current_a": "A", "pump_frequency_hz": "Hz", "pump_power_dbm": "dBm", "gain_db": "dB",
                 "bandwidth_hz": "Hz"}
        for key, value in best.items():
            sec.results.append(_result(sec.name, f"operating_point.{key}", units.get(key, ""), value,
                                       method="grid point of highest gain under the rule", source=f"sweeps/{GAIN_MAP}"))
        sec.files += [p for p in report.tables + report.plots if p.name.startswith("paramp_gain_map")
                      or p.name.startswith("paramp_operating")]
        sections.append(sec)
    noise = report.noise
    if noise is not None:
        sec = Section("paramp_noise", "paramp", "Y-factor noise temperature, gain and SNR improvement per frequency "
                      "with GUM budgets (JCGM 100:2008; cryodaq.metrology.noise)")
        mask = noise["complete"].values if "complete" in noise else noise["done"].values
        source = f"sweeps/{YFACTOR}" if "complete" in noise else f"sweeps/{NOISE}"
        k = float(noise.attrs.get("coverage_factor", 2.0))
        budgets = noise_budget_table(noise, mask) if "budget_share" in noise else None
        for i, f in enumerate(noise["frequency_hz"].values):
            if not mask[i]:
                continue
            for m, unit in MEASURANDS.items():
                if m not in noise:
                    continue
                has_u = m + "_u" in noise
                dominant = None
                if budgets is not None:
                    rows = budgets[(budgets["frequency_hz"] == float(f)) & (budgets["measurand"] == m)]
                    if len(rows):
                        dominant = str(rows.loc[rows["share"].idxmax(), "input"])
                r = _result(sec.name, m, unit, noise[m].values[i],
                            u=noise[m + "_u"].values[i] if has_u else None,
                            big_u=noise[m + "_U"].values[i] if has_u else None, k=k if has_u else None,
                            dof=noise[m + "_dof"].values[i] if has_u else None,
                            method="Y factor, GUM first-order propagation" if has_u else "Y factor (no budget stored)",
                            conditions={"frequency_hz": float(f)}, source=source, dominant=dominant)
                sec.results.append(r)
                if budgets is not None:
                    for _, row in budgets[(budgets["frequency_hz"] == float(f)) & (budgets["measurand"] == m)].iterrows():
                        sec.budgets.append({"result_id": r["id"], "input": row["input"],
                                            "value": _num(row["value"]), "unit": row["unit"],
                                            "standard_uncertainty": _num(row["standard_uncertainty"]),
                                            "kind": row["kind"], "distribution": row["distribution"],
                                            "dof": "inf" if row["dof"] == math.inf else _num(row["dof"]),
                                            "source": row["source"], "sensitivity": _num(row["sensitivity"]),
                                            "contribution": _num(row["contribution"]), "share": _num(row["share"])})
        if budgets is None:
            sec.warnings.append("the noise results carry no uncertainty budget (a run made before budgets were stored)")
        sec.files += [p for p in report.tables + report.plots if p.name.startswith(("paramp_noise", "paramp_yfactor"))]
        sections.append(sec)
    return sections


# -- repeats -----------------------------------------------------------------------------------------

def _repeat_sections(run_path: Path, present: set[str], out: Path) -> list[Section]:
    from cryodaq.storage.sweep_store import read_sweep
    from cryodaq.sweeps.procedures.repeat import PROCEDURE, analyze_repeat_run, figure_series
    from cryodaq.metrology.stability import allan_deviation

    sections = []
    for name in sorted(present):
        ds = read_sweep(run_path, name)
        if ds.attrs.get("procedure") != PROCEDURE:
            continue
        report = analyze_repeat_run(run_path, out, name=name)
        series = figure_series(ds)
        subject = "resonators" if any(label.startswith(("fr_hz", "Qi")) for label in series) else "paramp"
        sec = Section(f"repeat:{name}", subject, f"figures measured every {ds.attrs.get('interval_s')} s, "
                      f"{int(ds['done'].sum())} of {ds.sizes['repeat']} repeats done (sweep {name})")
        done = ds["done"].values.astype(bool)
        t_s = ds["t_s"].values if "t_s" in ds else np.full(done.size, np.nan)
        temp = ds["temperature_k"].values if "temperature_k" in ds else np.full(done.size, np.nan)
        interval = float(ds.attrs.get("interval_s", 1.0)) or 1.0
        for _, row in report.statistics.iterrows():
            stats = {k: (_num(v) if not isinstance(v, str) else v) for k, v in row.items()}
            stats = {"section": sec.name, **stats}
            sec.statistics.append(stats)
            n = int(row["n"])
            sec.results.append(_result(sec.name, f"{row['figure']}.mean", str(row["unit"]), row["mean"], u=row["sem"],
                                       big_u=2 * row["sem"] if n > 1 else None, k=2.0 if n > 1 else None,
                                       dof=n - 1 if n > 1 else None,
                                       method=f"mean of {n} repeats, type A (standard deviation {row['std']:.6g})",
                                       source=f"sweeps/{name}"))
        for label, (values, unc, unit) in series.items():
            for i in np.flatnonzero(done):
                sec.timetraces.append({"section": sec.name, "figure": label, "unit": unit, "repeat": int(i),
                                       "t_s": _num(t_s[i]), "temperature_k": _num(temp[i]), "value": _num(values[i]),
                                       "expanded_uncertainty": None if unc is None else _num(unc[i])})
            taus, adev, pairs = allan_deviation(values, interval)
            sec.allan += [{"section": sec.name, "figure": label, "tau_s": float(t), "adev": _num(a), "pairs": int(p)}
                          for t, a, p in zip(taus, adev, pairs)]
        if int(done.sum()) < ds.sizes["repeat"]:
            sec.warnings.append(f"sweep {name}: {int(done.sum())} of {ds.sizes['repeat']} repeats done")
        sec.files += report.tables + report.plots
        sections.append(sec)
    return sections


# -- resonators --------------------------------------------------------------------------------------

def _resonator_sections(run_path: Path, present: set[str], out: Path) -> list[Section]:
    from cryodaq.sweeps.procedures.resonators import FIT_QUANTITIES, RESONATORS, analyze_resonator_run

    if RESONATORS not in present:
        return []
    report = analyze_resonator_run(run_path, out)
    ds = report.dataset
    sec = Section("resonators", "resonators", "resonator fits versus temperature × readout power (sweep resonators); "
                  "uncertainties are the fits' standard errors (k = 1 as fitted; expanded with k = 2)")
    units = {"fr_hz": "Hz"}
    done = ds["done"].values
    for idx in zip(*np.nonzero(done)):
        sel = dict(zip(ds["done"].dims, idx))
        point = ds.isel(sel)
        if "fit_ok" in ds and not bool(point["fit_ok"]):
            continue
        cond = {"temperature_k": float(point["temperature_k"]), "power_dbm": float(point["power_dbm"]),
                "resonator": int(point["resonator"])}
        for q in FIT_QUANTITIES:
            err = float(point[q + "_err"]) if q + "_err" in ds else math.nan
            sec.results.append(_result(sec.name, q, units.get(q, ""), float(point[q]), u=err, big_u=2 * err, k=2.0,
                                       method="least-squares resonator fit (cryodaq.dsp.resonator)", conditions=cond,
                                       source=f"sweeps/{RESONATORS}"))
    sec.files += report.tables + report.plots
    return [sec]


# -- TWPA ----------------------------------------------------------------------------------------------

def _twpa_sections(run_path: Path, present: set[str], out: Path) -> list[Section]:
    from cryodaq.metrology.calibrations import Calibration
    from cryodaq.metrology.stability import allan_deviation, summary
    from cryodaq.sweeps.procedures.twpa import (
        COMPRESSION,
        HOLD,
        NOISE_RISE,
        SWEEPS,
        TUNE,
        analyze_twpa_run,
        noise_rise_budgets,
    )

    if not present & set(SWEEPS):
        return []
    report = analyze_twpa_run(run_path, out)
    ds = report.datasets
    sec = Section("twpa", "twpa", "travelling-wave paramp: gain map, 1 dB compression over the band, noise rise "
                  "with the pump on (GUM budgets), overnight hold of the band-mean gain")
    if COMPRESSION in ds:
        comp = ds[COMPRESSION]
        for i, f in enumerate(comp["frequency_hz"].values):
            if bool(comp["done"].values[i]):
                sec.results.append(_result(sec.name, "p1db_input_dbm", "dBm", comp["p1db_input_dbm"].values[i],
                                           method="VNA power sweep, pump off/on, linear interpolation at −1 dB",
                                           conditions={"frequency_hz": float(f)}, source=f"sweeps/{COMPRESSION}"))
    if report.noise is not None:
        noise, raw = report.noise, ds[NOISE_RISE]
        cals = {n: Calibration.from_dict(d) for n, d in (raw.attrs.get("calibrations") or {}).items()}
        for i, f in enumerate(noise["frequency_hz"].values):
            if not bool(noise["complete"].values[i]):
                continue
            budgets = noise_rise_budgets(raw, i, cals)
            for m, b in budgets.items():
                r = _result(sec.name, m, "dB", b.value, u=b.u, big_u=b.U, k=b.k, dof=b.dof,
                            method="analyzer noise and VNA gain, pump off/on; GUM first-order propagation",
                            conditions={"frequency_hz": float(f)}, source=f"sweeps/{NOISE_RISE}",
                            dominant=b.dominant().name)
                sec.results.append(r)
                sec.budgets += [{"result_id": r["id"], "input": row.name, "value": _num(row.value), "unit": row.unit,
                                 "standard_uncertainty": _num(row.u), "kind": row.kind,
                                 "distribution": row.distribution,
                                 "dof": "inf" if row.dof == math.inf else _num(row.dof), "source": row.source,
                                 "sensitivity": _num(row.sensitivity), "contribution": _num(row.contribution),
                                 "share": _num(row.share)} for row in b.rows]
    if TUNE in ds and ds[TUNE].attrs.get("found_pump_power_dbm") is not None:
        sec.results.append(_result(sec.name, "tune.found_pump_power_dbm", "dBm", ds[TUNE].attrs["found_pump_power_dbm"],
                                   method="pump-power scan, interpolated to the target band-mean gain",
                                   source=f"sweeps/{TUNE}"))
    if HOLD in ds:
        hold = ds[HOLD]
        done = hold["done"].values.astype(bool)
        target = float(hold.attrs.get("target_gain_db", math.nan))
        interval = float(hold.attrs.get("check_interval_s", 1.0)) or 1.0
        before = np.where(done, hold["gain_before_db"].values, np.nan)
        sec.results.append(_result(sec.name, "hold.max_deviation_at_checks_db", "dB", float(np.nanmax(
            np.abs(before - target))) if done.any() else None, method="largest |band-mean gain − target| found at "
                                   "a check, before re-tuning", conditions={"target_gain_db": target},
                                   source=f"sweeps/{HOLD}"))
        sec.results.append(_result(sec.name, "hold.retunes", "", float(hold["retuned"].values[done].sum()),
                                   method=f"checks that re-tuned the pump, of {int(done.sum())}",
                                   source=f"sweeps/{HOLD}"))
        for label, values, unit in (("twpa_hold.gain_before_db", before, "dB"),
                                    ("twpa_hold.gain_db", np.where(done, hold["gain_db"].values, np.nan), "dB"),
                                    ("twpa_hold.pump_power_dbm", np.where(done, hold["pump_power_dbm"].values, np.nan),
                                     "dBm")):
            stats = summary(values)
            sec.statistics.append({"section": sec.name, "figure": label, "unit": unit, **stats.as_dict()})
            for i in np.flatnonzero(done):
                sec.timetraces.append({"section": sec.name, "figure": label, "unit": unit, "repeat": int(i),
                                       "t_s": _num(hold["t_s"].values[i]), "temperature_k": None,
                                       "value": _num(values[i]), "expanded_uncertainty": None})
            taus, adev, pairs = allan_deviation(values, interval)
            sec.allan += [{"section": sec.name, "figure": label, "tau_s": float(t), "adev": _num(a), "pairs": int(p)}
                          for t, a, p in zip(taus, adev, pairs)]
        if int(done.sum()) < hold.sizes["check"]:
            sec.warnings.append(f"twpa_hold: {int(done.sum())} of {hold.sizes['check']} checks done")
    sec.files += report.tables + report.plots
    return [sec]


# -- what is in the run -------------------------------------------------------------------------------

def sections_for_run(run_path: Path, out: Path) -> list[Section]:
    """Every section the run's contents give, their procedure tables and plots written to ``out``."""
    from cryodaq.storage import open_run

    run = open_run(run_path)
    root = run.root
    present = set(root["sweeps"].group_keys()) if "sweeps" in root else set()
    out.mkdir(parents=True, exist_ok=True)
    sections = [*_paramp_sections(run_path, present, out), *_resonator_sections(run_path, present, out),
                *_repeat_sections(run_path, present, out), *_twpa_sections(run_path, present, out)]
    return sections


def jsonable_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for CSV: dict values (conditions) as JSON text."""
    return [{k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in r.items()} for r in rows]
