"""``cryodaq analyze RUN --config analysis.yaml``: summaries, cuts, drift correction, calibration, line fits.

Per channel of the source events (``events/`` — live, imported LJH/OFF — or ``reprocessed/<label>/``):

1. **summaries** (:func:`~cryodaq.analysis.summaries.summarize_pulses`) from the stored records, where
   the events do not carry them already (the live optimal-filter stage adds them; OFF imports carry
   ``pretrig_mean`` and ``residual_std``);
2. **cuts**: flag cuts, learnt outlier cuts, named range cuts, experiment states
   (:mod:`~cryodaq.analysis.cuts`), stored as a bit mask per event;
3. **drift correction** of the feature (``of_amplitude`` …) against ``pretrig_mean`` on the good
   pulses (:func:`~cryodaq.analysis.drift.drift_correct`);
4. **calibration**: the lines' peaks (automatic assignment or a plan), each refined by a line-shape
   fit in the rough energy scale, then a monotonic gain curve (:class:`~cryodaq.analysis.calibration.GainCurve`);

then **line fits** of the combined calibrated spectrum (:func:`~cryodaq.analysis.linefit.fit_line`).
Everything goes to ``analysis/<label>/`` in the run (columns per event; attrs with the config,
cuts, drift corrections, gain curves and fits) and, with plots on, to
``<run_id>.results/analysis/<label>/``: ``spectrum.png``, ``gain_curves.png``, ``drift.png``,
``lines.csv`` and ``channels.csv``.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.analysis.calibration import CalibrationPoint, GainCurve, assign_lines, line_energy
from cryodaq.analysis.config import AnalysisConfig, FitSettings, as_analysis_config
from cryodaq.analysis.cuts import ALL_CHANNELS, Cut, CutSet, auto_cuts
from cryodaq.analysis.drift import drift_correct
from cryodaq.analysis.linefit import LineFit, fit_line, histogram
from cryodaq.analysis.lines import get_line
from cryodaq.analysis.report import write_report
from cryodaq.analysis.result import AnalysisResult, ChannelAnalysis
from cryodaq.analysis.summaries import SUMMARY_COLUMNS, summarize_pulses
from cryodaq.dsp import EventFlag
from cryodaq.errors import DerivedExistsError, RunFormatError, StationConfigError
from cryodaq.provenance import software_versions
from cryodaq.storage import DerivedWriter, Run, RunStatus, open_run
from cryodaq.storage.experiment_state import ExperimentStates, read_experiment_state
from cryodaq.storage.format import ANALYSIS, EVENT, results_dir_for

__all__ = ["analyze_run", "default_label"]

log = logging.getLogger(__name__)

_FEATURES = ("of_amplitude", "filt_value", "amplitude")
_MIN_FIT_COUNTS = 20  # fewer counts in a calibration line's window: its peak's point stays


def default_label() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}"


# --------------------------------------------------------------------------------------------- input
def _source(run: Run, cfg: AnalysisConfig) -> tuple[Any, dict[str, Any]]:
    """The source events (a loaded Dataset, ``records`` left lazy) and their records' attrs."""
    file = cfg.path or "(analysis config)"
    if cfg.source == "events":
        if "events" not in run.root:
            raise RunFormatError(f"{run.path}: the run has no events")
        ds = run.events()
    else:
        label = cfg.source.split("/", 1)[1]
        if label not in run.reprocessed_labels:
            raise StationConfigError(file, "source", f"one of the run's groups reprocessed/{run.reprocessed_labels}",
                                     cfg.source)
        ds = run.reprocessed(label)
    rec_attrs = dict(ds["records"].attrs) if "records" in ds else {}
    small = [v for v in ds.data_vars if v != "records"]
    return ds[small].load().assign(records=ds["records"]) if "records" in ds else ds.load(), rec_attrs


def _feature(ds: Any, cfg: AnalysisConfig) -> str:
    if cfg.feature is not None:
        if cfg.feature not in ds:
            raise StationConfigError(cfg.path or "(analysis config)", "feature",
                                     f"a column of the source events {sorted(ds.data_vars)}", cfg.feature)
        return cfg.feature
    for name in _FEATURES:
        if name in ds and np.isfinite(ds[name].values).any():
            return name
    raise RunFormatError("the source events have none of the pulse-height columns " + ", ".join(_FEATURES))


def _polarity(run: Run) -> int:
    trig = ((run.attrs.get("config") or {}).get("pipeline") or {}).get("trigger") or {}
    return int(trig.get("polarity", 1))


def _states(run: Run, cfg: AnalysisConfig) -> ExperimentStates | None:
    if cfg.experiment_state:
        return read_experiment_state(cfg.experiment_state)
    if "experiment_state" in run.root:
        ds = run.dataset("experiment_state").load()
        return ExperimentStates(ds["t"].values.astype(np.int64), tuple(str(x) for x in ds["label"].values),
                                str(ds.attrs.get("source", "")))
    return None


