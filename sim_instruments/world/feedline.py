"""MKID resonators on a feedline: Mattis–Bardeen temperature dependence and notch S21.

Formulas (documented with their sources in docs/sim-instruments.md):

* gap ``Δ = 1.764 k_B T_c``; ``ξ = h f / (2 k_B T)``
* low-temperature Mattis–Bardeen (k_B T, h f << Δ):
  ``σ1/σn = (4Δ/hf) exp(-Δ/kT) sinh(ξ) K0(ξ)``,
  ``σ2/σn = (πΔ/hf) [1 - 2 exp(-Δ/kT) exp(-ξ) I0(ξ)]``
* ``δfr/fr = (α/2) δσ2/σ2 = -α exp(-Δ/kT) exp(-ξ) I0(ξ)``
* ``1/Qi = 1/Qi0 + α σ1/σ2``
* notch response ``S21 = 1 - (Ql/Qc) / (1 + 2j Ql (f - fr)/fr)``, ``1/Ql = 1/Qi + 1/Qc``
* feedline: ``A exp(j(φ0 - 2π f τ)) Π_k S21_k(f)`` (cable delay τ, overall gain and phase)
* an injected drift moves every resonance by ``drift_hz_per_s`` times the seconds of (drifting) ADC
  stream data so far, ``drift_s`` — data time, so a simulator that falls behind real time still
  gives data with a consistent drift; off by default
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

K_B_EV = 8.617333262e-5  # Boltzmann constant, eV/K
H_EV = 4.135667696e-15  # Planck constant, eV s


@dataclass
class FeedlineConfig:
    """Resonators and the feedline around them."""

    #: PFB bins (of ``pfb_channels`` over fs) whose centres place the resonators at LO + IF
    if_bins: list[int] = field(default_factory=lambda: [4, 7, 10, 13, 16, 19, 22, 25])
    pfb_channels: int = 64
    #: uniform random offset of each resonance from its bin centre (Hz, ±)
    random_offset_hz: float = 6000.0
    #: explicit RF resonance frequencies at T = 0 (Hz); overrides if_bins when given
    frequencies_hz: list[float] | None = None
    qi0: float = 1.0e6
    qc: float = 2.0e5
    #: relative RMS spread of Qc between resonators (random, fixed by the seed)
    qc_spread: float = 0.1
    alpha: float = 0.05
    tc_k: float = 1.2
    cable_delay_s: float = 50e-9
    amplitude: float = 0.9
    phase_rad: float = 0.5
    #: injected drift of every resonance, Hz per second of ADC stream data (0: none), e.g. -3.0e+4
    drift_hz_per_s: float = 0.0
    #: the first of the world's ADC streams that drifts (0: every one; 1: not the IQ-loop sweep a station
    #: streams before its run); the drift continues across the streams after it
    drift_from_stream: int = 0


def gap_ev(tc_k: float) -> float:
    """BCS gap Δ = 1.764 k_B T_c in eV."""
    return 1.764 * K_B_EV * tc_k


def mattis_bardeen(
    temperature_k: float, f_hz: np.ndarray, tc_k: float, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Thermal-quasiparticle shifts: (δfr/fr, δ(1/Qi)) at ``temperature_k`` for resonators at ``f_hz``.

    Smooth and monotonic in T; exactly 0 at T = 0. Uses the exponentially scaled
    Bessel functions ``i0e``/``k0e`` so nothing overflows at low T.
    """
    f = np.asarray(f_hz, dtype=float)
    if temperature_k <= 0:
        return np.zeros_like(f), np.zeros_like(f)
    kt = K_B_EV * temperature_k
    delta = gap_ev(tc_k)
    xi = H_EV * f / (2.0 * kt)
    boltz = np.exp(-delta / kt)
    # sinh(xi) K0(xi) = (1 - exp(-2 xi))/2 * exp(xi) K0(xi) = (1 - exp(-2 xi))/2 * k0e(xi)
    sinh_k0 = 0.5 * (-np.expm1(-2.0 * xi)) * special.k0e(xi)
    s1 = (4.0 * delta / (H_EV * f)) * boltz * sinh_k0
    s2_0 = np.pi * delta / (H_EV * f)
    depletion = 2.0 * boltz * special.i0e(xi)  # 2 exp(-Δ/kT) exp(-xi) I0(xi)
    s2 = s2_0 * (1.0 - depletion)
    dfr_over_fr = -0.5 * alpha * depletion  # (α/2) (s2 - s2_0)/s2_0
    inv_qi_qp = alpha * s1 / s2
    return dfr_over_fr, inv_qi_qp


