"""Orchestration: plan a run's chunks, run them on Dask, resolve hold-off per segment, filter, write.

Flow (client = this process):

1. read the stream's committed ``sample_index`` -> segments (acquisition restarted its DSP at
   every jump) -> chunks of about ``chunk_s``;
2. one task per chunk on the Dask workers (:func:`._tasks.process_chunk`): the task reads its
   chunk from the Zarr run itself and returns candidate events with records;
3. per segment, one sequential hold-off pass and pile-up flags (:mod:`._assemble`);
4. optionally the optimal-filter stage (:mod:`._optimal`);
5. ``reprocessed/<label>/`` written with the effective config and the source it came from.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cryodaq.config import TriggerConfig
from cryodaq.console import stderr_console
from cryodaq.dsp import EventBatch, EventFlag
from cryodaq.dsp.stats import robust_sigma
from cryodaq.analysis.filters import ChannelFilter, load_filters
from cryodaq.errors import CryodaqError, DerivedExistsError, RunFormatError, StationConfigError, StoppedError
from cryodaq.provenance import software_versions
from cryodaq.reprocess._assemble import assemble_segment
from cryodaq.reprocess._optimal import optimal_filter_stage
from cryodaq.reprocess._plan import chunk_rows, find_segments, plan_chunks
from cryodaq.reprocess.cluster import dask_client
from cryodaq.reprocess._tasks import (
    ChunkResult,
    ChunkTask,
    NoiseSpec,
    TriggerSpec,
    process_chunk,
)
from cryodaq.reprocess.config import ReprocessConfig, as_config
from cryodaq.storage import DerivedWriter, Run, RunStatus, open_run
from cryodaq.storage.format import EVENT, REPROCESSED, SAMPLE, STREAM, T_ATTRS

log = logging.getLogger(__name__)


@dataclass
class ReprocessResult:
    """What a reprocessing job did. ``elapsed_s``: chunk processing only (no cluster start-up)."""

    run_path: Path
    label: str
    group: str  # "reprocessed/<label>"
    n_events: int
    n_segments: int
    n_chunks: int
    rows: int  # stream rows (time samples) read
    n_channels: int
    workers: int  # Dask workers that ran it (0: in this process)
    elapsed_s: float
    total_s: float

    @property
    def samples_per_s(self) -> float:
        """Throughput: channel samples (rows x channels) processed per second."""
        return self.rows * self.n_channels / self.elapsed_s if self.elapsed_s > 0 else math.inf


def default_label() -> str:
    """``YYYYmmddTHHMMSS`` (UTC now)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}"


def _stream_name(run: Run, cfg: ReprocessConfig) -> str:
    names = run.stream_names
    if not names:
        raise RunFormatError(f"{run.path}: the run stored no stream (store_stream: false); reprocessing needs it")
    if cfg.stream is not None:
        if cfg.stream not in names:
            raise StationConfigError(cfg.path or "(reprocess config)", "stream", f"one of the run's streams {names}",
                                     cfg.stream)
        return cfg.stream
    return str(run.main_stream)  # the one acquisition triggered on


def _acquisition_trigger(run: Run) -> TriggerConfig:
    """The trigger settings the run was taken with (defaults for a run that has none)."""
    stored = (run.attrs.get("config") or {}).get("pipeline", {}).get("trigger")
    if not isinstance(stored, dict):
        return TriggerConfig()
    known = set(TriggerConfig.__dataclass_fields__)
    return TriggerConfig(**{k: v for k, v in stored.items() if k in known})


def stored_thresholds(run: Run) -> list[float] | None:
    """The per-channel trigger thresholds acquisition used (``pipeline_calibration``), if stored."""
    cal = run.attrs.get("pipeline_calibration") or {}
    return cal.get("trigger_threshold", cal.get("trigger_threshold_rad"))  # the older name: MKID runs in rad


