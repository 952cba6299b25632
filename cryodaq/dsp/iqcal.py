"""IQ calibration from resonator fits, and phase → fractional frequency shift.

Sign conventions
----------------
A readout tone at fixed ``f_tone`` sees ``S21 = env [1 - c(Ql/|Qc|) e^{iφ}/(1 + 2iQl(f_tone/fr - 1))]``
(:mod:`cryodaq.dsp.resonator`).  As the resonance ``fr`` moves, the tone's IQ point
runs round a circle; :class:`~cryodaq.dsp.iq.IQCalibration` measures the phase
``θ = angle((iq - centre) e^{-i rotation})``.  With the calibration built here,
``rotation`` points at the IQ value the tone has when ``fr = f_tone``, and

    θ = -2 arctan(2 Ql (f_tone/fr - 1)) = 2 arctan(2 Ql y),   y = 1 - f_tone/fr = (fr - f_tone)/fr.

So θ > 0 when the resonance lies above the tone and θ < 0 when it lies below:
a photon or particle, which lowers ``fr`` (more quasiparticles → more kinetic
inductance), gives a **negative** phase pulse and a negative ``y``.  For a tone
parked on the unperturbed resonance, ``y`` is the resonance's fractional
frequency shift ``δfr/fr`` (exact to first order in the shift).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp.iq import IQCalibration
from cryodaq.dsp.resonator import ResonatorFit

__all__ = ["calibration_from_fit", "fractional_frequency_shift"]


def calibration_from_fit(
    fits: ResonatorFit | Sequence[ResonatorFit],
    tone_freq_hz: float | Sequence[float] | None = None,
) -> IQCalibration:
    """Per-tone IQ calibration (centre, rotation, radius) from resonator fits.

    ``fits``: one fit per tone, in tone order.  ``tone_freq_hz``: each tone's
    frequency (default: each fit's ``fr``, i.e. tones parked on resonance); the
    cable-delay phase is taken at the tone frequency.  The sweep must have been
    taken through the same signal chain as the stream it calibrates (e.g. a tone
    sweep of the readout board): a VNA sweep has a different gain and delay.
    Phase 0 is the IQ value with the resonance at the tone frequency
    (module docstring); dissipation 0 is on the resonance circle.
    """
    fit_list = [fits] if isinstance(fits, ResonatorFit) else list(fits)
    if not fit_list:
        raise ValueError("calibration_from_fit: no resonator fits given")
    if tone_freq_hz is None:
        tones: list[float | None] = [None] * len(fit_list)
    else:
        tones = list(np.atleast_1d(np.asarray(tone_freq_hz, dtype=float)))
        if len(tones) != len(fit_list):
            raise ValueError(
                f"calibration_from_fit: {len(fit_list)} fits but {len(tones)} tone frequencies; give one per tone"
            )
    loops = [fit.iq_loop(tone) for fit, tone in zip(fit_list, tones)]
    centre = np.array([lp[0] for lp in loops], dtype=complex)
    radius = np.array([lp[1] for lp in loops], dtype=float)
    rotation = np.array([lp[2] for lp in loops], dtype=float)
    return IQCalibration(centre=centre, rotation=rotation, radius=radius)


def fractional_frequency_shift(
    phase: Any,
    Ql: Any,
    *,
    small_angle: bool = False,
    backend: Backend | None = None,
) -> Any:
    """Fractional frequency detuning ``y = (fr - f_tone)/fr`` from the loop phase θ (rad).

    Exact on the circle: ``y = tan(θ/2) / (2 Ql)``; ``small_angle=True`` gives the
    linearised ``θ / (4 Ql)`` (0.08 % low at θ = 0.1 rad, 8.5 % at 1 rad).  ``Ql``
    broadcasts against ``phase`` (one per tone on the last axis).  Sign: negative
    when the resonance moved below the tone (module docstring).
    """
    xp = (backend or numpy_backend()).xp
    theta = xp.asarray(phase)
    ql = xp.asarray(Ql, dtype=theta.dtype if theta.dtype.kind == "f" else float)
    if small_angle:
        return theta / (4 * ql)
    return xp.tan(theta / 2) / (2 * ql)
