"""``cryodaq coincide``: the events of several runs (or of the channels of one run) joined in time.

Each run's event times come from its own clock model (:class:`~cryodaq.timing.clock.ClockModel`:
sample index -> UTC; the stored ``t`` only picks a segment where a counter restarted). The
*units* joined are the runs, or, for one run, its channels. Flow:

1. **read** (Dask tasks, each reading a slice of a run's events from the Zarr run itself): model
   times, channels, amplitudes, flags;
2. **offsets**: the clocks of different stations disagree (by their absolute uncertainties, ms for
   NTP). Each run's events are grouped among themselves (a muon lighting 16 pixels is one cluster);
   the differences between the cluster times of the reference run (the first) and of each other run
   are histogrammed over ``±search`` (default: 3 × the runs' combined stated uncertainty): a real
   coincidence signal is a peak on the flat accidental background. Its median and linear trend give
   the clock offset (at mid-run) and relative drift between the stations, which are taken out;
3. **groups**: every event of every unit, merged in time, chained within ``window``
   (:func:`cryodaq.dsp.coincidence.chain_groups`); a group that holds two or more units is a
   coincidence (members, time spread, multiplicity);
4. **accidentals**: expected from the units' cluster rates, ``Σ_{u<v} R_u R_v (2W + s_u + s_v)``
   (``s``: mean cluster spread), next to the rate measured in off-time windows — the same grouping
   with unit ``u`` shifted by ``k·Δ·u`` (k = ±1 … ±K/2), which no real coincidence survives (Dask
   tasks, one per shift);
5. **written** to ``reprocessed/<label>/`` of the first run (dim ``group``; the members as arrays
   over dim ``member``), with the settings, the inputs, the offsets and the accidentals in its attrs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.dsp.coincidence import chain_groups, distinct_per_group
from cryodaq.errors import RunFormatError
from cryodaq.provenance import software_versions
from cryodaq.reprocess.cluster import dask_client
from cryodaq.storage.derived import write_derived
from cryodaq.storage.format import EVENTS, T_ATTRS, RunStatus
from cryodaq.storage.reader import Run, open_run
from cryodaq.timing.clock import ClockModel

__all__ = ["Accidentals", "CoincidenceResult", "OffsetEstimate", "coincide", "estimate_offset"]

_READ_ROWS = 1 << 20  # events per read task
DASK_FROM_EVENTS = 2_000_000  # by default, runs with fewer events in all are joined in this process


@dataclass(frozen=True)
class _ReadTask:
    run_path: str
    start: int
    stop: int
    model: ClockModel


def read_event_times(task: _ReadTask) -> dict[str, np.ndarray]:
    """One slice of a run's events with model times (runs in a Dask worker: reads the run itself)."""
    run = open_run(task.run_path)
    ev = run.root[EVENTS]
    sl = slice(task.start, task.stop)
    stored = np.asarray(ev["t"][sl], np.int64)
    if task.model.fitted:
        t = task.model.utc_ns(np.asarray(ev["sample_index"][sl], np.int64), t_hint=stored)
    else:  # a run written before cryodaq modelled its clock: its stored times
        t = stored
    return {"t": t, "channel": np.asarray(ev["channel"][sl], np.int32),
            "amplitude": np.asarray(ev["amplitude"][sl], np.float32), "flags": np.asarray(ev["flags"][sl], np.uint16),
            "event": np.arange(task.start, task.stop, dtype=np.int64)}


