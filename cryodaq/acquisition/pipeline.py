"""Readout pipelines: ADC blocks -> timestreams (MKID phase, TES current) -> events.

Every stage is a streaming object from :mod:`cryodaq.dsp` (one code path for
numpy and cupy). A block that follows a gap resets all DSP state: samples on the
two sides of a gap are never filtered together.

Sample-index convention: every output (phase sample, event) carries the ADC
sample index it refers to (``ToneChannelizer.sample_index``), and UTC time is
derived from it by the run's clock model (:class:`cryodaq.timing.clock.ClockTracker`,
fitted to the packet timestamps), so times stay right across gaps and monotonic
through clock jumps; every event also carries its time's uncertainty.

Optional stage after the trigger: the cross-channel coincidence veto
(:class:`cryodaq.dsp.coincidence.CoincidenceVeto`, ``config.veto``) gives every event a
group id and multiplicity and flags VETOED those of groups on more than K channels.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp import EventBatch, IQCalibration, ThresholdTrigger, ToneChannelizer
from cryodaq.dsp.coincidence import CoincidenceVeto
from cryodaq.dsp.stats import robust_sigma
from cryodaq.config import PipelineConfig
from cryodaq.readout.blocks import Block
from cryodaq.readout.source import StreamDescription
from cryodaq.timing.clock import ClockTracker

log = logging.getLogger(__name__)

# Noise level for the trigger threshold is estimated on this much data at start.
_NOISE_ESTIMATE_S = 0.25


@dataclass
class PipelineOutput:
    """What one block produced: timestreams and the events found in them."""

    data: np.ndarray  # (n, n_channels) float32 timestream: phase in rad for MKIDs
    sample_index: np.ndarray  # (n,) int64, ADC sample index of each sample
    t_ns: np.ndarray  # (n,) int64, UTC ns
    events: EventBatch  # sample_index in ADC samples
    event_t_ns: np.ndarray  # (n_events,) int64 UTC ns
    iq: np.ndarray | None = None  # (n, n_tones) complex64 before calibration, for IQ-plane displays
    event_t_err_ns: np.ndarray | None = None  # (n_events,) float32: 1-sigma uncertainty of event_t_ns as UTC

    def event_columns(self) -> dict[str, np.ndarray]:
        """The events as columns of the run format's ``events/`` group."""
        ev = self.events
        cols = {"t": self.event_t_ns, "sample_index": ev.sample_index, "channel": ev.channel,
                "amplitude": ev.amplitude, "baseline": ev.baseline, "flags": ev.flags}
        if self.event_t_err_ns is not None:
            cols["t_err"] = self.event_t_err_ns
        if ev.group is not None and ev.multiplicity is not None:
            cols["group"], cols["multiplicity"] = ev.group, ev.multiplicity
        if ev.records is not None:
            cols["records"] = ev.records
        return cols



