"""Capture a few seconds of a readout source's stream into arrays (sweeps, noise and IV points).

:func:`capture_stream` streams the source into a receiver of its own
(:func:`~cryodaq.readout.receive.receiving`), collects blocks until it holds the requested
number of samples, stops the source and the receiver, and returns a :class:`Capture`: the
samples as float64 ``(n, n_channels)`` — in the stream's physical units (e.g. amperes of TES
current, ``counts / counts_per_ampere``, up to the SQUID's unknown offset) when the stream
has ``counts_per_unit``, else counts — with the sample rate, the UTC time of the first sample, the
rows of each contiguous segment and the gaps.

Gaps are never stitched silently: with ``on_gap="raise"`` (default) a missing packet raises
:class:`CaptureGapError`; with ``on_gap="flag"`` the capture keeps collecting and returns the
samples it received, its ``gaps`` listed and ``segments`` saying which rows are contiguous, for a
caller that can live with it (a mean over the samples) or cut records inside segments (a PSD).
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from cryodaq.errors import CryodaqError, InstrumentError
from cryodaq.readout.blocks import Block, Gap
from cryodaq.readout.receive import receiving, source_address
from cryodaq.readout.source import ReadoutSource, StreamDescription

__all__ = ["Capture", "CaptureGapError", "capture_stream"]

log = logging.getLogger(__name__)

INT16_MIN, INT16_MAX = -32768, 32767


class CaptureGapError(CryodaqError, RuntimeError):
    """Samples went missing during a capture that had to be contiguous: names the board and the gaps."""

    def __init__(self, board: str, gaps: list[Gap]) -> None:
        self.board, self.gaps = board, list(gaps)
        what = "; ".join(f"{g.n_samples} samples from sample {g.first_sample} ({g.cause}: {g.detail})" for g in gaps)
        super().__init__(f"capture from {board!r}: the stream has a gap — {what}; "
                         "pass on_gap='flag' to keep the samples that arrived")


@dataclass
class Capture:
    """Samples of one capture: ``data[i]`` is stream sample ``sample_index[i]``.

    ``units`` is ``"A"`` (divided by ``counts_per_ampere``; the SQUID offset is still in) or
    ``"counts"``. ``segments`` are ``(start_row, stop_row)`` of contiguous runs (one unless there
    were gaps). ``saturated[ch]`` is True when a sample of channel ``ch`` sat on an ADC rail (the
    reading there is not the signal).
    """

    data: np.ndarray
    fs: float
    t0_ns: int
    first_sample: int
    units: str
    sample_index: np.ndarray
    segments: list[tuple[int, int]]
    gaps: list[Gap] = field(default_factory=list)
    saturated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    counts_per_ampere: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        """Time spanned from the first to one past the last sample (gaps included)."""
        if not self.n_samples:
            return 0.0
        return float(self.sample_index[-1] - self.sample_index[0] + 1) / self.fs

    @property
    def contiguous(self) -> bool:
        return not self.gaps


def _counts_per_unit(stream: StreamDescription, given: Any) -> np.ndarray | None:
    if given is not None:
        return np.atleast_1d(np.asarray(given, dtype=float))
    return None if stream.counts_per_unit is None else np.atleast_1d(np.asarray(stream.counts_per_unit, dtype=float))


def capture_stream(
    source: ReadoutSource,
    seconds: float,
    *,
    host: str = "127.0.0.1",
    on_gap: Literal["raise", "flag"] = "raise",
    calibrate: bool = True,
    counts_per_ampere: Any = None,
    timeout_s: float | None = None,
) -> Capture:
    """Stream ``seconds`` of samples from ``source`` (a :class:`~cryodaq.readout.source.ReadoutSource`).

    ``host``: the local address the source sends to (the receiver binds a free port there).
    ``calibrate``: convert counts to the stream's units with its ``counts_per_unit`` (a TES
    board's counts per ampere; ``counts_per_ampere`` given overrides it). ``timeout_s`` (default
    ``seconds + 5``): raise :class:`~cryodaq.errors.InstrumentError` naming the source if the
    samples have not arrived by then. The source must not be streaming already (another
    consumer's stream is not taken over).
    """
    if not seconds > 0:
        raise ValueError(f"capture_stream: seconds must be > 0, got {seconds!r}")
    if on_gap not in ("raise", "flag"):
        raise ValueError(f"capture_stream: on_gap must be 'raise' or 'flag', got {on_gap!r}")
    name, address = source.name, source_address(source)
    stream = source.describe()
    fs = stream.sample_rate_hz
    n_want = max(1, round(seconds * fs))
    cpu = _counts_per_unit(stream, counts_per_ampere) if calibrate else None
    units = (stream.units if counts_per_ampere is None else "A") if cpu is not None else "counts"
    deadline_s = (seconds + 5.0) if timeout_s is None else float(timeout_s)
    blocks: list[Block] = []
    gaps: list[Gap] = []
    # One packet per block: a short capture must not wait for the receiver's block-latency flush.
    # The queue holds the whole capture twice over, so the receiver never drops a block on us.
    # Nothing more is read once the capture has its samples: the receiver is closed in the
    # background (waiting for its thread would be half the cost of a short capture).
    with receiving(source, host=host, packets_per_block=1, queue_blocks=max(256, 2 * n_want + 64),
                   stop_in_background=True, purpose="capturing") as receiver:
        got = 0
        deadline = time.monotonic() + deadline_s
        while got < n_want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InstrumentError(name, address, f"sent {got} of {n_want} samples to "
                                      f"{receiver.host}:{receiver.port} within {deadline_s:g} s")
            try:
                block = receiver.blocks.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if block is None:
                raise InstrumentError(name, address, f"the receiver stopped after {got} of {n_want} samples")
            if block.gaps or (blocks and not block.continuous):
                gaps.extend(block.gaps)
                if on_gap == "raise":
                    raise CaptureGapError(name, gaps or [Gap(block.first_sample, 0, block.t_ns, "discontinuity")])
            if block.n_samples:
                blocks.append(block)
                got += block.n_samples
    if gaps:
        log.warning("capture from %s: %d gap(s), %d samples missing (kept: on_gap='flag')", name, len(gaps),
                    sum(g.n_samples for g in gaps))
    return _assemble(blocks, gaps, n_want, fs, cpu, units)


def _assemble(blocks: list[Block], gaps: list[Gap], n_want: int, fs: float, counts_per_unit: np.ndarray | None,
              units: str) -> Capture:
    """The first ``n_want`` samples of ``blocks`` as a :class:`Capture`."""
    raw = np.concatenate([b.samples for b in blocks])[:n_want]
    if raw.ndim == 1:
        raw = raw[:, None]
    index = np.concatenate([b.first_sample + np.arange(b.n_samples, dtype=np.int64) for b in blocks])[:n_want]
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    edges = [0, *breaks.tolist(), len(index)]
    segments = [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    saturated = ((raw == INT16_MAX) | (raw == INT16_MIN)).any(axis=0)
    data = raw.astype(np.float64)
    cpa = counts_per_unit
    if cpa is not None:
        if cpa.size not in (1, data.shape[1]):
            raise ValueError(f"counts per unit has {cpa.size} values for {data.shape[1]} channels")
        data /= cpa
    ns_per_sample = 1e9 / fs
    t0_ns = int(blocks[0].t_ns + round((index[0] - blocks[0].first_sample) * ns_per_sample))
    gaps = [g for g in gaps if g.first_sample < index[-1]]  # gaps after the last kept sample do not matter
    return Capture(data, fs, t0_ns, int(index[0]), units, index, segments, gaps, saturated,
                   None if cpa is None else cpa.copy())