@dataclass
class OffsetEstimate:
    """Clock offset of a run against the reference run: ``t_run - t_reference`` for simultaneous events
    (at the reference time ``t_mid_ns``), and the relative drift, from the coincidence peak."""

    run_id: str
    found: bool
    offset_s: float = 0.0
    error_s: float = math.nan
    drift_ppm: float = 0.0
    drift_error_ppm: float = math.nan
    drift_applied: bool = False
    n_pairs: int = 0
    background_pairs: float = 0.0
    search_s: float = 0.0
    t_mid_ns: int = 0
    note: str = ""

    def correction_ns(self, t: np.ndarray) -> np.ndarray:
        """What to subtract from this run's times to put them on the reference clock."""
        if not self.found:
            return np.zeros(np.shape(t))
        slope = self.drift_ppm * 1e-6 if self.drift_applied else 0.0
        return self.offset_s * 1e9 + slope * (np.asarray(t, np.float64) - self.t_mid_ns)


@dataclass
class Accidentals:
    """Chance coincidences: expected from the singles rates, and measured in off-time windows (Hz, 1 sigma)."""

    expected_hz: float
    expected_error_hz: float
    measured_hz: float
    measured_error_hz: float
    off_time_counts: int
    off_time_s: float
    shift_step_s: float
    n_shifts: int

    @property
    def pull(self) -> float:
        """(measured - expected) / combined error."""
        err = math.hypot(self.expected_error_hz, self.measured_error_hz)
        return (self.measured_hz - self.expected_hz) / err if err > 0 else math.nan


