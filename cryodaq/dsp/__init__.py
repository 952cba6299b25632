"""cryodaq.dsp: array-module agnostic streaming DSP (numpy/scipy on CPU, cupy on GPU).

Every object takes ``backend: Backend | None`` (default :func:`cryodaq.backend.numpy_backend`)
and returns that backend's arrays (events and designs are host numpy).
"""

from .ddc import ToneChannelizer, ToneDDC
from .stats import robust_sigma
from .events import EventBatch, EventFlag, sample_index_to_utc_ns
from .iq import IQCalibration, iq_to_dissipation, iq_to_phase
from .iqcal import calibration_from_fit, fractional_frequency_shift
from .iv import IVResult, analyze_iv
from .optimal_filter import (
    OptimalFilter,
    OptimalFilterResult,
    PulseTemplate,
    build_template,
)
from .pfb import PFBChannelizer
from .psd import csd, welch_psd
from .resonator import (
    FoundResonators,
    ResonatorFit,
    ResonatorFitError,
    circle_fit,
    find_resonators,
    fit_resonator,
    resonator_model,
)
from .trigger import (
    AutoTrigger,
    EdgeTrigger,
    GroupTrigger,
    LevelTrigger,
    MatchedFilterTrigger,
    ThresholdTrigger,
)

__all__ = [
    "FoundResonators",
    "IVResult",
    "OptimalFilter",
    "OptimalFilterResult",
    "PulseTemplate",
    "ResonatorFit",
    "ResonatorFitError",
    "analyze_iv",
    "build_template",
    "calibration_from_fit",
    "circle_fit",
    "find_resonators",
    "fit_resonator",
    "fractional_frequency_shift",
    "resonator_model",
    "robust_sigma",
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
