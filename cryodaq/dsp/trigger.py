"""Streaming triggers: blocks of (n, n_channels) samples in, :class:`EventBatch` out.

Every trigger has ``process(x, first_index) -> EventBatch``, ``finish() -> EventBatch``
and ``reset()``.  Blocks must be contiguous (``first_index`` = previous end); after a
data gap call ``reset()`` (or ``finish()``, which flushes and resets) and continue at
the new index: nothing from before is remembered, nothing is stitched.

Streaming = one-shot: the events, their indices and flags do not depend on how the
stream is cut into blocks.  That costs latency: an event is emitted once the samples
of its record window (``record_length`` from ``presamples`` before the trigger, and
the amplitude window) have arrived *and* the detector has decided every trigger in
that window (so PILEUP is known).  ``finish()`` emits the events still waiting, with
what data there is (flag TRUNCATED, records NaN-padded).  After a reset the first
``max(presamples, detector warm-up)`` samples only fill buffers; nothing triggers there.

Event fields: see :class:`~cryodaq.dsp.events.EventBatch` and
:class:`~cryodaq.dsp.events.EventFlag` (PILEUP: another trigger of the same channel
inside the record window; TRUNCATED; FORCED: auto or group-secondary record).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..backend import Backend, numpy_backend
from .detectors import (
    NEVER,
    Candidates,
    LevelDetector,
    MatchedFilterDetector,
    ThresholdDetector,
    Detector,
    gather_rows,
    greedy_min_gap,
)
from .events import EventBatch, EventFlag

_I64 = np.zeros(0, np.int64)
_I32 = np.zeros(0, np.int32)


def pileup_mask(
    index: np.ndarray, channel: np.ndarray, own: np.ndarray, lookback: np.ndarray,
    pile_index: np.ndarray, pile_channel: np.ndarray, presamples: int, record_length: int,
) -> np.ndarray:
    """PILEUP test: True where another counted trigger (``pile_index``, ``pile_channel``) of the
    event's channel lies in ``[index - presamples - lookback, index - presamples + record_length)``.
    ``own`` (bool): the event is itself one of the counted triggers (so one of them is not "another")."""
    index = np.asarray(index, np.int64)
    if index.size == 0:
        return np.zeros(0, bool)
    pile_index = np.asarray(pile_index, np.int64)
    lo_rel = index - presamples - np.asarray(lookback, np.int64)
    base = min(int(pile_index.min()) if pile_index.size else 0, int(lo_rel.min()))
    keys = np.sort((np.asarray(pile_channel).astype(np.int64) << 44) + (pile_index - base))
    ch_key = np.asarray(channel).astype(np.int64) << 44
    lo = ch_key + (lo_rel - base)
    hi = ch_key + (index - presamples + record_length - base)
    count = np.searchsorted(keys, hi, "left") - np.searchsorted(keys, lo, "left")
    return (count - np.asarray(own).astype(np.int64)) > 0


class _EventBuilder:
    """Buffers raw samples and pending triggers; emits complete records with pile-up flags."""

    def __init__(
        self, presamples: int, record_length: int, peak_window: int, polarity: int,
        keep_records: bool, backend: Backend, min_look: int = 0,
    ) -> None:
        if presamples < 0 or record_length < 1 or presamples >= record_length:
            raise ValueError(
                f"need 0 <= presamples < record_length, got presamples={presamples}, record_length={record_length}"
            )
        if peak_window < 1:
            raise ValueError(f"amplitude peak_window must be >= 1 sample, got {peak_window}")
        self.pre, self.length, self.peak_window = int(presamples), int(record_length), int(peak_window)
        self.span = max(self.length, self.pre + self.peak_window)
        self.polarity = polarity
        self.keep_records = keep_records
        self.backend = backend
        self.min_look = int(min_look)  # recent triggers are kept at least this far back (pile-up/veto look)
        self.reset()

    def reset(self) -> None:
        self._hist: Any = None
        self._hist_start = 0
        self.horizon: int | None = None  # every event with a lower index has been emitted
        self._p_idx, self._p_ch = _I64, _I32
        self._p_flags, self._p_real, self._p_look = np.zeros(0, np.uint16), np.zeros(0, bool), _I64
        self._r_idx, self._r_ch = _I64, _I32  # recent triggers, for pile-up

    def _empty(self) -> EventBatch:
        return EventBatch.empty(self.length if self.keep_records else None, self.pre)

    def step(
        self, x: Any, first_index: int,
        rec: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        pile: tuple[np.ndarray, np.ndarray], final_end: int, future_min: int, drop_pileup: bool,
    ) -> EventBatch:
        """Add block ``x`` (time-major, backend) and new triggers; emit what is complete.

        ``rec`` = (index, channel, flags, is_own_trigger, pile-up lookback) of the records
        to make; ``pile`` = (index, channel) of all triggers that count for pile-up, final
        below ``final_end``; future record triggers will have index >= ``future_min``.
        """
        xp = self.backend.xp
        if self._hist is None:
            self._hist = xp.zeros((0, x.shape[1]), dtype=x.dtype)
            self._hist_start = first_index
        raw_end = first_index + x.shape[0]
        r_idx, r_ch, r_flags, r_real, r_look = rec
        self._p_idx = np.concatenate([self._p_idx, r_idx])
        self._p_ch = np.concatenate([self._p_ch, r_ch])
        self._p_flags = np.concatenate([self._p_flags, r_flags])
        self._p_real = np.concatenate([self._p_real, r_real])
        self._p_look = np.concatenate([self._p_look, r_look])
        self._r_idx = np.concatenate([self._r_idx, pile[0]])
        self._r_ch = np.concatenate([self._r_ch, pile[1]])
        start = self._p_idx - self.pre
        ready = (start + self.span <= raw_end) & (start + self.length <= final_end)
        out = self._emit(ready, x, first_index, raw_end, drop_pileup)
        # Keep the raw samples and recent triggers that pending or future records can need.
        low = min(int(self._p_idx.min()) if self._p_idx.size else future_min, future_min)
        self.horizon = low
        look = int(self._p_look.max()) if self._p_look.size else 0
        keep_raw = min(max(low - self.pre, self._hist_start), raw_end)
        keep_trig = low - self.pre - max(look, self.min_look)
        old = self._r_idx >= keep_trig
        self._r_idx, self._r_ch = self._r_idx[old], self._r_ch[old]
        if keep_raw >= first_index:
            self._hist = x[keep_raw - first_index :].copy()
        else:
            self._hist = xp.concatenate([self._hist[keep_raw - self._hist_start :], x], axis=0)
        self._hist_start = keep_raw
        return out

    def flush(self, x_end: int) -> EventBatch:
        """Emit every pending event with the data there is (TRUNCATED where incomplete)."""
        if self._hist is None:
            return self._empty()
        xp = self.backend.xp
        empty = xp.zeros((0, self._hist.shape[1]), dtype=self._hist.dtype)
        out = self._emit(np.ones(self._p_idx.size, bool), empty, x_end, x_end, False, truncate=True)
        self.reset()
        return out

    def extract(self, x: Any, first_index: int, index: np.ndarray, channel: np.ndarray, stream_end: int | None) -> EventBatch:
        """Records of the triggers at ``index``/``channel`` from the block ``x`` alone (PILEUP unset)."""
        index, channel = np.asarray(index, np.int64), np.asarray(channel, np.int32)
        raw_end = first_index + x.shape[0]
        if stream_end is not None and raw_end > stream_end:
            raise ValueError(f"block ends at {raw_end}, after the stream's end {stream_end}")
        truncate = stream_end is not None and raw_end == stream_end
        if index.size:
            if int(index.min()) - self.pre < first_index:
                raise ValueError(f"a record starts at {int(index.min()) - self.pre}, before the block ({first_index})")
            if not truncate and int(index.max()) - self.pre + self.span > raw_end:
                raise ValueError(f"a record ends after the block (at {raw_end}) but before the stream's end")
        self.reset()
        n = index.size
        self._hist = self.backend.xp.zeros((0, x.shape[1]), dtype=x.dtype)
        self._hist_start = first_index
        self._p_idx, self._p_ch = index, channel
        self._p_flags, self._p_real, self._p_look = np.zeros(n, np.uint16), np.ones(n, bool), np.zeros(n, np.int64)
        out = self._emit(np.ones(n, bool), x, first_index, raw_end, False, truncate=truncate) if n else self._empty()
        self.reset()
        return out

    def _emit(
        self, ready: np.ndarray, x: Any, first_index: int, raw_end: int, drop_pileup: bool,
        truncate: bool = False,
    ) -> EventBatch:
        if not ready.any():
            return self._empty()
        b = self.backend
        idx, ch = self._p_idx[ready], self._p_ch[ready]
        flags, real, look = self._p_flags[ready].copy(), self._p_real[ready], self._p_look[ready]
        keep = ~ready
        self._p_idx, self._p_ch, self._p_flags = self._p_idx[keep], self._p_ch[keep], self._p_flags[keep]
        self._p_real, self._p_look = self._p_real[keep], self._p_look[keep]

        first = idx - self.pre  # global sample of each record's first point
        if b.device:
            rows = first[:, None] + np.arange(self.span) - self._hist_start
            snip = b.to_numpy(gather_rows(self._hist, x, rows, ch[:, None], b)).astype(np.float32)
        else:
            from cryodaq.dsp.cpu_kernels import gather_records

            snip = np.empty((idx.size, self.span), np.float32)
            gather_records(self._hist, x, first - self._hist_start, ch, snip)
        if truncate:
            valid = first[:, None] + np.arange(self.span) < raw_end
            snip[~valid] = np.nan
            flags[~valid.all(axis=1)] |= np.uint16(EventFlag.TRUNCATED)
        baseline = snip[:, : self.pre].mean(axis=1) if self.pre else np.zeros(idx.size, np.float32)
        seg = self.polarity * (snip[:, self.pre : self.pre + self.peak_window] - baseline[:, None])
        amplitude = np.nanmax(seg, axis=1) if truncate else seg.max(axis=1)

        pileup = pileup_mask(idx, ch, real, look, self._r_idx, self._r_ch, self.pre, self.length)
        flags[pileup] |= np.uint16(EventFlag.PILEUP)
        records = snip[:, : self.length] if self.keep_records else None
        batch = EventBatch(idx, ch, amplitude, baseline, flags, records, self.pre)
        if drop_pileup:
            batch = batch.select(~pileup)
        return batch.sorted()


class _Trigger:
    """Detector + event builder + dead time; the shared streaming driver."""

    def __init__(
        self, detector: Detector | None, presamples: int, record_length: int, peak_window: int | None,
        dead_time: int, keep_records: bool, polarity: int, backend: Backend | None, min_look: int = 0,
    ) -> None:
        self.backend = backend or numpy_backend()
        self.detector = detector
        if dead_time < 0:
            raise ValueError(f"dead_time must be >= 0 samples, got {dead_time}")
        self.dead_time = int(dead_time)
        pw = record_length - presamples if peak_window is None else peak_window
        # Records are cut on the host, from the host copy of the stream that is stored anyway.
        self.builder = _EventBuilder(presamples, record_length, pw, polarity, keep_records, numpy_backend(), min_look)
        self.presamples, self.record_length = int(presamples), int(record_length)
        self.reset()

    def reset(self) -> None:
        """Forget everything (after a gap); the next block may start at any index."""
        if self.detector is not None:
            self.detector.reset()
        self.builder.reset()
        self._next_index: int | None = None
        self._stream_start = 0
        self._last_dead: np.ndarray | None = None
        self._found_x: Any = None

    @property
    def horizon(self) -> int | None:
        """Every event with a lower index has been emitted (None before the first block after a reset):
        what a later stage that waits for all events of a time span (the coincidence veto) needs."""
        return self.builder.horizon

    @property
    def arm_index(self) -> int:
        """First sample index that can trigger after the last reset."""
        warm = self.detector.warmup if self.detector is not None else 0
        return self._stream_start + max(self.presamples, warm)

    def _as_block(self, x: Any, first_index: int) -> Any:
        """Check that ``x`` (host or backend array) is the next (n, n_channels) block; returns it 2-D."""
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"trigger input must be (n_samples, n_channels), got shape {x.shape}")
        first_index = int(first_index)
        if self._next_index is None:
            self._stream_start = first_index
        elif first_index != self._next_index:
            raise ValueError(
                f"trigger got a block starting at sample {first_index}, expected {self._next_index}: "
                "blocks must be contiguous; call reset() after a gap"
            )
        self._next_index = first_index + x.shape[0]
        if self._last_dead is None:
            self._last_dead = np.full(x.shape[1], NEVER, np.int64)
        return x

    def _records(self, ch: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        keep = greedy_min_gap(ch, idx, self._last_dead, self.dead_time)
        n = int(keep.sum())
        return idx[keep], ch[keep], np.zeros(n, np.uint16), np.ones(n, bool), np.zeros(n, np.int64)

    def process(self, x: Any, first_index: int) -> EventBatch:
        """Feed the block ``x`` (n, n_channels) whose first sample has index ``first_index``.

        On a device backend ``x`` may be a device array; the block and the detector's candidates
        come back to the host together (:meth:`find`, one transfer, :meth:`take`)."""
        assert self.detector is not None
        if not self.detector.splits:  # a detector that needs the host mid-block (the matched filter)
            x = self._as_block(self.backend.asarray(x), first_index)
            ch, idx, final_end = self.detector.detect(x, first_index, self.arm_index)
            return self._events(self.backend.to_numpy(x), first_index, ch, idx, final_end)
        found = self.find(x, first_index)
        x_host, rows, cols = self.backend.to_host(self._found_x, *found.arrays())
        return self.take(x_host, found.with_arrays(rows, cols), first_index)

    def find(self, x: Any, first_index: int) -> Candidates:
        """The device part of :meth:`process`: the detector's pass over block ``x`` (uploaded when it
        is host data). Bring the result's arrays to the host, with the block, and call :meth:`take`."""
        assert self.detector is not None
        x = self._as_block(self.backend.asarray(x), first_index)
        self._found_x = x
        return self.detector.find(x, first_index)

    def take(self, x_host: np.ndarray, found: Candidates, first_index: int) -> EventBatch:
        """The host part of :meth:`process`: ``x_host`` is the host copy of the block given to
        :meth:`find`, ``found`` its candidates with host arrays."""
        assert self.detector is not None
        self._found_x = None
        ch, idx = self.detector.accept(found, self.arm_index)
        return self._events(np.asarray(x_host).reshape(len(x_host), -1), first_index, ch, idx, found.final_end)

    def _events(self, x_host: np.ndarray, first_index: int, ch: np.ndarray, idx: np.ndarray,
                final_end: int) -> EventBatch:
        rec = self._records(ch, idx)
        future = max(final_end, self.arm_index)
        return self.builder.step(x_host, first_index, rec, (idx, ch), final_end, future, False)

    def finish(self) -> EventBatch:
        """Flush events still waiting for data (flag TRUNCATED) and reset."""
        end = self._next_index if self._next_index is not None else 0
        out = self.builder.flush(end)
        self.reset()
        return out

    def extract(
        self, x: Any, first_index: int, index: np.ndarray, channel: np.ndarray, stream_end: int | None = None,
    ) -> EventBatch:
        """Events (record, baseline, amplitude) for triggers at ``index``/``channel``, computed as
        streaming does, from the block ``x`` (first sample ``first_index``) alone: offline, chunked work.

        ``x`` must hold every record: ``presamples`` before each index and the rest of the record
        after it, except where it ends at ``stream_end`` (the end of the stream or segment), where
        records are NaN-padded and flagged TRUNCATED as :meth:`finish` does.  PILEUP is not set:
        it needs every trigger near the event (:func:`pileup_mask`).  The trigger's streaming state
        is reset.
        """
        self.reset()
        x = self._as_block(x, first_index)
        self.reset()
        return self.builder.extract(self.backend.to_numpy(x), int(first_index), index, channel, stream_end)