def notch_s21(f_hz: np.ndarray, fr: np.ndarray, ql: np.ndarray, qc: np.ndarray) -> np.ndarray:
    """Notch response of each resonator, broadcast over ``f_hz`` and the resonator arrays."""
    return 1.0 - (ql / qc) / (1.0 + 2j * ql * (f_hz - fr) / fr)


class FeedlineModel:
    """N notch resonators on one feedline, with fixed cable delay, gain and phase."""

    def __init__(self, config: FeedlineConfig, fs_hz: float, lo_hz: float, rng: np.random.Generator) -> None:
        self.config = config
        rate, start = config.drift_hz_per_s, config.drift_from_stream
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not np.isfinite(rate):
            hint = " (YAML reads 3e4 as text: write 3.0e+4)" if isinstance(rate, str) else ""
            raise ValueError(f"world.feedline.drift_hz_per_s: expected a number of Hz/s, got {rate!r}{hint}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"world.feedline.drift_from_stream: expected an integer >= 0, got {start!r}")
        #: seconds of drifting ADC stream data so far (set by the stream, block by block)
        self.drift_s = 0.0
        if config.frequencies_hz is not None:
            fr0 = np.asarray(config.frequencies_hz, dtype=float)
        else:
            bins = np.asarray(config.if_bins, dtype=float)
            offsets = rng.uniform(-config.random_offset_hz, config.random_offset_hz, bins.size)
            fr0 = lo_hz + bins * fs_hz / config.pfb_channels + offsets
        if fr0.ndim != 1 or fr0.size == 0 or np.any(fr0 <= 0):
            raise ValueError(f"feedline resonance frequencies must be a non-empty list of positive Hz, got {fr0}")
        n = fr0.size
        self.fr0 = fr0
        self.qi0 = np.full(n, float(config.qi0))
        self.qc = float(config.qc) * (1.0 + config.qc_spread * rng.standard_normal(n)).clip(0.5, 1.5)

    @property
    def n_resonators(self) -> int:
        return self.fr0.size

    def resonator_params(self, temperature_k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fr, Qi, Qc) arrays at ``temperature_k``: what a resonator fit should recover."""
        c = self.config
        dx, inv_qi_qp = mattis_bardeen(temperature_k, self.fr0, c.tc_k, c.alpha)
        fr = self.fr0 * (1.0 + dx) + self.drift_hz()
        qi = 1.0 / (1.0 / self.qi0 + inv_qi_qp)
        return fr, qi, self.qc.copy()

    def drift_hz(self) -> float:
        """How far (Hz) the injected drift has moved every resonance so far."""
        return float(self.config.drift_hz_per_s) * self.drift_s

    def environment(self, f_hz: np.ndarray) -> np.ndarray:
        """Cable delay, gain and phase: A exp(j(φ0 - 2π f τ))."""
        c = self.config
        f = np.asarray(f_hz, dtype=float)
        # reduce f*τ modulo 1 in float64 before the exponential to keep the phase precise
        turns = np.mod(f * c.cable_delay_s, 1.0)
        return c.amplitude * np.exp(1j * (c.phase_rad - 2.0 * np.pi * turns))

    def s21(self, f_hz: np.ndarray, temperature_k: float, exclude: np.ndarray | None = None) -> np.ndarray:
        """Feedline S21 at ``f_hz`` (product of all notches, times the environment).

        ``exclude[i]`` (optional, one per frequency) leaves resonator ``exclude[i]`` out of
        the product at frequency ``i``: the ADC model treats that one dynamically.
        """
        f = np.atleast_1d(np.asarray(f_hz, dtype=float))
        fr, qi, qc = self.resonator_params(temperature_k)
        ql = 1.0 / (1.0 / qi + 1.0 / qc)
        each = notch_s21(f[:, None], fr[None, :], ql[None, :], qc[None, :])
        if exclude is not None:
            each[np.arange(f.size), np.asarray(exclude)] = 1.0
        return self.environment(f) * np.prod(each, axis=1)
