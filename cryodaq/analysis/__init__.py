"""cryodaq.analysis: from pulses to calibrated spectra (docs/analysis.md).

- :func:`summarize_pulses`: NIST mass's per-record summaries (pretrigger mean/rms, peak, rise time, ...)
- :class:`Cut`, :class:`CutSet`, :func:`auto_cuts`: named, stored, combinable cuts
- :func:`drift_correct`: the entropy-minimising gain correction against the pretrigger mean
- :class:`GainCurve`, :func:`assign_lines`, :func:`find_line_peaks`: energy calibration
- :data:`LINES`, :class:`SpectralLine`, :func:`get_line`: published natural line shapes (Hölzer 1997,
  Ménesguen 2022) and Gaussian lines; :func:`fit_line`: Poisson maximum-likelihood line fits
- :class:`ChannelFilter`, :func:`learn_channel_filter`, :func:`load_filters`: the optimal filters the live
  pipeline and reprocessing share
- :func:`analyze_run` (``cryodaq analyze RUN --config analysis.yaml``): every step on a stored run,
  writing ``analysis/<label>/``, plots and a table
"""

from typing import TYPE_CHECKING

from cryodaq._lazy import lazy_exports

if TYPE_CHECKING:  # the public names (explicit re-exports); lazy_exports imports each on first use
    from cryodaq.analysis.analyze import analyze_run as analyze_run
    from cryodaq.analysis.result import AnalysisResult as AnalysisResult, ChannelAnalysis as ChannelAnalysis
    from cryodaq.analysis.calibration import (
        CalibrationPoint as CalibrationPoint,
        GainCurve as GainCurve,
        assign_lines as assign_lines,
        find_line_peaks as find_line_peaks,
    )
    from cryodaq.analysis.config import (
        AnalysisConfig as AnalysisConfig,
        load_analysis_config as load_analysis_config,
        parse_analysis_config as parse_analysis_config,
    )
    from cryodaq.analysis.cuts import Cut as Cut, CutSet as CutSet, auto_cuts as auto_cuts
    from cryodaq.analysis.drift import DriftCorrection as DriftCorrection, drift_correct as drift_correct
    from cryodaq.analysis.filters import (
        ChannelFilter as ChannelFilter,
        learn_channel_filter as learn_channel_filter,
        load_filters as load_filters,
    )
    from cryodaq.analysis.linefit import LineFit as LineFit, fit_line as fit_line, histogram as histogram
    from cryodaq.analysis.lines import LINES as LINES, SpectralLine as SpectralLine, get_line as get_line
    from cryodaq.analysis.summaries import summarize_pulses as summarize_pulses

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