class StreamPipeline(ABC):
    """Shared streaming logic: raw block -> timestream -> trigger -> events, with gap resets.

    Subclasses say how ADC samples become a float32 timestream (``_convert``,
    ``_to_timestream``), how an output sample maps to an ADC sample index
    (``_offset``), and what they learn from the first data (``_calibrate_more``).
    The trigger thresholds (``threshold_sigma`` times each channel's robust noise
    sigma) are set from the first ``_NOISE_ESTIMATE_S`` of data; until then the data
    are buffered, not lost. :meth:`calibration_attrs` reports them so a stored run
    can be reprocessed with exactly the same settings.
    """

    stream_name = "data"
    units = ""

    def __init__(self, config: PipelineConfig, *, fs: float, output_rate: float, n_channels: int,
                 backend: Backend | None, channel_coords: dict[str, np.ndarray],
                 clock: ClockTracker | None = None) -> None:
        self.config = config
        self.backend = backend or numpy_backend()
        self.fs = float(fs)
        self.output_rate = float(output_rate)
        self.n_channels = int(n_channels)
        self.channel_coords = {"channel": np.arange(n_channels, dtype=np.int32), **channel_coords}
        self.thresholds: np.ndarray | None = None
        self.trigger: ThresholdTrigger | None = None
        self._pending: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []  # waiting for calibration
        self._segment_first = 0  # ADC index at the last reset
        self._first_block = True
        self._n_out = 0  # outputs since the last reset
        self.clock = clock or ClockTracker(self.fs)  # sample index -> UTC, fitted to the block stamps
        self._t_quantum_ns = 1e9 / self.output_rate / math.sqrt(12.0)  # an event's index is one output sample
        veto = config.veto
        self.veto = CoincidenceVeto(round(veto.window_s * self.fs), veto.max_channels) if veto.enabled else None

    # --- what subclasses provide ----------------------------------------------
    @abstractmethod
    def _convert(self, samples: np.ndarray) -> np.ndarray:
        """ADC samples of one block -> raw outputs (n_out, n_channels), e.g. IQ."""

    @abstractmethod
    def _to_timestream(self, raw: np.ndarray) -> np.ndarray:
        """Raw outputs -> the float32 timestream that is stored and triggered on."""

    @abstractmethod
    def _offset(self, k: np.ndarray) -> np.ndarray:
        """ADC samples from the segment start to output sample ``k`` (float)."""

    def _calibrate_more(self, raw: np.ndarray) -> None:
        """Learn per-stream calibration from the first data, before thresholds are set."""

    def _reset_more(self) -> None:
        """Reset the subclass's own filter state."""

    def _extra_attrs(self) -> dict[str, Any]:
        return {}

    # --- time ---------------------------------------------------------------
    def t_ns_of(self, sample_index: np.ndarray, series: str = "samples") -> np.ndarray:
        """UTC ns of ADC sample indices, from the clock model fitted to the packet timestamps (never
        going back within a ``series``: the stream's samples, its events)."""
        return self.clock.utc_ns(sample_index, series)

    def t_err_of(self, sample_index: np.ndarray) -> np.ndarray:
        """1-sigma uncertainty (ns, float32) of event times: the clock's, and the trigger's one-sample step."""
        clock = self.clock.uncertainty_ns(sample_index)
        return np.sqrt(clock**2 + self._t_quantum_ns**2).astype(np.float32)

    # --- streaming ----------------------------------------------------------
    def reset(self, first_sample: int) -> None:
        """Forget all filter and trigger state (after a gap); calibration is kept.

        The next sample has ADC index ``first_sample``: filters that mix by absolute
        time (the tone DDC) stay phase-continuous across the gap.
        """
        self._segment_first = int(first_sample)
        self._n_out = 0
        self._reset_more()
        if self.trigger is not None:
            self.trigger.reset()

    def process(self, block: Block) -> list[PipelineOutput]:
        """Process one block; returns zero or more outputs (none while calibrating)."""
        outputs: list[PipelineOutput] = []
        if not block.continuous or self._first_block:
            # a gap (or the stream's first block): start a segment at this block's sample index
            outputs += self.finish()
            self.reset(block.first_sample)
            self._first_block = False
        if block.n_samples == 0:
            return outputs
        self.clock.observe(block.first_sample, block.t_ns)
        raw = self._convert(block.samples)
        k0 = self._n_out
        self._n_out += raw.shape[0]
        idx = self._adc_index(np.arange(k0, self._n_out))
        item = (raw, k0, idx, self.t_ns_of(idx))
        if self.thresholds is None:
            self._pending.append(item)
            if sum(p[0].shape[0] for p in self._pending) < _NOISE_ESTIMATE_S * self.output_rate:
                return outputs
            return outputs + self._drain_pending()
        return outputs + [self._trigger(*item)]

    def finish(self) -> list[PipelineOutput]:
        """End of a segment or stream: process what waits for calibration, flush open records."""
        return self._drain_pending() + self._flush_events()

    def _drain_pending(self) -> list[PipelineOutput]:
        if not self._pending:
            return []
        if self.thresholds is None:
            self._calibrate(np.concatenate([p[0] for p in self._pending]))
        pending, self._pending = self._pending, []
        return [self._trigger(*p) for p in pending]

    def _calibrate(self, raw: np.ndarray) -> None:
        self._calibrate_more(raw)
        sigma = robust_sigma(self._to_timestream(raw))
        sigma = np.where(sigma > 0, sigma, np.finfo(np.float32).eps)
        self.thresholds = (self.config.trigger.threshold_sigma * sigma).astype(np.float32)
        self.trigger = make_trigger(self.config, self.thresholds, self.output_rate, self.backend)
        log.info("calibrated %d channels; noise sigma %s %s", len(sigma),
                 np.array2string(sigma, precision=4), self.units)

    def _trigger(self, raw: np.ndarray, k0: int, idx: np.ndarray, t_ns: np.ndarray) -> PipelineOutput:
        assert self.trigger is not None
        data = self._to_timestream(raw)
        events = self._events_to_adc(self.trigger.process(data, k0))
        if self.veto is not None:  # held until no later event can join their coincidence group
            horizon = self.trigger.horizon
            events = self.veto.process(events, None if horizon is None else int(self._adc_index(np.array([horizon]))[0]))
        iq = raw if np.iscomplexobj(raw) else None
        return PipelineOutput(data, idx, t_ns, events, self.t_ns_of(events.sample_index, "events"), iq,
                              self.t_err_of(events.sample_index))

    def _flush_events(self) -> list[PipelineOutput]:
        if self.trigger is None:
            return []
        events = self._events_to_adc(self.trigger.finish())
        if self.veto is not None:
            events = self.veto.flush(events)
        empty = np.zeros((0, self.n_channels), np.float32)
        none = np.zeros(0, np.int64)
        return [PipelineOutput(empty, none, none, events, self.t_ns_of(events.sample_index, "events"), None,
                               self.t_err_of(events.sample_index))] if len(events) else []

    def _adc_index(self, k: np.ndarray) -> np.ndarray:
        """ADC sample index of output samples ``k`` (counted since the last reset)."""
        return self._segment_first + np.round(self._offset(k)).astype(np.int64)

    def _events_to_adc(self, events: EventBatch) -> EventBatch:
        """Trigger indices count output samples since the last reset; make them ADC indices."""
        if len(events):
            events.sample_index = self._adc_index(np.asarray(events.sample_index, dtype=np.float64))
        return events

    # --- provenance ---------------------------------------------------------
    def calibration_attrs(self) -> dict[str, Any]:
        """What a reprocessing job needs to reproduce this run's events exactly."""
        out: dict[str, Any] = {"output_rate_hz": self.output_rate, "stream": self.stream_name,
                               "units": self.units, **self._extra_attrs()}
        if self.thresholds is not None:
            out["trigger_threshold"] = self.thresholds.tolist()
        return out


