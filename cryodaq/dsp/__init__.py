"""cryodaq.dsp: array-module agnostic streaming DSP (numpy/scipy on CPU, cupy on GPU).

Every object takes ``backend: Backend | None`` (default :func:`cryodaq.backend.numpy_backend`)
and returns that backend's arrays (events and designs are host numpy).
"""

from .ddc import ToneChannelizer, ToneDDC
from .events import EventBatch, EventFlag, sample_index_to_utc_ns
from .iq import IQCalibration, iq_to_dissipation, iq_to_phase
from .pfb import PFBChannelizer
from .psd import csd, welch_psd
from .trigger import (
    AutoTrigger,
    EdgeTrigger,
    GroupTrigger,
    LevelTrigger,
    MatchedFilterTrigger,
    ThresholdTrigger,
)

__all__ = [
    "AutoTrigger",
    "EdgeTrigger",
    "EventBatch",
    "EventFlag",
    "GroupTrigger",
    "IQCalibration",
    "LevelTrigger",
    "MatchedFilterTrigger",
    "PFBChannelizer",
    "ThresholdTrigger",
    "ToneChannelizer",
    "ToneDDC",
    "csd",
    "iq_to_dissipation",
    "iq_to_phase",
    "sample_index_to_utc_ns",
    "welch_psd",
]
