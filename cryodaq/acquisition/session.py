"""A streaming run: station up, readout source(s) -> pipeline -> sinks (Zarr run, live view), housekeeping alongside.

The session talks to the readout through the :class:`~cryodaq.readout.source.ReadoutSource`
seam (the station's ``cryodaq.readout.instrument``) and to its outputs through one
:class:`~cryodaq.acquisition.sinks.SinkFanout` per readout. A station may name several
readouts (e.g. two detector arrays, each a board with its own clock): each is a
:class:`ReadoutLane` with its own pipeline, clock model and run, and the runs share a run
group (root attr ``run_group``; ``cryodaq coincide`` joins them). Threads (the GUI never runs here):

- receiver (per readout): the source's packets -> bounded block queue (never blocks; counts drops as gaps)
- processing (per readout): blocks -> :class:`StreamPipeline` (chosen by what the source streams) -> sinks
- housekeeping: instrument parameters every ``interval_s``, and the host's time daemon every
  ``cryodaq.timing.host_clock_interval_s`` -> every readout's sinks
- caller's thread: waits for the duration / a stop request, reports progress

Stopping (duration reached, :meth:`StreamSession.request_stop`, Ctrl-C) stops the
boards, drains what already arrived, flushes open event records, stores each run's clock
model and closes the runs ``complete`` (``interrupted`` when cut short). An error closes
them ``aborted`` with everything committed before the error readable.
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

from cryodaq.acquisition.pipeline import PipelineOutput, StreamPipeline, pipeline_for_source
from cryodaq.acquisition.sinks import RunWriterSink, SessionStats, Sink, SinkFanout, StreamInfo
from cryodaq.acquisition.spectra import SpectrumMonitor
from cryodaq.backend import Backend, get_backend
from cryodaq.dsp.events import EventFlag
from cryodaq.errors import StationConfigError
from cryodaq.readout.loop_sweep import calibrate_source, write_loop_sweep
from cryodaq.readout.receive import receiving
from cryodaq.readout.source import BlockReceiver, ReadoutSource
from cryodaq.station.bringup import station_up
from cryodaq.station.config import StationConfig
from cryodaq.station.loader import resolve_parameter
from cryodaq.storage.writer import RunWriter, default_run_id
from cryodaq.timing.clock import ClockTracker
from cryodaq.timing.host_clock import HostClockMonitor

__all__ = ["ReadoutLane", "RunSummary", "StreamSession", "readout_source", "readout_sources"]

log = logging.getLogger(__name__)

_CLOCK_WRITE_S = 10.0  # the clock model in the run's attrs is refreshed this often (crash safety)


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
    """One readout of a session: its source, pipeline (with its clock model), run and sinks."""

    name: str
    source: ReadoutSource
    pipeline: StreamPipeline
    writer: RunWriter
    writer_sink: RunWriterSink
    sinks: SinkFanout
    spectra: SpectrumMonitor
    stats: SessionStats
    receiver: BlockReceiver | None = None
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
    paths: list[Path] = field(default_factory=list)
    lane_stats: dict[str, SessionStats] = field(default_factory=dict)


class StreamSession:
    """One streaming session of a station: one run per readout (see module docstring)."""

    def __init__(
        self,
        config: StationConfig,
        out_dir: str | Path,
        *,
        simulate: bool | None = None,
        backend: Backend | None = None,
        run_id: str | None = None,
        sinks: list[Sink] | None = None,
    ) -> None:
        self.simulate = config.simulation.enabled if simulate is None else simulate
        self.config = config  # replaced by the config with simulator ports once the station is up
        self.out_dir = Path(out_dir)
        self.backend = backend or get_backend()
        self.run_id = run_id
        self.stats = SessionStats()  # the first readout's (what the progress display shows first)
        self.writer: RunWriter | None = None  # the first readout's run
        self.lanes: list[ReadoutLane] = []
        self._extra_sinks = list(sinks or [])  # e.g. the live publisher: they follow the first readout
        self.station: Station | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self.host_clock = HostClockMonitor()

    # --- control ------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the run to end cleanly (safe from any thread or a signal handler)."""
        self._stop.set()

    def run(
        self,
        duration_s: float | None,
        *,
        on_progress: Callable[[StreamSession], None] | None = None,
        progress_interval_s: float = 0.25,
    ) -> RunSummary:
        """Run until ``duration_s`` passes (None: until stopped); returns the summary.

        KeyboardInterrupt ends the run cleanly as complete-but-interrupted.
        """
        interrupted = False
        with station_up(self.config, simulate=self.simulate) as live:
            self.station, self.config = live.station, live.config
            sources = readout_sources(self.station, self.config)
            run_ids = self._run_ids(list(sources))
            group = {"id": run_ids[0] if len(sources) == 1 else f"{run_ids[0]}-group",
                     "runs": run_ids, "readouts": list(sources)}
            self._open_lanes(sources, run_ids, group)
            self.stats, self.writer = self.lanes[0].stats, self.lanes[0].writer
            try:
                with ExitStack() as stack:
                    for lane in self.lanes:
                        lane.receiver = stack.enter_context(receiving(
                            lane.source, host=self.config.readout.data_host, port=self.config.readout.data_port,
                            packets_per_block=self.config.pipeline.block_packets,
                            queue_blocks=self.config.pipeline.queue_blocks, purpose="this run"))
                    self._start_threads()
                    interrupted = self._wait(duration_s, on_progress, progress_interval_s)
            except KeyboardInterrupt:
                interrupted = True
            except BaseException as exc:  # e.g. the receiver's port is taken: the run is closed 'aborted'
                self._error = self._error or exc
            finally:
                # the sources are stopped and the receivers have queued their end markers: let the threads drain
                self._stop.set()
                for t in self._threads:
                    t.join(timeout=60)
                for lane in self.lanes:
                    if lane.receiver is not None:
                        self._update_receiver_stats(lane)
            reason = self._close_runs(interrupted)
            summary = RunSummary(self.writer.path, "aborted" if self._error else "complete", interrupted,
                                 self.stats.elapsed, self.stats, [lane.writer.path for lane in self.lanes],
                                 {lane.name: lane.stats for lane in self.lanes})
            if on_progress:
                on_progress(self)
        if self._error is not None:
            raise self._error
        log.info("run %s ended: %s", ", ".join(str(p) for p in summary.paths), reason)
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
        """Open every readout's lane; when one fails, the runs already created are closed 'aborted'."""
        self.lanes = []
        try:
            for k, ((name, source), run_id) in enumerate(zip(sources.items(), run_ids, strict=True)):
                self.lanes.append(self._open_lane(name, source, run_id, group, first=k == 0))
        except BaseException as exc:
            for lane in self.lanes:
                try:
                    lane.sinks.close(interrupted=False, reason=f"aborted: {exc}", error=exc)
                except Exception as close_exc:  # the first error is the one to report
                    log.error("closing %s failed: %s", lane.writer.path, close_exc)
            raise

    def _open_lane(self, name: str, source: ReadoutSource, run_id: str, group: dict[str, Any], *,
                   first: bool) -> ReadoutLane:
        """Calibrate a readout, build its pipeline and clock model, create its run and start its sinks."""
        # IQ-loop calibration sweep (a tone comb with method loop_sweep) before the run's own stream
        # starts, so the stored stream begins clean, with no restart gap
        loop = calibrate_source(source, self.config.pipeline, self.backend, host=self.config.readout.data_host)
        stream = source.describe()
        timing = self.config.timing
        clock = ClockTracker(stream.sample_rate_hz, stream.time_base, jump_threshold_s=timing.jump_threshold_s,
                             jump_confirm=timing.jump_confirm, drift_prior_ppm=timing.drift_prior_ppm)
        pipeline = pipeline_for_source(self.config.pipeline, stream, self.backend,
                                       calibration=loop[1] if loop else None, calibration_method="loop_sweep",
                                       clock=clock)
        stats = SessionStats(events_per_channel=np.zeros(len(pipeline.channel_coords["channel"]), np.int64))
        tags = [f"run_group={group['id']}"] if len(group["runs"]) > 1 else []
        writer = RunWriter.create(
            self.out_dir, kind="stream", station_name=self.config.name,
            station_snapshot=self.station.snapshot(update=True) if self.station else {},
            config=self._run_config(name, pipeline.fs), run_id=run_id, clock=clock.model().as_attrs(), tags=tags,
        )
        writer.update_attrs(run_group={**group, "readout": name})
        if loop is not None:
            write_loop_sweep(writer, *loop)
        writer_sink = RunWriterSink(writer, store_stream=self.config.pipeline.store_stream)
        sinks = SinkFanout([writer_sink, *(self._extra_sinks if first else [])])
        info = StreamInfo(
            station=self.config.name, stream=pipeline.stream_name, units=pipeline.units,
            output_rate_hz=pipeline.output_rate, adc_rate_hz=pipeline.fs,
            channel_coords=pipeline.channel_coords, run_path=str(writer.path),
        )
        lane = ReadoutLane(name, source, pipeline, writer, writer_sink, sinks,
                           SpectrumMonitor(pipeline.output_rate, info.n_channels, units=f"{pipeline.units}^2/Hz",
                                           backend=self.backend, nperseg=self.config.pipeline.psd_nperseg,
                                           interval_s=self.config.pipeline.psd_interval_s), stats)
        try:
            sinks.start(info)
        except BaseException as exc:
            writer.abort(exc)
            raise
        return lane

    def _run_config(self, readout: str, fs: float) -> dict[str, Any]:
        return {
            "station_file": str(self.config.path),
            "readout": {"instrument": readout, "sample_rate_hz": fs},
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

    def _start_threads(self) -> None:
        suffix = len(self.lanes) > 1
        self._threads = [threading.Thread(target=self._guard(self._process_loop), args=(lane,),
                                          name=f"cryodaq-pipeline{'-' + lane.name if suffix else ''}", daemon=True)
                         for lane in self.lanes]
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
        return self._error is None  # stopped early by request: interrupted

    @staticmethod
    def _update_receiver_stats(lane: ReadoutLane) -> None:
        assert lane.receiver is not None
        rs, st = lane.receiver.stats, lane.stats
        st.packets, st.samples = rs.packets, rs.samples
        st.lost_packets, st.dropped_blocks = rs.lost_packets, rs.dropped_blocks
        st.queue_fill = lane.receiver.blocks.qsize()

    def _close_runs(self, interrupted: bool) -> str:
        reason = (f"aborted: {self._error}" if self._error is not None
                  else "interrupted by the user" if interrupted else "duration reached")
        for lane in self.lanes:
            try:
                if self._error is None:
                    lane.writer_sink.annotate(pipeline_calibration=lane.pipeline.calibration_attrs())
                clock = lane.pipeline.clock
                clock.host_clock = self.host_clock.summary()
                if not lane.writer.closed:
                    lane.writer.write_clock(clock.model().as_attrs(), clock.anchors())
            except Exception as exc:  # the run is still closed below; the failure ends it 'aborted'
                log.error("storing the clock model of %s failed: %s", lane.writer.path, exc)
                self._error = self._error or exc
            try:
                lane.sinks.close(interrupted=interrupted, reason=reason, error=self._error)
            except Exception as exc:  # every sink was closed; the first failure ends the run 'aborted'
                self._error = self._error or exc
        return reason

    def _process_loop(self, lane: ReadoutLane) -> None:
        assert lane.receiver is not None
        while True:
            block = lane.receiver.blocks.get()
            if block is None:
                break
            for gap in block.gaps:
                lane.sinks.gap(gap)
                lane.stats.gaps += 1
                lane.stats.samples_lost += gap.n_samples
            if not block.continuous:
                lane.spectra.reset()
            self._handle(lane, lane.pipeline.process(block))
            if time.monotonic() - lane.clock_written >= _CLOCK_WRITE_S:  # a crashed run keeps a recent model
                lane.clock_written = time.monotonic()
                lane.pipeline.clock.host_clock = self.host_clock.summary()
                lane.writer.write_clock(lane.pipeline.clock.model().as_attrs())
        self._handle(lane, lane.pipeline.finish())

    def _handle(self, lane: ReadoutLane, outputs: list[PipelineOutput]) -> None:
        st = lane.stats
        for out in outputs:
            lane.sinks.output(out)
            if len(out.events):
                np.add.at(st.events_per_channel, out.events.channel, 1)
                st.events += len(out.events)
                st.vetoed += int(np.count_nonzero(out.events.flags & np.uint16(EventFlag.VETOED)))
            snapshot = lane.spectra.push(out.data, out.t_ns)
            if snapshot is not None:
                t_ns, freq, psd = snapshot
                lane.sinks.spectrum(t_ns, freq, psd, lane.spectra.units)

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
            next_t += hk.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _publish_housekeeping(self, name: str, t_ns: int, value: float, unit: str) -> None:
        for lane in self.lanes:
            lane.sinks.housekeeping(name, t_ns, value, unit)
            lane.stats.housekeeping[name] = value