class ThresholdTrigger(_Trigger):
    """Rising crossing of the (baseline-subtracted) signal over ``threshold``, with hold-off.

    ``threshold`` is a scalar or one value per channel; ``polarity=-1`` triggers on
    downward pulses.  ``baseline_samples`` > 0 subtracts the mean of that many samples
    before each sample (a moving baseline).  The trigger index is the first sample at
    or over threshold.  ``holdoff``: crossings closer than this to the previous trigger
    are ignored (same pulse).  ``dead_time``: triggers closer than this to the previous
    *recorded* event are not recorded but still flag it PILEUP.
    """

    def __init__(
        self, threshold: Any, holdoff: int, polarity: int = 1, baseline_samples: int = 0,
        presamples: int = 64, record_length: int = 256, peak_window: int | None = None,
        dead_time: int = 0, keep_records: bool = False, backend: Backend | None = None,
    ) -> None:
        det = ThresholdDetector(threshold, holdoff, polarity, baseline_samples, backend)
        super().__init__(det, presamples, record_length, peak_window, dead_time, keep_records, polarity, backend)

    # --- offline, chunked processing ---------------------------------------------------
    # Streaming decides hold-off trigger by trigger, and a chain of hold-offs (a burst) can
    # reach back arbitrarily far, so no fixed overlap makes independent chunks exact.  A
    # stream cut into chunks processed in parallel therefore gets exactly the streaming
    # events in three steps: candidates() of each chunk (every armed crossing, no
    # hold-off; parallel); resolve() over all candidates of the stream (sequential, cheap);
    # extract() the kept triggers' records per chunk (parallel) and flag pileup().

    @property
    def lookback(self) -> int:
        """Samples a chunk's block needs before its first index for :meth:`candidates`."""
        return self.detector.lookback

    def candidates(
        self, x: Any, first_index: int, stream_start: int, start: int | None = None, block: int = 16384,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every crossing at index >= ``start`` in ``x`` (first sample ``first_index``) that the
        streaming trigger would consider, before hold-off: (channel, index) sorted by channel, index.

        ``stream_start``: index of the stream's (segment's) first sample, which sets the warm-up.
        ``x`` must begin at ``stream_start`` or at least :attr:`lookback` samples before ``start``
        (default ``first_index + lookback``, or ``stream_start``).  Fed in ``block``-row pieces to
        bound memory.  Resets the trigger.
        """
        first_index, stream_start = int(first_index), int(stream_start)
        if first_index < stream_start:
            raise ValueError(f"block starts at {first_index}, before the stream ({stream_start})")
        at_start = first_index == stream_start
        if start is None:
            start = first_index if at_start else first_index + self.lookback
        start = int(start)
        if not at_start and start - first_index < self.lookback:
            raise ValueError(
                f"candidates from {start} need the block to start at the stream start ({stream_start}) or "
                f"{self.lookback} samples before, not at {first_index}"
            )
        self.reset()
        x = self._as_block(x, first_index)
        det = self.detector
        arm = max(stream_start + max(self.presamples, det.warmup), start)
        found = []
        for i in range(0, x.shape[0], max(int(block), 1)):
            ch, idx, _ = det.detect(x[i : i + block], first_index + i, arm, holdoff=False)
            found.append((ch, idx))
        self.reset()
        ch = np.concatenate([f[0] for f in found]) if found else _I32
        idx = np.concatenate([f[1] for f in found]) if found else _I64
        order = np.lexsort((idx, ch))
        return ch[order], idx[order]

    def resolve(self, channel: np.ndarray, index: np.ndarray, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Hold-off, then dead time, over *all* candidates of one stream (sorted by channel, index):
        masks ``(kept, recorded)``; kept triggers count for PILEUP, recorded ones make events."""
        channel, index = np.asarray(channel, np.int32), np.asarray(index, np.int64)
        if channel.size > 1:
            step_ch = np.diff(channel.astype(np.int64))
            if np.any(step_ch < 0) or np.any((step_ch == 0) & (np.diff(index) <= 0)):
                raise ValueError("resolve() needs candidates sorted by channel, then strictly by index")
        kept = greedy_min_gap(channel, index, np.full(n_channels, NEVER, np.int64), self.detector.holdoff)
        recorded = np.zeros_like(kept)
        recorded[kept] = greedy_min_gap(channel[kept], index[kept], np.full(n_channels, NEVER, np.int64), self.dead_time)
        return kept, recorded

    def pileup(self, index: np.ndarray, channel: np.ndarray, kept_index: np.ndarray, kept_channel: np.ndarray) -> np.ndarray:
        """PILEUP mask of recorded triggers, given every kept trigger around them."""
        n = np.asarray(index).size
        return pileup_mask(index, channel, np.ones(n, bool), np.zeros(n, np.int64), kept_index, kept_channel,
                           self.presamples, self.record_length)


