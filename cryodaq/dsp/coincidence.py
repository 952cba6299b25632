"""Coincidences in time: events close together grouped, online (the veto stage) and offline (runs joined).

A group is a chain of events each within ``window`` of the previous one (times sorted): a gap
longer than the window ends it. The chain needs no choice of where a group starts, so the same
events group the same way however they are cut into blocks, and a burst is never split at an
arbitrary point. (At rates where ``rate × window`` approaches 1 chains grow long: keep the window
well below the mean spacing of unrelated events.) One kernel, :func:`chain_groups`, serves the
live veto (:class:`CoincidenceVeto`, channels of one stream) and the offline builder that joins
runs (:mod:`cryodaq.timing.coincidences`).

:class:`CoincidenceVeto` holds events back until no later event can join their group (the
trigger's :attr:`~cryodaq.dsp.trigger.ThresholdTrigger.horizon`), then gives every event its
group id and the group's multiplicity (distinct channels), and flags VETOED the events of groups
that hit more than ``max_channels`` channels: a cosmic ray or a substrate glitch lights up many
pixels at once, a photon one.
"""

from __future__ import annotations

import numpy as np

from cryodaq.dsp.events import EventBatch, EventFlag

__all__ = ["CoincidenceVeto", "chain_groups", "distinct_per_group"]


def chain_groups(t: np.ndarray, window: float) -> np.ndarray:
    """Group number (0, 1, ...) of each of the sorted times ``t``: a new group begins where the step
    from the previous time exceeds ``window``."""
    t = np.asarray(t)
    if t.size == 0:
        return np.zeros(0, np.int64)
    step = np.diff(t)
    if np.any(step < 0):
        raise ValueError("chain_groups needs times sorted in increasing order")
    return np.concatenate([[0], np.cumsum(step > window)]).astype(np.int64)


def distinct_per_group(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Per element, how many distinct ``key`` values (channels, runs) its group holds (``group`` from
    :func:`chain_groups`: non-decreasing)."""
    group, key = np.asarray(group, np.int64), np.asarray(key, np.int64)
    if group.size == 0:
        return np.zeros(0, np.int64)
    g = group - group[0]
    k = key - key.min()
    base = int(k.max()) + 1
    pairs = np.unique(g * base + k)  # one int64 key per (group, value): a 1-D unique is a fast sort
    per_group = np.bincount(pairs // base, minlength=int(g[-1]) + 1)
    return per_group[g]


class CoincidenceVeto:
    """Streaming cross-channel coincidence stage (module docstring); indices and ``window`` in samples.

    :meth:`process` takes each batch of events (sorted by index) with the index below which every
    event has already been seen; it returns the events whose groups are complete, with ``group``
    and ``multiplicity`` set and VETOED flagged. :meth:`flush` releases the rest (end of a segment).
    Group ids count up over the whole stream. Counters: ``events``, ``groups``, ``vetoed_events``,
    ``vetoed_groups``.
    """

    def __init__(self, window: int, max_channels: int) -> None:
        if window < 0:
            raise ValueError(f"coincidence window must be >= 0 samples, got {window}")
        if max_channels < 1:
            raise ValueError(f"veto max_channels (K) must be >= 1, got {max_channels}")
        self.window = int(window)
        self.max_channels = int(max_channels)
        self._pending: list[EventBatch] = []
        self._next_group = 0
        self.events = self.groups = self.vetoed_events = self.vetoed_groups = 0

    def process(self, events: EventBatch, horizon: int | None) -> EventBatch:
        """Add ``events``; every event still to come has an index >= ``horizon`` (None: unknown yet)."""
        if len(events):
            self._pending.append(events)
        if not self._pending:
            return _empty_like(events)
        batch = EventBatch.concat(self._pending).sorted()
        label = chain_groups(batch.sample_index, self.window)
        if horizon is None:
            self._pending = [batch]
            return _empty_like(events)
        # a group is complete once no future event can chain onto it: its last index + window < horizon
        last = np.full(int(label[-1]) + 1, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(last, label, batch.sample_index)
        done_groups = last + self.window < int(horizon)
        n_done = int(done_groups.sum())  # groups end in order, so the complete ones come first
        cut = int(np.searchsorted(label, n_done))
        self._pending = [batch.select(slice(cut, None))] if cut < len(batch) else []
        return self._label(batch.select(slice(0, cut)), label[:cut])

    def flush(self, events: EventBatch | None = None) -> EventBatch:
        """Release every pending event (plus ``events``): the segment or stream ended."""
        if events is not None and len(events):
            self._pending.append(events)
        if not self._pending:
            return _empty_like(events) if events is not None else _labelled(EventBatch.empty())
        batch = EventBatch.concat(self._pending).sorted()
        self._pending = []
        return self._label(batch, chain_groups(batch.sample_index, self.window))

    def _label(self, batch: EventBatch, label: np.ndarray) -> EventBatch:
        if len(batch) == 0:
            return _labelled(batch)
        multiplicity = distinct_per_group(label, batch.channel)
        group = self._next_group + (label - label[0])
        n_groups = int(label[-1] - label[0]) + 1
        self._next_group += n_groups
        veto = multiplicity > self.max_channels
        batch.flags = batch.flags | np.where(veto, np.uint16(EventFlag.VETOED), np.uint16(0)).astype(np.uint16)
        batch.group, batch.multiplicity = group.astype(np.int64), multiplicity.astype(np.uint16)
        self.events += len(batch)
        self.groups += n_groups
        self.vetoed_events += int(veto.sum())
        self.vetoed_groups += int(np.unique(group[veto]).size)
        return batch


def _labelled(batch: EventBatch) -> EventBatch:
    batch.group = np.zeros(len(batch), np.int64) if batch.group is None else batch.group
    batch.multiplicity = np.zeros(len(batch), np.uint16) if batch.multiplicity is None else batch.multiplicity
    return batch


def _empty_like(events: EventBatch | None) -> EventBatch:
    """An empty batch shaped like ``events`` (records of the same width), with group columns."""
    if events is None:
        return _labelled(EventBatch.empty())
    width = None if events.records is None else events.records.shape[1]
    return _labelled(EventBatch.empty(width, events.presamples))
