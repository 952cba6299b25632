"""Cutting a stored stream into segments (where acquisition restarted its DSP) and parallel chunks.

Acquisition resets every DSP state at a gap, so the stored ``stream/sample_index`` jumps there;
reprocessing must restart its trigger at the same rows. A segment is a run of rows whose
sample-index step is the stream's usual step; chunks split segments for parallel work.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """Rows ``[start, end)`` of the stream owned by one task, inside segment ``[seg_start, seg_end)``."""

    segment: int
    seg_start: int
    seg_end: int
    start: int
    end: int

    def view(self, lead: int, tail: int) -> tuple[int, int]:
        """Rows to read: ``lead`` before the chunk and ``tail`` after it, clipped to the segment."""
        return max(self.seg_start, self.start - lead), min(self.seg_end, self.end + tail)


def find_segments(sample_index: np.ndarray) -> list[tuple[int, int]]:
    """``[first_row, end_row)`` of each contiguous part of the stream.

    The usual step is the median difference of consecutive sample indices (the ADC samples per
    stored sample); the stream restarts wherever the step differs from it (a gap, or a reset).
    """
    idx = np.asarray(sample_index, dtype=np.int64)
    n = idx.size
    if n == 0:
        return []
    if n == 1:
        return [(0, 1)]
    step = np.diff(idx)
    usual = int(np.median(step))
    cuts = np.flatnonzero(step != usual) + 1
    edges = [0, *cuts.tolist(), n]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def chunk_rows(chunk_s: float, rate_hz: float, storage_chunk: int) -> int:
    """Rows per task: about ``chunk_s`` of stream, rounded to whole storage chunks when larger than one
    (so no stored chunk is decompressed by two tasks, apart from the small overlaps)."""
    rows = max(1, round(chunk_s * rate_hz))
    if rows >= storage_chunk:
        rows = round(rows / storage_chunk) * storage_chunk
    return rows


def plan_chunks(segments: list[tuple[int, int]], rows: int) -> list[Chunk]:
    """Chunks with edges at multiples of ``rows`` (and at segment edges)."""
    out: list[Chunk] = []
    for k, (s0, s1) in enumerate(segments):
        edges = [s0, *range((s0 // rows + 1) * rows, s1, rows), s1]
        out += [Chunk(k, s0, s1, a, b) for a, b in itertools.pairwise(edges)]
    return out