class EdgeTrigger(_Trigger):
    """Matched-filter trigger: overlap-save correlation with ``template``, then threshold.

    See :class:`~cryodaq.dsp.detectors.MatchedFilterDetector` for the filter and
    threshold options (``threshold`` in signal units or ``threshold_sigma`` in filtered
    noise sigmas).  The trigger index is the filter peak after the crossing (within
    ``peak_search`` samples, default the hold-off), i.e. the pulse onset as aligned by
    ``template_presamples``.  Events wait for sigma (``noise_samples``) when it is estimated.
    """

    def __init__(
        self, template: Any, threshold: Any = None, threshold_sigma: float | None = None,
        holdoff: int = 0, polarity: int = 1, template_presamples: int = 0,
        noise_samples: int = 8192, sigma: Any = None, peak_search: int | None = None,
        presamples: int = 64, record_length: int = 256, peak_window: int | None = None,
        dead_time: int = 0, keep_records: bool = False, fft_size: int | None = None,
        backend: Backend | None = None,
    ) -> None:
        det = MatchedFilterDetector(
            template, threshold, threshold_sigma, holdoff, polarity, template_presamples,
            noise_samples, sigma, peak_search, fft_size, backend,
        )
        super().__init__(det, presamples, record_length, peak_window, dead_time, keep_records, polarity, backend)

    @property
    def noise_sigma(self) -> np.ndarray | None:
        """Filtered-noise sigma per channel (given or estimated), once known."""
        return self.detector.noise_sigma


