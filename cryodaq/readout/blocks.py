"""What a readout source delivers: contiguous sample blocks and the gaps between them.

A :class:`Block` never spans a gap: the samples missing before it are listed as
:class:`Gap` records on the block that follows them, and ``continuous`` is False, so
every DSP stage resets its state there instead of filtering across the hole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CAUSE_OVERFLOW", "CAUSE_PACKET_LOSS", "CAUSE_RESTART", "Block", "Gap", "TimeBase"]

CAUSE_PACKET_LOSS = "packet_loss"  # missing sequence numbers (network, or the board dropped them)
CAUSE_OVERFLOW = "pipeline_overflow"  # the receiver's queue was full: processing fell behind
CAUSE_RESTART = "stream_restart"  # the source started its stream over (sequence went back)


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