# --------------------------------------------------------------------------------------------- steps
def _summaries(ds: Any, rec_attrs: dict[str, Any], polarity: int, channels: np.ndarray,
               channel: np.ndarray, want: bool) -> dict[str, np.ndarray]:
    """Summary columns: the stored ones, else computed from the records (per channel)."""
    n = ds.sizes[EVENT]
    cols = {k: ds[k].values.astype(float) for k in (*SUMMARY_COLUMNS, "residual_std") if k in ds}
    missing = [k for k in SUMMARY_COLUMNS if k not in cols]
    if not want or not missing or "records" not in ds:
        return cols
    pre, rate = rec_attrs.get("presamples"), rec_attrs.get("sample_rate_hz")
    if pre is None or rate is None:
        log.warning("records lack presamples/sample_rate_hz attrs: no pulse summaries")
        return cols
    out = {k: np.full(n, np.nan) for k in missing}
    for ch in channels:
        rows = np.flatnonzero(channel == ch)
        if rows.size == 0:
            continue
        recs = np.asarray(ds["records"].values[rows], dtype=float)
        try:
            summ = summarize_pulses(recs, int(pre), float(rate), polarity=polarity)
        except ValueError as exc:
            log.warning("channel %s: no summaries (%s)", ch, exc)
            continue
        for k in missing:
            out[k][rows] = summ[k]
    cols.update(out)
    return cols


def _cut_set(cfg: AnalysisConfig, columns: dict[str, np.ndarray], channel: np.ndarray,
             have_states: bool) -> CutSet:
    cs = cfg.cuts
    cuts = CutSet()
    bits = 0
    for name in cs.flags:
        bits |= int(EventFlag[name])
    if bits and "flags" in columns:
        cuts.add(Cut("flags", "flags", {ALL_CHANNELS: (bits, None)}, "flags",
                     description="no " + "/".join(cs.flags) + " flag"))
    if cs.states:
        if not have_states:
            raise StationConfigError(cfg.path or "(analysis config)", "cuts.states",
                                     "a run with experiment states (an experiment_state/ group or experiment_state:)",
                                     list(cs.states))
        cuts.add(Cut("states", "state", {}, "state", cs.states, "experiment state in " + ", ".join(cs.states)))
    for r in cs.ranges:
        if r.column not in columns:
            raise StationConfigError(cfg.path or "(analysis config)", f"cuts.ranges.{r.name}.column",
                                     f"a column of the events {sorted(columns)}", r.column)
        cuts.add(Cut(r.name, r.column, {ALL_CHANNELS: (r.min, r.max)}, "range"))
    if cs.auto:
        base = cuts.good(cuts.evaluate(columns, channel)) if cuts.cuts else None
        for c in auto_cuts(columns, channel, n_sigma=cs.n_sigma, use=base, names=cs.auto_columns):
            cuts.add(c)
    return cuts


def _refine_points(values: np.ndarray, rough: GainCurve, lines: list[str | float], cfg: AnalysisConfig,
                   ) -> list[CalibrationPoint]:
    """Each line's feature value from a line-shape fit in the rough energy scale (mass2's fine calibration)."""
    energies = rough(values)
    cal = cfg.calibration
    refs = sorted((line_energy(x), x) for x in lines)
    points = []
    for i, (e0, line) in enumerate(refs):
        half = _half_window(e0, [e for e, _ in refs], cal.fit_window_ev)
        bin_ev = cal.bin_ev or _default_bin(half)
        try:
            counts, edges = histogram(energies, e0 - half, e0 + half, bin_ev)
            if counts.sum() < _MIN_FIT_COUNTS:
                raise ValueError(f"{int(counts.sum())} counts in the window; a shape fit needs {_MIN_FIT_COUNTS}")
            fit = fit_line(counts, edges, get_line(line))
            if not (np.isfinite(fit.position) and edges[0] < fit.position < edges[-1]):
                raise ValueError(f"fitted position {fit.position:.6g} outside the window")
        except ValueError as exc:
            log.info("calibration line %s: no shape fit (%s); the peak's point stays", line, exc)
            points.append(next(p for p in rough.points if p.line == str(line)))
            continue
        value = float(rough.inverse(fit.position))
        err = float(abs(rough.inverse(fit.position + fit.position_err) - value))
        points.append(CalibrationPoint(str(line), value, get_line(line).peak_energy, err))
    return points


