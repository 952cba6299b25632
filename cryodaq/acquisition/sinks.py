"""Where a streaming session's results go: the :class:`Sink` seam, its fan-out and the Zarr run writer.

A session hands every result to one :class:`SinkFanout`, which hands it to each of its
sinks (the run writer first, then e.g. the live publisher, :mod:`cryodaq.live`). Sinks
are called from the session's threads (pipeline, housekeeping, and the caller's thread for
status), so a sink must be thread-safe and must not block for long: a slow sink slows the
pipeline, and a full pipeline drops data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from cryodaq.acquisition.pipeline import PipelineOutput
from cryodaq.readout.blocks import Gap

if TYPE_CHECKING:
    from cryodaq.storage.writer import RunWriter

__all__ = ["RunWriterSink", "SessionStats", "Sink", "SinkFanout", "StreamInfo"]

log = logging.getLogger(__name__)


@dataclass
class SessionStats:
    """Live counters of a session, read by the progress display and sent to sinks as ``status``.

    Plain ints and small arrays: safe to read across threads.
    """

    started: float = 0.0
    samples: int = 0
    packets: int = 0
    events: int = 0
    events_per_channel: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vetoed: int = 0  # events flagged VETOED by the coincidence veto stage
    lost_packets: int = 0
    dropped_blocks: int = 0
    gaps: int = 0
    samples_lost: int = 0
    housekeeping: dict[str, float] = field(default_factory=dict)
    housekeeping_units: dict[str, str] = field(default_factory=dict)
    housekeeping_errors: int = 0
    queue_fill: int = 0
    sample_unit: str = "samples"  # what ``samples`` counts: "records" for a source of triggered records

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0


@dataclass(frozen=True)
class StreamInfo:
    """What the session streams: names, units and rates every sink needs up front."""

    station: str
    stream: str  # name of the stored timestream variable, e.g. "phase"
    units: str
    output_rate_hz: float
    adc_rate_hz: float
    channel_coords: dict[str, np.ndarray] = field(default_factory=dict)  # "channel" + per-channel metadata
    run_path: str | None = None
    iq_units: str = "counts"  # units of the IQ behind the stream (an IQ pipeline's)

    @property
    def n_channels(self) -> int:
        return int(len(self.channel_coords["channel"]))


class Sink(Protocol):
    """Receives a session's results. Every method is optional to act on, but must exist."""

    def start(self, info: StreamInfo) -> None: ...

    def output(self, out: PipelineOutput) -> None: ...

    def gap(self, gap: Gap) -> None: ...

    def housekeeping(self, name: str, t_ns: int, value: float, unit: str) -> None: ...

    def spectrum(self, t_ns: int, freq: np.ndarray, psd: np.ndarray, units: str) -> None: ...

    def status(self, stats: SessionStats) -> None: ...

    def close(self, *, interrupted: bool, reason: str, error: BaseException | None) -> None: ...


