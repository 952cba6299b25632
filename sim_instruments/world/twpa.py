"""A four-wave-mixing travelling-wave parametric amplifier (``world.paramp.kind: twpa``).

Degenerate 4WM in a Kerr (Josephson or kinetic-inductance) line, in the coupled-mode picture
of Yaakobi et al., PRB 87, 144301 (2013) and O'Brien et al., PRL 113, 157001 (2014), with the
gain formula of a Kerr parametric amplifier (Agrawal, *Nonlinear Fiber Optics*, §10.2):

    φ(P)   = φ_ref · P_p / P_ref                     nonlinear (self-phase) shift of the pump over the line
    Δβ·L   = −2 φ_ref · R(f_p)/R(f_pm) + D·((f_s − f_p)/f_p)²
             R(f) = f/(f_r − f): resonant phase matching below the dispersion feature at f_r
             (O'Brien et al.), exactly compensating 2φ_ref for a pump at f_pm; D: residual dispersion
    κ      = Δβ·L + 2 φ(P)                            total phase mismatch (SPM and XPM included)
    g²     = φ² − (κ/2)²
    G_s    = 1 + φ² · |sinh(g)/g|²                    signal power gain (sin for g² < 0: no gain)
    f_i    = 2 f_p − f_s,   G_i = G_s − 1             the idler, converted with the gain

* **gain ripple**: reflections Γ at both ends of a line of delay τ make a Fabry–Perot whose
  round trip is amplified once: S21 = √G_s·e^{−j2πfτ}/(1 − Γ²·√G_s·e^{−j4πfτ}) (pump off:
  G_s = 1, ripple ~Γ²); the VNA's on/off ratio keeps the difference;
* **pump depletion → compression**: the pump gives up what signal and idler gain,
  P_eff = P_p − η·2(G_s(P_eff) − 1)·P_in (solved by bisection), so the gain falls when the
  amplified tones reach ~1 % of the pump (P1dB near −100 dBm for a −60 dBm pump);
* **idler noise**: a phase-insensitive amplifier adds the noise entering at the idler
  frequency: the source's T(f_i)·(f_s/f_i)·(1 − 1/G_s) referred to the input, plus
  ``excess_noise_k``·(1 − 1/G_s) from dielectric loss;
* **pump leakage**: the pump passes the line (``ParampConfig.pump_leakage_db`` after a filter)
  and shows on the analyzer at f_p, in the middle of the band.

The pump power reaching the line drifts when ``ParampConfig.pump_drift_db_per_hour`` or
``pump_wander_db`` are set (a cable warming, a source ageing): the TWPA tune-up holds the gain
against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TWPAConfig", "TWPAGain"]


@dataclass
class TWPAConfig:
    """The line (``world.paramp.twpa``); powers at the TWPA input, SI units."""

    #: nonlinear phase φ_ref (rad) at the reference pump power: φ = 3 gives cosh²(3) = 20 dB when phase matched
    nonlinear_phase_rad: float = 3.0
    pump_reference_dbm: float = -60.0
    #: the dispersion feature of resonant phase matching, and the pump frequency matched at the reference power
    phase_matching_feature_hz: float = 6.4e9
    phase_matched_pump_hz: float = 6.0e9
    #: residual quadratic dispersion D (rad): sets the bandwidth, ~±f_p·√(2φ/D)
    dispersion_rad: float = 55.0
    #: electrical delay of the line (ripple period 1/2τ) and the reflection at each end
    delay_s: float = 5e-9
    reflection: float = 0.05
    #: pump depletion efficiency η (0..1)
    depletion: float = 0.5
    #: added noise from dielectric loss at high gain, referred to the input (K)
    excess_noise_k: float = 0.1

    def check(self, where: str = "world.paramp.twpa") -> None:
        for key, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
        if not 0 < self.phase_matched_pump_hz < self.phase_matching_feature_hz:
            raise ValueError(f"{where}: need 0 < phase_matched_pump_hz < phase_matching_feature_hz")
        if not (0 <= self.reflection < 1 and 0 <= self.depletion <= 1 and self.nonlinear_phase_rad > 0):
            raise ValueError(f"{where}: need 0 <= reflection < 1, 0 <= depletion <= 1, nonlinear_phase_rad > 0")


def _dbm_to_mw(dbm: float | np.ndarray) -> np.ndarray:
    return 10.0 ** (np.asarray(dbm, dtype=float) / 10.0)


class TWPAGain:
    """The TWPA's gain, S21 and idler for a pump (frequency, power at the line) — see the module docstring."""

    def __init__(self, config: TWPAConfig) -> None:
        config.check()
        self.config = config

    def _r(self, f_hz: float | np.ndarray) -> np.ndarray:
        f = np.asarray(f_hz, dtype=float)
        return f / np.maximum(self.config.phase_matching_feature_hz - f, 1.0)

    def phase(self, pump_mw: float | np.ndarray) -> np.ndarray:
        c = self.config
        return c.nonlinear_phase_rad * np.asarray(pump_mw, dtype=float) / _dbm_to_mw(c.pump_reference_dbm)

    def mismatch(self, freqs_hz: np.ndarray, pump_hz: float, pump_mw: float | np.ndarray) -> np.ndarray:
        """κ: the total phase mismatch (rad) of the signal at ``freqs_hz``."""
        c = self.config
        linear = -2 * c.nonlinear_phase_rad * self._r(pump_hz) / self._r(c.phase_matched_pump_hz)
        x = (np.asarray(freqs_hz, dtype=float) - pump_hz) / pump_hz
        return linear + c.dispersion_rad * x * x + 2 * self.phase(pump_mw)

    def small_signal_gain(self, freqs_hz: np.ndarray | float, pump_hz: float, pump_mw: float | np.ndarray
                          ) -> np.ndarray:
        """G_s: the signal power gain without depletion (1 with no pump)."""
        phi = self.phase(pump_mw)
        kappa = self.mismatch(np.asarray(freqs_hz, dtype=float), pump_hz, pump_mw)
        g = np.sqrt((phi * phi - 0.25 * kappa * kappa).astype(complex))
        small = np.abs(g) < 1e-9
        ratio = np.where(small, 1.0, np.sinh(g) / np.where(small, 1.0, g))
        return 1.0 + phi * phi * np.abs(ratio) ** 2

    def gain(self, freqs_hz: np.ndarray | float, pump_hz: float, pump_mw: float, input_mw: float) -> np.ndarray:
        """The gain with pump depletion for a tone of ``input_mw`` at the line: P_eff solves
        P_eff = P_p − η·2(G_s(P_eff) − 1)·P_in (bisection, vectorised over frequency)."""
        f = np.atleast_1d(np.asarray(freqs_hz, dtype=float))
        if pump_mw <= 0:
            return np.ones_like(f) if np.ndim(freqs_hz) else np.float64(1.0)
        if input_mw <= 0 or self.config.depletion == 0:
            out = self.small_signal_gain(f, pump_hz, pump_mw)
            return out if np.ndim(freqs_hz) else out[0]
        lo, hi = np.zeros_like(f), np.full(f.shape, float(pump_mw))
        for _ in range(48):
            mid = 0.5 * (lo + hi)
            excess = mid - pump_mw + self.config.depletion * 2 * (self.small_signal_gain(f, pump_hz, mid) - 1) * input_mw
            hi = np.where(excess > 0, mid, hi)
            lo = np.where(excess > 0, lo, mid)
        out = self.small_signal_gain(f, pump_hz, 0.5 * (lo + hi))
        return out if np.ndim(freqs_hz) else out[0]

    def ripple(self, freqs_hz: np.ndarray, amplitude_gain: np.ndarray) -> np.ndarray:
        """The Fabry–Perot factor 1/(1 − Γ²·√G·e^{−j4πfτ}) of the line's end reflections."""
        c = self.config
        turns = np.mod(2.0 * np.asarray(freqs_hz, dtype=float) * c.delay_s, 1.0)
        return 1.0 / (1.0 - c.reflection ** 2 * amplitude_gain * np.exp(-2j * np.pi * turns))

    def s21(self, freqs_hz: np.ndarray, pump_hz: float, pump_mw: float, input_mw: float) -> np.ndarray:
        """Complex transmission √G·e^{−j2πfτ}·ripple (pump off: G = 1, the bare line)."""
        f = np.asarray(freqs_hz, dtype=float)
        amp = np.sqrt(self.gain(f, pump_hz, pump_mw, input_mw))
        delay = np.exp(-2j * np.pi * np.mod(f * self.config.delay_s, 1.0))
        return amp * delay * self.ripple(f, amp)

    @staticmethod
    def idler_hz(freqs_hz: np.ndarray | float, pump_hz: float) -> np.ndarray:
        return 2.0 * pump_hz - np.asarray(freqs_hz, dtype=float)
