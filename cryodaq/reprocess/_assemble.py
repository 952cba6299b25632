"""Client side: the chunks' candidates of one segment -> the segment's events, exactly as streaming.

Hold-off (and dead time) is one sequential pass over every candidate of the segment, so a
chain of hold-offs through a burst is decided the same way wherever the chunk edges fall;
PILEUP is then counted against every kept trigger of the segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryodaq.dsp import EventBatch, EventFlag, ThresholdTrigger
from cryodaq.reprocess._tasks import ChunkResult


@dataclass
class SegmentEvents:
    """Events of one segment: ``events.sample_index`` is the stream row; coordinates alongside."""

    events: EventBatch
    sample_index: np.ndarray  # stream sample_index (ADC samples for MKID runs)
    t: np.ndarray  # UTC ns


def assemble_segment(results: list[ChunkResult], trigger: ThresholdTrigger, n_channels: int) -> SegmentEvents:
    """Resolve hold-off over the segment's candidates, keep the recorded ones, flag pile-up."""
    ev = EventBatch.concat([r.events for r in results])
    si = np.concatenate([r.sample_index for r in results]) if results else np.zeros(0, np.int64)
    t = np.concatenate([r.t for r in results]) if results else np.zeros(0, np.int64)
    if len(ev) == 0:
        return SegmentEvents(ev, si, t)
    order = np.lexsort((ev.sample_index, ev.channel))
    ch, idx = ev.channel[order], ev.sample_index[order]
    kept, recorded = trigger.resolve(ch, idx, n_channels)
    sel = order[recorded]
    out = ev.select(sel)
    pile = trigger.pileup(out.sample_index, out.channel, idx[kept], ch[kept])
    out.flags[pile] |= np.uint16(EventFlag.PILEUP)
    si, t = si[sel], t[sel]
    final = np.lexsort((out.channel, out.sample_index))
    return SegmentEvents(out.select(final), si[final], t[final])
