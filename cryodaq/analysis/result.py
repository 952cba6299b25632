"""What :func:`cryodaq.analysis.analyze_run` returns: per channel and for the combined spectrum."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryodaq.analysis.calibration import GainCurve
from cryodaq.analysis.drift import DriftCorrection
from cryodaq.analysis.linefit import LineFit
from cryodaq.analysis.lines import get_line

__all__ = ["AnalysisResult", "ChannelAnalysis"]


@dataclass
class ChannelAnalysis:
    """What the analysis found on one channel."""

    channel: int
    n_events: int
    n_good: int
    drift: DriftCorrection | None = None
    curve: GainCurve | None = None
    message: str = ""


@dataclass
class AnalysisResult:
    """The outcome of :func:`analyze_run`: where it went and what it found."""

    run_path: Path
    label: str
    group: str
    results_dir: Path | None
    feature: str
    channels: list[ChannelAnalysis]
    fits: list[LineFit]
    channel_fits: dict[int, list[LineFit]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    energy: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    good: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)

    def fit(self, line: str | float) -> LineFit:
        """The combined fit of ``line``."""
        name = get_line(line).name
        for f in self.fits:
            if f.line == name:
                return f
        raise KeyError(f"no fit of {name!r}; fitted {[f.line for f in self.fits]}")
