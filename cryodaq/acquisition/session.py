"""A streaming run: station up, readout source -> pipeline -> sinks (Zarr run, live view), housekeeping alongside.

The session talks to the readout through the :class:`~cryodaq.readout.source.ReadoutSource`
seam (the station's ``cryodaq.readout.instrument``) and to its outputs through one
:class:`~cryodaq.acquisition.sinks.SinkFanout`. Threads (the GUI never runs here):

- receiver: the source's packets -> bounded block queue (never blocks; counts drops as gaps)
- pipeline and sinks: blocks -> a pipeline (chosen by what the source streams: :class:`StreamPipeline`,
  or :class:`RecordPipeline` for a source that triggers itself) -> sinks, two threads
  (:class:`~cryodaq.acquisition.workers.StreamWorkers`); gaps and housekeeping a pipeline finds
  (e.g. in DASTARD's status) go to the sinks too
- housekeeping: instrument parameters every ``interval_s`` -> sinks
- caller's thread: waits for the duration / a stop request, reports progress

Before any instrument is touched, :func:`cryodaq.station.preflight.preflight` checks that
the output directory can take the run and that every port the station listens on is free;
the data receiver then binds before the run is created, so a port taken in between costs
nothing either (the same one-line :class:`~cryodaq.errors.ListenError`).

Stopping (duration reached, :meth:`StreamSession.request_stop` — which the command line
calls on the first Ctrl-C, SIGTERM or SIGHUP —, a KeyboardInterrupt) stops the board,
drains what already arrived, flushes open event records and closes the run ``complete``
(``interrupted`` when it was cut short). A stop asked for before the run was created
raises :class:`~cryodaq.errors.StoppedError` and creates nothing. :meth:`request_abort`
(the second signal) and an error close it ``aborted``, with everything committed before
readable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qcodes.station import Station

from cryodaq.acquisition.pipeline import ReadoutPipeline, pipeline_for_source
from cryodaq.acquisition.sinks import RunWriterSink, SessionStats, Sink, SinkFanout, StreamInfo
from cryodaq.acquisition.workers import StreamWorkers
from cryodaq.backend import Backend, get_backend
from cryodaq.errors import StationConfigError, StoppedError
from cryodaq.readout.blocks import TimeBase
from cryodaq.readout.loop_sweep import calibrate_source, write_loop_sweep
from cryodaq.readout.receive import receiving
from cryodaq.readout.source import BlockReceiver, ReadoutSource
from cryodaq.station.bringup import station_up
from cryodaq.station.config import StationConfig
from cryodaq.station.loader import resolve_parameter
from cryodaq.station.preflight import DEFAULT_MIN_FREE_BYTES, data_listener, preflight
from cryodaq.storage.writer import RunWriter

__all__ = ["RunSummary", "StreamSession", "readout_source"]

log = logging.getLogger(__name__)


def readout_source(station: Station, config: StationConfig) -> ReadoutSource:
    """The station's readout (``cryodaq.readout.instrument``), checked to be a :class:`ReadoutSource`."""
    name = config.readout.instrument
    source = station.components[name]
    if not isinstance(source, ReadoutSource):
        raise StationConfigError(str(config.path), "cryodaq.readout.instrument",
                                 "an instrument that streams detector data (a ReadoutSource: the MKID or TES "
                                 f"readout board, ...); {name!r} is a {type(source).__name__}", name)
    return source


