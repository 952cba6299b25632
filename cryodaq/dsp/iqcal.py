"""IQ calibrations (from resonator fits or from IQ-loop sweeps) and phase → fractional frequency shift.

The one sign convention for pulses
----------------------------------
A readout tone at fixed ``f_tone`` sees ``S21 = env [1 - c(Ql/|Qc|) e^{iφ}/(1 + 2iQl(f_tone/fr - 1))]``
(:mod:`cryodaq.dsp.resonator`). As the resonance ``fr`` moves, the tone's IQ point runs
round a circle; :class:`~cryodaq.dsp.iq.IQCalibration` measures the phase

    θ = sign · angle((iq - centre) e^{-i rotation})

where ``rotation`` points at the operating point (the tone's IQ value at rest). **Every
calibration built here chooses** ``sign`` **so that θ grows as the resonance moves down
through the tone**: a photon or particle, which lowers ``fr`` (more quasiparticles → more
kinetic inductance), gives a **positive** phase pulse, triggered with ``polarity: 1``.
With ``y = (fr - f_tone)/fr`` (negative for a photon):

    θ = -2 arctan(2 Ql y),      y = -tan(θ/2) / (2 Ql)      (:func:`fractional_frequency_shift`)

- :func:`calibration_from_fit` knows the loop's sense from the model: ``sign = -1``.
- :func:`loop_calibration` measures it: stepping the tone up by δ (fr fixed) moves the IQ
  point as a resonance moving down does, so ``sign`` makes θ increase with δ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryodaq.backend import Backend, numpy_backend
from cryodaq.dsp.iq import IQCalibration
from cryodaq.dsp.resonator import ResonatorFit, circle_fit

__all__ = ["LoopSweep", "calibration_from_fit", "fractional_frequency_shift", "loop_calibration", "sweep_offsets"]


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
    Phase 0 is the IQ value with the resonance at the tone frequency; photon pulses are
    positive (``sign = -1``, module docstring); dissipation 0 is on the resonance circle.
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
    return IQCalibration(centre=centre, rotation=rotation, radius=radius, sign=-np.ones(len(fit_list)))


def fractional_frequency_shift(
    phase: Any,
    Ql: Any,
    *,
    small_angle: bool = False,
    backend: Backend | None = None,
) -> Any:
    """Fractional frequency detuning ``y = (fr - f_tone)/fr`` from the calibrated phase θ (rad).

    Exact on the circle: ``y = -tan(θ/2) / (2 Ql)``; ``small_angle=True`` gives the
    linearised ``-θ / (4 Ql)`` (0.08 % low at θ = 0.1 rad, 8.5 % at 1 rad).  ``Ql``
    broadcasts against ``phase`` (one per tone on the last axis).  Sign: a photon pulse
    (θ > 0) is a resonance moved below the tone, y < 0 (module docstring).
    """
    b = backend or numpy_backend()
    xp = b.xp
    theta = b.asarray(phase)
    ql = b.asarray(Ql, dtype=theta.dtype if theta.dtype.kind == "f" else float)
    if small_angle:
        return -theta / (4 * ql)
    return -xp.tan(theta / 2) / (2 * ql)


@dataclass
class LoopSweep:
    """IQ of every tone at each common frequency offset.

    ``iq[i, k]`` is tone ``k`` at RF ``tones_rf_hz[k] + offsets_hz[i]`` (complex128, the
    pipeline's IQ units); ``duration_s`` is the wall time the sweep took; ``detail``: what else
    the sweep found (e.g. resonator fits), JSON-safe, stored with it.
    """

    offsets_hz: np.ndarray
    iq: np.ndarray
    tones_rf_hz: np.ndarray
    duration_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tones(self) -> int:
        return int(self.iq.shape[1])

    def operating_index(self) -> int:
        """Row of the offset-0 point (the tones as the run uses them)."""
        i = int(np.argmin(np.abs(self.offsets_hz)))
        if self.offsets_hz[i] != 0:
            raise ValueError(f"loop sweep has no offset-0 point (offsets {self.offsets_hz.tolist()}); "
                             "use an odd number of points")
        return i


def sweep_offsets(span_hz: float, points: int) -> np.ndarray:
    """``points`` offsets from ``-span_hz`` to ``+span_hz`` (odd ``points``: 0 is one of them)."""
    return np.linspace(-float(span_hz), float(span_hz), int(points))


def loop_calibration(sweep: LoopSweep, operating_iq: np.ndarray | None = None) -> IQCalibration:
    """Per-tone circle centre and radius from the sweep; rotation puts the operating point at phase 0.

    ``operating_iq`` (n_tones,) overrides the sweep's offset-0 point as the operating point.
    ``sign`` is measured from the sweep (the sense of rotation with frequency), so that phase
    increases as the resonance moves down through the tone: photon pulses positive (module
    docstring).
    """
    z_op = sweep.iq[sweep.operating_index()] if operating_iq is None else np.asarray(operating_iq, complex)
    n = sweep.n_tones
    centre = np.empty(n, complex)
    radius = np.empty(n)
    rotation = np.empty(n)
    sign = np.empty(n)
    for k in range(n):
        centre[k], radius[k], _ = circle_fit(sweep.iq[:, k])
        # sense of rotation with frequency: unwrapped angle about the centre vs. offset
        angle = np.unwrap(np.angle(sweep.iq[:, k] - centre[k]))
        slope = np.polyfit(sweep.offsets_hz, angle, 1)[0]
        sign[k] = 1.0 if slope > 0 else -1.0
        rotation[k] = np.angle(z_op[k] - centre[k])
    return IQCalibration(centre, rotation, radius, sign)
