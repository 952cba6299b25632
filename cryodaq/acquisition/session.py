"""A streaming run: station up, readout source -> pipeline -> sinks (Zarr run, live view), housekeeping alongside.

The session talks to the readout through the :class:`~cryodaq.readout.source.ReadoutSource`
seam (the station's ``cryodaq.readout.instrument``) and to its outputs through one
:class:`~cryodaq.acquisition.sinks.SinkFanout`. Threads (the GUI never runs here):

- receiver: the source's packets -> bounded block queue (never blocks; counts drops as gaps)
- processing: blocks -> :class:`StreamPipeline` (chosen by what the source streams) -> sinks
- housekeeping: instrument parameters every ``interval_s`` -> sinks
- caller's thread: waits for the duration / a stop request, reports progress

Stopping (duration reached, :meth:`StreamSession.request_stop`, Ctrl-C) stops the
board, drains what already arrived, flushes open event records and closes the run
``complete`` (``interrupted`` when it was cut short). An error closes it ``aborted``
with everything committed before the error readable.
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

from cryodaq.acquisition.pipeline import PipelineOutput, StreamPipeline, pipeline_for_source
from cryodaq.acquisition.sinks import RunWriterSink, SessionStats, Sink, SinkFanout, StreamInfo
from cryodaq.acquisition.spectra import SpectrumMonitor
from cryodaq.backend import Backend, get_backend
from cryodaq.errors import StationConfigError
from cryodaq.readout.loop_sweep import calibrate_source, write_loop_sweep
from cryodaq.readout.receive import receiving
from cryodaq.readout.source import BlockReceiver, ReadoutSource
from cryodaq.station.bringup import station_up
from cryodaq.station.config import StationConfig
from cryodaq.station.loader import resolve_parameter
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
    ) -> None:
        self.simulate = config.simulation.enabled if simulate is None else simulate
        self.config = config  # replaced by the config with simulator ports once the station is up
        self.out_dir = Path(out_dir)
        self.backend = backend or get_backend()
        self.run_id = run_id
        self.stats = SessionStats()
        self.writer: RunWriter | None = None
        self.sinks = SinkFanout(sinks or [])  # the run writer is added first when the run starts
        self.station: Station | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []

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
            source = readout_source(self.station, self.config)
            # IQ-loop calibration sweep (a tone comb with method loop_sweep) before the run's own stream
            # starts, so the stored stream begins clean, with no restart gap
            loop = calibrate_source(source, self.config.pipeline, self.backend, host=self.config.readout.data_host)
            pipeline = pipeline_for_source(self.config.pipeline, source.describe(), self.backend,
                                           calibration=loop[1] if loop else None, calibration_method="loop_sweep")
            self.stats.events_per_channel = np.zeros(len(pipeline.channel_coords["channel"]), np.int64)
            self.writer = RunWriter.create(
                self.out_dir, kind="stream", station_name=self.config.name,
                station_snapshot=self.station.snapshot(update=True), config=self._run_config(pipeline.fs),
                run_id=self.run_id,
            )
            if loop is not None:
                write_loop_sweep(self.writer, *loop)
            self._writer_sink = RunWriterSink(self.writer, store_stream=self.config.pipeline.store_stream)
            self.sinks = SinkFanout([self._writer_sink, *self.sinks.sinks])
            info = StreamInfo(
                station=self.config.name, stream=pipeline.stream_name, units=pipeline.units,
                output_rate_hz=pipeline.output_rate, adc_rate_hz=pipeline.fs,
                channel_coords=pipeline.channel_coords, run_path=str(self.writer.path),
            )
            self.sinks.start(info)
            spectra = SpectrumMonitor(pipeline.output_rate, info.n_channels, units=f"{pipeline.units}^2/Hz",
                                      backend=self.backend,
                                      nperseg=self.config.pipeline.psd_nperseg,
                                      interval_s=self.config.pipeline.psd_interval_s)
            receiver: BlockReceiver | None = None
            try:
                with receiving(source, host=self.config.readout.data_host, port=self.config.readout.data_port,
                               packets_per_block=self.config.pipeline.block_packets,
                               queue_blocks=self.config.pipeline.queue_blocks, purpose="this run") as receiver:
                    self._start_threads(receiver, pipeline, spectra)
                    interrupted = self._wait(duration_s, receiver, on_progress, progress_interval_s)
            except KeyboardInterrupt:
                interrupted = True
            except BaseException as exc:  # e.g. the receiver's port is taken: the run is closed 'aborted'
                self._error = self._error or exc
            finally:
                # the source is stopped and the receiver has queued its end marker: let the threads drain
                self._stop.set()
                for t in self._threads:
                    t.join(timeout=60)
                if receiver is not None:
                    self._update_receiver_stats(receiver)
            reason = self._close_run(pipeline, interrupted)
            summary = RunSummary(self.writer.path, "aborted" if self._error else "complete", interrupted,
                                 self.stats.elapsed, self.stats)
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

    def _start_threads(self, receiver: BlockReceiver, pipeline: StreamPipeline, spectra: SpectrumMonitor) -> None:
        processing = threading.Thread(target=self._guard(self._process_loop),
                                      args=(receiver, pipeline, spectra), name="cryodaq-pipeline", daemon=True)
        housekeeping = threading.Thread(target=self._guard(self._housekeeping_loop),
                                        name="cryodaq-housekeeping", daemon=True)
        self._threads = [processing, housekeeping]
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
        return self._error is None  # stopped early by request: interrupted

    def _update_receiver_stats(self, receiver: BlockReceiver) -> None:
        rs = receiver.stats
        self.stats.packets, self.stats.samples = rs.packets, rs.samples
        self.stats.lost_packets, self.stats.dropped_blocks = rs.lost_packets, rs.dropped_blocks
        self.stats.queue_fill = receiver.blocks.qsize()

    def _close_run(self, pipeline: StreamPipeline, interrupted: bool) -> str:
        if self._error is None:
            self._writer_sink.annotate(pipeline_calibration=pipeline.calibration_attrs())
        reason = (f"aborted: {self._error}" if self._error is not None
                  else "interrupted by the user" if interrupted else "duration reached")
        try:
            self.sinks.close(interrupted=interrupted, reason=reason, error=self._error)
        except Exception as exc:  # every sink was closed; the first failure ends the run 'aborted'
            self._error = self._error or exc
        return reason

    def _process_loop(self, receiver: BlockReceiver, pipeline: StreamPipeline, spectra: SpectrumMonitor) -> None:
        while True:
            block = receiver.blocks.get()
            if block is None:
                break
            for gap in block.gaps:
                self.sinks.gap(gap)
                self.stats.gaps += 1
                self.stats.samples_lost += gap.n_samples
            if not block.continuous:
                spectra.reset()
            self._handle(pipeline.process(block), spectra)
        self._handle(pipeline.finish(), spectra)

    def _handle(self, outputs: list[PipelineOutput], spectra: SpectrumMonitor) -> None:
        for out in outputs:
            self.sinks.output(out)
            if len(out.events):
                np.add.at(self.stats.events_per_channel, out.events.channel, 1)
                self.stats.events += len(out.events)
            snapshot = spectra.push(out.data, out.t_ns)
            if snapshot is not None:
                t_ns, freq, psd = snapshot
                self.sinks.spectrum(t_ns, freq, psd, spectra.units)

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
                self.stats.housekeeping[name] = value
            next_t += hk.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

