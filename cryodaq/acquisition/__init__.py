"""cryodaq.acquisition: the live run — readout source → pipeline → sinks, with housekeeping.

- :class:`StreamSession` runs a station: bring-up, calibration, streaming, clean stop.
- Pipelines (:class:`MKIDPipeline`, :class:`IQPipeline`, :class:`TESPipeline`, chosen by :func:`pipeline_for_source`)
  turn blocks into timestreams and events with the :mod:`cryodaq.dsp` kernels; :class:`RecordPipeline`
  turns a source's own triggered records (DASTARD) into events.
- :class:`StreamWorkers`: the pipeline and sink threads that carry one stream.
- Sinks: the :class:`Sink` seam, :class:`SinkFanout`, :class:`RunWriterSink` (Zarr); the live
  view's publisher is in :mod:`cryodaq.live`.
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.acquisition.pipeline import (
        HousekeepingValue as HousekeepingValue,
        IQPipeline as IQPipeline,
        MKIDPipeline as MKIDPipeline,
        PipelineOutput as PipelineOutput,
        ReadoutPipeline as ReadoutPipeline,
        RecordPipeline as RecordPipeline,
        StreamPipeline as StreamPipeline,
        TESPipeline as TESPipeline,
        make_trigger as make_trigger,
        pipeline_for_source as pipeline_for_source,
    )
    from cryodaq.acquisition.session import (
        RunSummary as RunSummary,
        StreamSession as StreamSession,
        readout_source as readout_source,
    )
    from cryodaq.acquisition.sinks import (
        RunWriterSink as RunWriterSink,
        SessionStats as SessionStats,
        Sink as Sink,
        SinkFanout as SinkFanout,
        StreamInfo as StreamInfo,
    )
    from cryodaq.acquisition.spectra import SpectrumMonitor as SpectrumMonitor
    from cryodaq.acquisition.workers import StreamWorkers as StreamWorkers

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