class SinkFanout:
    """One :class:`Sink` that hands every call to each of ``sinks``, in order.

    A sink that raises while running stops the call there (the session then ends the run
    ``aborted``: a sink that cannot store data must not be ignored). :meth:`close` closes
    every sink even when some fail, and re-raises the first failure.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks: list[Sink] = list(sinks)

    def start(self, info: StreamInfo) -> None:
        for sink in self.sinks:
            sink.start(info)

    def output(self, out: PipelineOutput) -> None:
        for sink in self.sinks:
            sink.output(out)

    def gap(self, gap: Gap) -> None:
        for sink in self.sinks:
            sink.gap(gap)

    def housekeeping(self, name: str, t_ns: int, value: float, unit: str) -> None:
        for sink in self.sinks:
            sink.housekeeping(name, t_ns, value, unit)

    def spectrum(self, t_ns: int, freq: np.ndarray, psd: np.ndarray, units: str) -> None:
        for sink in self.sinks:
            sink.spectrum(t_ns, freq, psd, units)

    def status(self, stats: SessionStats) -> None:
        for sink in self.sinks:
            sink.status(stats)

    def close(self, *, interrupted: bool, reason: str, error: BaseException | None) -> None:
        first: Exception | None = None
        for sink in self.sinks:
            try:
                sink.close(interrupted=interrupted, reason=reason, error=error)
            except Exception as exc:  # one sink failing must not keep the others from closing
                log.error("closing sink %r failed: %s", sink, exc)
                first = first or exc
        if first is not None:
            raise first


class RunWriterSink:
    """Stores a session in a Zarr run (``cryodaq.storage``); commits about once a second.

    ``store_stream``: the timestream (e.g. ``phase``); ``store_iq``: also the IQ an IQ pipeline
    works from, as stream variables ``i`` and ``q`` (in the source's units, e.g. ADC counts).
    """

    def __init__(self, writer: RunWriter, *, store_stream: bool, store_iq: bool = False,
                 commit_every_s: float = 1.0) -> None:
        self.writer = writer
        self.store_stream = store_stream
        self.store_iq = store_iq
        self.commit_every_s = commit_every_s
        self._last_commit = time.monotonic()
        self._stream = ""
        self._record_rate_hz = 0.0

    def start(self, info: StreamInfo) -> None:
        self._stream = info.stream
        self._record_rate_hz = info.output_rate_hz  # records are sampled like the stream they come from
        variables = {info.stream: info.units} if self.store_stream else {}
        if self.store_iq:
            variables.update(i=info.iq_units, q=info.iq_units)
        for name, units in variables.items():
            self.writer.declare_stream(
                name, n_channels=info.n_channels, dtype="float32", sample_rate_hz=info.output_rate_hz,
                units=units, channel_coords=info.channel_coords,
            )

    def output(self, out: PipelineOutput) -> None:
        if self.store_stream and len(out.sample_index):
            self.writer.append_stream(self._stream, out.data, out.sample_index, out.t_ns)
        if out.optimal_filters is not None:
            self.writer.append_optimal_filters(out.optimal_filters)
        if out.retunes is not None:
            self.writer.append_retunes(out.retunes)
        if self.store_iq and len(out.sample_index):
            if out.iq is None:
                raise ValueError("store_iq: this pipeline gives no IQ to store (an IQ stream's pipeline does)")
            self.writer.append_stream("i", out.iq.real.astype(np.float32), out.sample_index, out.t_ns)
            self.writer.append_stream("q", out.iq.imag.astype(np.float32), out.sample_index, out.t_ns)
        if len(out.events):
            self.writer.append_events(out.event_columns(), record_presamples=out.events.presamples,
                                      record_sample_rate_hz=self._record_rate_hz or None)
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.writer.commit()
            self._last_commit = time.monotonic()

    def gap(self, gap: Gap) -> None:
        self.writer.append_gap(gap.first_sample, gap.n_samples, gap.t_ns, gap.cause, gap.detail)

    def housekeeping(self, name: str, t_ns: int, value: float, unit: str) -> None:
        self.writer.append_housekeeping(name, np.array([t_ns]), np.array([value]), unit)

    def spectrum(self, t_ns: int, freq: np.ndarray, psd: np.ndarray, units: str) -> None:
        self.writer.append_spectrum(t_ns, freq, psd, units=units)

    def status(self, stats: SessionStats) -> None:
        """Nothing to do: counters are summarised from the stored data."""

    def close(self, *, interrupted: bool, reason: str, error: BaseException | None) -> None:
        if error is not None:
            self.writer.abort(error)
        else:
            self.writer.close("complete", interrupted=interrupted, end_reason=reason)

    def annotate(self, **attrs: Any) -> None:
        """Record facts learnt while running (e.g. the pipeline's calibration) in the run attrs."""
        self.writer.update_attrs(**attrs)