@dataclass
class RunSummary:
    """How a run ended: its path, status, whether it was cut short, how long it ran, its counters."""

    path: Path
    status: str
    interrupted: bool
    duration_s: float
    stats: SessionStats
    end_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary (``cryodaq run --json``)."""
        st = self.stats
        return {
            "path": str(self.path), "status": self.status, "interrupted": self.interrupted,
            "end_reason": self.end_reason, "duration_s": round(self.duration_s, 3), "samples": int(st.samples),
            "packets": int(st.packets), "lost_packets": int(st.lost_packets), "dropped_blocks": int(st.dropped_blocks),
            "gaps": int(st.gaps), "samples_lost": int(st.samples_lost), "events": int(st.events),
            "events_per_channel": [int(n) for n in st.events_per_channel],
            "housekeeping": {name: {"value": float(v), "unit": st.housekeeping_units.get(name, "")}
                             for name, v in st.housekeeping.items()},
        }


class StreamSession:
    """One streaming run of a station (see module docstring)."""

    def __init__(
        self,
        config: StationConfig,
        out_dir: str | Path,
        *,
        simulate: bool | None = None,
        backend: Backend | None = None,
        run_id: str | None = None,
        sinks: list[Sink] | None = None,
        check_first: bool = True,
        min_free_bytes: float = DEFAULT_MIN_FREE_BYTES,
    ) -> None:
        """``check_first``: run :func:`~cryodaq.station.preflight.preflight` before the station comes up
        (the command line runs it itself first, with the live publisher's port, and passes False)."""
        self.simulate = config.simulation.enabled if simulate is None else simulate
        self.check_first = check_first
        self.min_free_bytes = min_free_bytes
        self.config = config  # replaced by the config with simulator ports once the station is up
        self.out_dir = Path(out_dir)
        self.backend = backend or get_backend()
        self.run_id = run_id
        self.stats = SessionStats()
        self.writer: RunWriter | None = None
        self.sinks = SinkFanout(sinks or [])  # the run writer is added first when the run starts
        self.station: Station | None = None
        self.pipeline: ReadoutPipeline | None = None
        self._stop = threading.Event()
        self._stop_reason = ""
        self._abort_reason = ""
        self._time_base: TimeBase | None = None  # the run's clock as last recorded
        self._stream_clock_seen = False
        self._clock_changes: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self.workers: StreamWorkers | None = None

    # --- control ------------------------------------------------------------
    def request_stop(self, reason: str = "") -> None:
        """Ask the run to end cleanly (safe from any thread or a signal handler); ``reason`` e.g. ``SIGTERM``."""
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def request_abort(self, reason: str = "aborted by the operator") -> None:
        """Ask the run to end now and be closed ``aborted`` (the second signal; then a KeyboardInterrupt
        is raised where the program is)."""
        self._abort_reason = reason
        self._stop.set()

    def refresh_optimal_filter(self) -> bool:
        """Ask the live optimal filter to learn every channel's filter again from the next pulses and noise
        (thread-safe); False when the run has no optimal-filter stage (yet)."""
        stage = getattr(self.pipeline, "event_stage", None)  # a records pipeline has none
        if stage is None or not hasattr(stage, "request_refresh"):
            return False
        stage.request_refresh()
        return True

    def run(
        self,
        duration_s: float | None,
        *,
        on_progress: Callable[[StreamSession], None] | None = None,
        progress_interval_s: float = 0.25,
    ) -> RunSummary:
        """Run until ``duration_s`` passes (None: until stopped); returns the summary.

        KeyboardInterrupt ends the run cleanly as complete-but-interrupted (after :meth:`request_abort`:
        ``aborted``).
        """
        interrupted = False
        if self.check_first:
            for warning in preflight(self.config, self.out_dir, simulate=bool(self.simulate),
                                     min_free_bytes=self.min_free_bytes):
                log.warning("%s", warning)
        with station_up(self.config, simulate=self.simulate) as live:
            self.station, self.config = live.station, live.config
            source = readout_source(self.station, self.config)
            # calibration sweep (IQ loops through the stream, or a board's own tone sweep and resonator
            # search) before the run's own stream starts, so the stored stream begins clean
            try:
                loop = calibrate_source(source, self.config.pipeline, self.backend,
                                        host=self.config.readout.data_host)
            except ValueError as exc:  # a method the source cannot do
                raise StationConfigError(str(self.config.path), "cryodaq.pipeline.calibration", str(exc)) from None
            stream = source.describe()
            pipeline = pipeline_for_source(self.config.pipeline, stream, self.backend,
                                           calibration=loop[1] if loop else None,
                                           calibration_method=(loop[0].detail.get("method", "loop_sweep")
                                                               if loop else None),
                                           config_file=str(self.config.path))
            self.pipeline = pipeline
            self.stats.events_per_channel = np.zeros(len(pipeline.channel_coords["channel"]), np.int64)
            self.stats.sample_unit = "samples" if pipeline.has_timestream else "records"
            # bind the data port before the run exists: a port taken since the pre-flight check costs nothing
            receiver = self._open_receiver(source)
            try:
                if self._stop.is_set():  # a signal during bring-up or calibration: the run never started
                    raise StoppedError(f"stopped ({self._stop_reason or 'on request'}) before the run started; "
                                       "no run was created")
                self.writer = RunWriter.create(
                    self.out_dir, kind="stream", station_name=self.config.name,
                    station_snapshot=self.station.snapshot(update=True), config=self._run_config(pipeline.fs),
                    run_id=self.run_id, clock=stream.time_base.as_attrs(),
                )
            except BaseException:
                receiver.stop(drain_s=0.0)
                raise
            self._time_base = stream.time_base
            if loop is not None:
                write_loop_sweep(self.writer, *loop)
            self._writer_sink = RunWriterSink(self.writer, store_stream=self.config.pipeline.store_stream
                                              and pipeline.has_timestream,
                                              store_iq=self.config.pipeline.store_iq)
            self.sinks = SinkFanout([self._writer_sink, *self.sinks.sinks])
            info = StreamInfo(
                station=self.config.name, stream=pipeline.stream_name, units=pipeline.units,
                output_rate_hz=pipeline.output_rate, adc_rate_hz=pipeline.fs,
                channel_coords=pipeline.channel_coords, run_path=str(self.writer.path), iq_units=stream.units,
            )
            self.sinks.start(info)
            if pipeline.has_timestream:  # triggered records have no noise stream
                pipeline.monitor_spectra(nperseg=self.config.pipeline.psd_nperseg,
                                         interval_s=self.config.pipeline.psd_interval_s)
            try:
                with receiving(source, receiver=receiver, purpose="this run"):
                    self._start_threads(receiver, pipeline)
                    interrupted = self._wait(duration_s, receiver, on_progress, progress_interval_s)
            except KeyboardInterrupt:
                if self._abort_reason:
                    self._error = self._error or KeyboardInterrupt(self._abort_reason)
                else:
                    interrupted = True
                    self._stop_reason = self._stop_reason or "KeyboardInterrupt"
            except BaseException as exc:  # e.g. the source would not start: the run is closed 'aborted'
                self._error = self._error or exc
            finally:
                # the source is stopped and the receiver has queued its end marker: let the threads drain
                self._stop.set()
                for t in self._threads:
                    t.join(timeout=60)
                self._update_receiver_stats(receiver)
            reason = self._close_run(pipeline, interrupted)
            summary = RunSummary(self.writer.path, "aborted" if self._error else "complete", interrupted,
                                 self.stats.elapsed, self.stats, reason)
            if on_progress:
                on_progress(self)
        if self._error is not None:
            raise self._error
        log.info("run %s ended: %s", summary.path, reason)
        return summary

    # --- pieces -------------------------------------------------------------
    def _run_config(self, fs: float) -> dict[str, Any]:
        return {
            "station_file": str(self.config.path),
            "readout": {"instrument": self.config.readout.instrument, "sample_rate_hz": fs},
            "pipeline": self.config.pipeline.as_dict(),
            "backend": self.backend.name,
            "simulated": bool(self.simulate),
        }

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                fn(*args)
            except BaseException as exc:  # surfaced in run(); the run is then closed 'aborted'
                log.exception("%s failed", threading.current_thread().name)
                self._error = self._error or exc
                self._stop.set()

        return run

    def _open_receiver(self, source: ReadoutSource) -> BlockReceiver:
        """The source's receiver bound to ``cryodaq.readout.data_host:data_port``; a bind failure is the
        one-line :class:`~cryodaq.errors.ListenError` naming the key and the port."""
        ro, pl = self.config.readout, self.config.pipeline
        try:
            return source.open_receiver(ro.data_host, ro.data_port, packets_per_block=pl.block_packets,
                                        queue_blocks=pl.queue_blocks)
        except OSError as exc:
            raise data_listener(self.config).error(exc, self.config.path) from None

    def _start_threads(self, receiver: BlockReceiver, pipeline: ReadoutPipeline) -> None:
        self.workers = StreamWorkers(receiver, pipeline, self.sinks, self.stats, guard=self._guard,
                                     on_time_base=self._record_time_base)
        housekeeping = threading.Thread(target=self._guard(self._housekeeping_loop),
                                        name="cryodaq-housekeeping", daemon=True)
        self._threads = [*self.workers.threads, housekeeping]
        for t in self._threads:
            t.start()
        self.stats.started = time.monotonic()

    def _wait(self, duration_s: float | None, receiver: BlockReceiver,
              on_progress: Callable[[StreamSession], None] | None, interval: float) -> bool:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._update_receiver_stats(receiver)
            self.sinks.status(self.stats)
            if on_progress:
                on_progress(self)
            self._stop.wait(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        if self._abort_reason:
            self._error = self._error or KeyboardInterrupt(self._abort_reason)
        return self._error is None  # stopped early by request: interrupted

    def _update_receiver_stats(self, receiver: BlockReceiver) -> None:
        rs = receiver.stats
        self.stats.packets, self.stats.samples = rs.packets, rs.samples
        self.stats.lost_packets, self.stats.dropped_blocks = rs.lost_packets, rs.dropped_blocks
        self.stats.queue_fill = receiver.blocks.qsize()

    def _close_run(self, pipeline: ReadoutPipeline, interrupted: bool) -> str:
        if self._error is None:
            self._writer_sink.annotate(pipeline_calibration=pipeline.calibration_attrs())
        reason = (f"aborted: {self._error}" if self._error is not None
                  else f"interrupted ({self._stop_reason or 'stop requested'})" if interrupted
                  else "duration reached")
        try:
            self.sinks.close(interrupted=interrupted, reason=reason, error=self._error)
        except Exception as exc:  # every sink was closed; the first failure ends the run 'aborted'
            self._error = self._error or exc
        return reason

    def _record_time_base(self, time_base: TimeBase, t_ns: int) -> None:
        """The stream's own word on its clock (e.g. a CRS packet's time source) into the run's ``clock``;
        a change during the run is kept in ``clock.changes``."""
        if time_base == self._time_base:
            return
        first = not self._stream_clock_seen
        self._stream_clock_seen = True
        changes = list(self._clock_changes)
        if not first:
            changes.append({"t_ns": int(t_ns), **time_base.as_attrs()})
            log.warning("the stream's clock changed at %d ns: %s", t_ns, time_base.detail)
        self._clock_changes = changes
        self._time_base = time_base
        self._writer_sink.annotate(clock={**time_base.as_attrs(), "changes": changes} if changes
                                   else time_base.as_attrs())

    def _housekeeping_loop(self) -> None:
        assert self.station is not None
        hk = self.config.housekeeping
        params = {
            name: resolve_parameter(self.station, path, file=str(self.config.path),
                                    key=f"cryodaq.housekeeping.parameters.{name}")
            for name, path in hk.parameters.items()
        }
        next_t = time.monotonic()
        while not self._stop.is_set():
            for name, param in params.items():
                try:
                    value = float(param.get())
                except Exception as exc:  # a flaky thermometer must not end the run
                    self.stats.housekeeping_errors += 1
                    log.warning("housekeeping %s (%s) failed: %s", name, param.full_name, exc)
                    continue
                self.sinks.housekeeping(name, time.time_ns(), value, param.unit or "")
                self.stats.housekeeping_units[name] = param.unit or ""
                self.stats.housekeeping[name] = value
            next_t += hk.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

