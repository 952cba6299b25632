"""Plots and tables of an analysis: the spectrum with its fitted lines, gain curves, drift corrections.

Written with matplotlib's object API (no pyplot state, no display needed) into the results folder
of :func:`cryodaq.analysis.analyze_run`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cryodaq.analysis.result import AnalysisResult
    from cryodaq.analysis.linefit import LineFit

__all__ = ["line_table", "plot_spectrum", "write_report"]


def line_table(fits: list[LineFit], channel: int | str = "all") -> list[dict[str, Any]]:
    """One row per fit: FWHM, position and their 1σ errors, resolving power, goodness of fit."""
    rows = []
    for f in fits:
        rows.append({
            "channel": channel, "line": f.line, "peak_energy_ev": round(f.peak_energy, 4),
            "fwhm_ev": f.fwhm, "fwhm_err_ev": f.fwhm_err, "position_ev": f.position, "position_err_ev": f.position_err,
            "position_offset_ev": f.position - f.peak_energy, "resolving_power": f.peak_energy / f.fwhm,
            "resolving_power_err": f.peak_energy * f.fwhm_err / f.fwhm**2, "counts_in_window": int(f.counts.sum()),
            "integral": f.values["integral"], "background_per_bin": f.values["background"],
            "bin_ev": float(f.edges[1] - f.edges[0]), "deviance": f.deviance, "dof": f.dof,
            "reduced_chi2": f.reduced_chi2, "p_value": f.p_value,
        })
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def plot_spectrum(fits: list[LineFit], path: Path, title: str = "") -> Path:
    """One panel per fitted line: the histogram, the fitted model, FWHM ± σ and position in the legend."""
    from matplotlib.figure import Figure

    n = max(len(fits), 1)
    fig = Figure(figsize=(5.5 * n, 4.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, f in zip(axes, fits):
        centres = 0.5 * (f.edges[1:] + f.edges[:-1])
        ax.stairs(f.counts, f.edges, color="#0072B2", label=f"data ({int(f.counts.sum())} counts)")
        x = np.linspace(f.edges[0], f.edges[-1], 1200)
        ax.plot(x, f.curve(x), color="#D55E00", lw=1.6,
                label=(f"fit: FWHM {f.fwhm:.3f} ± {f.fwhm_err:.3f} eV\n"
                       f"peak {f.position:.3f} ± {f.position_err:.3f} eV\n"
                       f"χ²/dof {f.deviance:.1f}/{f.dof}"))
        ax.plot(centres, f.model, ls="none", marker=".", ms=2, color="#D55E00", alpha=0.4)
        ax.axvline(f.peak_energy, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel(f"counts / {f.edges[1] - f.edges[0]:g} eV")
        ax.set_title(f.line)
        ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def _plot_gain(result: AnalysisResult, path: Path) -> Path | None:
    from matplotlib.figure import Figure

    curves = [(c.channel, c.curve) for c in result.channels if c.curve is not None]
    if not curves:
        return None
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    for ch, curve in curves:
        vmax = 1.2 * max(p.value for p in curve.points)
        v = np.linspace(vmax / 200, vmax, 200)
        line, = ax.plot(v, v / curve(v), lw=1, label=f"ch {ch} ({curve.kind})")
        pv = np.array([p.value for p in curve.points])
        pe = np.array([p.energy_ev for p in curve.points])
        ax.plot(pv, pv / pe, "o", color=line.get_color(), ms=4)
    ax.set_xlabel(f"{result.feature} (drift-corrected)")
    ax.set_ylabel("gain: value per eV")
    ax.set_title("gain curves and calibration points")
    if len(curves) <= 10:
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return path


def _plot_drift(result: AnalysisResult, path: Path, value: np.ndarray, value_dc: np.ndarray,
                indicator: np.ndarray | None, channel: np.ndarray, good: np.ndarray) -> Path | None:
    from matplotlib.figure import Figure

    withdrift = [c for c in result.channels if c.drift is not None]
    if not withdrift or indicator is None:
        return None
    c = max(withdrift, key=lambda r: r.n_good)  # the best-populated channel
    sel = good & (channel == c.channel)
    v, vd, p = value[sel], value_dc[sel], indicator[sel]
    centre = np.median(v)
    near = np.abs(v - centre) < 0.03 * abs(centre)  # the dominant line
    fig = Figure(figsize=(10, 4), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    a1.plot(p[near], v[near], ".", ms=2, alpha=0.5, label="before")
    a1.plot(p[near], vd[near], ".", ms=2, alpha=0.5, label="after")
    a1.set_xlabel(c.drift.indicator)
    a1.set_ylabel(result.feature)
    a1.set_title(f"channel {c.channel}: slope {c.drift.slope:.4g} per unit")
    a1.legend(fontsize=8)
    lo, hi = np.percentile(v[near], [1, 99]) if near.any() else (centre * 0.99, centre * 1.01)
    bins = np.linspace(lo, hi, 120)
    a2.hist(v[near], bins, histtype="step", label=f"before: FWHM {c.drift.width_before:.4g}")
    a2.hist(vd[near], bins, histtype="step", label=f"after: FWHM {c.drift.width_after:.4g}")
    a2.set_xlabel(result.feature)
    a2.set_title("dominant line")
    a2.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def write_report(result: AnalysisResult, out: Path, *, value: np.ndarray, value_dc: np.ndarray,
                 indicator: np.ndarray | None, channel: np.ndarray, good: np.ndarray) -> list[Path]:
    """Plots (``spectrum.png``, ``gain_curves.png``, ``drift.png``) and tables (``lines.csv``,
    ``channels.csv``) of ``result`` in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    rows = line_table(result.fits)
    for ch, fits in sorted(result.channel_fits.items()):
        rows += line_table(fits, ch)
    if rows:
        files.append(_write_csv(out / "lines.csv", rows))
    chan_rows = []
    for c in result.channels:
        row: dict[str, Any] = {"channel": c.channel, "events": c.n_events, "good": c.n_good}
        if c.drift is not None:
            row.update(drift_slope=c.drift.slope, drift_offset=c.drift.offset,
                       peak_fwhm_before=c.drift.width_before, peak_fwhm_after=c.drift.width_after)
        if c.curve is not None:
            for p in c.curve.points:
                row[f"value_{p.line}"] = p.value
        row["message"] = c.message.strip()
        chan_rows.append(row)
    files.append(_write_csv(out / "channels.csv", chan_rows))
    if result.fits:
        files.append(plot_spectrum(result.fits, out / "spectrum.png", f"{result.run_path.name}: {result.label}"))
    for p in (_plot_gain(result, out / "gain_curves.png"),
              _plot_drift(result, out / "drift.png", value, value_dc, indicator, channel, good)):
        if p is not None:
            files.append(p)
    return files