@dataclass
class CoincidenceResult:
    """What ``coincide`` found and where it wrote it."""

    run_paths: list[Path]
    units: str  # "runs" or "channels"
    label: str
    group: str  # "reprocessed/<label>" in the first run
    window_s: float
    n_events: int
    n_groups: int
    n_coincidences: int
    overlap_s: float
    offsets: list[OffsetEstimate]
    accidentals: Accidentals
    workers: int
    elapsed_s: float
    multiplicity: dict[int, int] = field(default_factory=dict)  # units per coincidence -> count

    @property
    def coincidence_rate_hz(self) -> float:
        return self.n_coincidences / self.overlap_s if self.overlap_s > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        """JSON-able figures (``--output FILE``)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("run_paths", "offsets", "accidentals")}
        out.update(run_paths=[str(p) for p in self.run_paths], offsets=[asdict(o) for o in self.offsets],
                   accidentals={**asdict(self.accidentals), "pull": self.accidentals.pull},
                   coincidence_rate_hz=self.coincidence_rate_hz)
        return json.loads(json.dumps(out, default=float))

    def render(self) -> str:
        """The figures as text (what the command prints)."""
        a = self.accidentals
        lines = [f"{self.n_coincidences} coincidences ({self.units}) in {self.overlap_s:.1f} s of overlap "
                 f"({self.coincidence_rate_hz:.4g} /s); window {self.window_s * 1e6:.4g} us; "
                 f"{self.n_events} events in {self.n_groups} groups"]
        if self.multiplicity:
            lines.append("  " + ", ".join(f"{k} {self.units}: {n}" for k, n in sorted(self.multiplicity.items())))
        for o in self.offsets:
            if o.found:
                drift = (f", drift {o.drift_ppm:+.3f} +- {o.drift_error_ppm:.3f} ppm"
                         f"{' (applied)' if o.drift_applied else ''}")
                lines.append(f"offset {o.run_id}: {o.offset_s * 1e3:+.6f} ms +- {o.error_s * 1e6:.3f} us against "
                             f"the reference{drift} ({o.n_pairs} pairs in the peak, ~{o.background_pairs:.1f} by chance)")
            else:
                lines.append(f"offset {o.run_id}: no coincidence peak within +-{o.search_s:.3g} s ({o.note}); "
                             "joined on the runs' own clocks")
        lines.append(f"accidentals: expected {a.expected_hz:.4g} +- {a.expected_error_hz:.2g} /s, measured "
                     f"{a.measured_hz:.4g} +- {a.measured_error_hz:.2g} /s in {a.n_shifts} off-time windows "
                     f"({a.off_time_counts} chance groups, pull {a.pull:+.2f})")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ pieces
def _clusters(t: np.ndarray, window_ns: float) -> tuple[np.ndarray, np.ndarray]:
    """(first time, spread) of each chain cluster of the sorted times ``t``."""
    if t.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    label = chain_groups(t, window_ns)
    starts = np.flatnonzero(np.r_[True, np.diff(label) > 0])
    ends = np.r_[starts[1:], t.size] - 1
    return t[starts], t[ends] - t[starts]


def _pair_differences(t_ref: np.ndarray, t_other: np.ndarray, search_ns: float) -> tuple[np.ndarray, np.ndarray]:
    """(t_other - t_ref, t_ref) of every pair of sorted times within ``±search_ns``."""
    lo = np.searchsorted(t_ref, t_other - search_ns, "left")
    hi = np.searchsorted(t_ref, t_other + search_ns, "right")
    width = hi - lo
    if width.sum() > 50_000_000:
        raise ValueError(f"offset search of +-{search_ns / 1e9:g} s pairs {int(width.sum())} cluster pairs; "
                         "give a smaller --search")
    diffs, refs = [], []
    for m in range(int(width.max()) if width.size else 0):
        sel = width > m
        r = t_ref[lo[sel] + m]
        diffs.append(t_other[sel] - r)
        refs.append(r)
    if not diffs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(diffs), np.concatenate(refs)


def _peak(d: np.ndarray, width: float, search_ns: float) -> tuple[float, float, float]:
    """(centre, pairs in the best two adjacent bins, median pairs in two bins) of differences ``d``."""
    edges = np.arange(-search_ns, search_ns + width, width)
    counts, _ = np.histogram(d, edges)
    pair = counts[:-1] + counts[1:] if counts.size > 1 else counts
    k = int(np.argmax(pair))
    return float(edges[min(k + 1, edges.size - 1)]), float(pair[k]), float(np.median(pair))


def _scan_drift(d: np.ndarray, x: np.ndarray, window_ns: float, search_ns: float,
                max_drift: float) -> float:
    """The relative drift (dimensionless) that makes the coincidence peak of ``d - drift * x`` highest:
    a coarse scan (8x steps, 8x bins), then a fine one around its best (steps that move the ends of the
    span by about a window)."""
    span = float(x.max() - x.min()) if x.size else 0.0
    if max_drift <= 0 or span * max_drift <= window_ns / 2:
        return 0.0
    step = window_ns / span
    best = 0.0
    for factor, centre, half in ((8.0, 0.0, max_drift), (1.0, None, 8.0 * step)):
        centre = best if centre is None else centre
        grid = np.arange(centre - half, centre + half + factor * step / 2, factor * step)
        scores = [_peak(d - b * x, factor * window_ns, search_ns)[1] for b in grid]
        best = float(grid[int(np.argmax(scores))])
    return best


def estimate_offset(t_ref: np.ndarray, t_other: np.ndarray, window_ns: float, search_ns: float,
                    run_id: str = "", max_drift_ppm: float = 0.0) -> OffsetEstimate:
    """The coincidence peak in the differences of two sorted cluster-time lists (module docstring, 2).

    ``max_drift_ppm``: how fast the two clocks may drift apart (free-running counters); the peak is then
    searched along lines ``offset + drift * t`` too, so a drift that smears it over many windows is found.
    """
    est = OffsetEstimate(run_id, False, search_s=search_ns / 1e9)
    d, ref = _pair_differences(t_ref, t_other, search_ns)
    if d.size < 5:
        est.note = f"{d.size} cluster pairs within the search range"
        return est
    width = max(float(window_ns), 1.0)
    mid = int(np.median(ref))
    x = (ref - mid).astype(np.float64)
    slope = _scan_drift(d, x, width, search_ns, max_drift_ppm * 1e-6)
    r = d - slope * x
    centre, peak, background = _peak(r, width, search_ns)
    excess = peak - background
    if excess < 5 or excess < 5 * math.sqrt(background + 1):
        est.note = f"the highest bin pair holds {int(peak)} pairs against ~{background:.1f} by chance"
        return est
    for half in (2 * width, 1.5 * width):  # refine: the median of the pairs near the peak, twice
        centre = float(np.median(r[np.abs(r - centre) <= half]))
    sel = np.abs(r - centre) <= 1.5 * width
    dd, xx = d[sel].astype(np.float64), x[sel]
    sigma = 1.4826 * float(np.median(np.abs(r[sel] - centre)))
    est.found, est.n_pairs = True, int(sel.sum())
    est.background_pairs = background * 1.5  # the peak's 3 bin widths of flat background
    est.t_mid_ns = mid
    est.offset_s = centre / 1e9
    est.error_s = 1.2533 * sigma / math.sqrt(est.n_pairs) / 1e9 if est.n_pairs > 1 else math.nan
    if est.n_pairs >= 10 and np.ptp(xx) > 0:
        fit, intercept = np.polyfit(xx, dd, 1)
        resid = dd - (fit * xx + intercept)
        s_slope = math.sqrt(float(np.sum(resid**2)) / max(dd.size - 2, 1) / float(np.sum((xx - xx.mean()) ** 2)))
        est.drift_ppm, est.drift_error_ppm = float(fit) * 1e6, s_slope * 1e6
        if abs(fit) > 3 * s_slope:  # a real relative drift: take it out, and the offset at mid-run with it
            est.drift_applied = True
            est.offset_s = float(np.median(dd - fit * xx)) / 1e9
            est.error_s = 1.2533 * 1.4826 * float(np.median(np.abs(resid))) / math.sqrt(est.n_pairs) / 1e9
    return est


def _groups(times: list[np.ndarray], window_ns: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merged (order, unit, group label, units in the group) of per-unit sorted times."""
    t = np.concatenate(times) if times else np.zeros(0, np.int64)
    unit = np.concatenate([np.full(x.size, u, np.int64) for u, x in enumerate(times)]) if times else np.zeros(0, np.int64)
    order = np.argsort(t, kind="stable")
    label = chain_groups(t[order], window_ns)
    return order, unit[order], label, distinct_per_group(label, unit[order])