class MKIDPipeline(StreamPipeline):
    """PFB channelizer -> tone DDC -> IQ -> phase (rotated so each operating point is 0 rad).

    ``calibration`` (e.g. from an IQ-loop sweep, :mod:`cryodaq.readout.loop_sweep`): phase
    about each loop's centre. Without it the phase is measured about the IQ origin, rotated to
    the mean of the first data (:meth:`IQCalibration.from_baseline`), which saturates for
    loops that do not enclose the origin.
    """

    stream_name = "phase"
    units = "rad"

    def __init__(self, config: PipelineConfig, *, fs: float, tone_if_hz: np.ndarray,
                 backend: Backend | None = None, channel_coords: dict[str, np.ndarray] | None = None,
                 calibration: IQCalibration | None = None, clock: ClockTracker | None = None) -> None:
        backend = backend or numpy_backend()
        self.tone_if_hz = np.asarray(tone_if_hz, dtype=float)
        self.channelizer = ToneChannelizer(
            self.tone_if_hz, fs, config.n_channels, config.n_taps, config.decimation,
            config.oversampling, backend=backend, window=config.window,
        )
        super().__init__(config, fs=fs, output_rate=self.channelizer.output_rate, n_channels=len(self.tone_if_hz),
                         backend=backend, channel_coords={"tone_if_hz": self.tone_if_hz, **(channel_coords or {})},
                         clock=clock)
        if calibration is not None and calibration.n_tones != len(self.tone_if_hz):
            raise ValueError(f"MKID pipeline: the IQ calibration has {calibration.n_tones} tones, "
                             f"the board {len(self.tone_if_hz)}")
        self.calibration: IQCalibration | None = calibration
        self.calibration_method = "baseline" if calibration is None else "given"

    def _convert(self, samples: np.ndarray) -> np.ndarray:
        return self.backend.to_numpy(self.channelizer.process(self.backend.asarray(samples)))

    def _to_timestream(self, raw: np.ndarray) -> np.ndarray:
        assert self.calibration is not None
        return self.backend.to_numpy(self.calibration.phase(raw, backend=self.backend)).astype(np.float32)

    def _offset(self, k: np.ndarray) -> np.ndarray:
        return self.channelizer.sample_index(k) - self._segment_first

    def _calibrate_more(self, raw: np.ndarray) -> None:
        if self.calibration is None:
            self.calibration = IQCalibration.from_baseline(raw)

    def _reset_more(self) -> None:
        self.channelizer.reset(self._segment_first)

    def _extra_attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tone_if_hz": self.tone_if_hz.tolist(),
                               "bins": np.asarray(self.channelizer.bins).tolist()}
        if self.calibration is not None:
            cal = self.calibration
            out["iq_calibration"] = self.calibration_method
            out["rotation_rad"] = cal.rotation.tolist()
            out["radius"] = cal.radius.tolist()
            out["centre_i"] = cal.centre.real.tolist()
            out["centre_q"] = cal.centre.imag.tolist()
            out["phase_sign"] = cal.sign.tolist()
        return out


