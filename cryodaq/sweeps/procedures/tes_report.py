"""Tables (CSV) and PNG plots of the TES procedures (:mod:`cryodaq.sweeps.procedures.tes`) for the lab notebook.

:func:`analyze_tes_run` reads a stored run, analyzes it again
(:mod:`~cryodaq.sweeps.procedures.tes_analysis`: this module imports the analysis, never the other
way round) and writes them.

:func:`write_iv_report`: ``tes_iv_results.csv`` (R_n, R_p, P_sat per bath temperature and channel),
``tes_iv_points.csv`` (the offset-free IV points), ``tes_thermal_fit.csv`` (K, n, T_c, G per channel),
``tes_iv_curves.png``, ``tes_pr_curves.png``, ``tes_psat_vs_t.png``. :func:`write_noise_report`:
``tes_noise_vs_bias.csv``, ``tes_noise_psd.csv``, ``tes_noise_psd.png``, ``tes_noise_white_vs_bias.png``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from cryodaq.storage.sweep_store import read_sweep
from cryodaq.sweeps.procedures.tes_analysis import (
    EXCLUDED,
    IV,
    NOISE,
    SUPERCONDUCTING,
    ThermalFit,
    analyze_iv_dataset,
    thermal_fits,
)

__all__ = ["TESReport", "analyze_tes_run", "write_iv_report", "write_noise_report"]

log = logging.getLogger(__name__)


@dataclass
class TESReport:
    """What :func:`analyze_tes_run` found and wrote."""

    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    iv: xr.Dataset | None = None
    thermal: list[ThermalFit] | None = None
    noise: xr.Dataset | None = None


def analyze_tes_run(run_path: str | Path, out_dir: str | Path | None = None, **iv_settings: Any) -> TESReport:
    """Tables and plots of the TES sweeps a run holds (``tes_iv``, ``tes_noise_vs_bias``).

    The IV is analyzed again from the stored currents with the settings it was measured with
    (``tes_iv`` attrs), overridden by ``iv_settings`` (``r_shunt_ohm``, ``r_parasitic_ohm``,
    ``p_sat_fraction``, ``normal_range_a``, ``sc_range_a``, ``normal_tolerance``, and
    ``thermal_exponent`` for the P_sat(T) fit). Writes ``tes_iv_results.csv`` (R_n, R_p, P_sat per
    temperature and channel), ``tes_iv_points.csv``, ``tes_thermal_fit.csv`` (K, n, T_c, G per
    channel), ``tes_iv_curves.png``, ``tes_pr_curves.png``, ``tes_psat_vs_t.png``; and
    ``tes_noise_vs_bias.csv``, ``tes_noise_psd.csv``, ``tes_noise_psd.png``, ``tes_noise_white_vs_bias.png``
    — for the sweeps present.
    """
    from cryodaq.storage import open_run
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
        analysis = analyze_iv_dataset(raw, **settings)
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


def write_iv_report(analysis: xr.Dataset, fits: list[ThermalFit], out: Path) -> tuple[list[Path], list[Path]]:
    """Tables and plots of an :func:`~cryodaq.sweeps.procedures.tes_analysis.analyze_iv_dataset` result:
    (tables, plots)."""
    tables = _iv_tables(analysis, fits, out)
    plots = [*_plot_iv(analysis, out), _plot_psat(analysis, fits, out / "tes_psat_vs_t.png")]
    return tables, plots


def write_noise_report(ds: xr.Dataset, out: Path) -> tuple[list[Path], list[Path]]:
    """Tables and plots of a stored ``tes_noise_vs_bias`` sweep: (tables, plots)."""
    return _noise_tables(ds, out), _plot_noise(ds, out)


def _iv_tables(analysis: xr.Dataset, fits: list[ThermalFit], out: Path) -> list[Path]:
    import pandas as pd

    per_t = ["bath_k", "r_n_ohm", "r_n_ohm_err", "r_p_ohm", "r_p_ohm_err", "p_sat_w", "offset_a", "n_points", "iv_ok"]
    results = analysis[per_t].to_dataframe().reset_index()
    points = analysis[["i_tes_a", "v_tes_v", "r_tes_ohm", "p_tes_w", "frac_rn", "branch"]].to_dataframe().reset_index()
    points = points[points["branch"] != EXCLUDED]
    paths = [out / "tes_iv_results.csv", out / "tes_iv_points.csv", out / "tes_thermal_fit.csv"]
    results.to_csv(paths[0], index=False)
    points.to_csv(paths[1], index=False)
    pd.DataFrame([asdict(f) for f in fits]).to_csv(paths[2], index=False)
    return paths


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 4)
    return -(-n // cols), cols


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def _channel_figure(n_ch: int, title: str) -> tuple[Any, np.ndarray]:
    from matplotlib.figure import Figure

    rows, cols = _grid(n_ch)
    fig = Figure(figsize=(3.2 * cols + 0.6, 2.7 * rows + 0.7))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.9, wspace=0.35, hspace=0.45)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_ch:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig, axes


def _plot_iv(analysis: xr.Dataset, out: Path) -> list[Path]:
    temps = analysis["bath_temperature_k"].values
    colours = _colours(len(temps))
    channels = analysis["channel"].values
    ib = analysis["bias_current_a"].values
    paths = []
    fig_iv, ax_iv = _channel_figure(len(channels), "TES IV curves (offset removed) vs bath temperature")
    fig_pr, ax_pr = _channel_figure(len(channels), f"TES Joule power vs R/Rn; P_sat at "
                                                   f"{analysis.attrs.get('p_sat_fraction', 0.9):g} Rn marked")
    for ic, c in enumerate(channels):
        for it, t in enumerate(temps):
            row = analysis.isel(bath_temperature_k=it, channel=ic)
            keep = row["branch"].values != EXCLUDED
            if not keep.any():
                continue
            label = f"{t * 1e3:.4g} mK"
            ax_iv[ic].plot(ib[keep] * 1e3, row["i_tes_a"].values[keep] * 1e6, ".-", ms=3, lw=0.8,
                           color=colours[it], label=label)
            frac, power = row["frac_rn"].values[keep], row["p_tes_w"].values[keep]
            trans = row["branch"].values[keep] != SUPERCONDUCTING
            ax_pr[ic].plot(frac[trans], power[trans] * 1e12, ".-", ms=3, lw=0.8, color=colours[it], label=label)
            psat = float(row["p_sat_w"])
            if math.isfinite(psat):
                ax_pr[ic].plot([analysis.attrs.get("p_sat_fraction", 0.9)], [psat * 1e12], "kx", ms=6)
        ax_iv[ic].set_title(f"channel {c}", fontsize=9)
        ax_iv[ic].set_xlabel("bias current (mA)", fontsize=8)
        ax_iv[ic].set_ylabel("TES current (µA)", fontsize=8)
        ax_pr[ic].set_title(f"channel {c}", fontsize=9)
        ax_pr[ic].set_xlabel("R / Rn", fontsize=8)
        ax_pr[ic].set_ylabel("P (pW)", fontsize=8)
        ax_pr[ic].set_xlim(0, 1.1)
        for ax in (ax_iv[ic], ax_pr[ic]):
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    ax_iv[0].legend(fontsize=6)
    ax_pr[0].legend(fontsize=6)
    for fig, name in ((fig_iv, "tes_iv_curves.png"), (fig_pr, "tes_pr_curves.png")):
        fig.savefig(out / name, dpi=100)
        paths.append(out / name)
    return paths


def _plot_psat(analysis: xr.Dataset, fits: list[ThermalFit], path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.0))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.11, top=0.92)
    ax = fig.add_subplot()
    for ic, fit in enumerate(fits):
        row = analysis.isel(channel=ic)
        colour = f"C{ic % 10}"
        label = f"ch {fit.channel}"
        if fit.ok:
            label += f": G={fit.g_w_per_k * 1e12:.4g}±{fit.g_err * 1e12:.2g} pW/K, Tc={fit.tc_k * 1e3:.5g} mK, n={fit.n:.3g}"
            t_fit = np.linspace(0.0, fit.tc_k, 200)
            ax.plot(t_fit * 1e3, fit.k_w_per_k_n * (fit.tc_k**fit.n - t_fit**fit.n) * 1e12, "-", lw=0.8, color=colour)
        ax.plot(row["bath_k"].values * 1e3, row["p_sat_w"].values * 1e12, "o", ms=4, color=colour, label=label)
    ax.set_xlabel("bath temperature (mK)")
    ax.set_ylabel(f"P_sat at {analysis.attrs.get('p_sat_fraction', 0.9):g} Rn (pW)")
    ax.set_title("P_sat(T_bath) and fits of K (Tc^n − T^n)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.savefig(path, dpi=110)
    return path


def _noise_tables(ds: xr.Dataset, out: Path) -> list[Path]:
    import pandas as pd

    done = ds["done"].values
    per = ds[["white_level_a2_per_hz", "records_used", "i_raw_a"]].isel(bias_current_a=np.flatnonzero(done))
    table = per.to_dataframe().reset_index()
    table["white_noise_a_per_rthz"] = np.sqrt(table["white_level_a2_per_hz"])
    psd = ds["psd"].isel(bias_current_a=np.flatnonzero(done))
    wide = pd.DataFrame({"freq_hz": psd["freq_hz"].values})
    for b in psd["bias_current_a"].values:
        for c in psd["channel"].values:
            wide[f"psd_b{b * 1e6:.6g}uA_ch{c}"] = psd.sel(bias_current_a=b, channel=c).values
    paths = [out / "tes_noise_vs_bias.csv", out / "tes_noise_psd.csv"]
    table.to_csv(paths[0], index=False)
    wide.to_csv(paths[1], index=False)
    return paths


def _log_bins(freqs: np.ndarray, psd: np.ndarray, per_decade: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """PSD averaged in log-spaced frequency bins (for display: a flat line instead of the periodogram's scatter)."""
    nz = (freqs > 0) & np.isfinite(psd)
    f, p = freqs[nz], psd[nz]
    if f.size < 2:
        return f, p
    edges = np.geomspace(f[0], f[-1] * 1.0001, max(2, int(per_decade * np.log10(f[-1] / f[0])) + 1))
    which = np.clip(np.digitize(f, edges) - 1, 0, len(edges) - 2)
    count = np.bincount(which, minlength=len(edges) - 1)
    keep = count > 0
    f_mean = np.bincount(which, f, minlength=len(edges) - 1)[keep] / count[keep]
    return f_mean, np.bincount(which, p, minlength=len(edges) - 1)[keep] / count[keep]


def _plain_formatter() -> Any:
    from matplotlib.ticker import FormatStrFormatter

    return FormatStrFormatter("%g")


def _plot_noise(ds: xr.Dataset, out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    done = ds["done"].values
    biases = ds["bias_current_a"].values
    channels = ds["channel"].values
    freqs = ds["freq_hz"].values
    colours = _colours(len(biases))
    fig, axes = _channel_figure(len(channels), "TES current noise vs bias (pulse-free records, log-binned)")
    for ic, c in enumerate(channels):
        for ib, b in enumerate(biases):
            if not done[ib]:
                continue
            f_bin, p_bin = _log_bins(freqs, ds["psd"].isel(bias_current_a=ib, channel=ic).values)
            axes[ic].loglog(f_bin, np.sqrt(p_bin) * 1e12, lw=0.9, color=colours[ib], label=f"{b * 1e3:.4g} mA")
        axes[ic].yaxis.set_major_formatter(_plain_formatter())
        axes[ic].yaxis.set_minor_formatter(_plain_formatter())
        axes[ic].set_title(f"channel {c}", fontsize=9)
        axes[ic].set_xlabel("frequency (Hz)", fontsize=8)
        axes[ic].set_ylabel("noise (pA/√Hz)", fontsize=8)
        axes[ic].tick_params(labelsize=7)
        axes[ic].grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=6)
    paths = [out / "tes_noise_psd.png", out / "tes_noise_white_vs_bias.png"]
    fig.savefig(paths[0], dpi=100)

    fig2 = Figure(figsize=(7, 4.5))
    fig2.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.9)
    ax = fig2.add_subplot()
    white = np.sqrt(ds["white_level_a2_per_hz"].values)
    for ic, c in enumerate(channels):
        ax.plot(biases[done] * 1e3, white[done, ic] * 1e12, "o-", ms=4, lw=0.8, label=f"ch {c}")
    band = ds.attrs.get("white_band_hz", [math.nan, math.nan])
    ax.set_xlabel("bias current (mA)")
    ax.set_ylabel("white noise (pA/√Hz)")
    ax.set_title(f"white current noise ({band[0]:.4g}–{band[1]:.4g} Hz) vs bias", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig2.savefig(paths[1], dpi=110)
    return paths