def count_off_time(times: list[np.ndarray], spans: list[tuple[int, int]], window_ns: float,
                   shift_ns: float) -> tuple[int, float]:
    """Coincidences (groups of two or more units) with unit ``u`` shifted by ``u * shift_ns``, counted
    where every shifted unit was recording; (count, that time in s). A Dask task."""
    shifted = [x + int(round(u * shift_ns)) for u, x in enumerate(times)]
    lo = max(a + u * shift_ns for u, (a, _) in enumerate(spans))
    hi = min(b + u * shift_ns for u, (_, b) in enumerate(spans))
    if hi <= lo:
        return 0, 0.0
    order, _, label, n_units = _groups(shifted, window_ns)
    t = np.concatenate(shifted)[order]
    first = np.flatnonzero(np.r_[True, np.diff(label) > 0])
    inside = (t[first] >= lo) & (t[first] < hi)
    return int(np.count_nonzero((n_units[first] >= 2) & inside)), (hi - lo) / 1e9


def _expected(times: list[np.ndarray], spans: list[tuple[int, int]], window_ns: float) -> tuple[float, float, float]:
    """(expected accidental rate Hz, its error, overlap s) from each unit's cluster rate and spread."""
    lo, hi = max(a for a, _ in spans), min(b for _, b in spans)
    overlap_s = max(hi - lo, 0) / 1e9
    if overlap_s <= 0:
        return 0.0, 0.0, 0.0
    rates, errs, spreads = [], [], []
    for t in times:
        first, spread = _clusters(t[(t >= lo) & (t < hi)], window_ns)
        rates.append(first.size / overlap_s)
        errs.append(math.sqrt(first.size) / overlap_s)
        spreads.append(float(spread.mean()) / 1e9 if spread.size else 0.0)
    w = window_ns / 1e9
    total, var = 0.0, 0.0
    n = len(times)
    for u in range(n):
        for v in range(u + 1, n):
            eff = 2 * w + spreads[u] + spreads[v]
            total += rates[u] * rates[v] * eff
            var += (rates[v] * eff * errs[u]) ** 2 + (rates[u] * eff * errs[v]) ** 2
    return total, math.sqrt(var), overlap_s