class TESPipeline(StreamPipeline):
    """Demultiplexed TES channels: ADC counts -> current (A) -> trigger.

    A SQUID that relocks (reset, flux jump) shifts the baseline by whole flux
    quanta; the trigger's moving baseline absorbs it after one event, which is
    flagged like any other and can be cut offline by its shape.
    """

    stream_name = "current"
    units = "A"

    def __init__(self, config: PipelineConfig, *, fs: float, counts_per_ampere: np.ndarray,
                 backend: Backend | None = None, channel_coords: dict[str, np.ndarray] | None = None,
                 clock: ClockTracker | None = None) -> None:
        self.counts_per_ampere = np.asarray(counts_per_ampere, dtype=np.float64)
        super().__init__(config, fs=fs, output_rate=fs, n_channels=len(self.counts_per_ampere), backend=backend,
                         channel_coords={"counts_per_ampere": self.counts_per_ampere, **(channel_coords or {})},
                         clock=clock)
        self._scale = (1.0 / self.counts_per_ampere).astype(np.float32)

    def _convert(self, samples: np.ndarray) -> np.ndarray:
        return samples.reshape(len(samples), -1).astype(np.float32) * self._scale

    def _to_timestream(self, raw: np.ndarray) -> np.ndarray:
        return raw

    def _offset(self, k: np.ndarray) -> np.ndarray:
        return np.asarray(k, dtype=np.float64)

    def _extra_attrs(self) -> dict[str, Any]:
        return {"counts_per_ampere": self.counts_per_ampere.tolist()}


def pipeline_for_source(config: PipelineConfig, stream: StreamDescription, backend: Backend | None = None, *,
                        calibration: IQCalibration | None = None,
                        calibration_method: str | None = None, clock: ClockTracker | None = None) -> StreamPipeline:
    """The pipeline for what a readout source streams (its :class:`~cryodaq.readout.source.StreamDescription`).

    ``adc`` (a tone comb on one ADC) gets the :class:`MKIDPipeline`, ``channels`` (demultiplexed
    channels in amperes, ``counts_per_unit`` given) the :class:`TESPipeline`. ``calibration``: an MKID
    stream's IQ calibration (e.g. from :func:`~cryodaq.readout.loop_sweep.calibrate_source`),
    recorded in :meth:`~StreamPipeline.calibration_attrs` as ``calibration_method`` (default "given").
    ``clock``: the stream's clock model (default: one for the stream's sample rate and time base).
    """
    clock = clock or ClockTracker(stream.sample_rate_hz, stream.time_base)
    coords = {k: np.asarray(v) for k, v in stream.channel_coords.items()}
    if stream.kind == "adc":
        if "tone_if_hz" not in coords:
            raise ValueError(f"{stream.source}: an 'adc' stream needs the tones' IFs (channel coordinate 'tone_if_hz')")
        tone_if = coords.pop("tone_if_hz")
        pipeline = MKIDPipeline(config, fs=stream.sample_rate_hz, tone_if_hz=tone_if, backend=backend,
                                channel_coords=coords, calibration=calibration, clock=clock)
        if calibration is not None and calibration_method:
            pipeline.calibration_method = calibration_method
        return pipeline
    if stream.kind == "channels":
        if stream.counts_per_unit is None or stream.units != "A":
            raise ValueError(f"{stream.source}: a 'channels' stream needs counts_per_unit in amperes "
                             f"(got units {stream.units!r})")
        return TESPipeline(config, fs=stream.sample_rate_hz, counts_per_ampere=np.array(stream.counts_per_unit, float),
                           backend=backend, channel_coords=coords, clock=clock)
    raise ValueError(f"{stream.source}: no readout pipeline for a {stream.kind!r} stream "
                     "(this version handles 'adc' and 'channels' streams)")


def make_trigger(config: PipelineConfig, thresholds: np.ndarray, rate: float, backend: Backend) -> ThresholdTrigger:
    """The trigger a pipeline config describes, on streams sampled at ``rate``."""
    t = config.trigger
    record = max(int(round(t.record_s * rate)), 2)
    return ThresholdTrigger(
        threshold=thresholds,
        holdoff=max(int(round(t.holdoff_s * rate)), 1),
        polarity=t.polarity,
        baseline_samples=max(int(round(t.baseline_s * rate)), 1),
        record_length=record,
        presamples=min(int(round(t.presamples_s * rate)), record - 1),
        keep_records=True,
        backend=backend,
    )