MatchedFilterTrigger = EdgeTrigger


class LevelTrigger(_Trigger):
    """Triggers where ``polarity * x`` stays at or above ``level`` for ``min_duration`` samples;
    the index is the start of that run (one trigger per run)."""

    def __init__(
        self, level: Any, min_duration: int = 1, holdoff: int = 0, polarity: int = 1,
        presamples: int = 64, record_length: int = 256, peak_window: int | None = None,
        dead_time: int = 0, keep_records: bool = False, backend: Backend | None = None,
    ) -> None:
        det = LevelDetector(level, min_duration, holdoff, polarity, backend)
        super().__init__(det, presamples, record_length, peak_window, dead_time, keep_records, polarity, backend)


class AutoTrigger(_Trigger):
    """Periodic (noise) records every ``period`` samples on every channel, flagged FORCED.

    With a ``veto`` trigger (e.g. a :class:`ThresholdTrigger`; only its detector is
    used), a record is dropped when the veto fires on that channel inside its window
    or up to ``guard`` samples before it (a pulse tail), so records are pulse-free.
    """

    def __init__(
        self, period: int, presamples: int = 64, record_length: int = 256, veto: _Trigger | None = None,
        guard: int | None = None, keep_records: bool = True, polarity: int = 1,
        backend: Backend | None = None,
    ) -> None:
        if period < 1:
            raise ValueError(f"auto-trigger period must be >= 1 sample, got {period}")
        self.period = int(period)
        self.guard = int(record_length if guard is None else guard)
        super().__init__(
            None if veto is None else veto.detector, presamples, record_length, None, 0,
            keep_records, polarity, backend, min_look=self.guard,
        )

    def reset(self) -> None:
        super().reset()
        self._next_auto: int | None = None

    def process(self, x: Any, first_index: int) -> EventBatch:
        x = self._as_block(x, first_index)
        if self._next_auto is None:
            self._next_auto = self.arm_index
        end = first_index + x.shape[0]
        if self.detector is not None:
            pch, pidx, final_end = self.detector.detect(self.backend.asarray(x), first_index, self._stream_start)
        else:
            pch, pidx, final_end = _I32, _I64, end
        grid = np.arange(self._next_auto, end, self.period, dtype=np.int64)
        if grid.size:
            self._next_auto = int(grid[-1]) + self.period
        n_ch = x.shape[1]
        idx = np.repeat(grid, n_ch)
        ch = np.tile(np.arange(n_ch, dtype=np.int32), grid.size)
        n = idx.size
        rec = (idx, ch, np.full(n, EventFlag.FORCED, np.uint16), np.zeros(n, bool), np.full(n, self.guard, np.int64))
        return self.builder.step(self.backend.to_numpy(x), first_index, rec, (pidx, pch), final_end,
                                 self._next_auto, True)