def _half_window(e0: float, all_e: list[float], width: float | None) -> float:
    """Half width of a line's fit window: the given one, else 1 % of the energy (at least 20 eV for X-rays);
    never past half-way to a neighbouring line."""
    half = 0.5 * width if width else max(0.01 * e0, min(20.0, 0.25 * e0))
    gaps = [abs(e - e0) for e in all_e if e != e0]
    return min(half, 0.5 * min(gaps)) if gaps else half


def _default_bin(half: float) -> float:
    return float(10 ** math.floor(math.log10(half / 60.0)) * 2.5) if half > 0 else 1.0


def _calibrate(values: np.ndarray, cfg: AnalysisConfig) -> GainCurve:
    cal = cfg.calibration
    if cal.plan:
        points = []
        for value, line in cal.plan:
            near = values[np.abs(values - value) <= 0.02 * value]
            if near.size < 5:
                raise ValueError(f"calibration plan: {near.size} events within 2 % of {value:g} (line {line})")
            points.append(CalibrationPoint(str(line), float(np.median(near)), line_energy(line)))
        lines = [line for _, line in cal.plan]
    else:
        points = assign_lines(values, list(cal.lines))
        lines = list(cal.lines)
    rough = GainCurve(points, kind=cal.curve if len(points) > 1 else "linear", degree=cal.degree)
    if not cal.refine:
        return rough
    return GainCurve(_refine_points(values, rough, lines, cfg), kind=rough.kind, degree=cal.degree)


def _fit_spectrum(energies: np.ndarray, spec: FitSettings, all_lines: list[float]) -> LineFit:
    line = get_line(spec.line)
    if spec.window_ev is not None:
        lo, hi = spec.window_ev
    else:
        half = _half_window(line.peak_energy, all_lines, None)
        lo, hi = line.peak_energy - half, line.peak_energy + half
    bin_ev = spec.bin_ev or _default_bin(0.5 * (hi - lo))
    counts, edges = histogram(energies, lo, hi, bin_ev)
    return fit_line(counts, edges, line, tail=spec.tail)


# --------------------------------------------------------------------------------------------- driver
def analyze_run(
    run_path: str | Path,
    config: AnalysisConfig | dict[str, Any] | str | Path | None = None,
    label: str | None = None,
    *,
    overwrite: bool = False,
    results_dir: str | Path | None = None,
) -> AnalysisResult:
    """Analyse a finished run (module docstring); returns what was found and where it went.

    ``config``: an :class:`AnalysisConfig`, a document, a YAML file or None (defaults: summaries,
    cuts, drift correction; no calibration and no fits). Writes ``analysis/<label>/`` (default
    label: UTC now) and, unless ``plots: false``, plots and tables in ``results_dir`` (default
    ``<run_id>.results/analysis/<label>/``). An existing label is refused unless ``overwrite``.
    """
    cfg = as_analysis_config(config)
    run = open_run(run_path)
    if run.status is RunStatus.RUNNING:
        raise RunFormatError(f"{run.path}: the run is still being written; analyse it once it has ended")
    label = label or default_label()
    if label in run.analysis_labels and not overwrite:
        raise DerivedExistsError(f"{run.path}: {ANALYSIS}/{label} already exists; choose another label or overwrite it")
    ds, rec_attrs = _source(run, cfg)
    n = ds.sizes[EVENT]
    feature = _feature(ds, cfg)
    channel = ds["channel"].values.astype(np.int64)
    all_channels = np.unique(channel)
    channels = all_channels if cfg.channels is None else np.array(cfg.channels, np.int64)
    missing = sorted(set(channels.tolist()) - set(all_channels.tolist()))
    if missing:
        raise StationConfigError(cfg.path or "(analysis config)", "channels",
                                 f"channels of the run {all_channels.tolist()}", missing)
    t = ds["t"].values.astype(np.int64)
    value = ds[feature].values.astype(float)
    columns = _summaries(ds, rec_attrs, _polarity(run), channels, channel, cfg.summaries)
    columns[feature] = value
    if "flags" in ds:
        columns["flags"] = ds["flags"].values
    states = _states(run, cfg)
    if states is not None:
        columns["state"] = states.label_at(t)
    cuts = _cut_set(cfg, columns, channel, states is not None)
    mask = cuts.evaluate(columns, channel)
    in_channels = np.isin(channel, channels)
    good = cuts.good(mask) & in_channels & np.isfinite(value)
    cal_ok = good & (np.isin(columns["state"], list(cfg.calibration.states)) if cfg.calibration.states and
                     states is not None else good)

    value_dc = value.copy()
    energy = np.full(n, np.nan)
    results: list[ChannelAnalysis] = []
    indicator = cfg.drift.indicator
    for ch in channels:
        mine = channel == ch
        res = ChannelAnalysis(int(ch), int(mine.sum()), int((mine & good).sum()))
        results.append(res)
        if cfg.drift.enabled:
            if indicator not in columns:
                res.message += f"no drift correction (no {indicator} column); "
            else:
                try:
                    res.drift = drift_correct(value[mine & good], columns[indicator][mine & good],
                                              smooth_sigma=cfg.drift.smooth_sigma, indicator_name=indicator)
                    value_dc[mine] = res.drift.apply(value[mine], columns[indicator][mine])
                except ValueError as exc:
                    res.message += f"no drift correction ({exc}); "
        if cfg.calibration.enabled:
            try:
                res.curve = _calibrate(value_dc[mine & cal_ok], cfg)
                energy[mine] = res.curve(value_dc[mine])
            except ValueError as exc:
                res.message += f"not calibrated ({exc}); "
                log.warning("channel %s: not calibrated: %s", ch, exc)
    fits: list[LineFit] = []
    channel_fits: dict[int, list[LineFit]] = {}
    calibrated = good & np.isfinite(energy)
    all_lines = sorted({get_line(f.line).peak_energy for f in cfg.fits} |
                       {line_energy(x) for x in cfg.calibration.lines} |
                       {line_energy(x) for _, x in cfg.calibration.plan})
    for spec in cfg.fits:
        try:
            fits.append(_fit_spectrum(energy[calibrated], spec, all_lines))
        except ValueError as exc:
            log.warning("line fit %s failed: %s", spec.line, exc)
        if spec.per_channel:
            for ch in channels:
                try:
                    channel_fits.setdefault(int(ch), []).append(
                        _fit_spectrum(energy[calibrated & (channel == ch)], spec, all_lines))
                except ValueError as exc:
                    log.warning("channel %s: line fit %s failed: %s", ch, spec.line, exc)

    result = AnalysisResult(run.path, label, f"{ANALYSIS}/{label}", None, feature, results, fits, channel_fits,
                            energy=energy, good=good)
    _write_group(run, result, cfg, cuts, ds, columns, mask, good, value_dc, energy, feature, states, overwrite)
    if cfg.plots:
        out = Path(results_dir) if results_dir is not None else results_dir_for(run.path) / ANALYSIS / label
        result.results_dir = out
        result.files = write_report(result, out, value=value, value_dc=value_dc, indicator=columns.get(indicator),
                                    channel=channel, good=good)
    return result


