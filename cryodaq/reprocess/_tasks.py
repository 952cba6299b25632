"""The work one Dask task does on one chunk of a stored stream (runs in the worker processes).

A task gets the run's path (never the data), reads its chunk plus the overlap the trigger
needs, finds every trigger candidate the acquisition's trigger could have fired on, drops
those hold-off certainly suppresses, and extracts their records, baselines and amplitudes
with the trigger's own code. Which candidates survive hold-off chains that cross chunk edges,
and PILEUP, are decided afterwards on the client over the whole segment (:mod:`._assemble`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from cryodaq.acquisition.pipeline import make_trigger
from cryodaq.backend import get_backend
from cryodaq.dsp import AutoTrigger, EventBatch, EventFlag, ThresholdTrigger
from cryodaq.dsp.detectors import NEVER, greedy_min_gap
from cryodaq.reprocess._plan import Chunk
from cryodaq.storage.guarded import GuardedArray
from cryodaq.config import PipelineConfig, TriggerConfig

STREAM = "stream"


@dataclass(frozen=True)
class TriggerSpec:
    """What builds the trigger, in a picklable form: settings, per-channel thresholds, rate, backend."""

    trigger: TriggerConfig
    thresholds: np.ndarray  # (n_channels,) float32, stream units
    rate_hz: float
    backend: str = "numpy"

    def build(self) -> ThresholdTrigger:
        """The same trigger acquisition builds (:func:`cryodaq.acquisition.pipeline.make_trigger`)."""
        config = PipelineConfig(trigger=self.trigger)
        return make_trigger(config, np.asarray(self.thresholds, np.float32), self.rate_hz, get_backend(self.backend))

    def as_dict(self) -> dict[str, Any]:
        return {"trigger": asdict(self.trigger), "thresholds": np.asarray(self.thresholds).tolist(),
                "rate_hz": self.rate_hz, "backend": self.backend}


@dataclass(frozen=True)
class NoiseSpec:
    """Pulse-free (noise) records wanted from each chunk, per channel, for the optimal filter's PSD."""

    per_channel: int
    period: int  # samples between auto-trigger records


@dataclass(frozen=True)
class ChunkTask:
    run_path: str
    stream: str
    chunk: Chunk
    spec: TriggerSpec
    noise: NoiseSpec | None = None


@dataclass
class ChunkResult:
    """Candidate events of one chunk (``events.sample_index`` = stream row) with their stream coordinates."""

    chunk: Chunk
    events: EventBatch
    sample_index: np.ndarray  # (n,) stream sample_index at each candidate's row
    t: np.ndarray  # (n,) stream t (UTC ns) at each candidate's row
    rows_read: int
    noise: np.ndarray | None = None  # (m, record_length) float32 pulse-free records
    noise_channel: np.ndarray | None = None  # (m,) int32 channel column of each


@lru_cache(maxsize=32)
def _stream_array(run_path: str, name: str) -> GuardedArray:
    """An array of the run's stream group, read-only, opened once per worker process (a finished
    run's arrays do not change; readers stay within the committed length the client passes). A chunk
    that fails its checksum raises RunDamagedError naming the array and rows, never a bare zarr error."""
    root = zarr.open_group(LocalStore(Path(run_path), read_only=True), mode="r", use_consolidated=False)
    return GuardedArray(root[f"{STREAM}/{name}"], run=Path(run_path), group=STREAM, name=name, along="time")


def overlap(trigger: ThresholdTrigger) -> tuple[int, int]:
    """(lead, tail): stream rows a chunk needs before and after the rows it owns."""
    lead = max(trigger.lookback, trigger.presamples)
    tail = trigger.builder.span - trigger.presamples
    return lead, tail


def prune_suppressed(channel: np.ndarray, index: np.ndarray, start: int, holdoff: int, n_channels: int) -> np.ndarray:
    """Keep-mask dropping the candidates that hold-off suppresses whatever happened before ``start``.

    A candidate with no other candidate in the ``holdoff`` samples before it (all inside the
    chunk) is kept in any history; from the first such candidate of a channel on, the chunk's
    own greedy hold-off decisions are final. Earlier candidates depend on the previous chunk
    and all stay, for the client's sequential pass. Input sorted by channel, then index.
    """
    n = index.size
    if n == 0 or holdoff <= 1:
        return np.ones(n, bool)
    local = greedy_min_gap(channel, index, np.full(n_channels, NEVER, np.int64), holdoff)
    same = np.zeros(n, bool)
    same[1:] = channel[1:] == channel[:-1]
    prev = np.where(same, np.roll(index, 1), NEVER)
    certain = (index >= start + holdoff) & (index - prev >= holdoff)
    pos = np.arange(n)
    first_certain = np.full(n_channels, n, np.int64)
    np.minimum.at(first_certain, channel[certain], pos[certain])
    return (pos < first_certain[channel]) | local


def process_chunk(task: ChunkTask) -> ChunkResult:
    """Candidates of one chunk, with records; see the module docstring."""
    trigger = task.spec.build()
    chunk = task.chunk
    lead, tail = overlap(trigger)
    v0, v1 = chunk.view(lead, tail)
    x = np.asarray(_stream_array(task.run_path, task.stream)[v0:v1])
    n_ch = x.shape[1]
    ch, idx = trigger.candidates(x, v0, chunk.seg_start, start=chunk.start)
    own = idx < chunk.end
    ch, idx = ch[own], idx[own]
    keep = prune_suppressed(ch, idx, chunk.start, trigger.detector.holdoff, n_ch)
    ch, idx = ch[keep], idx[keep]
    events = trigger.extract(x, v0, idx, ch, stream_end=chunk.seg_end)
    sample_index, t = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(events):  # the stream's own coordinates of the candidates' rows
        r0, r1 = int(events.sample_index.min()), int(events.sample_index.max()) + 1
        rows = events.sample_index - r0
        sample_index = np.asarray(_stream_array(task.run_path, "sample_index")[r0:r1])[rows]
        t = np.asarray(_stream_array(task.run_path, "t")[r0:r1])[rows]
    result = ChunkResult(chunk, events, sample_index, t, v1 - v0)
    if task.noise is not None:
        result.noise, result.noise_channel = _noise_records(task, x, v0, n_ch)
    return result


def _noise_records(task: ChunkTask, x: np.ndarray, first: int, n_ch: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_channel`` pulse-free records per channel from the start of ``x`` (AutoTrigger,
    vetoed by the trigger itself, so records near a pulse are dropped)."""
    noise = task.noise
    assert noise is not None
    veto = task.spec.build()
    auto = AutoTrigger(noise.period, veto.presamples, veto.record_length, veto=veto,
                       polarity=veto.builder.polarity, backend=veto.backend)
    # Enough rows for the quota with half the records vetoed, plus the warm-up.
    need = 2 * noise.per_channel * noise.period + veto.record_length + max(veto.lookback, veto.presamples)
    span = x[: min(x.shape[0], need)]
    ev = EventBatch.concat([auto.process(span, first), auto.finish()])
    ev = ev.select((ev.flags & np.uint16(EventFlag.TRUNCATED)) == 0)
    order = np.argsort(ev.channel, kind="stable")
    ch = ev.channel[order]
    rank = np.arange(ch.size) - np.searchsorted(ch, ch, "left")
    pick = order[rank < noise.per_channel]
    records = ev.records if ev.records is not None else np.zeros((0, veto.record_length), np.float32)
    return records[pick], ev.channel[pick]
