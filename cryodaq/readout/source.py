"""The readout seam: what the session, captures, calibration sweeps and pipelines talk to.

A :class:`ReadoutSource` is anything that streams detector data: the cryodaq MKID and TES
readout boards (qcodes drivers, :mod:`cryodaq.instruments`), a CRS board, or a DASTARD
publisher of triggered records. It describes its stream (:class:`StreamDescription`),
takes settings, starts and stops streaming to an address, and opens a
:class:`BlockReceiver` that turns what arrives into :class:`~cryodaq.readout.blocks.Block`
objects (sample index, UTC time, gap records) on a bounded queue. The receiver dance —
receiver on a free port, refuse a source that already streams, start, stop — is written
once, in :func:`cryodaq.readout.receive.receiving`.

Stream kinds (:attr:`StreamDescription.kind`) and the layout of ``Block.samples``:

==========  ==============================================  ==========================================
kind        samples                                          pipeline
==========  ==============================================  ==========================================
``adc``     ``(n,)`` int16, one real ADC carrying a tone     channelizer → tone DDC → IQ → phase → trigger
            comb (tones in ``channel_coords["tone_if_hz"]``)
``channels`` ``(n, n_channels)`` int16 demultiplexed           counts → units (``counts_per_unit``) → trigger
            channels (e.g. TES SQUID outputs)
``iq``      ``(n, n_channels)`` complex64 IQ, already         IQ → phase → trigger (no channelizer)
            channelized by the board (e.g. a CRS)
``records`` triggered records, not a continuous stream:        records → events (no trigger)
            :class:`~cryodaq.readout.blocks.RecordBlock`
            batches (e.g. a DASTARD publisher)
==========  ==============================================  ==========================================
"""

from __future__ import annotations

import queue
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from cryodaq.readout.blocks import ReceivedBlock, TimeBase

__all__ = ["BlockReceiver", "ReadoutSource", "ReceiverStats", "StreamDescription", "StreamKind", "TimeBase",
           "ToneSweepSource"]

StreamKind = Literal["adc", "channels", "iq", "records"]


@dataclass(frozen=True)
class StreamDescription:
    """What a source streams: the kind of samples, their rate, the channels and the time base.

    ``sample_rate_hz``: samples per second of each channel (the ADC rate for ``adc``).
    ``channel_coords``: per-channel metadata, each an array of ``n_channels`` values
    (e.g. ``tone_frequency_hz``, ``tone_if_hz``). ``counts_per_unit``: per channel, the counts
    of one ``units`` (a ``channels`` stream in physical units, e.g. a TES board's counts per
    ampere); None when the counts have no physical scale. ``record_length`` / ``presamples``: a
    ``records`` stream's record shape as far as the source knows it before the first record
    (None: not known; the records themselves carry it).
    """

    kind: StreamKind
    sample_rate_hz: float
    n_channels: int
    sample_dtype: str
    channel_coords: Mapping[str, np.ndarray] = field(default_factory=dict)
    units: str = "counts"
    counts_per_unit: np.ndarray | None = None
    time_base: TimeBase = field(default_factory=TimeBase)
    source: str = ""
    record_length: int | None = None
    presamples: int | None = None

    def __post_init__(self) -> None:
        for name, values in self.channel_coords.items():
            if len(values) != self.n_channels:
                raise ValueError(f"{self.source or 'stream'}: channel coordinate {name!r} has {len(values)} values "
                                 f"for {self.n_channels} channels")


@dataclass
class ReceiverStats:
    """Counters of a :class:`BlockReceiver` (plain ints: safe to read from another thread).

    A ``records`` receiver counts record messages as packets and records as samples;
    ``lost_samples`` are records the source counted that never arrived, ``out_of_order`` records
    whose trigger frame index did not increase on their channel.
    """

    packets: int = 0
    samples: int = 0
    lost_packets: int = 0
    lost_samples: int = 0
    dropped_blocks: int = 0
    dropped_samples: int = 0
    bad_packets: int = 0
    gaps: int = 0
    out_of_order: int = 0


class BlockReceiver(Protocol):
    """Receives one source's stream into blocks on a bounded queue; never blocks on the consumer.

    ``blocks`` gets :class:`~cryodaq.readout.blocks.Block` objects (a ``records`` source's
    receiver: :class:`~cryodaq.readout.blocks.RecordBlock` batches) and, once after
    :meth:`stop`, ``None``. A full queue drops the block and records it as a gap.
    ``host``/``port``: where the source should send (the bound address).
    """

    host: str
    port: int
    blocks: queue.Queue[ReceivedBlock | None]
    stats: ReceiverStats

    def start(self) -> BlockReceiver: ...

    def stop(self, drain_s: float = 0.3) -> None: ...


@runtime_checkable
class ReadoutSource(Protocol):
    """A system that streams detector data (see the module docstring).

    ``name`` names it in errors and in the run. :meth:`configure` applies settings by name
    (station safety limits apply, as for any instrument parameter). :meth:`start_stream`
    sends the stream to ``host:port``; :meth:`stop_stream` ends it. :meth:`open_receiver`
    binds a receiver for this source's wire format (not started) whose blocks hold
    ``packets_per_block`` of the source's packets (fewer after a gap or a latency flush).

    ``is_streaming()`` says whether a stream to another consumer is running that a new
    stream would take over (:func:`~cryodaq.readout.receive.receiving` then refuses the
    source). A source that multicasts to any number of receivers (a CRS board streams to its
    group all the time) takes nothing over by being joined, and answers False.
    """

    name: str

    def describe(self) -> StreamDescription: ...

    def configure(self, **settings: Any) -> None: ...

    def is_streaming(self) -> bool: ...

    def start_stream(self, host: str, port: int) -> None: ...

    def stop_stream(self) -> None: ...

    def open_receiver(self, host: str, port: int, *, packets_per_block: int, queue_blocks: int) -> BlockReceiver: ...


@runtime_checkable
class ToneSweepSource(Protocol):
    """A readout that measures its own tones' IQ at frequencies it is given (a CRS board's
    ``get_samples``), in the units of its stream: the calibration sweep then needs no stream.

    Tones are grouped by feedline (a CRS module: one NCO, one DAC and ADC, its own resonators).
    :meth:`measure_iq` puts tone ``k`` of ``line`` at ``frequencies[i, k]`` (RF, Hz) for each
    point ``i`` and returns the IQ there, ``(n_points, n_tones)`` complex128; it uses the line's
    first ``n_tones`` channels and leaves them at the last point. :meth:`set_tones` makes the
    line's first ``len(frequencies)`` channels the streamed tones (others off), in that order, so
    that the stream's channels follow the lines in order. Station safety limits apply to every
    amplitude and frequency either sets, before anything reaches the hardware.
    """

    name: str

    def feedlines(self) -> list[int]: ...

    def feedline_band(self, line: int) -> tuple[float, float]: ...

    def max_sweep_tones(self, line: int) -> int: ...

    def max_stream_tones(self, line: int) -> int: ...

    def tones(self, line: int) -> np.ndarray: ...

    def measure_iq(self, line: int, frequencies: np.ndarray) -> np.ndarray: ...

    def set_tones(self, line: int, frequencies: np.ndarray) -> None: ...