def _write_group(run: Run, result: AnalysisResult, cfg: AnalysisConfig, cuts: CutSet, ds: Any,
                 columns: dict[str, np.ndarray], mask: np.ndarray, good: np.ndarray, value_dc: np.ndarray,
                 energy: np.ndarray, feature: str, states: ExperimentStates | None, overwrite: bool) -> None:
    n = ds.sizes[EVENT]
    cols: dict[str, Any] = {
        "source_event": np.arange(n, dtype=np.int64), "t": ds["t"].values.astype(np.int64),
        "channel": ds["channel"].values.astype(np.int32), "value": ds[feature].values.astype(np.float32),
        "value_dc": value_dc.astype(np.float32), "energy": energy.astype(np.float32), "cuts": mask,
        "good": good,
    }
    for k in (*SUMMARY_COLUMNS, "residual_std"):
        if k in columns:
            cols[k] = np.asarray(columns[k]).astype(np.int32 if k == "peak_index" else
                                                    (np.uint8 if k == "shift1" else np.float32))
    if states is not None:
        cols["state_index"] = states.index_at(cols["t"])
    attrs = {
        "config": {**cfg.as_dict(), "feature": feature, "source": cfg.source},
        "source": {"run_id": run.run_id, "group": cfg.source, "events": int(n), "software": software_versions()},
        "cuts": cuts.as_list(),
        "channels": {str(c.channel): {
            "n_events": c.n_events, "n_good": c.n_good, "message": c.message.strip(),
            "drift": None if c.drift is None else c.drift.as_dict(),
            "calibration": None if c.curve is None else c.curve.as_dict()} for c in result.channels},
        "line_fits": [f.as_dict() for f in result.fits],
        "channel_line_fits": {str(k): [f.as_dict() for f in v] for k, v in result.channel_fits.items()},
        "experiment_states": None if states is None else {"labels": list(states.labels), "source": states.source},
    }
    col_attrs = {"t": {"units": "ns"}, "energy": {"units": "eV"}, "value": {"long_name": f"{feature} (source)"},
                 "value_dc": {"long_name": f"{feature}, drift-corrected"},
                 "cuts": {"long_name": "bits of the cuts the event fails (attrs cuts: bit -> cut)"},
                 "good": {"long_name": "passes every cut"}}
    with DerivedWriter.create(run.path, result.label, attrs, overwrite=overwrite, parent=ANALYSIS) as writer:
        writer.append(cols, col_attrs)
