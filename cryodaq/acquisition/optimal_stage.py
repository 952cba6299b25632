"""The live optimal-filter stage: every event of a running pipeline gets filtered value, arrival time, χ²,
energy and the pulse summaries.

Per channel (``cryodaq.pipeline.optimal_filter`` in the station file, :class:`~cryodaq.config.OptimalFilterConfig`):

1. **learn**: the first ``learn_pulses`` clean pulses (no PILEUP/TRUNCATED/FORCED flag) make the
   template and pulse-free auto-triggered records (:class:`~cryodaq.dsp.AutoTrigger` every
   ``noise_period_s``, vetoed by the pipeline's own trigger up to three record lengths before the
   record, so pulse tails stay out) make the noise PSD, both with the
   code reprocessing uses (:func:`cryodaq.analysis.filters.learn_channel_filter`); with
   ``energy_lines_ev`` the dominant filtered-amplitude peaks give an energy scale. Or ``load`` takes
   the filters stored by an earlier run (``RUN``) or reprocessing (``RUN/reprocessed/<label>``).
2. **hold**: until every channel has its filter, events wait in the stage (at most ``hold_s`` of
   stream time, then they go on without one), so the first events are filtered too.
3. **filter**: each event's record through its channel's :class:`~cryodaq.analysis.filters.ChannelFilter`:
   ``of_amplitude``, ``of_delay_s`` (arrival time relative to the template, sub-sample), ``chi2``,
   ``energy``, ``residual_std``, ``of_filter`` (the row of ``optimal_filter/`` used; −1: none), and the
   pulse summaries of :func:`cryodaq.analysis.summaries.summarize_pulses`.

Every learnt filter (and every change of it: an energy scale learnt later, a refresh asked for
with :meth:`OnlineOptimalFilter.request_refresh`) is a new row of the run's ``optimal_filter/``
group, so reprocessing with it reproduces the live values exactly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

import numpy as np

from cryodaq.analysis.filters import EARLIEST, ChannelFilter, filter_rows, learn_channel_filter
from cryodaq.analysis.summaries import SUMMARY_COLUMNS, summarize_pulses, typical_peak_index
from cryodaq.config import OptimalFilterConfig
from cryodaq.dsp import AutoTrigger, EventBatch, EventFlag, ThresholdTrigger

__all__ = ["FILTER_EVENT_COLUMNS", "OnlineOptimalFilter"]

log = logging.getLogger(__name__)

#: event columns the stage adds (besides the summaries), with their dtypes
FILTER_EVENT_COLUMNS: dict[str, Any] = {
    "of_amplitude": np.float32, "of_delay_s": np.float32, "chi2": np.float32, "energy": np.float32,
    "residual_std": np.float32, "of_filter": np.int32,
}
_BAD = np.uint16(EventFlag.PILEUP | EventFlag.TRUNCATED | EventFlag.FORCED)


class OnlineOptimalFilter:
    """The stage (module docstring). The pipeline calls :meth:`arm` once its trigger thresholds are known,
    then :meth:`process` per block, :meth:`finish` at a gap or the end and :meth:`reset` after a gap."""

    def __init__(self, config: OptimalFilterConfig, *, n_channels: int, rate_hz: float, presamples: int,
                 record_length: int, polarity: int = 1, loaded: list[ChannelFilter] | None = None) -> None:
        self.config = config
        self.n_channels = int(n_channels)
        self.rate_hz = float(rate_hz)
        self.presamples, self.record_length = int(presamples), int(record_length)
        self.polarity = int(polarity)
        self.max_delay = (round(config.max_delay_s * rate_hz) if config.max_delay_s else max(presamples // 2, 1))
        self.rows: list[ChannelFilter] = []  # every filter stored, in row order
        self.current = [-1] * self.n_channels  # row used for each channel's events now
        self._unsaved = 0  # rows not yet handed to the sink
        self._pulses: list[list[np.ndarray]] = [[] for _ in range(self.n_channels)]
        self._noise: list[list[np.ndarray]] = [[] for _ in range(self.n_channels)]
        self._energy_amps: list[list[np.ndarray]] = [[] for _ in range(self.n_channels)]
        self._learning = np.ones(self.n_channels, bool)
        self._peak_index = [None] * self.n_channels
        self.skipped: dict[int, str] = {}
        self._held: list[EventBatch] = []
        self._holding = True
        self._seen = 0  # stream samples since the start
        self._auto: AutoTrigger | None = None
        self._auto_next: int | None = None
        self._refresh = threading.Event()
        self.loaded_from: str | None = None
        if loaded:
            self._use_loaded(loaded)

    # ----------------------------------------------------------------- set-up
    def _use_loaded(self, filters: list[ChannelFilter]) -> None:
        latest: dict[int, ChannelFilter] = {}
        for f in filters:
            if f.channel in latest and (latest[f.channel].valid_from_sample, latest[f.channel].version) > (
                    f.valid_from_sample, f.version):
                continue
            latest[f.channel] = f
        for ch, f in sorted(latest.items()):
            if not 0 <= ch < self.n_channels:
                continue
            if f.rate_hz != self.rate_hz or len(f.template) != self.record_length:
                raise ValueError(f"stored filter of channel {ch}: {len(f.template)} samples at {f.rate_hz} Hz, but "
                                 f"this pipeline's records have {self.record_length} samples at {self.rate_hz} Hz")
            self._add_row(replace(f, version=0, valid_from_sample=EARLIEST, polarity=self.polarity, _filter=None))
            self._learning[ch] = False
        self._holding = bool(self._learning.any())

    def arm(self, veto: ThresholdTrigger) -> None:
        """Build the noise auto-trigger, vetoed by a trigger like the pipeline's (its own instance)."""
        period = (round(self.config.noise_period_s * self.rate_hz) if self.config.noise_period_s
                  else self.record_length)
        # guard: no pulse in the three record lengths before a noise record, so pulse tails stay out of the PSD
        self._auto = AutoTrigger(max(period, 1), self.presamples, self.record_length, veto=veto,
                                 guard=3 * self.record_length, polarity=self.polarity)

    def request_refresh(self) -> None:
        """Learn every channel's filter again from the next pulses and noise (thread-safe); events keep the
        old filter until the new one is ready."""
        self._refresh.set()

    def reset(self) -> None:
        """After a gap: the noise auto-trigger starts over (samples across a gap are never mixed)."""
        if self._auto is not None:
            self._auto.reset()
        self._auto_next = None

    # ----------------------------------------------------------------- streaming
    def process(self, data: np.ndarray, first: int, events: EventBatch) -> tuple[EventBatch, dict[str, np.ndarray]]:
        """One block: ``data`` (n, channels) from output sample ``first``, and the events it completed.
        Returns the events to emit now and their columns."""
        if self._refresh.is_set():
            self._refresh.clear()
            self._learning[:] = True
            for lst in (*self._pulses, *self._noise):
                lst.clear()
        self._seen += len(data)
        if self._learning.any() and self._auto is not None and len(data):
            self._collect_noise(data, first)
        if len(events) and self._learning.any():
            self._collect_pulses(events)
        self._learn(events)
        if self._holding:
            self._held.append(events)
            if self._learning.any() and self._seen < self.config.hold_s * self.rate_hz:
                return self._empty()
            events = EventBatch.concat(self._held)
            self._held, self._holding = [], False
        return events, self._columns(events)

    def finish(self, events: EventBatch, final: bool = True) -> tuple[EventBatch, dict[str, np.ndarray]]:
        """End of a segment (a gap: held events keep waiting) or of the stream (``final``: they go now,
        filtered where their channel's filter is known)."""
        if self._holding:
            self._held.append(events)
            if not final and self._seen < self.config.hold_s * self.rate_hz:
                return self._empty()
            events = EventBatch.concat(self._held)
            self._held, self._holding = [], False
        self._learn(events)
        return events, self._columns(events)

    def take_rows(self) -> dict[str, np.ndarray] | None:
        """The ``optimal_filter/`` rows learnt since the last call (None when there are none)."""
        if self._unsaved >= len(self.rows):
            return None
        rows = filter_rows(self.rows[self._unsaved:])
        self._unsaved = len(self.rows)
        return rows

    def attrs(self) -> dict[str, Any]:
        """Summary for the run's ``pipeline_calibration``."""
        return {"config": self.config.as_dict(), "rows": len(self.rows), "loaded_from": self.config.load,
                "current_row": list(self.current), "max_delay_samples": self.max_delay, "polarity": self.polarity,
                "skipped": {str(k): v for k, v in self.skipped.items()}}

    # ----------------------------------------------------------------- pieces
    def _empty(self) -> tuple[EventBatch, dict[str, np.ndarray]]:
        ev = EventBatch.empty(self.record_length, self.presamples)
        return ev, self._columns(ev)

    def _collect_noise(self, data: np.ndarray, first: int) -> None:
        assert self._auto is not None
        if self._auto_next is not None and first != self._auto_next:
            self._auto.reset()  # it skipped blocks while no channel was learning
        self._auto_next = first + len(data)
        noise = self._auto.process(data, first)
        if not len(noise) or noise.records is None:
            return
        whole = (noise.flags & np.uint16(EventFlag.TRUNCATED)) == 0
        for ch in np.flatnonzero(self._learning):
            have = self._noise[ch]
            if len(have) >= self.config.noise_records:
                continue
            recs = noise.records[whole & (noise.channel == ch)]
            have.extend(recs[: self.config.noise_records - len(have)])

    def _collect_pulses(self, events: EventBatch) -> None:
        assert events.records is not None
        clean = ((events.flags & _BAD) == 0) & np.all(np.isfinite(events.records), axis=1)
        for ch in np.flatnonzero(self._learning):
            have = self._pulses[ch]
            if len(have) >= self.config.learn_pulses:
                continue
            recs = events.records[clean & (events.channel == ch)]
            have.extend(recs[: self.config.learn_pulses - len(have)])

    def _learn(self, events: EventBatch) -> None:
        """Learn the filters whose pulses and noise are complete; learn late energy scales."""
        start = int(events.sample_index.min()) if len(events) else None
        for ch in np.flatnonzero(self._learning):
            if len(self._pulses[ch]) < self.config.learn_pulses or len(self._noise[ch]) < self.config.noise_records:
                continue
            pulses = np.asarray(self._pulses[ch])
            try:
                f = learn_channel_filter(pulses, np.ones(len(pulses), bool), np.asarray(self._noise[ch]),
                                         channel=int(ch), rate_hz=self.rate_hz, presamples=self.presamples,
                                         max_delay=self.max_delay, config=self.config, polarity=self.polarity)
            except ValueError as exc:
                self.skipped[int(ch)] = str(exc)
                log.warning("optimal filter: channel %d: %s; collecting again", ch, exc)
                self._pulses[ch].clear()
                self._noise[ch].clear()
                continue
            first_of_channel = self.current[ch] < 0
            valid = EARLIEST if first_of_channel or start is None else start
            self._peak_index[ch] = typical_peak_index(self.polarity * pulses)
            self._add_row(replace(f, version=self._next_version(ch), valid_from_sample=valid))
            self._learning[ch] = False
            self._pulses[ch].clear()
            self._noise[ch].clear()
            self._energy_amps[ch].clear()
            log.info("optimal filter: channel %d learnt from %d pulses, %d noise records; resolution %.4g "
                     "(FWHM %.4g eV)", ch, f.n_pulses, f.n_noise, f.resolution, f.fwhm_ev)

    def _next_version(self, ch: int) -> int:
        return 1 + max((f.version for f in self.rows if f.channel == ch), default=-1)

    def _add_row(self, f: ChannelFilter) -> None:
        self.rows.append(f)
        self.current[f.channel] = len(self.rows) - 1

    def _late_energy(self, ch: int, amplitudes: np.ndarray, clean: np.ndarray, start: int) -> None:
        """Channels whose filter has no energy scale yet: learn it from their first filtered pulses."""
        lines = self.config.energy_lines_ev
        row = self.current[ch]
        if not lines or row < 0 or self.rows[row].has_energy:
            return
        self._energy_amps[ch].append(amplitudes[clean])
        amps = np.concatenate(self._energy_amps[ch])
        if amps.size < self.config.learn_pulses:
            return
        f = self.rows[row].with_energy(lines, amps)
        self._energy_amps[ch].clear()
        if f.has_energy:
            self._add_row(replace(f, version=self._next_version(ch), valid_from_sample=start, _filter=None))

    def _columns(self, events: EventBatch) -> dict[str, np.ndarray]:
        n = len(events)
        cols: dict[str, np.ndarray] = {k: np.full(n, np.nan if np.dtype(t).kind == "f" else -1, t)
                                       for k, t in FILTER_EVENT_COLUMNS.items()}
        for name in SUMMARY_COLUMNS:
            cols[name] = np.full(n, -1 if name == "peak_index" else (0 if name == "shift1" else np.nan),
                                 np.int32 if name == "peak_index" else (np.uint8 if name == "shift1" else np.float32))
        if n == 0:
            return cols
        assert events.records is not None
        finite = np.flatnonzero(np.all(np.isfinite(events.records), axis=1))
        if finite.size == 0:
            return cols
        # one call for the batch (a block holds a few events: per-channel calls would cost more than the work)
        peaks = np.array([self.presamples if p is None else p for p in self._peak_index])[events.channel[finite]]
        summ = summarize_pulses(events.records[finite], self.presamples, self.rate_hz, polarity=self.polarity,
                                peak_index=peaks)
        for k, v in summ.items():
            cols[k][finite] = v
        rows = np.asarray(self.current)[events.channel[finite]]
        start = int(events.sample_index.max()) + 1
        for row in np.unique(rows[rows >= 0]):
            sel = finite[rows == row]
            for k, v in self.rows[row].columns(events.records[sel]).items():
                cols[k][sel] = v
            cols["of_filter"][sel] = row
            clean = (events.flags[sel] & _BAD) == 0
            self._late_energy(self.rows[row].channel, cols["of_amplitude"][sel].astype(float), clean, start)
        return cols
