"""What a swept spectrum analyzer measures at the end of the paramp's noise chain (the physics the
Keysight N9030B face serves, usable in-process where a test needs thousands of readings).

Each point is the power in the resolution bandwidth (dBm) of what reaches the input:

    P(f) = k_B · T_sys(f) · G_chain(f) · ENBW  +  DANL · ENBW  +  pump leakage tone
           (× exp(−(f − f_p)²/2σ²), σ = RBW / 2.355, for the tone)

from ``world.paramp`` (T_sys referred to the paramp input, G_chain = paramp × HEMT × post
gain; ENBW = 1.0645 × RBW for the default 3 dB (Gaussian) RBW type, = RBW for NOISE).
DANL = −155 dBm/Hz at 10 dB input attenuation, +1 dB per dB more, −10 dB with the
preamp on. Like a real swept analyzer with an RMS average detector, each point scatters:
its power is multiplied by a Gamma variate of mean 1 and relative standard deviation
1/√N, N = max(1, RBW · sweep_time / npts) (independent samples in the dwell time).
With LOG averaging (the reset default) noise reads 2.51 dB low, as on the real instrument;
RMS reads true power. Finally the display's scale error (``world.paramp.bench``) applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_instruments.world.noise_bench import scale_error_db

__all__ = ["DANL_DBM_PER_HZ", "ENBW", "LOG_AVERAGE_NOISE_DB", "AnalyzerSettings", "expected_trace_dbm",
           "measured_trace_dbm"]

DANL_DBM_PER_HZ = -155.0
LOG_AVERAGE_NOISE_DB = -2.51
ENBW = {"DB3": 1.0645, "DB6": 0.7527, "NOISE": 1.0, "IMP": 0.7071}


@dataclass(frozen=True)
class AnalyzerSettings:
    """The analyzer settings the measured power depends on."""

    rbw_hz: float = 3e6
    rbw_type: str = "DB3"
    atten_db: float = 10.0
    preamp: bool = False
    avg_type: str = "LOG"
    sweep_time_s: float = 0.1


def expected_trace_dbm(paramp: Any, freqs_hz: np.ndarray, s: AnalyzerSettings) -> np.ndarray:
    """Noise-free trace (dBm per point) for the paramp's present state and the settings."""
    f = np.asarray(freqs_hz, dtype=float)
    enbw = ENBW[s.rbw_type] * s.rbw_hz
    noise_mw = 10 ** (paramp.output_noise_dbm_per_hz(f) / 10) * enbw
    danl = DANL_DBM_PER_HZ + (s.atten_db - 10) - (10.0 if s.preamp else 0.0)
    noise_mw = noise_mw + 10 ** (danl / 10) * enbw
    if s.avg_type == "LOG":
        noise_mw = noise_mw * 10 ** (LOG_AVERAGE_NOISE_DB / 10)
    tone = paramp.pump_tone()
    if tone is not None:
        sigma = s.rbw_hz / (2 * math.sqrt(2 * math.log(2)))
        noise_mw = noise_mw + 10 ** (tone[1] / 10) * np.exp(-0.5 * ((f - tone[0]) / sigma) ** 2)
    return 10 * np.log10(noise_mw)


def measured_trace_dbm(paramp: Any, freqs_hz: np.ndarray, s: AnalyzerSettings, rng: np.random.Generator,
                       expected_dbm: np.ndarray | None = None) -> np.ndarray:
    """One measured trace: the expected powers, each scattered (Gamma, see the module docstring), as displayed."""
    f = np.asarray(freqs_hz, dtype=float)
    expected = expected_trace_dbm(paramp, f, s) if expected_dbm is None else expected_dbm
    n_independent = max(1.0, s.rbw_hz * s.sweep_time_s / max(len(f), 1))
    scatter = rng.gamma(n_independent, 1.0 / n_independent, size=np.shape(expected))
    bench = paramp.config.bench
    return scale_error_db(expected + 10 * np.log10(scatter), bench.analyzer_scale_error, bench.reference_level_dbm)