def _span(run: Run, model: ClockModel, t: np.ndarray) -> tuple[int, int]:
    """UTC range a run was recording: its clock anchors' range, else its events'."""
    if model.fitted:
        segs = model.segments
        return int(min(s.first_t_ns for s in segs)), int(max(s.last_t_ns for s in segs))
    return (int(t.min()), int(t.max())) if t.size else (0, 0)


def default_label() -> str:
    return f"coincide-{datetime.now(UTC):%Y%m%dT%H%M%S}"


# ------------------------------------------------------------------------------- entry
def coincide(
    runs: Sequence[str | Path],
    window_s: float,
    *,
    label: str | None = None,
    search_s: float | None = None,
    off_time: int = 20,
    shift_s: float | None = None,
    max_drift_ppm: float | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
    write: bool = True,
) -> CoincidenceResult:
    """Join ``runs`` (or one run's channels) in time within ``window_s`` (module docstring).

    ``search_s``: half-width of the clock-offset search (default: 3 × the runs' combined stated
    uncertainty, at least 20 windows, at most 2 s); ``off_time``: off-time windows for the measured
    accidentals (``shift_s`` apart, default max(20 windows, 1 ms)); ``max_drift_ppm``: how fast two
    clocks may drift apart (default: 1.5 × their stated rate uncertainties, 0 between disciplined
    clocks); ``workers``/``scheduler``: Dask as for ``cryodaq reprocess`` (``workers=0``: in this
    process; default: a local cluster for runs of more than :data:`DASK_FROM_EVENTS` events in all,
    since starting one costs seconds). Writes ``reprocessed/<label>/`` in the first run unless
    ``write`` is False.
    """
    t_start = time.perf_counter()
    if not window_s > 0:
        raise ValueError(f"coincidence window must be > 0 s, got {window_s}")
    if off_time < 2 or off_time % 2:
        raise ValueError(f"off_time must be an even number >= 2 of off-time windows, got {off_time}")
    paths = [Path(p) for p in runs]
    if not paths:
        raise ValueError("coincide needs at least one run")
    opened = [open_run(p) for p in paths]
    for run in opened:
        if run.status is RunStatus.RUNNING:
            raise RunFormatError(f"{run.path}: the run is still being written; join it once it has ended")
        if EVENTS not in run.root:
            raise RunFormatError(f"{run.path}: the run has no events to join")
    if len({r.run_id for r in opened}) != len(opened):
        raise ValueError("coincide: the same run was given twice")
    models = [ClockModel.from_attrs(r.attrs.get("clock") or {}) for r in opened]
    window_ns = window_s * 1e9
    tasks = [_ReadTask(str(r.path), a, min(a + _READ_ROWS, r.committed(EVENTS)), m)
             for r, m in zip(opened, models, strict=True) for a in range(0, r.committed(EVENTS), _READ_ROWS)]
    if workers is None and scheduler is None and sum(r.committed(EVENTS) for r in opened) <= DASK_FROM_EVENTS:
        workers = 0
    with dask_client(workers, scheduler, max(len(tasks), off_time)) as (client, n_workers):
        parts = client.gather(client.map(read_event_times, tasks, pure=False)) if client else [
            read_event_times(t) for t in tasks]
        per_run: list[dict[str, np.ndarray]] = []
        for r in opened:
            mine = [p for p, task in zip(parts, tasks, strict=True) if task.run_path == str(r.path)]
            cols = {k: np.concatenate([p[k] for p in mine]) if mine else np.zeros(0) for k in
                    ("t", "channel", "amplitude", "flags", "event")}
            order = np.argsort(cols["t"], kind="stable")
            per_run.append({k: v[order] for k, v in cols.items()})
        spans = [_span(r, m, c["t"]) for r, m, c in zip(opened, models, per_run, strict=True)]

        # offsets of every other run against the first, from the coincidence peak of their clusters
        offsets: list[OffsetEstimate] = []
        if len(opened) > 1:
            ref_clusters, _ = _clusters(per_run[0]["t"], window_ns)
            for r, m, c in list(zip(opened, models, per_run, strict=True))[1:]:
                search = search_s if search_s is not None else _default_search(models[0], m, window_s)
                drift = (max_drift_ppm if max_drift_ppm is not None
                         else 1.5 * math.hypot(models[0].rate_uncertainty_ppm, m.rate_uncertainty_ppm))
                est = estimate_offset(ref_clusters, _clusters(c["t"], window_ns)[0], window_ns, search * 1e9, r.run_id,
                                      max_drift_ppm=drift)
                offsets.append(est)
                if est.found:
                    c["t"] = c["t"] - np.rint(est.correction_ns(c["t"])).astype(np.int64)
                    a, b = spans[opened.index(r)]
                    spans[opened.index(r)] = (int(a - est.correction_ns(np.array([a]))[0]),
                                              int(b - est.correction_ns(np.array([b]))[0]))
                    order = np.argsort(c["t"], kind="stable")
                    for k in c:
                        c[k] = c[k][order]

        # the units joined: the runs, or the channels of a single run
        if len(opened) > 1:
            units = "runs"
            unit_cols = per_run
            unit_run = list(range(len(opened)))
            unit_spans = spans
        else:
            units = "channels"
            c = per_run[0]
            channels = np.unique(c["channel"])
            unit_cols = [{k: v[c["channel"] == ch] for k, v in c.items()} for ch in channels]
            unit_run = [0] * len(unit_cols)
            unit_spans = [spans[0]] * len(unit_cols)
        times = [u["t"] for u in unit_cols]

        # on-time groups
        order, unit, label_, n_units = _groups(times, window_ns)
        merged = {k: np.concatenate([u[k] for u in unit_cols])[order] for k in unit_cols[0]} if unit_cols else {}
        coincident = n_units >= 2

        # accidentals: expected from the singles, measured off time (one Dask task per shift)
        expected, expected_err, overlap_s = _expected(times, unit_spans, window_ns)
        step = shift_s if shift_s is not None else max(20 * window_s, 1e-3)
        shifts = [k * step * 1e9 for k in range(-off_time // 2, off_time // 2 + 1) if k]
        if client is not None:
            scattered = client.scatter(times, broadcast=True)
            futures = [client.submit(count_off_time, scattered, unit_spans, window_ns, s, pure=False) for s in shifts]
            off = client.gather(futures)
        else:
            off = [count_off_time(times, unit_spans, window_ns, s) for s in shifts]
    n_off = sum(n for n, _ in off)
    t_off = sum(t for _, t in off)
    accidentals = Accidentals(expected, expected_err, n_off / t_off if t_off > 0 else math.nan,
                              math.sqrt(n_off) / t_off if t_off > 0 else math.nan, n_off, t_off, step, len(shifts))

    # coincidence groups and their members
    run_of_unit = np.asarray(unit_run, np.int64)
    member_run = run_of_unit[unit] if unit.size else np.zeros(0, np.int64)
    sel = np.flatnonzero(coincident)
    g_label = label_[sel]
    first = np.flatnonzero(np.r_[True, np.diff(g_label) > 0]) if sel.size else np.zeros(0, np.int64)
    last = np.r_[first[1:], sel.size] - 1 if sel.size else np.zeros(0, np.int64)
    t_m = merged["t"][sel] if sel.size else np.zeros(0, np.int64)
    key = member_run[sel] * 65536 + merged["channel"][sel] if sel.size else np.zeros(0, np.int64)
    n_channels = distinct_per_group(g_label, key)[first] if sel.size else np.zeros(0, np.int64)
    runs_mask = np.zeros(first.size, np.int64)
    if sel.size:
        np.bitwise_or.at(runs_mask, np.searchsorted(first, np.arange(sel.size), "right") - 1,
                         np.left_shift(1, member_run[sel]))
    n_in_group = n_units[sel][first] if sel.size else np.zeros(0, np.int64)
    multiplicity = dict(zip(*[v.tolist() for v in np.unique(n_in_group, return_counts=True)], strict=True))
    group_index = np.searchsorted(first, np.arange(sel.size), "right") - 1 if sel.size else np.zeros(0, np.int64)

    label = label or default_label()
    result = CoincidenceResult(
        paths, units, label, f"reprocessed/{label}", window_s, int(sum(t.size for t in times)),
        int(label_[-1] + 1) if label_.size else 0, int(first.size), overlap_s, offsets, accidentals, n_workers,
        0.0, {int(k): int(v) for k, v in multiplicity.items()})
    if write:
        columns = {
            "t": t_m[first], "spread_ns": t_m[last] - t_m[first], "n_events": (last - first + 1).astype(np.int64),
            "n_channels": n_channels.astype(np.int64), "n_units": n_in_group.astype(np.int64), "runs": runs_mask,
            "first_member": first.astype(np.int64),
        }
        column_attrs = {"t": {**T_ATTRS, "long_name": "earliest member, on the first run's clock"},
                        "spread_ns": {"units": "ns", "long_name": "latest minus earliest member"},
                        "runs": {"long_name": "bit r set: the group holds events of input run r"}}
        static = {
            "member_group": (("member",), group_index.astype(np.int64)),
            "member_run": (("member",), member_run[sel].astype(np.int16)),
            "member_event": (("member",), merged["event"][sel].astype(np.int64) if sel.size else np.zeros(0, np.int64)),
            "member_channel": (("member",), merged["channel"][sel].astype(np.int32) if sel.size else np.zeros(0, np.int32)),
            "member_t": (("member",), t_m.astype(np.int64)),
            "member_amplitude": (("member",), merged["amplitude"][sel] if sel.size else np.zeros(0, np.float32)),
            "member_flags": (("member",), merged["flags"][sel] if sel.size else np.zeros(0, np.uint16)),
        }
        attrs = {
            "config": {"window_s": window_s, "search_s": search_s, "off_time": off_time, "shift_s": step,
                       "max_drift_ppm": max_drift_ppm, "units": units},
            "source": {"runs": [{"run_id": r.run_id, "path": str(r.path), "events": r.committed(EVENTS),
                                 "clock": m.describe()} for r, m in zip(opened, models, strict=True)],
                       "software": software_versions()},
            "offsets": [asdict(o) for o in offsets],
            "accidentals": {**asdict(accidentals), "pull": accidentals.pull},
            "counts": {"events": result.n_events, "groups": result.n_groups, "coincidences": result.n_coincidences,
                       "overlap_s": overlap_s, "multiplicity": {str(k): v for k, v in result.multiplicity.items()}},
            "created": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        }
        write_derived(paths[0], label, columns, json.loads(json.dumps(attrs, default=float)),
                      column_attrs=column_attrs, static=static, dim="group", overwrite=overwrite)
    result.elapsed_s = time.perf_counter() - t_start
    return result


def _default_search(a: ClockModel, b: ClockModel, window_s: float) -> float:
    """3 × the two clocks' combined stated uncertainty, at least 20 windows, at most 2 s."""
    ua = a.uncertainty_s if a.uncertainty_s is not None else 1.0
    ub = b.uncertainty_s if b.uncertainty_s is not None else 1.0
    return float(min(max(3 * math.hypot(ua, ub), 20 * window_s), 2.0))
