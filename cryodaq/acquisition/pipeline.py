"""Readout pipelines: ADC blocks -> timestreams (MKID phase, TES current) -> events; triggered records -> events.

Every stage is a streaming object from :mod:`cryodaq.dsp` (one code path for
numpy and cupy). A block that follows a gap resets all DSP state: samples on the
two sides of a gap are never filtered together. A source that triggers by itself
(kind ``records``, e.g. DASTARD) gets the :class:`RecordPipeline`: no timestream, its
records become events as they are.

Sample-index convention: every output (phase sample, event) carries the ADC
sample index it refers to (``ToneChannelizer.sample_index``), and UTC time is
derived from it by the run's clock model (:class:`cryodaq.timing.clock.ClockTracker`,
fitted to the packet timestamps), so times stay right across gaps and monotonic
through clock jumps; every event also carries its time's uncertainty.

Device residency: on a GPU backend a block crosses to the device once (its raw samples,
:meth:`StreamPipeline.process`) and back once (timestream, IQ, the trigger's candidates and
a due spectrum, in one :meth:`~cryodaq.backend.Backend.to_host`); every stage in between takes
and returns backend arrays. Records are cut and events built on the host from the timestream
that is stored anyway. The ``strict`` test backend holds CI to this.

Optional stage after the trigger: the cross-channel coincidence veto
(:class:`cryodaq.dsp.coincidence.CoincidenceVeto`, ``config.veto``) gives every event a
group id and multiplicity and flags VETOED those of groups on more than K channels.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from cryodaq.acquisition.spectra import SpectrumMonitor
from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp import EventBatch, IQCalibration, ThresholdTrigger, ToneChannelizer
from cryodaq.dsp.coincidence import CoincidenceVeto
from cryodaq.dsp.stats import robust_sigma
from cryodaq.config import PipelineConfig
from cryodaq.errors import CryodaqError, StationConfigError
from cryodaq.readout.blocks import CAUSE_BAD_RECORD, CAUSE_RECORD_SHAPE, Block, Gap, RecordBlock, StatusMessage
from cryodaq.readout.source import StreamDescription
from cryodaq.wire.dastard import DTYPE_CODES, DastardFormatError, status_values
from cryodaq.timing.clock import ClockTracker

log = logging.getLogger(__name__)

# Noise level for the trigger threshold is estimated on this much data at start.
_NOISE_ESTIMATE_S = 0.25


class HousekeepingValue(NamedTuple):
    """One housekeeping sample a pipeline found in its source's data (e.g. DASTARD's trigger rate)."""

    name: str
    t_ns: int
    value: float
    unit: str


@dataclass
class PipelineOutput:
    """What one block produced: timestreams and the events found in them.

    ``event_extra``: more per-event columns (e.g. a records source's ``volts_per_arb``), stored
    in ``events/`` next to the standard ones. ``gaps`` and ``housekeeping``: what the pipeline
    itself found (records it could not store; its source's status values), for the sinks.
    """

    data: np.ndarray  # (n, n_channels) float32 timestream: phase in rad for MKIDs
    sample_index: np.ndarray  # (n,) int64, ADC sample index of each sample
    t_ns: np.ndarray  # (n,) int64, UTC ns
    events: EventBatch  # sample_index in ADC samples
    event_t_ns: np.ndarray  # (n_events,) int64 UTC ns
    iq: np.ndarray | None = None  # (n, n_tones) complex64 before calibration, for IQ-plane displays
    spectrum: tuple[int, np.ndarray, np.ndarray] | None = None  # (t_ns, freq, psd (channel, freq)) when due
    event_extra: dict[str, np.ndarray] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    housekeeping: list[HousekeepingValue] = field(default_factory=list)
    optimal_filters: dict[str, np.ndarray] | None = None  # optimal_filter/ rows learnt in this block
    event_t_err_ns: np.ndarray | None = None  # (n_events,) float32: 1-sigma uncertainty of event_t_ns as UTC
    retunes: dict[str, np.ndarray] | None = None  # retunes/ rows: tones moved by resonator tracking after this block

    def event_columns(self) -> dict[str, np.ndarray]:
        """The events as columns of the run format's ``events/`` group."""
        ev = self.events
        cols = {"t": self.event_t_ns, "sample_index": ev.sample_index, "channel": ev.channel,
                "amplitude": ev.amplitude, "baseline": ev.baseline, "flags": ev.flags, **self.event_extra}
        if "of_delay_s" in self.event_extra:  # arrival time = trigger time + filter delay, as reprocessing writes
            delay = np.nan_to_num(self.event_extra["of_delay_s"].astype(np.float64))
            cols["arrival_t"] = self.event_t_ns + np.round(delay * 1e9).astype(np.int64)
        if self.event_t_err_ns is not None:
            cols["t_err"] = self.event_t_err_ns
        if ev.group is not None and ev.multiplicity is not None:
            cols["group"], cols["multiplicity"] = ev.group, ev.multiplicity
        if ev.records is not None:
            cols["records"] = ev.records
        return cols


class ReadoutPipeline(Protocol):
    """What the session needs of a pipeline: :class:`StreamPipeline` (a timestream, triggered here) or
    :class:`RecordPipeline` (records triggered by the source)."""

    fs: float
    output_rate: float
    n_channels: int
    stream_name: str
    units: str
    has_timestream: bool
    channel_coords: dict[str, np.ndarray]

    def process(self, block: Any) -> list[PipelineOutput]: ...

    def finish(self) -> list[PipelineOutput]: ...

    def calibration_attrs(self) -> dict[str, Any]: ...


class EventStage(Protocol):
    """Work done on each event after the trigger (the live optimal filter,
    :class:`cryodaq.acquisition.optimal_stage.OnlineOptimalFilter`): it may hold events back and
    adds columns; it sees every timestream block (e.g. for noise records)."""

    def arm(self, veto: ThresholdTrigger) -> None: ...

    def process(self, data: np.ndarray, first: int, events: EventBatch) -> tuple[EventBatch, dict[str, np.ndarray]]: ...

    def finish(self, events: EventBatch, final: bool) -> tuple[EventBatch, dict[str, np.ndarray]]: ...

    def reset(self) -> None: ...

    def take_rows(self) -> dict[str, np.ndarray] | None: ...

    def attrs(self) -> dict[str, Any]: ...



class StreamPipeline(ABC):
    """Shared streaming logic: raw block -> timestream -> trigger -> events, with gap resets.

    Subclasses say how ADC samples become a float32 timestream (``_convert``,
    ``_to_timestream``), how an output sample maps to an ADC sample index
    (``_offset``), and what they learn from the first data (``_calibrate_more``).
    The trigger thresholds (``threshold_sigma`` times each channel's robust noise
    sigma) are set from the first ``_NOISE_ESTIMATE_S`` of data; until then the data
    are buffered, not lost. :meth:`calibration_attrs` reports them so a stored run
    can be reprocessed with exactly the same settings. With :meth:`monitor_spectra`
    the outputs also carry the periodic noise spectra.
    """

    stream_name = "data"
    units = ""
    has_timestream = True

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
        self.event_stage: EventStage | None = None  # e.g. the live optimal filter (pipeline_for_source)
        self._pending: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []  # waiting for calibration
        self._segment_first = 0  # ADC index at the last reset
        self._first_block = True
        self._n_out = 0  # outputs since the last reset
        self.spectra: SpectrumMonitor | None = None
        self.clock = clock or ClockTracker(self.fs)  # sample index -> UTC, fitted to the block stamps
        self._t_quantum_ns = 1e9 / self.output_rate / math.sqrt(12.0)  # an event's index is one output sample
        veto = config.veto
        self.veto = CoincidenceVeto(round(veto.window_s * self.fs), veto.max_channels) if veto.enabled else None

    # --- what subclasses provide ----------------------------------------------
    @abstractmethod
    def _convert(self, samples: Any) -> Any:
        """ADC samples of one block (uploaded: a backend array) -> raw outputs (n_out, n_channels), e.g. IQ."""

    @abstractmethod
    def _to_timestream(self, raw: Any) -> Any:
        """Raw outputs -> the float32 timestream that is stored and triggered on (backend arrays)."""

    @abstractmethod
    def _offset(self, k: np.ndarray) -> np.ndarray:
        """ADC samples from the segment start to output sample ``k`` (float)."""

    def _calibrate_more(self, raw: Any) -> None:
        """Learn per-stream calibration from the first data, before thresholds are set."""

    def _reset_more(self) -> None:
        """Reset the subclass's own filter state."""

    def _extra_attrs(self) -> dict[str, Any]:
        return {}

    def monitor_spectra(self, *, nperseg: int = 1024, interval_s: float = 2.0) -> SpectrumMonitor:
        """Compute a noise spectrum of the timestreams every ``interval_s`` of data (on the pipeline's
        backend); outputs carry it in ``spectrum``. Returns the monitor."""
        self.spectra = SpectrumMonitor(self.output_rate, self.n_channels, nperseg=nperseg, interval_s=interval_s,
                                       units=f"{self.units}^2/Hz", backend=self.backend)
        return self.spectra

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
        if self.spectra is not None:
            self.spectra.reset()
        if self.trigger is not None:
            self.trigger.reset()
        if self.event_stage is not None:
            self.event_stage.reset()

    def process(self, block: Block) -> list[PipelineOutput]:
        """Process one block; returns zero or more outputs (none while calibrating)."""
        outputs: list[PipelineOutput] = []
        if not block.continuous or self._first_block:
            # a gap (or the stream's first block): start a segment at this block's sample index
            outputs += self._drain_pending() + self._flush_events(final=False)
            self.reset(block.first_sample)
            self._first_block = False
        if block.n_samples == 0:
            return outputs
        self.clock.observe(block.first_sample, block.t_ns)
        raw = self._convert(self.backend.asarray(block.samples))  # the block's one trip to the device
        if raw.shape[0] == 0:  # shorter than a channelizer frame (a receiver's partial block): all in its history
            return outputs
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
            self._calibrate(self.backend.xp.concatenate([p[0] for p in self._pending]))
        pending, self._pending = self._pending, []
        return [self._trigger(*p) for p in pending]

    def _calibrate(self, raw: Any) -> None:
        self._calibrate_more(raw)
        sigma = self.backend.to_numpy(robust_sigma(self._to_timestream(raw), backend=self.backend))
        sigma = np.where(sigma > 0, sigma, np.finfo(np.float32).eps)
        self.thresholds = (self.config.trigger.threshold_sigma * sigma).astype(np.float32)
        self.trigger = make_trigger(self.config, self.thresholds, self.output_rate, self.backend)
        if self.event_stage is not None:
            # the stage works on the host timestream (after the block's one trip back): a host trigger
            self.event_stage.arm(make_trigger(self.config, self.thresholds, self.output_rate, numpy_backend()))
        log.info("calibrated %d channels; noise sigma %s %s", len(sigma),
                 np.array2string(sigma, precision=4), self.units)

    def _trigger(self, raw: Any, k0: int, idx: np.ndarray, t_ns: np.ndarray) -> PipelineOutput:
        assert self.trigger is not None
        data = self._to_timestream(raw)
        found = self.trigger.find(data, k0)
        psd = self.spectra.push_backend(data) if self.spectra is not None else None
        iq = raw if raw.dtype.kind == "c" else None
        # the block's one trip back: everything the host needs, together
        data, iq, rows, cols, psd = self.backend.to_host(data, iq, *found.arrays(), psd)
        events = self._events_to_adc(self.trigger.take(data, found.with_arrays(rows, cols), k0))
        if self.veto is not None:  # held until no later event can join their coincidence group
            horizon = self.trigger.horizon
            events = self.veto.process(events, None if horizon is None else int(self._adc_index(np.array([horizon]))[0]))
        extra: dict[str, np.ndarray] = {}
        if self.event_stage is not None:  # on the host, after the one trip back
            events, extra = self.event_stage.process(data, k0, events)
        spectrum = None
        if psd is not None and self.spectra is not None:
            spectrum = (int(t_ns[-1]), self.spectra.freq, SpectrumMonitor.host_psd(psd))
        return PipelineOutput(data, idx, t_ns, events, self.t_ns_of(events.sample_index, "events"), iq, spectrum,
                              event_extra=extra, optimal_filters=self._stage_rows(),
                              event_t_err_ns=self.t_err_of(events.sample_index))

    def _stage_rows(self) -> dict[str, np.ndarray] | None:
        return self.event_stage.take_rows() if self.event_stage is not None else None

    def _flush_events(self, final: bool = True) -> list[PipelineOutput]:
        if self.trigger is None:
            return []
        events = self._events_to_adc(self.trigger.finish())
        if self.veto is not None:
            events = self.veto.flush(events)
        extra: dict[str, np.ndarray] = {}
        if self.event_stage is not None:  # final: the stream ends (not just a segment, at a gap)
            events, extra = self.event_stage.finish(events, final)
        rows = self._stage_rows()
        empty = np.zeros((0, self.n_channels), np.float32)
        none = np.zeros(0, np.int64)
        if not len(events) and rows is None:
            return []
        return [PipelineOutput(empty, none, none, events, self.t_ns_of(events.sample_index, "events"),
                               event_extra=extra, optimal_filters=rows,
                               event_t_err_ns=self.t_err_of(events.sample_index))]

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
        if self.event_stage is not None:
            out["optimal_filter"] = self.event_stage.attrs()
        return out


class IQPipeline(StreamPipeline):
    """Channelized IQ (a CRS board's stream, kind ``iq``) -> phase -> trigger; no channelizer.

    ``calibration`` (e.g. from a calibration sweep, :func:`~cryodaq.readout.loop_sweep.calibrate_source`):
    phase about each IQ loop's centre, photon pulses positive (:mod:`cryodaq.dsp.iqcal`). Without it
    the phase is measured about the IQ origin, rotated to the mean of the first data
    (:meth:`IQCalibration.from_baseline`), which saturates for loops that do not enclose the origin.
    The MKID pipeline is this pipeline behind a channelizer.
    """

    stream_name = "phase"
    units = "rad"

    def __init__(self, config: PipelineConfig, *, fs: float, n_channels: int, backend: Backend | None = None,
                 channel_coords: dict[str, np.ndarray] | None = None, calibration: IQCalibration | None = None,
                 output_rate: float | None = None, clock: ClockTracker | None = None) -> None:
        super().__init__(config, fs=fs, output_rate=fs if output_rate is None else output_rate,
                         n_channels=n_channels, backend=backend, channel_coords=channel_coords or {}, clock=clock)
        if calibration is not None and calibration.n_tones != n_channels:
            raise ValueError(f"{type(self).__name__}: the IQ calibration has {calibration.n_tones} tones, "
                             f"the stream {n_channels} channels")
        self.calibration: IQCalibration | None = calibration
        self.calibration_method = "baseline" if calibration is None else "given"

    def _convert(self, samples: Any) -> Any:
        return samples.reshape(len(samples), -1)

    def _to_timestream(self, raw: Any) -> Any:
        # Not unwrapped: about a loop's centre the phase stays within (-pi, pi) (the off-resonance point
        # is at pi), and at a board's decimated rate a pulse can rise by more than pi in one sample,
        # which unwrapping would turn into a 2 pi step for the rest of the block.
        assert self.calibration is not None
        return self.calibration.phase(raw, unwrap=False, backend=self.backend)

    def _offset(self, k: np.ndarray) -> np.ndarray:
        return np.asarray(k, dtype=np.float64)

    def _calibrate_more(self, raw: Any) -> None:
        if self.calibration is None:
            self.calibration = IQCalibration.from_baseline(raw, backend=self.backend)

    def _extra_attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.calibration is not None:
            cal = self.calibration
            out["iq_calibration"] = self.calibration_method
            out["rotation_rad"] = cal.rotation.tolist()
            out["radius"] = cal.radius.tolist()
            out["centre_i"] = cal.centre.real.tolist()
            out["centre_q"] = cal.centre.imag.tolist()
            out["phase_sign"] = cal.sign.tolist()
        return out


class MKIDPipeline(IQPipeline):
    """PFB channelizer -> tone DDC -> IQ -> phase (rotated so each operating point is 0 rad).

    ``calibration`` (e.g. from an IQ-loop sweep, :mod:`cryodaq.readout.loop_sweep`): phase
    about each loop's centre. Without it the phase is measured about the IQ origin, rotated to
    the mean of the first data (:meth:`IQCalibration.from_baseline`), which saturates for
    loops that do not enclose the origin.
    """

    def __init__(self, config: PipelineConfig, *, fs: float, tone_if_hz: np.ndarray,
                 backend: Backend | None = None, channel_coords: dict[str, np.ndarray] | None = None,
                 calibration: IQCalibration | None = None, clock: ClockTracker | None = None) -> None:
        backend = backend or numpy_backend()
        self.tone_if_hz = np.asarray(tone_if_hz, dtype=float)
        self.reference_channels = np.zeros(0, dtype=np.int64)  # none unless tracking sets them
        self.channelizer = ToneChannelizer(
            self.tone_if_hz, fs, config.n_channels, config.n_taps, config.decimation,
            config.oversampling, backend=backend, window=config.window,
        )
        super().__init__(config, fs=fs, n_channels=len(self.tone_if_hz), backend=backend,
                         channel_coords={"tone_if_hz": self.tone_if_hz, **(channel_coords or {})},
                         calibration=calibration, output_rate=self.channelizer.output_rate, clock=clock)

    def _convert(self, samples: Any) -> Any:
        return self.channelizer.process(samples)

    def _to_timestream(self, raw: Any) -> Any:
        assert self.calibration is not None  # unwrapped within the block, as the pinned MKID events were made
        if self.reference_channels.size and raw.shape[0]:
            raw = self._remove_common_mode(raw)
        return self.calibration.phase(raw, backend=self.backend)

    def set_reference_channels(self, channels: Any) -> None:
        """Off-resonance reference tones (resonator tracking's ``reference_tones_hz``): their mean phase
        about the IQ origin, relative to their operating points, is the readout's common-mode phase (LO,
        cables), taken out of every other tone's IQ before its phase (:meth:`_remove_common_mode`)."""
        self.reference_channels = np.asarray(channels, dtype=np.int64)
        self._refs = self.backend.asarray(self.reference_channels)

    def _remove_common_mode(self, raw: Any) -> Any:
        """Rotate every tone's IQ by −α, α the reference tones' mean phase (each about the IQ origin, relative
        to its calibration's operating point) per output sample: a common phase turns every loop about the
        origin, so this puts them back where the calibration has them."""
        assert self.calibration is not None
        xp = self.backend.xp
        rot = self.backend.asarray(np.exp(-1j * self.calibration.rotation[self.reference_channels]).astype(np.complex64))
        z = raw[:, self._refs] * rot
        unit = xp.sum(z / xp.maximum(xp.abs(z), np.float32(1e-30)), axis=1)
        common = xp.conj(unit / xp.maximum(xp.abs(unit), np.float32(1e-30)))
        return (raw * common[:, None]).astype(np.complex64)

    def retune(self, tone_if_hz: Any) -> None:
        """The board moved its tones (resonator tracking): the channelizer follows. The caller makes the next
        block non-continuous, so the stream resets there; the IQ calibration stays (tones moved in steps of
        the board's phase-coherent grid keep their IQ loops)."""
        tones = np.asarray(tone_if_hz, dtype=float)
        if tones.shape != self.tone_if_hz.shape:
            raise ValueError(f"MKID pipeline retune: {tones.size} tones for {self.tone_if_hz.size} channels")
        c = self.config
        self.channelizer = ToneChannelizer(tones, self.fs, c.n_channels, c.n_taps, c.decimation, c.oversampling,
                                           backend=self.backend, window=c.window)
        self.tone_if_hz = tones
        self.channel_coords["tone_if_hz"] = tones

    def _offset(self, k: np.ndarray) -> np.ndarray:
        return self.channelizer.sample_index(k) - self._segment_first

    def _reset_more(self) -> None:
        self.channelizer.reset(self._segment_first)

    def _extra_attrs(self) -> dict[str, Any]:
        out = {"tone_if_hz": self.tone_if_hz.tolist(), "bins": np.asarray(self.channelizer.bins).tolist(),
               **super()._extra_attrs()}
        if self.reference_channels.size:
            out["reference_channels"] = self.reference_channels.tolist()
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
        self._scale = self.backend.asarray((1.0 / self.counts_per_ampere).astype(np.float32))

    def _convert(self, samples: Any) -> Any:
        return samples.reshape(len(samples), -1) * self._scale  # int16 counts -> float32 amperes, one pass

    def _to_timestream(self, raw: Any) -> Any:
        return raw

    def _offset(self, k: np.ndarray) -> np.ndarray:
        return np.asarray(k, dtype=np.float64)

    def _extra_attrs(self) -> dict[str, Any]:
        return {"counts_per_ampere": self.counts_per_ampere.tolist()}


class RecordPipeline:
    """Triggered records (kind ``records``, e.g. a DASTARD publisher) -> events; the source's status -> housekeeping.

    The source has triggered already: every record becomes one event, in arrival order
    (``sample_index`` = trigger frame index, ``t`` = trigger time, ``channel`` = the source's
    channel index), with its raw integer samples stored exactly (``records``, in the sample type of
    the run's first record; a record of another integer type of the same size is stored bit for
    bit and its type named by the ``sample_dtype`` column, DASTARD's code). ``baseline`` and
    ``amplitude`` are computed like the trigger's: the mean of the presamples, and the peak of
    ``polarity * (x - baseline)`` after them (``config.trigger.polarity``), in raw units. Extra
    columns: ``volts_per_arb``, ``sample_period_s`` (float32, as received) and ``sample_dtype``.

    The run's record shape (length, presamples, sample size) is the first record's; records of
    another shape cannot share the ``records`` array and are reported as ``record_shape_changed``
    gaps (DASTARD's record length was changed: start a new run), never stored cut or padded.
    Status messages become housekeeping (:func:`cryodaq.wire.dastard.status_values`); the latest
    STATUS/CHANNELNAMES/TRIGGER/WRITING, the experiment-state labels and each channel's trigger
    count go into :meth:`calibration_attrs`.
    """

    stream_name = "records"
    has_timestream = False
    STATUS_KEPT = ("STATUS", "CHANNELNAMES", "TRIGGER", "WRITING")

    def __init__(self, config: PipelineConfig, stream: StreamDescription) -> None:
        self.config = config
        self.units = stream.units
        self.fs = self.output_rate = float(stream.sample_rate_hz)
        self.n_channels = int(stream.n_channels)
        coords = {k: np.asarray(v) for k, v in stream.channel_coords.items()}
        self.channel_coords = {"channel": np.arange(self.n_channels, dtype=np.int32), **coords}
        self.channel_names = [str(n) for n in coords.get("channel_name", [])]
        self.polarity = 1 if config.trigger.polarity >= 0 else -1
        self.shape: tuple[int, int] | None = None  # (record length, presamples), fixed by the first record
        self.dtype: np.dtype | None = None
        self.source = stream.source
        self.status_latest: dict[str, Any] = {}
        self.state_labels: list[tuple[int, str]] = []
        self.trigger_counts = np.zeros(self.n_channels, np.int64)
        self.records_refused = 0

    def process(self, block: RecordBlock) -> list[PipelineOutput]:
        """One batch of records (and the status messages that came with it) -> zero or one output."""
        housekeeping = self._status(block.status)
        gaps: list[Gap] = []
        events, extra, t_ns = EventBatch.empty(), {}, np.zeros(0, np.int64)
        if block.n_records:
            keep = self._check(block, gaps)
            if keep.any():
                events, extra, t_ns = self._events(block, keep)
        if not (len(events) or gaps or housekeeping):
            return []
        empty = np.zeros((0, self.n_channels), np.float32)
        none = np.zeros(0, np.int64)
        return [PipelineOutput(empty, none, none, events, t_ns, event_extra=extra, gaps=gaps,
                               housekeeping=housekeeping)]

    def finish(self) -> list[PipelineOutput]:
        return []  # nothing is held back: every record is an event when it arrives

    def _check(self, block: RecordBlock, gaps: list[Gap]) -> np.ndarray:
        """Which records of ``block`` fit the run (shape, channel); the others become gaps."""
        n = block.n_records
        length, pre, dtype = block.samples.shape[1], block.presamples, block.samples.dtype
        if self.shape is None:
            self.shape, self.dtype = (length, pre), dtype
        assert self.dtype is not None
        if (length, pre) != self.shape or dtype.itemsize != self.dtype.itemsize:
            self.records_refused += n
            gaps.append(Gap(int(block.frame[0]), n, int(block.t_ns[0]), CAUSE_RECORD_SHAPE,
                            f"{n} records of {length} samples ({pre} presamples, {dtype}) do not fit this run's "
                            f"{self.shape[0]}-sample records ({self.shape[1]} presamples, {self.dtype}); not stored. "
                            "The source's record length changed: start a new run"))
            return np.zeros(n, bool)
        keep = (block.channel >= 0) & (block.channel < self.n_channels)
        if not keep.all():
            bad = np.unique(block.channel[~keep]).tolist()
            self.records_refused += int((~keep).sum())
            gaps.append(Gap(int(block.frame[~keep][0]), int((~keep).sum()), int(block.t_ns[~keep][0]),
                            CAUSE_BAD_RECORD, f"records of channel indices {bad}, which are not among the "
                            f"{self.n_channels} channels {self.source} described at the run's start; not stored"))
        return keep

    def _events(self, block: RecordBlock, keep: np.ndarray) -> tuple[EventBatch, dict[str, np.ndarray], np.ndarray]:
        assert self.dtype is not None and self.shape is not None
        raw = block.samples[keep]
        codes = block.dtype_code[keep]
        values = raw.astype(np.float32)
        for code in np.unique(codes):  # rows of another integer type sit bit for bit in the batch's type
            true = DTYPE_CODES.get(int(code))
            if true is not None and true != raw.dtype:
                rows = codes == code
                values[rows] = raw[rows].view(true).astype(np.float32)
        if raw.dtype != self.dtype:
            raw = raw.view(self.dtype)
        pre = self.shape[1]
        baseline = values[:, :pre].mean(axis=1) if pre else values[:, 0]
        amplitude = (self.polarity * (values[:, pre:] - baseline[:, None])).max(axis=1)
        channel = block.channel[keep]
        np.add.at(self.trigger_counts, channel, 1)
        events = EventBatch(block.frame[keep], channel, amplitude, baseline, np.zeros(len(raw), np.uint16),
                            records=raw, presamples=pre)
        extra = {"volts_per_arb": block.volts_per_arb[keep].astype(np.float32),
                 "sample_period_s": block.sample_period_s[keep].astype(np.float32),
                 "sample_dtype": codes.astype(np.uint8)}
        return events, extra, block.t_ns[keep]

    def _status(self, messages: list[StatusMessage]) -> list[HousekeepingValue]:
        out: list[HousekeepingValue] = []
        for msg in messages:
            if msg.topic in self.STATUS_KEPT:
                self.status_latest[msg.topic] = msg.payload
            if msg.topic == "CHANNELNAMES" and isinstance(msg.payload, list):
                self.channel_names = [str(n) for n in msg.payload]
            elif msg.topic == "STATELABEL":
                self.state_labels.append((msg.t_ns, str(msg.payload)))
            try:
                values = status_values(msg.topic, msg.payload, msg.t_ns, self.channel_names)
            except DastardFormatError as exc:
                log.warning("%s: %s", self.source, exc)
                continue
            out += [HousekeepingValue(*v) for v in values]
        return out

    def calibration_attrs(self) -> dict[str, Any]:
        """The record shape, polarity and what the source said about itself (stored in the run attrs)."""
        out: dict[str, Any] = {"output_rate_hz": self.output_rate, "stream": self.stream_name, "units": self.units,
                               "source": "records", "polarity": self.polarity,
                               "records_per_channel": self.trigger_counts.tolist(),
                               "records_refused": self.records_refused,
                               "source_status": dict(self.status_latest),
                               "state_labels": [list(x) for x in self.state_labels]}
        if self.shape is not None and self.dtype is not None:
            out.update(record_length=self.shape[0], presamples=self.shape[1], record_dtype=str(self.dtype))
        return out


def pipeline_for_source(config: PipelineConfig, stream: StreamDescription, backend: Backend | None = None, *,
                        calibration: IQCalibration | None = None,
                        calibration_method: str | None = None,
                        config_file: str | None = None,
                        clock: ClockTracker | None = None) -> StreamPipeline | RecordPipeline:
    """The pipeline for what a readout source streams (its :class:`~cryodaq.readout.source.StreamDescription`).

    ``adc`` (a tone comb on one ADC) gets the :class:`MKIDPipeline`, ``iq`` (channelized IQ, e.g. a
    CRS) the :class:`IQPipeline`, ``channels`` (demultiplexed channels in amperes, ``counts_per_unit``
    given) the :class:`TESPipeline`, ``records`` (triggered by the source, e.g.
    DASTARD) the :class:`RecordPipeline`. ``calibration``: an IQ stream's calibration (e.g. from
    :func:`~cryodaq.readout.loop_sweep.calibrate_source`), recorded in
    :meth:`~StreamPipeline.calibration_attrs` as ``calibration_method`` (default "given").
    With ``config.optimal_filter`` a timestream pipeline gets the live optimal-filter stage
    (:mod:`cryodaq.acquisition.optimal_stage`); ``config_file`` names the station file in its errors.
    ``clock``: the stream's clock model (default: one for the stream's sample rate and time base).
    """
    clock = clock or ClockTracker(stream.sample_rate_hz, stream.time_base)
    pipeline = _pipeline(config, stream, backend, calibration, calibration_method, clock)
    if config.optimal_filter is not None and isinstance(pipeline, StreamPipeline):
        pipeline.event_stage = optimal_stage(config, pipeline.output_rate, pipeline.n_channels, config_file)
    return pipeline


def optimal_stage(config: PipelineConfig, rate: float, n_channels: int, config_file: str | None = None) -> EventStage:
    """The live optimal-filter stage for ``config.optimal_filter`` (filters loaded when it says ``load``);
    a filter that cannot be loaded or does not fit raises :class:`StationConfigError` naming the key."""
    from cryodaq.acquisition.optimal_stage import OnlineOptimalFilter
    from cryodaq.analysis.filters import load_filters

    of = config.optimal_filter
    assert of is not None
    record, presamples = record_geometry(config, rate)
    try:
        loaded = load_filters(of.load) if of.load else None
        return OnlineOptimalFilter(of, n_channels=n_channels, rate_hz=rate, presamples=presamples,
                                   record_length=record, polarity=config.trigger.polarity, loaded=loaded)
    except (ValueError, KeyError, OSError, CryodaqError) as exc:  # OSError: no such run
        raise StationConfigError(config_file or "(pipeline config)", "cryodaq.pipeline.optimal_filter.load",
                                 f"stored filters that fit this pipeline ({exc})", of.load) from None


def record_geometry(config: PipelineConfig, rate: float) -> tuple[int, int]:
    """(record length, presamples) in samples of a stream at ``rate``, from the trigger settings."""
    t = config.trigger
    record = max(int(round(t.record_s * rate)), 2)
    return record, min(int(round(t.presamples_s * rate)), record - 1)


def _pipeline(config: PipelineConfig, stream: StreamDescription, backend: Backend | None,
              calibration: IQCalibration | None, calibration_method: str | None,
              clock: ClockTracker) -> StreamPipeline | RecordPipeline:
    coords = {k: np.asarray(v) for k, v in stream.channel_coords.items()}
    if stream.kind == "iq":
        pipeline: IQPipeline = IQPipeline(config, fs=stream.sample_rate_hz, n_channels=stream.n_channels,
                                          backend=backend, channel_coords=coords, calibration=calibration,
                                          clock=clock)
        if calibration is not None and calibration_method:
            pipeline.calibration_method = calibration_method
        return pipeline
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
    if stream.kind == "records":
        return RecordPipeline(config, stream)
    raise ValueError(f"{stream.source}: no readout pipeline for a {stream.kind!r} stream "
                     "(this version handles 'adc', 'iq', 'channels' and 'records' streams)")


def make_trigger(config: PipelineConfig, thresholds: np.ndarray, rate: float, backend: Backend) -> ThresholdTrigger:
    """The trigger a pipeline config describes, on streams sampled at ``rate``."""
    t = config.trigger
    record, presamples = record_geometry(config, rate)
    return ThresholdTrigger(
        threshold=thresholds,
        holdoff=max(int(round(t.holdoff_s * rate)), 1),
        polarity=t.polarity,
        baseline_samples=max(int(round(t.baseline_s * rate)), 1),
        record_length=record,
        presamples=presamples,
        keep_records=True,
        backend=backend,
    )