class GroupTrigger(_Trigger):
    """A trigger on channel ``c`` also records every channel in ``groups[c]`` at the same index.

    Secondary records carry FORCED; a channel's own trigger near a secondary record is
    a separate event.  Uses ``primary``'s detector and record settings (do not also
    feed ``primary`` itself).
    """

    def __init__(self, primary: _Trigger, groups: Mapping[int, Sequence[int]]) -> None:
        self.groups = {int(k): np.asarray(list(v), dtype=np.int32) for k, v in groups.items()}
        b = primary.builder
        super().__init__(
            primary.detector, b.pre, b.length, b.peak_window, primary.dead_time, b.keep_records,
            b.polarity, primary.backend,
        )

    def _records(self, ch: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        idx, ch, flags, real, look = super()._records(ch, idx)
        extra_i, extra_c = [idx], [ch]
        for c, members in self.groups.items():
            hits = idx[ch == c]
            if hits.size and members.size:
                extra_i.append(np.repeat(hits, members.size))
                extra_c.append(np.tile(members, hits.size))
        all_i, all_c = np.concatenate(extra_i), np.concatenate(extra_c)
        n_sec = all_i.size - idx.size
        flags = np.concatenate([flags, np.full(n_sec, EventFlag.FORCED, np.uint16)])
        real = np.concatenate([real, np.zeros(n_sec, bool)])
        return all_i, all_c, flags, real, np.zeros(all_i.size, np.int64)
