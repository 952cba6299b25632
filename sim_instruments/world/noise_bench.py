"""The noise-measurement bench around the paramp as it truly is — what the calibrations of a
Y-factor uncertainty budget (``cryodaq.metrology.noise``) only estimate.

``world.paramp.bench`` (all optional; the defaults are an ideal bench):

=============================  ==================================================================
``line_loss_db``               loss of the line from the load switch to the paramp input (dB)
``line_temperature_k``         its physical temperature (K); null: the mixing chamber
``hot_mismatch``               the hot path delivers this × the noise the cold path would
``hot_thermometer_offset_k``   the hot load's thermometer reads the truth + this
``cold_thermometer_offset_k``  the cold load's thermometer reads the truth + this
``analyzer_scale_error``       the spectrum analyzer reads a level L dB as L + s·(L − ref): a
                               power ratio R_dB as R_dB·(1 + s) (scale fidelity, dB per dB)
``vna_scale_error``            the same for the VNA's |S21| (its receiver's dynamic accuracy)
``reference_level_dbm``        ref of the two above (any value: ratios do not depend on it)
=============================  ==================================================================

A source at noise temperature T_s (Callen–Welton) reaches the paramp as
``M·T_s/L + (1 − 1/L)·T_CW(T_line)`` (M = ``hot_mismatch`` for the hot load, 1 for the cold).
A test draws these from the distributions a station's calibrations state, measures, and checks
that the budget's interval covers the world's truth at the stated rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseBenchConfig", "line_output_k", "scale_error_db"]


@dataclass
class NoiseBenchConfig:
    """See the module docstring; SI units, dB."""

    line_loss_db: float = 0.0
    line_temperature_k: float | None = None
    hot_mismatch: float = 1.0
    hot_thermometer_offset_k: float = 0.0
    cold_thermometer_offset_k: float = 0.0
    analyzer_scale_error: float = 0.0
    vna_scale_error: float = 0.0
    reference_level_dbm: float = -50.0

    def check(self, where: str = "world.paramp.bench") -> None:
        """ValueError naming the key of a value that makes no physical sense."""
        for key in ("line_loss_db", "hot_mismatch", "hot_thermometer_offset_k", "cold_thermometer_offset_k",
                    "analyzer_scale_error", "vna_scale_error", "reference_level_dbm"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
        if self.line_loss_db < 0:
            raise ValueError(f"{where}.line_loss_db: expected >= 0 dB, got {self.line_loss_db!r}")
        if self.hot_mismatch <= 0:
            raise ValueError(f"{where}.hot_mismatch: expected > 0, got {self.hot_mismatch!r}")
        if not (-0.5 < self.analyzer_scale_error < 0.5 and -0.5 < self.vna_scale_error < 0.5):
            raise ValueError(f"{where}: scale errors are fractions of a dB per dB, within ±0.5")
        t = self.line_temperature_k
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0):
            raise ValueError(f"{where}.line_temperature_k: expected a temperature >= 0 K or null, got {t!r}")


def line_output_k(t_source_k: np.ndarray | float, loss_db: float, t_line_cw_k: np.ndarray | float) -> np.ndarray:
    """Noise temperature after a matched line of ``loss_db`` whose own noise temperature is ``t_line_cw_k``."""
    transmission = 10.0 ** (-loss_db / 10.0)
    return np.asarray(t_source_k) * transmission + (1.0 - transmission) * np.asarray(t_line_cw_k)


def scale_error_db(level_dbm: np.ndarray, scale_error: float, reference_dbm: float) -> np.ndarray:
    """What an instrument with a scale error displays for ``level_dbm``: L + s·(L − ref)."""
    level = np.asarray(level_dbm, dtype=float)
    return level + scale_error * (level - reference_dbm)
