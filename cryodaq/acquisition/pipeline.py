"""The MKID readout pipeline: ADC blocks -> per-tone phase -> events.

Every stage is a streaming object from :mod:`cryodaq.dsp` (one code path for
numpy and cupy). A block that follows a gap resets all DSP state: samples on the
two sides of a gap are never filtered together.

Sample-index convention: every output (phase sample, event) carries the ADC
sample index it refers to (``ToneChannelizer.sample_index``), and UTC time is
derived from it with the packet timestamps, so times stay right across gaps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.receiver import Block
from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp import EventBatch, IQCalibration, ThresholdTrigger, ToneChannelizer
from cryodaq.station.config import PipelineConfig

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

    def event_columns(self) -> dict[str, np.ndarray]:
        """The events as columns of the run format's ``events/`` group."""
        ev = self.events
        cols = {"t": self.event_t_ns, "sample_index": ev.sample_index, "channel": ev.channel,
                "amplitude": ev.amplitude, "baseline": ev.baseline, "flags": ev.flags}
        if ev.records is not None:
            cols["records"] = ev.records
        return cols


def robust_sigma(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Noise sigma per channel from the median absolute deviation (pulses barely move it)."""
    med = np.median(x, axis=axis, keepdims=True)
    return 1.4826 * np.median(np.abs(x - med), axis=axis)


class MKIDPipeline:
    """PFB channelizer -> tone DDC -> IQ -> phase -> threshold trigger.

    The phase calibration (rotation of each tone's operating point to 0 rad) and
    the trigger thresholds (``threshold_sigma`` times each tone's robust noise
    sigma) are set from the first ``_NOISE_ESTIMATE_S`` of data; until then the
    data are buffered, not lost. Both are reported by :meth:`calibration_attrs`
    so a stored run can be reprocessed with exactly the same settings.
    """

    stream_name = "phase"
    units = "rad"

    def __init__(
        self,
        config: PipelineConfig,
        *,
        fs: float,
        tone_if_hz: np.ndarray,
        backend: Backend | None = None,
        channel_coords: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.config = config
        self.backend = backend or numpy_backend()
        self.fs = float(fs)
        self.tone_if_hz = np.asarray(tone_if_hz, dtype=float)
        self.channelizer = ToneChannelizer(
            self.tone_if_hz, self.fs, config.n_channels, config.n_taps, config.decimation,
            config.oversampling, backend=self.backend, window=config.window,
        )
        self.output_rate = float(self.channelizer.output_rate)
        n = len(self.tone_if_hz)
        self.channel_coords = {"channel": np.arange(n, dtype=np.int32), "tone_if_hz": self.tone_if_hz,
                               **(channel_coords or {})}
        self.calibration: IQCalibration | None = None
        self.thresholds: np.ndarray | None = None
        self.trigger: ThresholdTrigger | None = None
        self._pending: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []  # waiting for calibration
        self._segment_first = 0  # ADC index at the last reset
        self._n_out = 0  # outputs since the last reset
        self._anchor = (0, 0)  # (ADC sample index, UTC ns) of the latest block start

    # --- time ---------------------------------------------------------------
    def t_ns_of(self, sample_index: np.ndarray) -> np.ndarray:
        """UTC ns of ADC sample indices, from the latest packet timestamp and fs."""
        s0, t0 = self._anchor
        return t0 + np.round((np.asarray(sample_index, dtype=np.float64) - s0) * (1e9 / self.fs)).astype(np.int64)

    # --- streaming ----------------------------------------------------------
    def reset(self, first_sample: int) -> None:
        """Forget all filter and trigger state (after a gap); calibration is kept."""
        self.channelizer.reset(0)
        if self.trigger is not None:
            self.trigger.reset()
        self._segment_first = int(first_sample)
        self._n_out = 0

    def process(self, block: Block) -> list[PipelineOutput]:
        """Process one block; returns zero or more outputs (none while calibrating)."""
        outputs: list[PipelineOutput] = []
        if not block.continuous:
            outputs += self.finish()
            self.reset(block.first_sample)
        if block.n_samples == 0:
            return outputs
        self._anchor = (block.first_sample, block.t_ns)
        iq = self.backend.to_numpy(self.channelizer.process(self.backend.asarray(block.samples)))
        k0 = self._n_out
        self._n_out += iq.shape[0]
        idx = self._adc_index(np.arange(k0, self._n_out))
        item = (iq, k0, idx, self.t_ns_of(idx))
        if self.calibration is None:
            self._pending.append(item)
            if sum(p[0].shape[0] for p in self._pending) < _NOISE_ESTIMATE_S * self.output_rate:
                return outputs
            return outputs + self._drain_pending()
        return outputs + [self._phase_and_trigger(*item)]

    def finish(self) -> list[PipelineOutput]:
        """End of a segment or stream: process what waits for calibration, flush open records."""
        return self._drain_pending() + self._flush_events()

    def _drain_pending(self) -> list[PipelineOutput]:
        if not self._pending:
            return []
        if self.calibration is None:
            self._calibrate(np.concatenate([p[0] for p in self._pending]))
        pending, self._pending = self._pending, []
        return [self._phase_and_trigger(*p) for p in pending]

    def _calibrate(self, iq: np.ndarray) -> None:
        self.calibration = IQCalibration.from_baseline(iq)
        phase = self.backend.to_numpy(self.calibration.phase(iq, backend=self.backend))
        sigma = robust_sigma(phase)
        sigma = np.where(sigma > 0, sigma, np.finfo(np.float32).eps)
        self.thresholds = (self.config.trigger.threshold_sigma * sigma).astype(np.float32)
        self.trigger = make_trigger(self.config, self.thresholds, self.output_rate, self.backend)
        log.info("calibrated %d tones; phase noise sigma %s rad", len(sigma), np.array2string(sigma, precision=4))

    def _phase_and_trigger(self, iq: np.ndarray, k0: int, idx: np.ndarray, t_ns: np.ndarray) -> PipelineOutput:
        assert self.calibration is not None and self.trigger is not None
        phase = self.backend.to_numpy(self.calibration.phase(iq, backend=self.backend)).astype(np.float32)
        events = self._events_to_adc(self.trigger.process(phase, k0))
        return PipelineOutput(phase, idx, t_ns, events, self.t_ns_of(events.sample_index), iq)

    def _flush_events(self) -> list[PipelineOutput]:
        if self.trigger is None:
            return []
        events = self._events_to_adc(self.trigger.finish())
        empty = np.zeros((0, len(self.tone_if_hz)), np.float32)
        none = np.zeros(0, np.int64)
        return [PipelineOutput(empty, none, none, events, self.t_ns_of(events.sample_index))] if len(events) else []

    def _adc_index(self, k: np.ndarray) -> np.ndarray:
        """ADC sample index of output samples ``k`` (counted since the last reset)."""
        return self._segment_first + np.round(self.channelizer.sample_index(k)).astype(np.int64)

    def _events_to_adc(self, events: EventBatch) -> EventBatch:
        """Trigger indices count output samples since the last reset; make them ADC indices."""
        if len(events):
            events.sample_index = self._adc_index(np.asarray(events.sample_index, dtype=np.float64))
        return events

    # --- provenance ---------------------------------------------------------
    def calibration_attrs(self) -> dict[str, Any]:
        """What a reprocessing job needs to reproduce this run's events exactly."""
        out: dict[str, Any] = {
            "output_rate_hz": self.output_rate,
            "tone_if_hz": self.tone_if_hz.tolist(),
            "bins": np.asarray(self.channelizer.bins).tolist(),
        }
        if self.calibration is not None and self.thresholds is not None:
            out["rotation_rad"] = self.calibration.rotation.tolist()
            out["radius"] = self.calibration.radius.tolist()
            out["trigger_threshold_rad"] = self.thresholds.tolist()
        return out


def pipeline_for_board(config: PipelineConfig, board: Any, backend: Backend | None = None) -> MKIDPipeline:
    """The pipeline for the readout board a station streams from, set up from the board's state."""
    fs = float(board.sample_rate())
    tones_rf = np.asarray(board.tone_frequencies(), dtype=float)
    tone_if = tones_rf - float(board.lo_frequency())
    return MKIDPipeline(config, fs=fs, tone_if_hz=tone_if, backend=backend,
                        channel_coords={"tone_frequency_hz": tones_rf})


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
