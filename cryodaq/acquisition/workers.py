"""The threads that carry one stream from a receiver's blocks through a pipeline to the sinks.

Two threads, so the DSP and the storage overlap on two cores (the DSP kernels, the FFTs and
zarr's compressors release the GIL):

- ``cryodaq-pipeline``: blocks from the receiver's queue -> the pipeline (a :class:`StreamPipeline`
  or a :class:`RecordPipeline`) -> hand-over queue
- ``cryodaq-sinks``: hand-over queue -> :class:`~cryodaq.acquisition.sinks.Sink` (Zarr writer, live
  publisher), gaps, housekeeping the pipeline found and spectra in stream order, the stream's
  own word on its clock (``on_time_base``), session counters

An optional block stage (``stage``, e.g. resonator tracking:
:class:`~cryodaq.acquisition.tracking.ToneTracker`) runs in the pipeline thread, in stream order: it
it admits each block before the pipeline (``admit``: it may drop it, or mark it non-continuous and add
gaps), sees the pipeline's outputs (``observe``: it may act on the source and the pipeline, and put
rows on the outputs), and at the end hands over the gaps it still holds (``flush``).

The hand-over queue is bounded: a sink that falls behind makes the pipeline thread wait, the
receiver's queue fill, and the receiver drop (and record) blocks; the receiver itself never
waits. :class:`~cryodaq.acquisition.session.StreamSession` and ``benchmarks/ingest.py`` both run
a stream through this one class.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from cryodaq.acquisition.pipeline import PipelineOutput, ReadoutPipeline
from cryodaq.acquisition.sinks import SessionStats, Sink
from cryodaq.dsp.events import EventFlag
from cryodaq.readout.blocks import Block, Gap, TimeBase
from cryodaq.readout.source import BlockReceiver

__all__ = ["BlockStage", "StreamWorkers"]

_END = object()
_NOTHING = object()


class BlockStage(Protocol):
    """Work in the pipeline thread around the pipeline (module docstring), e.g. resonator tracking."""

    def admit(self, block: Any) -> Any | None: ...

    def observe(self, outputs: list[PipelineOutput]) -> None: ...

    def flush(self) -> list[Gap]: ...


class StreamWorkers:
    """Pipeline thread + sink thread for one stream (see the module docstring).

    ``guard`` wraps each thread's body (the session's turns an exception into an aborted run);
    ``handoff`` bounds the outputs waiting for the sinks; ``on_time_base(time_base, t_ns)`` is called
    from the sink thread, in stream order, whenever a block states a clock other than the last one;
    ``name`` (a readout's, where a station has several) suffixes the threads' names; ``coalesce``: how
    many queued blocks the pipeline thread may join into one when it is behind (1: never).
    :attr:`busy_s` accumulates the seconds each thread spent working (not waiting), for the profile
    of where the time goes.
    """

    def __init__(self, receiver: BlockReceiver, pipeline: ReadoutPipeline, sinks: Sink, stats: SessionStats, *,
                 guard: Callable[[Callable[[], None]], Callable[[], None]] = lambda fn: fn,
                 handoff: int = 64, on_time_base: Callable[[TimeBase, int], None] | None = None,
                 name: str = "", stage: BlockStage | None = None, coalesce: int = 8) -> None:
        self.receiver, self.pipeline, self.sinks, self.stats = receiver, pipeline, sinks, stats
        self.coalesce = int(coalesce)
        self.coalesced = 0  # blocks joined to the one before them (the pipeline was behind)
        self._held: Any = _NOTHING  # a block taken from the queue that goes next (None: the end)
        self.stage = stage
        self.on_time_base = on_time_base
        self._time_base: TimeBase | None = None
        self._handoff: queue.Queue[Any] = queue.Queue(maxsize=handoff)
        self.busy_s = {"pipeline": 0.0, "sinks": 0.0}
        suffix = f"-{name}" if name else ""  # a station with several readouts: one pair of threads each
        self.threads = [
            threading.Thread(target=guard(self._pipeline_loop), name=f"cryodaq-pipeline{suffix}", daemon=True),
            threading.Thread(target=guard(self._sink_loop), name=f"cryodaq-sinks{suffix}", daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float | None = None) -> None:
        for t in self.threads:
            t.join(timeout)

    # --- pipeline thread ----------------------------------------------------------
    def _next_block(self) -> Any:
        """The next block from the receiver; when more are already queued that carry straight on from it
        (the pipeline is behind), up to ``coalesce`` of them joined into one, so that the pipeline's
        per-block work (Python, kernel launches) is paid once for them: it catches up instead of
        falling further behind. Results do not depend on how the stream is cut into blocks."""
        block = self._held if self._held is not _NOTHING else self.receiver.blocks.get()
        self._held = _NOTHING
        if type(block) is not Block or self.coalesce < 2:
            return block
        run = [block]
        while len(run) < self.coalesce:
            try:
                nxt = self.receiver.blocks.get_nowait()
            except queue.Empty:
                break
            if not run[-1].continued_by(nxt):
                self._held = nxt  # a gap, the end, another layout: it goes next, on its own
                break
            run.append(nxt)
        self.coalesced += len(run) - 1
        return Block.joined(run)

    def _pipeline_loop(self) -> None:
        try:
            while True:
                block = self._next_block()
                if block is None:
                    break
                t0 = time.thread_time()
                if self.stage is not None and (block := self.stage.admit(block)) is None:
                    self.busy_s["pipeline"] += time.thread_time() - t0
                    continue  # e.g. data taken while retuned tones settle: dropped, a gap with the next block
                time_base = getattr(block, "time_base", None)  # a record batch states none
                if time_base is not None and time_base != self._time_base:
                    self._time_base = time_base
                    self._handoff.put((time_base, int(block.t_ns)))
                for gap in block.gaps:
                    self._handoff.put(gap)
                outputs = self.pipeline.process(block)
                if self.stage is not None:
                    self.stage.observe(outputs)
                self.busy_s["pipeline"] += time.thread_time() - t0
                for out in outputs:
                    self._handoff.put(out)
            if self.stage is not None:
                for gap in self.stage.flush():
                    self._handoff.put(gap)
            for out in self.pipeline.finish():
                self._handoff.put(out)
        finally:
            self._handoff.put(_END)  # the sink thread ends even when the pipeline failed

    # --- sink thread --------------------------------------------------------------
    def _sink_loop(self) -> None:
        try:
            while True:
                item = self._handoff.get()
                if item is _END:
                    return
                t0 = time.thread_time()
                if isinstance(item, Gap):
                    self._gap(item)
                elif isinstance(item, tuple):
                    if self.on_time_base is not None:
                        self.on_time_base(*item)
                else:
                    self._output(item)
                self.busy_s["sinks"] += time.thread_time() - t0
        except BaseException:
            # keep taking (and dropping) what the pipeline thread hands over, so it never blocks on a
            # dead consumer; the error goes up to the guard and ends the run
            threading.Thread(target=self._drain, name="cryodaq-sinks-drain", daemon=True).start()
            raise

    def _drain(self) -> None:
        while self._handoff.get() is not _END:
            pass

    def _gap(self, gap: Gap) -> None:
        self.sinks.gap(gap)
        self.stats.gaps += 1
        self.stats.samples_lost += gap.n_samples

    def _output(self, out: PipelineOutput) -> None:
        for gap in out.gaps:
            self._gap(gap)
        for hk in out.housekeeping:
            self.sinks.housekeeping(hk.name, hk.t_ns, hk.value, hk.unit)
            self.stats.housekeeping[hk.name] = hk.value
        self.sinks.output(out)
        if len(out.events):
            np.add.at(self.stats.events_per_channel, out.events.channel, 1)
            self.stats.events += len(out.events)
            self.stats.vetoed += int(np.count_nonzero(out.events.flags & np.uint16(EventFlag.VETOED)))
        spectra = getattr(self.pipeline, "spectra", None)  # a records pipeline has none
        if out.spectrum is not None and spectra is not None:
            t_ns, freq, psd = out.spectrum
            self.sinks.spectrum(t_ns, freq, psd, spectra.units)
