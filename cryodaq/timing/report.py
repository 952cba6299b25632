"""``cryodaq info --timing RUN``: a run's clock model in full, its residuals, and a plot of them.

The residuals are the stored stamps (``clock/``, jumps taken out) minus the model: the stamps'
jitter, and any structure the straight line misses (a drifting oscillator, a host clock being
slewed). The plot goes to ``<run_id>.results/clock_residuals.png`` beside the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cryodaq.storage.format import CLOCK, results_dir_for
from cryodaq.storage.reader import Run, open_run
from cryodaq.timing.clock import ANCHOR_OUTLIER, ClockModel

__all__ = ["ClockResiduals", "clock_residuals", "plot_clock", "timing_report"]


@dataclass
class ClockResiduals:
    """Stored anchors of a run against its model: ``residual_ns`` = continuous stamp - model."""

    sample_index: np.ndarray
    t_ns: np.ndarray
    residual_ns: np.ndarray
    outlier: np.ndarray
    segment: np.ndarray


def clock_residuals(run: Run, model: ClockModel) -> ClockResiduals | None:
    """The residuals of the run's stored anchors (None when the run stored none: a crashed or older run)."""
    if CLOCK not in run.root or not model.fitted:
        return None
    ds = run.dataset(CLOCK)
    n = np.asarray(ds["sample_index"].values, np.float64)
    t = np.asarray(ds["t"].values, np.int64)
    seg = np.asarray(ds["segment"].values, np.int64)
    cont = model.continuous_stamps(n, t, seg)
    mapped = np.zeros(n.shape, np.int64)
    for k, s in enumerate(model.segments):
        sel = seg == k
        mapped[sel] = s.utc_ns(n[sel])
    return ClockResiduals(n, t, (cont - mapped).astype(np.float64), np.asarray(ds["status"].values) == ANCHOR_OUTLIER,
                          seg)


def _iso(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _us(ns: float) -> str:
    return f"{ns / 1e3:.3f} us"


def timing_report(run_path: str | Path, *, plot: bool = True) -> tuple[str, Path | None]:
    """(the text ``cryodaq info --timing`` prints, the residual plot written or None)."""
    run = open_run(run_path)
    model = ClockModel.from_attrs(run.attrs.get("clock") or {})
    unc = "unknown (the source states none)" if model.uncertainty_s is None else f"{model.uncertainty_s:.3g} s"
    lines = [
        f"run            {run.run_id}",
        f"time source    {model.source}{' (disciplined)' if model.disciplined else ''}: {model.detail}",
        f"uncertainty    {unc} absolute (1 sigma)"
        + (f", +{model.rate_uncertainty_ppm:g} ppm of the time since start (undisciplined)"
           if model.rate_uncertainty_ppm else ""),
        f"nominal rate   {model.nominal_rate_hz:.9g} Hz" if model.nominal_rate_hz else "nominal rate   ?",
    ]
    if not model.fitted:
        lines.append("model          none stored (a run written before cryodaq modelled its clock)")
    for k, s in enumerate(model.segments):
        drift_sd = np.sqrt(s.slope_var) / s.ns_per_sample * 1e6
        drift = (1e9 / model.nominal_rate_hz / s.ns_per_sample - 1.0) * 1e6 if model.nominal_rate_hz else 0.0
        lines += [
            f"segment {k}      samples {s.first_sample} .. {s.last_sample}, stamps {_iso(s.first_t_ns)} .. "
            f"{_iso(s.last_t_ns)}",
            f"  model        t = {_iso(s.t_ref_ns)} + (n - {s.n_ref:.1f}) x {s.ns_per_sample:.6f} ns",
            f"  drift        {drift:+.4f} +- {drift_sd:.4f} ppm against the nominal rate",
            f"  jitter       {_us(s.jitter_ns)} RMS over {s.n_anchors} anchors ({s.n_outliers} outliers left out); "
            f"line known to {_us(float(s.line_uncertainty_ns(s.n_ref)))} at its centre",
        ]
    for j in model.jumps:
        lines.append(f"jump           {j.size_ns / 1e9:+.9f} s at sample {j.sample_index} (stamp {_iso(j.t_ns)}, "
                     f"segment {j.segment}); later times stay in the clock the run started with")
    host = model.host_clock or {}
    if host.get("daemon"):
        lines.append(f"host clock     {host['daemon']} ({host.get('command', '')}): offset {host.get('offset_s', 0):+.3g} s, "
                     f"error bound {host.get('error_s', 0):.3g} s, worst {host.get('max_error_s', 0):.3g} s over "
                     f"{host.get('readings', 0)} readings, stratum {host.get('stratum', '?')}")
    else:
        lines.append(f"host clock     no time daemon seen ({host.get('detail', 'not recorded')})")
    res = clock_residuals(run, model)
    path = None
    if res is not None:
        good = res.residual_ns[~res.outlier]
        if good.size:
            pct = np.percentile(np.abs(good), [50, 99])
            lines.append(f"residuals      {good.size} anchors: RMS {_us(float(np.sqrt(np.mean(good**2))))}, "
                         f"|r| median {_us(pct[0])}, 99 % {_us(pct[1])}, max {_us(float(np.abs(good).max()))}")
        if plot:
            path = plot_clock(run, model, res)
    else:
        lines.append("residuals      no anchors stored (clock/ absent: a crashed run keeps only its model)")
    return "\n".join(lines), path


def plot_clock(run: Run, model: ClockModel, res: ClockResiduals, out: Path | None = None) -> Path:
    """Residuals (us) against time since the first anchor, outliers and jumps marked; the host clock's
    offset below when the run logged it. Written to ``out`` (default ``<run_id>.results/clock_residuals.png``)."""
    from matplotlib.figure import Figure

    host = "host_clock_offset" in run.housekeeping_names
    fig = Figure(figsize=(8.0, 5.5 if host else 3.6))
    axes = fig.subplots(2 if host else 1, 1, squeeze=False)[:, 0]
    t0 = int(res.t_ns.min()) if res.t_ns.size else 0
    x = (res.t_ns - t0) / 1e9
    ax = axes[0]
    ax.plot(x[~res.outlier], res.residual_ns[~res.outlier] / 1e3, ".", ms=2, label="stamp - model")
    if res.outlier.any():
        ax.plot(x[res.outlier], np.clip(res.residual_ns[res.outlier] / 1e3, *ax.get_ylim()), "x", color="#D55E00",
                label="outlier (clipped)")
    for j in model.jumps:
        ax.axvline((j.t_ns - j.size_ns - t0) / 1e9, color="k", lw=0.8, ls="--")
    ax.set_ylabel("residual (us)")
    ax.set_title(f"{run.run_id}: {model.source}, drift {model.drift_ppm:+.3f} ppm, jitter {model.jitter_ns / 1e3:.3g} us",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    if host:
        hk = run.housekeeping("host_clock_offset")
        ht, hv = np.asarray(hk["t"].values), np.asarray(hk["value"].values)
        axes[1].plot((ht - t0) / 1e9, hv * 1e3, ".-", ms=3)
        axes[1].set_ylabel("host clock offset (ms)")
    axes[-1].set_xlabel("time since the first anchor (s)")
    fig.tight_layout()
    out = out or results_dir_for(run.path) / "clock_residuals.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
