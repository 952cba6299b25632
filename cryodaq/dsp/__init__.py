"""cryodaq.dsp: array-module agnostic streaming DSP (numpy/scipy on CPU, cupy on GPU).

Every object takes ``backend: Backend | None`` (default :func:`cryodaq.backend.numpy_backend`)
and returns that backend's arrays (events and designs are host numpy). Streaming objects
carry their state between blocks, and a block-by-block result equals the one-shot result.

- channelizer: :class:`PFBChannelizer` (bins), :class:`ToneDDC` (tone to DC), :class:`ToneChannelizer` (both)
- IQ: :class:`IQCalibration`, :func:`iq_to_phase`, :func:`iq_to_dissipation`; calibrations from
  resonator fits and IQ-loop sweeps, with the one pulse sign convention (:mod:`cryodaq.dsp.iqcal`)
- pulses: triggers (:class:`ThresholdTrigger`, ...), :class:`EventBatch`, the optimal filter,
  coincidences in time (:func:`chain_groups`, the streaming :class:`CoincidenceVeto`)
- analysis: :func:`welch_psd`, resonator model and fit, TES IV analysis, :func:`robust_sigma`
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.dsp.channelizer import ToneChannelizer as ToneChannelizer
    from cryodaq.dsp.coincidence import (
        CoincidenceVeto as CoincidenceVeto,
        chain_groups as chain_groups,
        distinct_per_group as distinct_per_group,
    )
    from cryodaq.dsp.ddc import ToneDDC as ToneDDC
    from cryodaq.dsp.events import (
        EventBatch as EventBatch,
        EventFlag as EventFlag,
        sample_index_to_utc_ns as sample_index_to_utc_ns,
    )
    from cryodaq.dsp.iq import (
        IQCalibration as IQCalibration,
        iq_to_dissipation as iq_to_dissipation,
        iq_to_phase as iq_to_phase,
    )
    from cryodaq.dsp.iqcal import (
        LoopSweep as LoopSweep,
        calibration_from_fit as calibration_from_fit,
        fractional_frequency_shift as fractional_frequency_shift,
        loop_calibration as loop_calibration,
        sweep_offsets as sweep_offsets,
    )
    from cryodaq.dsp.iv import IVResult as IVResult, analyze_iv as analyze_iv
    from cryodaq.dsp.optimal_filter import (
        OptimalFilter as OptimalFilter,
        OptimalFilterResult as OptimalFilterResult,
        PulseTemplate as PulseTemplate,
        build_template as build_template,
    )
    from cryodaq.dsp.pfb import PFBChannelizer as PFBChannelizer
    from cryodaq.dsp.psd import csd as csd, welch_psd as welch_psd
    from cryodaq.dsp.resonator import (
        FoundResonators as FoundResonators,
        ResonatorFit as ResonatorFit,
        ResonatorFitError as ResonatorFitError,
        circle_fit as circle_fit,
        find_resonators as find_resonators,
        fit_resonator as fit_resonator,
        resonator_model as resonator_model,
    )
    from cryodaq.dsp.stats import robust_sigma as robust_sigma
    from cryodaq.dsp.trigger import (
        AutoTrigger as AutoTrigger,
        EdgeTrigger as EdgeTrigger,
        GroupTrigger as GroupTrigger,
        LevelTrigger as LevelTrigger,
        MatchedFilterTrigger as MatchedFilterTrigger,
        ThresholdTrigger as ThresholdTrigger,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
