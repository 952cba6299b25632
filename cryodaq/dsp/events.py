"""Columnar event records produced by the triggers, and sample-index to UTC conversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any, Sequence

import numpy as np


class EventFlag(IntFlag):
    """Bits of :attr:`EventBatch.flags`."""

    PILEUP = 1  # another trigger on the same channel falls inside the record window
    TRUNCATED = 2  # the stream ended (finish(): gap or end of run) before the window was complete
    FORCED = 4  # not this channel's own trigger: auto (noise) record or group-trigger secondary
    VETOED = 8  # within the coincidence window of events on more than K channels (cosmic ray, substrate glitch)


@dataclass
class EventBatch:
    """Events as host numpy columns (one row per event, sorted by sample index then channel).

    ``sample_index`` (int64) is the input sample index of the trigger; ``amplitude``
    (float32) the peak of ``polarity * (x - baseline)`` in the window after the trigger
    (positive for pulses of the triggered polarity); ``baseline`` (float32) the mean of
    the presamples; ``records`` (optional, ``(n, record_length)``) the snippets starting
    ``presamples`` before the trigger: float32 from a trigger (NaN where a truncated record
    had no data), or the raw integer samples a records source delivered, kept exactly. ``group`` (int64) and ``multiplicity`` (uint16), set by the coincidence
    veto stage (:class:`~cryodaq.dsp.coincidence.CoincidenceVeto`): the event's coincidence
    group and how many channels that group hit.
    """

    sample_index: np.ndarray
    channel: np.ndarray
    amplitude: np.ndarray
    baseline: np.ndarray
    flags: np.ndarray
    records: np.ndarray | None = None
    presamples: int = 0
    group: np.ndarray | None = None
    multiplicity: np.ndarray | None = None
    _columns: tuple[str, ...] = field(
        default=("sample_index", "channel", "amplitude", "baseline", "flags"), init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.sample_index = np.asarray(self.sample_index, dtype=np.int64)
        self.channel = np.asarray(self.channel, dtype=np.int32)
        self.amplitude = np.asarray(self.amplitude, dtype=np.float32)
        self.baseline = np.asarray(self.baseline, dtype=np.float32)
        self.flags = np.asarray(self.flags, dtype=np.uint16)
        n = {len(getattr(self, c)) for c in self._columns}
        if self.records is not None:
            rec = np.asarray(self.records)
            self.records = rec if rec.dtype.kind in "iu" else rec.astype(np.float32, copy=False)
            n.add(self.records.shape[0])
        for name, dtype in (("group", np.int64), ("multiplicity", np.uint16)):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))
                n.add(len(getattr(self, name)))
        if len(n) > 1:
            raise ValueError(f"EventBatch columns differ in length: {sorted(n)}")

    def __len__(self) -> int:
        return int(self.sample_index.shape[0])

    @classmethod
    def empty(cls, record_length: int | None = None, presamples: int = 0) -> EventBatch:
        """A batch with no events (records of width ``record_length`` when given)."""
        rec = None if record_length is None else np.zeros((0, record_length), np.float32)
        z = np.zeros(0)
        return cls(z, z, z, z, z, rec, presamples)

    @classmethod
    def concat(cls, batches: Sequence[EventBatch]) -> EventBatch:
        """Join batches in order; records are kept only when every batch has them."""
        batches = list(batches)
        if not batches:
            return cls.empty()
        cols = {c: np.concatenate([getattr(b, c) for b in batches]) for c in batches[0]._columns}
        recs = [b.records for b in batches]
        records = None
        if all(r is not None for r in recs):
            widths = {r.shape[1] for r in recs}
            if len(widths) > 1:
                raise ValueError(f"cannot concatenate records of different lengths {sorted(widths)}")
            records = np.concatenate(recs, axis=0)
        extra = {name: np.concatenate([getattr(b, name) for b in batches])
                 for name in ("group", "multiplicity") if all(getattr(b, name) is not None for b in batches)}
        return cls(**cols, records=records, presamples=batches[0].presamples, **extra)

    def select(self, mask: Any) -> EventBatch:
        """The events where ``mask`` (boolean or index array) selects."""
        cols = {c: getattr(self, c)[mask] for c in self._columns}
        rec = None if self.records is None else self.records[mask]
        extra = {name: getattr(self, name)[mask] for name in ("group", "multiplicity") if getattr(self, name) is not None}
        return EventBatch(**cols, records=rec, presamples=self.presamples, **extra)

    def sorted(self) -> EventBatch:
        """Sorted by (sample_index, channel)."""
        return self.select(np.lexsort((self.channel, self.sample_index)))


def sample_index_to_utc_ns(sample_index: Any, t0_ns: int, first_index: int, fs: float) -> np.ndarray:
    """UTC time (int64 ns) of ``sample_index``, given that sample ``first_index`` was at ``t0_ns``."""
    offset = np.asarray(sample_index, dtype=np.float64) - float(first_index)
    return np.int64(t0_ns) + np.rint(offset * (1e9 / fs)).astype(np.int64)
