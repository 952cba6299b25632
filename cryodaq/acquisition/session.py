"""A streaming run: station up, readout stream -> pipeline -> Zarr run, housekeeping alongside.

Threads (the GUI never runs here):

- receiver: UDP -> bounded block queue (never blocks; counts drops as gaps)
- processing: blocks -> :class:`StreamPipeline` (MKID or TES) -> sinks (run writer, live publisher)
- housekeeping: instrument parameters every ``interval_s`` -> run writer
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
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qcodes.station import Station

from cryodaq.acquisition.loop_sweep import calibrate_board, write_loop_sweep
from cryodaq.acquisition.pipeline import (
    PipelineOutput,
    StreamPipeline,
    pipeline_for_board,
)
from cryodaq.acquisition.receiver import UDPReceiver
from cryodaq.acquisition.sinks import RunWriterSink, Sink, StreamInfo
from cryodaq.acquisition.spectra import SpectrumMonitor
from cryodaq.backend import Backend, get_backend
from cryodaq.station import StationConfig, resolve_parameter
from cryodaq.station.bringup import station_up
from cryodaq.storage import RunWriter

log = logging.getLogger(__name__)


@dataclass
class SessionStats:
    """Live counters, read by the progress display (plain ints: safe to read across threads)."""

    started: float = 0.0
    samples: int = 0
    packets: int = 0
    events: int = 0
    events_per_channel: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lost_packets: int = 0
    dropped_blocks: int = 0
    gaps: int = 0
    samples_lost: int = 0
    housekeeping: dict[str, float] = field(default_factory=dict)
    housekeeping_errors: int = 0
    queue_fill: int = 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0


@dataclass
class RunSummary:
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
        self.sinks: list[Sink] = list(sinks or [])  # the run writer is added first when the run starts
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
        with ExitStack() as stack:
            live = stack.enter_context(station_up(self.config, simulate=self.simulate))
            self.station, self.config = live.station, live.config
            board = self.station.components[self.config.readout.instrument]
            # IQ-loop calibration sweep (MKID, method loop_sweep) before the run's own stream starts,
            # so the stored stream begins clean, with no restart gap
            loop = calibrate_board(board, self.config.pipeline, self.backend, host=self.config.readout.data_host)
            pipeline = pipeline_for_board(self.config.pipeline, board, self.backend,
                                          calibration=loop[1] if loop else None, calibration_method="loop_sweep")
            self.stats.events_per_channel = np.zeros(len(pipeline.channel_coords["channel"]), np.int64)
            receiver = UDPReceiver(
                self.config.readout.data_host, self.config.readout.data_port,
                packets_per_block=self.config.pipeline.block_packets,
                queue_blocks=self.config.pipeline.queue_blocks,
            ).start()
            stack.callback(receiver.stop)
            self.writer = RunWriter.create(
                self.out_dir, kind="stream", station_name=self.config.name,
                station_snapshot=self.station.snapshot(update=True), config=self._run_config(pipeline.fs),
                run_id=self.run_id,
            )
            if loop is not None:
                write_loop_sweep(self.writer, *loop)
            self._writer_sink = RunWriterSink(self.writer, store_stream=self.config.pipeline.store_stream)
            self.sinks.insert(0, self._writer_sink)
            info = StreamInfo(
                station=self.config.name, stream=pipeline.stream_name, units=pipeline.units,
                output_rate_hz=pipeline.output_rate, adc_rate_hz=pipeline.fs,
                channel_coords=pipeline.channel_coords, run_path=str(self.writer.path),
            )
            for sink in self.sinks:
                sink.start(info)
            spectra = SpectrumMonitor(pipeline.output_rate, info.n_channels, units=f"{pipeline.units}^2/Hz",
                                      backend=self.backend,
                                      nperseg=self.config.pipeline.psd_nperseg,
                                      interval_s=self.config.pipeline.psd_interval_s)
            processing = threading.Thread(target=self._guard(self._process_loop),
                                          args=(receiver, pipeline, spectra), name="cryodaq-pipeline", daemon=True)
            housekeeping = threading.Thread(target=self._guard(self._housekeeping_loop),
                                            name="cryodaq-housekeeping", daemon=True)
            self._threads = [processing, housekeeping]
            for t in self._threads:
                t.start()
            self.stats.started = time.monotonic()
            try:
                board.start_stream(receiver.host, receiver.port)
                interrupted = self._wait(duration_s, receiver, on_progress, progress_interval_s)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                self._shutdown(board, receiver)
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

    def _wait(self, duration_s: float | None, receiver: UDPReceiver,
              on_progress: Callable[[StreamSession], None] | None, interval: float) -> bool:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._update_receiver_stats(receiver)
            self._emit("status", self.stats)
            if on_progress:
                on_progress(self)
            self._stop.wait(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        return self._error is None  # stopped early by request: interrupted

    def _update_receiver_stats(self, receiver: UDPReceiver) -> None:
        rs = receiver.stats
        self.stats.packets, self.stats.samples = rs.packets, rs.samples
        self.stats.lost_packets, self.stats.dropped_blocks = rs.lost_packets, rs.dropped_blocks
        self.stats.queue_fill = receiver.blocks.qsize()

    def _shutdown(self, board: Any, receiver: UDPReceiver) -> None:
        try:
            board.stop_stream()
        except Exception as exc:  # the data already received must still be saved
            log.error("could not stop the board's stream: %s", exc)
        receiver.stop()
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        self._update_receiver_stats(receiver)

    def _close_run(self, pipeline: StreamPipeline, interrupted: bool) -> str:
        if self._error is None:
            self._writer_sink.annotate(pipeline_calibration=pipeline.calibration_attrs())
        reason = (f"aborted: {self._error}" if self._error is not None
                  else "interrupted by the user" if interrupted else "duration reached")
        for sink in self.sinks:
            try:
                sink.close(interrupted=interrupted, reason=reason, error=self._error)
            except Exception as exc:  # one sink failing must not keep the others from closing
                log.error("closing sink %r failed: %s", sink, exc)
                self._error = self._error or exc
        return reason

    def _process_loop(self, receiver: UDPReceiver, pipeline: StreamPipeline, spectra: SpectrumMonitor) -> None:
        while True:
            block = receiver.blocks.get()
            if block is None:
                break
            for gap in block.gaps:
                self._emit("gap", gap)
                self.stats.gaps += 1
                self.stats.samples_lost += gap.n_samples
            if not block.continuous:
                spectra.reset()
            self._handle(pipeline.process(block), spectra)
        self._handle(pipeline.finish(), spectra)

    def _handle(self, outputs: list[PipelineOutput], spectra: SpectrumMonitor) -> None:
        for out in outputs:
            self._emit("output", out)
            if len(out.events):
                np.add.at(self.stats.events_per_channel, out.events.channel, 1)
                self.stats.events += len(out.events)
            snapshot = spectra.push(out.data, out.t_ns)
            if snapshot is not None:
                t_ns, freq, psd = snapshot
                self._emit("spectrum", t_ns, freq, psd, spectra.units)

    def _emit(self, method: str, *args: Any) -> None:
        for sink in self.sinks:
            getattr(sink, method)(*args)

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
                self._emit("housekeeping", name, time.time_ns(), value, param.unit or "")
                self.stats.housekeeping[name] = value
            next_t += hk.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