def _thresholds(
    run: Run, cfg: ReprocessConfig, trig: TriggerConfig, acq: TriggerConfig, data: Any, first_segment: tuple[int, int],
    rate: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-channel thresholds (float32, stream units) and where they came from."""
    n_ch = data.shape[1]
    if cfg.threshold is not None:
        thr = np.asarray(cfg.threshold, dtype=np.float32)
        if thr.ndim == 1 and thr.size != n_ch:
            raise StationConfigError(cfg.path or "(reprocess config)", "threshold",
                                     f"one threshold per channel ({n_ch})", list(cfg.threshold))  # type: ignore[arg-type]
        return np.broadcast_to(thr, (n_ch,)).astype(np.float32), {"source": "config threshold"}
    stored = stored_thresholds(run)
    if stored is not None and len(stored) == n_ch:
        stored32 = np.asarray(stored, dtype=np.float32)
        sigma = stored32.astype(np.float64) / acq.threshold_sigma
        if trig.threshold_sigma == acq.threshold_sigma:
            thr = stored32  # exactly the acquisition's
        else:
            thr = (trig.threshold_sigma * sigma).astype(np.float32)
        return thr, {"source": "stored noise sigma (pipeline_calibration)", "noise_sigma": sigma.tolist()}
    s0, s1 = first_segment
    n = min(s1 - s0, max(int(cfg.noise_estimate_s * rate), 1))
    sigma = robust_sigma(np.asarray(data[s0 : s0 + n], dtype=np.float32))
    sigma = np.where(sigma > 0, sigma, np.finfo(np.float32).eps)
    thr = (trig.threshold_sigma * sigma).astype(np.float32)
    return thr, {"source": f"noise sigma estimated from the first {n} samples", "noise_sigma": sigma.tolist()}


def _progress(enabled: bool) -> Any:
    if not enabled:
        return nullcontext(None)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=stderr_console(), transient=False)


def _stopped(run_path: Path, done: int, total: int) -> StoppedError:
    return StoppedError(f"{run_path}: reprocessing stopped after {done} of {total} chunks; nothing was written")


def _run_tasks(client: Any, tasks: list[ChunkTask], bar: Any, stop: threading.Event | None,
               run_path: Path) -> list[ChunkResult]:
    """Every chunk's result, in order; ``stop`` set: cancel what is left and raise StoppedError."""
    task_id = bar.add_task("reprocessing chunks", total=len(tasks)) if bar is not None else None
    results: list[ChunkResult] = []

    def collect(result: ChunkResult) -> None:
        results.append(result)
        if bar is not None:
            bar.advance(task_id)

    if client is None:
        for task in tasks:
            if stop is not None and stop.is_set():
                raise _stopped(run_path, len(results), len(tasks))
            collect(process_chunk(task))
    else:
        pending = client.map(process_chunk, tasks, pure=False)
        try:
            while pending:
                for fut in [f for f in pending if f.done()]:
                    collect(fut.result())
                    fut.release()
                    pending.remove(fut)
                if pending and stop is not None and stop.wait(0.05):
                    raise _stopped(run_path, len(results), len(tasks))
                if pending and stop is None:
                    time.sleep(0.05)
        finally:
            if pending:
                client.cancel(pending)
    results.sort(key=lambda r: r.chunk.start)
    return results


@dataclass
class _Derived:
    """What goes into the output group, and counts for the result."""

    columns: dict[str, Any]
    column_attrs: dict[str, dict[str, Any]]
    static: dict[str, tuple[tuple[str, ...], Any]]
    config: dict[str, Any]
    source: dict[str, Any]
    records: dict[str, Any]
    n_segments: int = 0
    n_chunks: int = 0
    rows: int = 0
    n_channels: int = 0
    workers: int = 0
    elapsed_s: float = 0.0


def reprocess_run(
    run_path: str | Path,
    config: ReprocessConfig | dict[str, Any] | str | Path | None = None,
    label: str | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    overwrite: bool = False,
    stop: threading.Event | None = None,
) -> ReprocessResult:
    """Re-run pulse finding (and optionally the optimal filter) on a stored run.

    ``config``: a :class:`ReprocessConfig`, a config document (dict), a YAML file, or None
    (the acquisition's own settings). ``workers``: Dask workers of a local cluster started for
    this job (default: one per CPU core; ``0``: no Dask, in this process). ``scheduler``: the
    address of an existing Dask scheduler (or a ``distributed.Client``) to use instead.
    A run without a stream (e.g. imported pulse records) gets the optimal-filter stage on its
    stored records (config ``source: records``). Writes ``reprocessed/<label>/`` (default
    label: UTC now, ``YYYYmmddTHHMMSS``) and never modifies the raw groups; an existing label
    is refused unless ``overwrite``. ``stop`` (set by the command line on Ctrl-C, SIGTERM or
    SIGHUP): the chunks left are cancelled and :class:`~cryodaq.errors.StoppedError` is raised;
    nothing is written (the output group is written only once everything is computed).
    """
    t_start = time.perf_counter()
    cfg = as_config(config)
    run = open_run(run_path)
    if run.status is RunStatus.RUNNING:
        raise RunFormatError(f"{run.path}: the run is still being written; reprocess it once it has ended")
    label = label or default_label()
    if label in run.reprocessed_labels and not overwrite:
        raise DerivedExistsError(f"{run.path}: {REPROCESSED}/{label} already exists; choose another label or overwrite it")
    source = cfg.source or ("stream" if run.stream_names else "records")
    if source == "stream":
        out = _from_stream(run, cfg, workers, scheduler, progress, stop)
    else:
        out = _from_records(run, cfg)
    attrs = {
        "config": {"file": cfg.path, "document": cfg.as_dict(), "source": source, **out.config},
        "source": {"run_id": run.run_id, "run_path": str(run.path), "run_status": run.status.value, **out.source,
                   "software": software_versions()},
        "created": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "records": out.records,
    }
    with DerivedWriter.create(run.path, label, attrs, overwrite=overwrite) as writer:
        writer.append(out.columns, out.column_attrs)
        for key, (dims, values) in out.static.items():
            writer.write_static(key, dims, values)
    n_events = int(out.columns["t"].shape[0])
    return ReprocessResult(run.path, label, writer.path, n_events, out.n_segments, out.n_chunks, out.rows,
                           out.n_channels, out.workers, out.elapsed_s, time.perf_counter() - t_start)


def _from_stream(run: Run, cfg: ReprocessConfig, workers: int | None, scheduler: Any, progress: bool,
                 stop: threading.Event | None = None) -> _Derived:
    """Re-trigger the stored stream on Dask, chunk by chunk (module docstring)."""
    name = _stream_name(run, cfg)
    stream = run.root[STREAM]
    n_rows = run.committed(STREAM)
    if n_rows == 0:
        raise RunFormatError(f"{run.path}: the stream has no committed samples to reprocess")
    data = stream[name]
    n_ch = int(data.shape[1])
    rate = float(stream.attrs["sample_rate_hz"])
    sample_index = np.asarray(stream["sample_index"][:n_rows])
    segments = find_segments(sample_index)

    acq = _acquisition_trigger(run)
    trig = cfg.trigger(acq)
    thresholds, thr_info = _thresholds(run, cfg, trig, acq, data, segments[0], rate)
    spec = TriggerSpec(trig, thresholds, rate, cfg.backend)
    trigger = spec.build()
    rows = chunk_rows(cfg.chunk_s, rate, int(data.chunks[0]))
    chunks = plan_chunks(segments, rows)
    noise = None
    if cfg.optimal_filter is not None:
        of = cfg.optimal_filter
        period = round(of.noise_period_s * rate) if of.noise_period_s else trigger.record_length
        noise = NoiseSpec(per_channel=max(1, math.ceil(of.noise_records / len(chunks))), period=max(period, 1))
    tasks = [ChunkTask(str(run.path), name, c, spec, noise) for c in chunks]
    log.info("reprocessing %s: %d rows x %d channels, %d segments, %d chunks", run.path, n_rows, n_ch,
             len(segments), len(chunks))

    with _progress(progress) as bar, dask_client(workers, scheduler, len(tasks)) as (client, n_workers):
        t0 = time.perf_counter()
        results = _run_tasks(client, tasks, bar, stop, run.path)
        elapsed = time.perf_counter() - t0

    per_segment = [assemble_segment([r for r in results if r.chunk.segment == k], trigger, n_ch)
                   for k in range(len(segments))]
    ev = EventBatch.concat([s.events for s in per_segment])
    if ev.records is None:
        ev = EventBatch(ev.sample_index, ev.channel, ev.amplitude, ev.baseline, ev.flags,
                        np.zeros((len(ev), trigger.record_length), np.float32), trigger.presamples)
    t = np.concatenate([s.t for s in per_segment])
    channel_coord = np.asarray(stream["channel"][:]) if "channel" in stream else np.arange(n_ch, dtype=np.int32)
    columns, column_attrs = _event_columns(ev, t, np.concatenate([s.sample_index for s in per_segment]),
                                           channel_coord, rate)
    config = {"stream": name, "trigger": asdict(trig), "thresholds": thresholds.tolist(), "thresholds_from": thr_info,
              "chunk_rows": rows, "workers": n_workers}
    static: dict[str, tuple[tuple[str, ...], Any]] = {}
    if cfg.optimal_filter is not None:
        noise_recs = [r.noise for r in results if r.noise is not None]
        noise_ch = [r.noise_channel for r in results if r.noise_channel is not None]
        static, config["optimal_filter"] = _apply_optimal_filter(
            ev, t, np.concatenate(noise_recs), np.concatenate(noise_ch), channel_coord, rate, cfg,
            columns, column_attrs, polarity=trig.polarity, run=run)
    source = {"groups": {f"{STREAM}/{name}": n_rows, f"{STREAM}/sample_index": n_rows, f"{STREAM}/t": n_rows},
              "segments": [[a, b, int(sample_index[a])] for a, b in segments], "acquisition_trigger": asdict(acq)}
    return _Derived(columns, column_attrs, static, config, source,
                    {"presamples": trigger.presamples, "sample_rate_hz": rate},
                    len(segments), len(chunks), n_rows, n_ch, n_workers, elapsed)


def _from_records(run: Run, cfg: ReprocessConfig) -> _Derived:
    """The optimal-filter stage on the run's stored event records (no stream to re-trigger)."""
    file = cfg.path or "(reprocess config)"
    if cfg.trigger_overrides or cfg.threshold is not None:
        key = "trigger" if cfg.trigger_overrides else "threshold"
        raise StationConfigError(file, key, "no trigger settings: the run has no stream to re-trigger "
                                 "(records-mode reprocessing filters the stored events)", "given")
    if cfg.optimal_filter is None:
        raise StationConfigError(file, "optimal_filter", "an optimal_filter section: the run has no stream, so "
                                 "reprocessing can only filter its stored records")
    t0 = time.perf_counter()
    ev, t, sample_index, channel_values, presamples, rate, n = _stored_events(run, file)
    coord, col = np.unique(channel_values, return_inverse=True)
    flags = ev["flags"]
    forced = (flags & np.uint16(EventFlag.FORCED)) != 0
    noise, noise_ch, noise_from = ev["records"][forced], col[forced], f"{run.run_id} events flagged FORCED"
    if cfg.optimal_filter.noise_run:
        nev, _, _, nch, _, nrate, _ = _stored_events(open_run(cfg.optimal_filter.noise_run), file)
        if nev["records"].shape[1] != ev["records"].shape[1] or nrate != rate:
            raise StationConfigError(file, "optimal_filter.noise_run", f"a run with records of "
                                     f"{ev['records'].shape[1]} samples at {rate} Hz", cfg.optimal_filter.noise_run)
        nforced = (nev["flags"] & np.uint16(EventFlag.FORCED)) != 0
        use = np.isin(nch, coord) & (nforced if nforced.any() else True)  # its noise records, else all of them
        noise, noise_ch = nev["records"][use], np.searchsorted(coord, nch[use])
        noise_from = str(cfg.optimal_filter.noise_run)
    if len(noise) == 0 and not cfg.optimal_filter.load:
        raise StationConfigError(file, "optimal_filter.noise_run", "a run whose records are noise: this run has no "
                                 "stream and no FORCED (noise) records")
    batch = EventBatch(sample_index, col.astype(np.int32), ev["amplitude"], ev["baseline"], flags,
                       ev["records"], presamples)
    pulses = batch.select(~forced)
    columns, column_attrs = _event_columns(pulses, t[~forced], sample_index[~forced], coord, rate)
    for extra in ("energy", "chi2"):
        columns[extra] = np.full(len(pulses), np.nan, np.float32)
    event_filter = ev["of_filter"][~forced] if cfg.optimal_filter.load == "online" and "of_filter" in ev else None
    static, of_info = _apply_optimal_filter(pulses, t[~forced], noise, noise_ch.astype(np.int32), coord, rate, cfg,
                                            columns, column_attrs, polarity=_acquisition_trigger(run).polarity,
                                            run=run, event_filter=event_filter)
    of_info["noise_from"] = noise_from
    return _Derived(columns, column_attrs, static, {"optimal_filter": of_info}, {"groups": {"events": n}},
                    {"presamples": presamples, "sample_rate_hz": rate}, n_channels=coord.size,
                    elapsed_s=time.perf_counter() - t0)


def _stored_events(run: Run, file: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, int,
                                                  float, int]:
    """A run's committed events with records: columns, t, sample_index, channel, presamples, rate, count."""
    ds = run.events()
    if "records" not in ds:
        raise StationConfigError(file, "source", "a run with a stream or with event records", f"{run.path}: neither")
    rec_attrs = ds["records"].attrs
    if "presamples" not in rec_attrs or "sample_rate_hz" not in rec_attrs:
        raise RunFormatError(f"{run.path}/events/records: attrs 'presamples' and 'sample_rate_hz' are needed "
                             "to filter stored records")
    ds = ds.load()
    cols = {k: ds[k].values for k in ("amplitude", "baseline", "flags", "records", "of_filter") if k in ds}
    return (cols, ds["t"].values, ds["sample_index"].values, ds["channel"].values, int(rec_attrs["presamples"]),
            float(rec_attrs["sample_rate_hz"]), int(ds.sizes["event"]))


def _event_columns(
    ev: EventBatch, t: np.ndarray, sample_index: np.ndarray, channel_coord: np.ndarray, rate: float,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The ``events/`` schema columns of ``ev`` (channel = coordinate value of its column)."""
    n = len(ev)
    records = ev.records if ev.records is not None else np.zeros((n, 0), np.float32)
    cols: dict[str, Any] = {
        "t": np.asarray(t, np.int64),
        "sample_index": np.asarray(sample_index, np.int64),
        "channel": np.asarray(channel_coord)[ev.channel].astype(np.int32),
        "amplitude": ev.amplitude,
        "energy": np.full(n, np.nan, np.float32),
        "baseline": ev.baseline,
        "chi2": np.full(n, np.nan, np.float32),
        "flags": ev.flags,
        "records": ((EVENT, SAMPLE), records),
    }
    attrs: dict[str, dict[str, Any]] = {
        "t": dict(T_ATTRS), "sample_index": {"units": "sample"}, "energy": {"units": "eV"},
        "amplitude": {"long_name": "trigger amplitude: peak above the presample baseline"},
        "records": {"presamples": ev.presamples, "sample_rate_hz": rate},
    }
    return cols, attrs


def _loaded_filters(cfg: ReprocessConfig, run: Run | None) -> list[ChannelFilter] | None:
    """The stored filters the config's ``optimal_filter.load`` names (``online``: the run's own), or None."""
    assert cfg.optimal_filter is not None
    where = cfg.optimal_filter.load
    if not where:
        return None
    file = cfg.path or "(reprocess config)"
    try:
        return load_filters(run.path if where == "online" and run is not None else where)
    except (KeyError, ValueError, CryodaqError) as exc:
        raise StationConfigError(file, "optimal_filter.load", f"a run with stored filters, RUN/reprocessed/<label> "
                                 f"or 'online' ({exc})", where) from None


def _apply_optimal_filter(
    ev: EventBatch, t: np.ndarray, noise: np.ndarray, noise_channel: np.ndarray, channel_coord: np.ndarray,
    rate: float, cfg: ReprocessConfig, cols: dict[str, Any], attrs: dict[str, dict[str, Any]], polarity: int = 1,
    run: Run | None = None, event_filter: np.ndarray | None = None,
) -> tuple[dict[str, tuple[tuple[str, ...], Any]], dict[str, Any]]:
    """Add the optimal-filter columns to ``cols``/``attrs``; returns the static arrays and a summary."""
    assert cfg.optimal_filter is not None and ev.records is not None
    out = optimal_filter_stage(ev, noise, noise_channel, len(channel_coord), rate, cfg.optimal_filter,
                               polarity=polarity, channel_names=channel_coord,
                               loaded=_loaded_filters(cfg, run), event_filter=event_filter)
    delay = out.columns["of_delay_s"].astype(np.float64)
    rec_len = ev.records.shape[1]
    cols.update(
        energy=out.columns["energy"], chi2=out.columns["chi2"], of_amplitude=out.columns["of_amplitude"],
        of_delay_s=out.columns["of_delay_s"], residual_std=out.columns["residual_std"],
        arrival_t=np.asarray(t, np.int64) + np.round(np.nan_to_num(delay) * 1e9).astype(np.int64),
    )
    attrs.update(
        of_amplitude={"long_name": "optimal-filter amplitude (template peak units = stream units)"},
        of_delay_s={"units": "s", "long_name": "optimal-filter arrival time relative to the template"},
        arrival_t={**T_ATTRS, "long_name": "t + of_delay_s (UTC ns); t where the filter gave no delay"},
        residual_std={"long_name": "std of the record minus its fitted pulse (stream units)"},
        chi2={"long_name": "optimal-filter chi-squared", "dof": int(2 * ((rec_len - 1) // 2) - 2)},
    )
    tone = ("tone",)
    static: dict[str, tuple[tuple[str, ...], Any]] = {
        "tone": (tone, np.asarray(channel_coord).astype(np.int32)),
        "freq": (("freq",), out.freq),
        "of_template": (("tone", SAMPLE), out.templates),
        "of_noise_psd": (("tone", "freq"), out.noise_psd),
        "of_resolution": (tone, out.resolution),
        "energy_coeffs": (("tone", "power"), out.energy_coeffs),
        "line_amplitude": (("tone", "line"), out.line_amplitudes),
    }
    info = {**cfg.optimal_filter.as_dict(), **out.summary, "n_noise_records": len(noise)}
    return static, info
