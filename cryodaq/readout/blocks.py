"""What a readout source delivers: contiguous sample blocks, record batches, and the gaps between them.

A :class:`Block` never spans a gap: the samples missing before it are listed as
:class:`Gap` records on the block that follows them, and ``continuous`` is False, so
every DSP stage resets its state there instead of filtering across the hole.

A source of triggered records (kind ``records``, e.g. DASTARD) delivers :class:`RecordBlock`
batches instead: records in arrival order, their anomalies (dropped, out of order) as
:class:`Gap` records whose ``first_sample`` is a trigger frame index and whose ``n_samples``
counts records, and the source's status messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CAUSE_BAD_RECORD", "CAUSE_OVERFLOW", "CAUSE_PACKET_LOSS", "CAUSE_RECORD_DROPPED", "CAUSE_RECORD_OUT_OF_ORDER",
    "CAUSE_RECORD_SHAPE", "CAUSE_RESTART", "CAUSE_RETUNE", "Block", "Gap", "ReceivedBlock", "RecordBlock",
    "StatusMessage", "TimeBase",
]

CAUSE_PACKET_LOSS = "packet_loss"  # missing sequence numbers (network, or the board dropped them)
CAUSE_OVERFLOW = "pipeline_overflow"  # the receiver's queue was full: processing fell behind
CAUSE_RESTART = "stream_restart"  # the source started its stream over (sequence went back)
CAUSE_RETUNE = "retune"  # resonator tracking moved tones: the data while they settled are dropped
# triggered records (kind "records"): first_sample is a trigger frame index (-1: not known), n_samples counts records
CAUSE_RECORD_DROPPED = "record_dropped"  # the source counted more triggers than records arrived
CAUSE_RECORD_OUT_OF_ORDER = "record_out_of_order"  # a channel's trigger frame index went back or repeated
CAUSE_BAD_RECORD = "bad_record"  # a message that is not a record in the source's format
CAUSE_RECORD_SHAPE = "record_shape_changed"  # record length / presamples / sample size differ from the run's


@dataclass(frozen=True)
class TimeBase:
    """Where a stream's timestamps come from, and how far to trust them.

    ``source``: e.g. ``"host_utc"`` (the receiving host's clock when the packet was made or
    received), ``"board"`` (the board's own clock), ``"irig_b"`` (a CRS board's IRIG-B
    decoder). ``reference``: what that clock follows, as the stream says (a CRS: ``BACKPLANE``,
    ``SMA``, ``TEST`` or ``GND``). ``uncertainty_s``: the stated 1-sigma uncertainty of an
    absolute time (None: not known). ``disciplined``: the clock follows an external reference
    (for a CRS, the timestamp's "recent" bit: without it the calendar time means nothing).
    """

    source: str = "host_utc"
    uncertainty_s: float | None = None
    disciplined: bool = False
    detail: str = ""
    reference: str = ""

    def as_attrs(self) -> dict[str, object]:
        """The run format's ``clock`` attrs (docs/run-format.md)."""
        return {"source": self.source, "reference": self.reference, "disciplined": self.disciplined,
                "uncertainty_s": self.uncertainty_s, "detail": self.detail}


@dataclass(frozen=True)
class Gap:
    """Samples that never reached the pipeline: ``n_samples`` from ``first_sample`` on, and why."""

    first_sample: int
    n_samples: int
    t_ns: int
    cause: str
    detail: str = ""


@dataclass
class Block:
    """Contiguous samples: ``samples[i]`` is stream sample ``first_sample + i``.

    ``samples`` has the layout the source's :class:`~cryodaq.readout.source.StreamDescription`
    names (``(n,)`` int16 for a raw ADC, ``(n, n_channels)`` for demultiplexed channels, ...).
    ``t_ns`` is the UTC time of the first sample. ``continuous`` is False when samples are
    missing right before this block (the DSP state must be reset, not carried over).
    ``time_base``: where ``t_ns`` comes from, when the stream itself says so (a CRS packet's
    timestamp names its time source and whether it is disciplined); None when the source's
    :class:`~cryodaq.readout.source.StreamDescription` says all there is.
    """

    first_sample: int
    t_ns: int
    samples: np.ndarray
    continuous: bool
    gaps: list[Gap] = field(default_factory=list)  # gaps that ended right before this block
    time_base: TimeBase | None = None

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    def continued_by(self, other: object) -> bool:
        """Whether ``other`` is a block that carries straight on from this one (no gap, no restart,
        the same layout and clock), so that the two can be processed as one."""
        return (type(other) is Block and other.continuous and not other.gaps
                and other.first_sample == self.first_sample + self.n_samples
                and other.samples.shape[1:] == self.samples.shape[1:] and other.samples.dtype == self.samples.dtype
                and other.time_base == self.time_base)

    @staticmethod
    def joined(blocks: list[Block]) -> Block:
        """One block of ``blocks``, each continued by the next (:meth:`continued_by`)."""
        if len(blocks) == 1:
            return blocks[0]
        first = blocks[0]
        return Block(first.first_sample, first.t_ns, np.concatenate([b.samples for b in blocks]), first.continuous,
                     first.gaps, first.time_base)


@dataclass(frozen=True)
class StatusMessage:
    """One status message of a records source (e.g. DASTARD's ``TRIGGERRATE``), with its arrival time."""

    topic: str
    payload: Any
    t_ns: int  # UTC ns when it arrived


@dataclass
class RecordBlock:
    """A batch of triggered records of one shape, in arrival order (kind ``records``).

    Row ``i`` is one record: ``channel[i]`` (the source's channel index), ``frame[i]`` (trigger frame
    index, in samples of that channel), ``t_ns[i]`` (trigger time, UTC ns), ``samples[i]`` (the raw
    integer samples, ``presamples`` of them before the trigger, exactly as received) and the
    per-record ``sample_period_s``, ``volts_per_arb`` and ``dtype_code`` (the source's sample-type
    code). ``gaps``: anomalies found since the previous block; ``status``: the source's status
    messages that arrived since then. ``continuous`` is False after records were lost.
    """

    channel: np.ndarray  # (n,) int32
    frame: np.ndarray  # (n,) int64
    t_ns: np.ndarray  # (n,) int64
    samples: np.ndarray  # (n, record_length) raw integers
    presamples: int
    sample_period_s: np.ndarray  # (n,) float64
    volts_per_arb: np.ndarray  # (n,) float32
    dtype_code: np.ndarray  # (n,) uint8
    continuous: bool = True
    gaps: list[Gap] = field(default_factory=list)
    status: list[StatusMessage] = field(default_factory=list)

    @property
    def n_records(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        """Records in the block (the unit a records stream counts in)."""
        return self.n_records

    @classmethod
    def empty(cls, *, gaps: list[Gap] | None = None, status: list[StatusMessage] | None = None,
              continuous: bool = True) -> RecordBlock:
        """A block with no records, carrying only gaps and/or status messages."""
        z = np.zeros(0)
        return cls(z.astype(np.int32), z.astype(np.int64), z.astype(np.int64), np.zeros((0, 0), np.uint16), 0,
                   z.astype(np.float64), z.astype(np.float32), z.astype(np.uint8), continuous,
                   list(gaps or []), list(status or []))


#: what a receiver queues: sample blocks (kinds adc, channels, iq) or record batches (kind records)
ReceivedBlock = Block | RecordBlock
