"""A streaming run: bring the station up, calibrate, stream, process, store, stop cleanly.

The session talks to each readout through the :class:`~cryodaq.readout.source.ReadoutSource`
seam (the station's ``cryodaq.readout.instrument``, or ``instruments``) and to its outputs
through one :class:`~cryodaq.acquisition.sinks.SinkFanout` per readout. A station may name
several readouts (e.g. two detector arrays, each a board with its own clock): each is a
:class:`ReadoutLane` with its own pipeline, clock model and run, and the runs share a run group
(root attr ``run_group``; ``cryodaq coincide`` joins them). Threads (the GUI never runs here):

- receiver (per readout): the source's packets -> bounded block queue (never blocks; counts drops as gaps)
- pipeline and sinks (per readout): blocks -> a pipeline (chosen by what the source streams:
  :class:`StreamPipeline`, or :class:`RecordPipeline` for a source that triggers itself) -> sinks,
  two threads (:class:`~cryodaq.acquisition.workers.StreamWorkers`); gaps and housekeeping a
  pipeline finds (e.g. in DASTARD's status) go to the sinks too
- housekeeping: instrument parameters every ``interval_s``, the host's time daemon every
  ``cryodaq.timing.host_clock_interval_s`` and each run's clock model -> every readout's sinks
- caller's thread: waits for the duration / a stop request, reports progress

Before any instrument is touched, :func:`cryodaq.station.preflight.preflight` checks that
the output directory can take the run and that every port the station listens on is free;
the data receivers then bind before any run is created, so a port taken in between costs
nothing either (the same one-line :class:`~cryodaq.errors.ListenError`).

Stopping (duration reached, :meth:`StreamSession.request_stop` — which the command line
calls on the first Ctrl-C, SIGTERM or SIGHUP —, a KeyboardInterrupt) stops the boards,
drains what already arrived, flushes open event records, stores each run's clock model and
closes the runs ``complete`` (``interrupted`` when cut short). A stop asked for before the
runs were created raises :class:`~cryodaq.errors.StoppedError` and creates nothing.
:meth:`request_abort` (the second signal) and an error close them ``aborted``, with
everything committed before readable.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qcodes.station import Station

from cryodaq.acquisition.pipeline import ReadoutPipeline, pipeline_for_source
from cryodaq.acquisition.sinks import RunWriterSink, SessionStats, Sink, SinkFanout, StreamInfo
from cryodaq.acquisition.tracking import ToneTracker, add_reference_tones, tracking_calibration
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
from cryodaq.storage.writer import RunWriter, default_run_id
from cryodaq.timing.clock import ClockTracker
from cryodaq.timing.host_clock import HostClockMonitor

__all__ = ["ReadoutLane", "RunSummary", "StreamSession", "readout_source", "readout_sources"]

log = logging.getLogger(__name__)


_CLOCK_WRITE_S = 10.0  # each run's clock model in its attrs is refreshed this often (crash safety)


def readout_source(station: Station, config: StationConfig, name: str | None = None) -> ReadoutSource:
    """The station's readout ``name`` (default: its first, ``cryodaq.readout.instrument``), checked to be
    a :class:`ReadoutSource`."""
    name = name or config.readout.instrument
    source = station.components[name]
    if not isinstance(source, ReadoutSource):
        raise StationConfigError(str(config.path), "cryodaq.readout.instrument",
                                 "an instrument that streams detector data (a ReadoutSource: the MKID or TES "
                                 f"readout board, ...); {name!r} is a {type(source).__name__}", name)
    return source


def readout_sources(station: Station, config: StationConfig) -> dict[str, ReadoutSource]:
    """Every readout of the station, by instrument name, in the order the station file lists them."""
    return {name: readout_source(station, config, name) for name in config.readout.instruments}


@dataclass
class ReadoutLane:
    """One readout of a session: its source, receiver, pipeline (with its clock model), run and sinks."""

    name: str
    source: ReadoutSource
    pipeline: ReadoutPipeline
    clock: ClockTracker
    receiver: BlockReceiver
    writer: RunWriter
    writer_sink: RunWriterSink
    sinks: SinkFanout
    stats: SessionStats
    workers: StreamWorkers | None = None
    tracker: ToneTracker | None = None  # resonator tracking (cryodaq.pipeline.tracking), in the pipeline thread
    stream_clock_seen: bool = False
    clock_written: float = field(default_factory=time.monotonic)


@dataclass
class RunSummary:
    """How a run ended: its path, status, whether it was cut short, how long it ran, its counters.

    ``path``/``stats`` are the first readout's; ``paths``/``lane_stats`` every readout's (a station
    with several readouts writes one run per readout).
    """

    path: Path
    status: str
    interrupted: bool
    duration_s: float
    stats: SessionStats
    end_reason: str = ""
    paths: list[Path] = field(default_factory=list)
    lane_stats: dict[str, SessionStats] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary (``cryodaq run --json``)."""
        st = self.stats
        out: dict[str, Any] = {
            "path": str(self.path), "status": self.status, "interrupted": self.interrupted,
            "end_reason": self.end_reason, "duration_s": round(self.duration_s, 3), "samples": int(st.samples),
            "packets": int(st.packets), "lost_packets": int(st.lost_packets), "dropped_blocks": int(st.dropped_blocks),
            "gaps": int(st.gaps), "samples_lost": int(st.samples_lost), "events": int(st.events),
            "vetoed": int(st.vetoed), "events_per_channel": [int(n) for n in st.events_per_channel],
            "housekeeping": {name: {"value": float(v), "unit": st.housekeeping_units.get(name, "")}
                             for name, v in st.housekeeping.items()},
        }
        if len(self.paths) > 1:
            out["paths"] = [str(p) for p in self.paths]
        return out


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
        in_process_simulators: bool = False,
    ) -> None:
        """``check_first``: run :func:`~cryodaq.station.preflight.preflight` before the station comes up
        (the command line runs it itself first, with the live publisher's port, and passes False).
        ``in_process_simulators``: a simulated station's simulators run as threads of this process, and
        :attr:`simulators` gives tests their world (``simulators.world``)."""
        self.in_process_simulators = in_process_simulators
        self.simulators: Any = None  # the running simulators of a simulated station, once it is up
        self.simulate = config.simulation.enabled if simulate is None else simulate
        self.check_first = check_first
        self.min_free_bytes = min_free_bytes
        self.config = config  # replaced by the config with simulator ports once the station is up
        self.out_dir = Path(out_dir)
        self.backend = backend or get_backend()
        self.run_id = run_id
        self.stats = SessionStats()  # the first readout's (what the progress display shows first)
        self.writer: RunWriter | None = None  # the first readout's run
        self.sinks = SinkFanout(sinks or [])  # the first readout's; its run writer is added first at the start
        self._extra_sinks = list(sinks or [])  # e.g. the live publisher: they follow the first readout
        self.lanes: list[ReadoutLane] = []
        self.station: Station | None = None
        self.pipeline: ReadoutPipeline | None = None  # the first readout's
        self.workers: StreamWorkers | None = None  # the first readout's
        self.host_clock = HostClockMonitor()
        self._stop = threading.Event()
        self._stop_reason = ""
        self._abort_reason = ""
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []

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
        with station_up(self.config, simulate=self.simulate, in_process=self.in_process_simulators) as live:
            self.station, self.config, self.simulators = live.station, live.config, live.simulators
            sources = readout_sources(self.station, self.config)
            run_ids = self._run_ids(list(sources))
            group = {"id": run_ids[0] if len(sources) == 1 else f"{run_ids[0]}-group",
                     "runs": run_ids, "readouts": list(sources)}
            self._open_lanes(sources, run_ids, group)
            first = self.lanes[0]
            self.stats, self.writer, self.sinks, self.pipeline = first.stats, first.writer, first.sinks, first.pipeline
            try:
                with ExitStack() as stack:
                    for lane in self.lanes:
                        stack.enter_context(receiving(lane.source, receiver=lane.receiver, purpose="this run"))
                    self._start_threads()
                    interrupted = self._wait(duration_s, on_progress, progress_interval_s)
            except KeyboardInterrupt:
                if self._abort_reason:
                    self._error = self._error or KeyboardInterrupt(self._abort_reason)
                else:
                    interrupted = True
                    self._stop_reason = self._stop_reason or "KeyboardInterrupt"
            except BaseException as exc:  # e.g. a source would not start: the runs are closed 'aborted'
                self._error = self._error or exc
            finally:
                # the sources are stopped and the receivers have queued their end markers: let the threads drain
                self._stop.set()
                for t in self._threads:
                    t.join(timeout=60)
                for lane in self.lanes:
                    self._update_receiver_stats(lane)
            reason = self._close_runs(interrupted)
            summary = RunSummary(self.writer.path, "aborted" if self._error else "complete", interrupted,
                                 self.stats.elapsed, self.stats, reason, [lane.writer.path for lane in self.lanes],
                                 {lane.name: lane.stats for lane in self.lanes})
            if on_progress:
                on_progress(self)
        if self._error is not None:
            raise self._error
        log.info("run %s ended: %s", summary.path, reason)
        return summary

    # --- pieces -------------------------------------------------------------
    def _run_ids(self, readouts: list[str]) -> list[str]:
        """One run id per readout: the given one (suffixed by the readout when there are several) or the default."""
        if len(readouts) == 1:
            return [self.run_id or default_run_id(self.config.name)]
        if self.run_id:
            return [f"{self.run_id}-{name}" for name in readouts]
        stamp = default_run_id(self.config.name).rsplit("-", 1)[0]
        tag = secrets.token_hex(2)
        return [f"{stamp}-{name}-{tag}" for name in readouts]

    def _open_lanes(self, sources: dict[str, ReadoutSource], run_ids: list[str], group: dict[str, Any]) -> None:
        """Open every readout's lane: calibrate and bind every receiver first, then create the runs (a
        port taken or a stop asked for until then creates nothing); when one fails, the receivers are
        stopped and the runs already created are closed 'aborted'."""
        prepared: list[tuple[str, ReadoutSource, ReadoutPipeline, ClockTracker, Any, BlockReceiver]] = []
        self.lanes = []
        try:
            for name, source in sources.items():
                prepared.append(self._prepare_lane(name, source))
            if self._stop.is_set():  # a signal during bring-up or calibration: the run never started
                raise StoppedError(f"stopped ({self._stop_reason or 'on request'}) before the run started; "
                                   "no run was created")
            for k, (item, run_id) in enumerate(zip(prepared, run_ids, strict=True)):
                self.lanes.append(self._open_lane(*item, run_id=run_id, group=group, first=k == 0))
        except BaseException as exc:
            for item in prepared:
                item[-1].stop(drain_s=0.0)
            for lane in self.lanes:
                try:
                    lane.sinks.close(interrupted=False, reason=f"aborted: {exc}", error=exc)
                except Exception as close_exc:  # the first error is the one to report
                    log.error("closing %s failed: %s", lane.writer.path, close_exc)
            raise

    def _prepare_lane(self, name: str, source: ReadoutSource
                      ) -> tuple[str, ReadoutSource, ReadoutPipeline, ClockTracker, Any, BlockReceiver]:
        """Calibrate a readout (IQ loops through the stream, or a board's own tone sweep and resonator
        search, before the run's own stream starts, so the stored stream begins clean), build its
        pipeline and clock model, and bind its data receiver."""
        tracking = self.config.pipeline.tracking
        references = add_reference_tones(source, tracking)  # before the sweep, which calibrates them too
        try:
            loop = calibrate_source(source, self.config.pipeline, self.backend, host=self.config.readout.data_host)
        except ValueError as exc:  # a method the source cannot do
            raise StationConfigError(str(self.config.path), "cryodaq.pipeline.calibration", str(exc)) from None
        stream = source.describe()
        if tracking.enabled and (loop is None or stream.kind != "adc"):
            raise StationConfigError(str(self.config.path), "cryodaq.pipeline.tracking.enabled",
                                     "tracking only for a tone-comb readout (an 'adc' stream) calibrated by an IQ-loop "
                                     f"sweep (cryodaq.pipeline.calibration.method: loop_sweep); {name!r} streams "
                                     f"{stream.kind!r} with method {self.config.pipeline.calibration.method!r}", True)
        if loop is not None and tracking.enabled:
            loop = (loop[0], tracking_calibration(loop[0], loop[1], references))
        timing = self.config.timing
        clock = ClockTracker(stream.sample_rate_hz, stream.time_base, jump_threshold_s=timing.jump_threshold_s,
                             jump_confirm=timing.jump_confirm, drift_prior_ppm=timing.drift_prior_ppm)
        pipeline = pipeline_for_source(self.config.pipeline, stream, self.backend,
                                       calibration=loop[1] if loop else None,
                                       calibration_method=loop[0].detail.get("method", "loop_sweep") if loop else None,
                                       config_file=str(self.config.path), clock=clock)
        tracker = self._tracker(source, pipeline, loop, references) if tracking.enabled else None
        # bind the data port before the run exists: a port taken since the pre-flight check costs nothing
        return name, source, pipeline, clock, (loop, stream, tracker), self._open_receiver(source)

    def _tracker(self, source: ReadoutSource, pipeline: ReadoutPipeline, loop: Any, references: np.ndarray
                 ) -> ToneTracker:
        """The resonator tracker ``cryodaq.pipeline.tracking`` asks for, its reference tones set in the pipeline."""
        tracking = self.config.pipeline.tracking
        step = tracking.step_hz
        if step <= 0:  # the board's phase-coherent grid: sample rate / samples per packet
            per_packet = getattr(source, "samples_per_packet", None)
            if not callable(per_packet):
                raise StationConfigError(str(self.config.path), "cryodaq.pipeline.tracking.step_hz",
                                         "the board's phase-coherent tone step in Hz (this readout does not say "
                                         "its samples per packet)", tracking.step_hz)
            step = pipeline.fs / float(per_packet())
        set_references = getattr(pipeline, "set_reference_channels", None)
        if references.size and set_references is not None:
            set_references(references)
        return ToneTracker(source, pipeline, tracking, loop[0], loop[1], step_hz=step,  # type: ignore[arg-type]
                           references=references)

    def _open_lane(self, name: str, source: ReadoutSource, pipeline: ReadoutPipeline, clock: ClockTracker,
                   calibrated: Any, receiver: BlockReceiver, *, run_id: str, group: dict[str, Any],
                   first: bool) -> ReadoutLane:
        """Create a readout's run and start its sinks."""
        assert self.station is not None
        loop, stream, tracker = calibrated
        stats = SessionStats(events_per_channel=np.zeros(len(pipeline.channel_coords["channel"]), np.int64))
        stats.sample_unit = "samples" if pipeline.has_timestream else "records"
        tags = [f"run_group={group['id']}"] if len(group["runs"]) > 1 else []
        writer = RunWriter.create(
            self.out_dir, kind="stream", station_name=self.config.name,
            station_snapshot=self.station.snapshot(update=True), config=self._run_config(name, pipeline.fs),
            run_id=run_id, clock=clock.model().as_attrs(), tags=tags,
        )
        writer.update_attrs(run_group={**group, "readout": name})
        if loop is not None:
            write_loop_sweep(writer, *loop)
        writer_sink = RunWriterSink(writer, store_stream=self.config.pipeline.store_stream and pipeline.has_timestream,
                                    store_iq=self.config.pipeline.store_iq)
        sinks = SinkFanout([writer_sink, *(self._extra_sinks if first else [])])
        info = StreamInfo(
            station=self.config.name, stream=pipeline.stream_name, units=pipeline.units,
            output_rate_hz=pipeline.output_rate, adc_rate_hz=pipeline.fs,
            channel_coords=pipeline.channel_coords, run_path=str(writer.path), iq_units=stream.units,
        )
        try:
            sinks.start(info)
        except BaseException as exc:
            writer.abort(exc)
            raise
        if pipeline.has_timestream:  # triggered records have no noise stream
            pipeline.monitor_spectra(nperseg=self.config.pipeline.psd_nperseg,
                                     interval_s=self.config.pipeline.psd_interval_s)
        return ReadoutLane(name, source, pipeline, clock, receiver, writer, writer_sink, sinks, stats, tracker=tracker)

    def _run_config(self, readout: str, fs: float) -> dict[str, Any]:
        return {
            "station_file": str(self.config.path),
            "readout": {"instrument": readout, "sample_rate_hz": fs},
            "pipeline": self.config.pipeline.as_dict(),
            "backend": self.backend.name,
            "simulated": bool(self.simulate),
            "calibrations": {n: c.as_dict() for n, c in self.config.calibrations.items()},
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

    def _start_threads(self) -> None:
        self._threads = []
        for lane in self.lanes:
            lane.workers = StreamWorkers(lane.receiver, lane.pipeline, lane.sinks, lane.stats, guard=self._guard,
                                         on_time_base=lambda tb, t_ns, lane=lane: self._record_time_base(lane, tb, t_ns),
                                         name=lane.name if len(self.lanes) > 1 else "", stage=lane.tracker)
            self._threads += lane.workers.threads
        self.workers = self.lanes[0].workers
        self._threads.append(threading.Thread(target=self._guard(self._housekeeping_loop),
                                              name="cryodaq-housekeeping", daemon=True))
        for t in self._threads:
            t.start()
        now = time.monotonic()
        for lane in self.lanes:
            lane.stats.started = now

    def _wait(self, duration_s: float | None, on_progress: Callable[[StreamSession], None] | None,
              interval: float) -> bool:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            for lane in self.lanes:
                self._update_receiver_stats(lane)
                lane.sinks.status(lane.stats)
            if on_progress:
                on_progress(self)
            self._stop.wait(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        if self._abort_reason:
            self._error = self._error or KeyboardInterrupt(self._abort_reason)
        return self._error is None  # stopped early by request: interrupted

    @staticmethod
    def _update_receiver_stats(lane: ReadoutLane) -> None:
        rs, st = lane.receiver.stats, lane.stats
        st.packets, st.samples = rs.packets, rs.samples
        st.lost_packets, st.dropped_blocks = rs.lost_packets, rs.dropped_blocks
        st.queue_fill = lane.receiver.blocks.qsize()

    def _close_runs(self, interrupted: bool) -> str:
        reason = (f"aborted: {self._error}" if self._error is not None
                  else f"interrupted ({self._stop_reason or 'stop requested'})" if interrupted
                  else "duration reached")
        for lane in self.lanes:
            try:
                if self._error is None:
                    lane.writer_sink.annotate(pipeline_calibration=lane.pipeline.calibration_attrs())
                if lane.tracker is not None:
                    lane.writer_sink.annotate(tracking=lane.tracker.attrs())
                lane.clock.host_clock = self.host_clock.summary()
                if not lane.writer.closed:
                    lane.writer.write_clock(lane.clock.model().as_attrs(), lane.clock.anchors())
            except Exception as exc:  # the run is still closed below; the failure ends it 'aborted'
                log.error("storing the clock model of %s failed: %s", lane.writer.path, exc)
                self._error = self._error or exc
            try:
                lane.sinks.close(interrupted=interrupted, reason=reason, error=self._error)
            except Exception as exc:  # every sink was closed; the first failure ends the run 'aborted'
                self._error = self._error or exc
        return reason

    def _record_time_base(self, lane: ReadoutLane, time_base: TimeBase, t_ns: int) -> None:
        """The stream's own word on its clock (e.g. a CRS packet's time source) into the run's clock
        model; a change during the run is kept in the model's ``changes`` (sink thread)."""
        first = not lane.stream_clock_seen
        lane.stream_clock_seen = True
        if time_base == lane.clock.time_base:
            return
        if not first:
            log.warning("%s: the stream's clock changed at %d ns: %s", lane.name, t_ns, time_base.detail)
        lane.clock.restate(time_base, t_ns, first=first)
        lane.writer.write_clock(lane.clock.model().as_attrs())

    def _housekeeping_loop(self) -> None:
        assert self.station is not None
        hk = self.config.housekeeping
        params = {
            name: resolve_parameter(self.station, path, file=str(self.config.path),
                                    key=f"cryodaq.housekeeping.parameters.{name}")
            for name, path in hk.parameters.items()
        }
        host_every = self.config.timing.host_clock_interval_s
        next_t = next_host = time.monotonic()
        while not self._stop.is_set():
            for name, param in params.items():
                try:
                    value = float(param.get())
                except Exception as exc:  # a flaky thermometer must not end the run
                    self.stats.housekeeping_errors += 1
                    log.warning("housekeeping %s (%s) failed: %s", name, param.full_name, exc)
                    continue
                self._publish_housekeeping(name, time.time_ns(), value, param.unit or "")
            if host_every > 0 and time.monotonic() >= next_host:
                next_host += host_every
                reading = self.host_clock.read()
                if reading is not None:
                    now_ns = time.time_ns()
                    self._publish_housekeeping("host_clock_offset", now_ns, reading.offset_s, "s")
                    self._publish_housekeeping("host_clock_error", now_ns, reading.error_s, "s")
            self._write_clocks()
            next_t += hk.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _write_clocks(self) -> None:
        """Each run's clock model so far into its attrs, every ``_CLOCK_WRITE_S`` (a crashed run keeps a
        recent one; the final model and its anchors are written when the run closes)."""
        for lane in self.lanes:
            if time.monotonic() - lane.clock_written >= _CLOCK_WRITE_S and not lane.writer.closed:
                lane.clock_written = time.monotonic()
                lane.clock.host_clock = self.host_clock.summary()
                lane.writer.write_clock(lane.clock.model().as_attrs())

    def _publish_housekeeping(self, name: str, t_ns: int, value: float, unit: str) -> None:
        for lane in self.lanes:
            lane.sinks.housekeeping(name, t_ns, value, unit)
            lane.stats.housekeeping_units[name] = unit
            lane.stats.housekeeping[name] = value
