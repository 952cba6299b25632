"""The heater physics the fridge-controller faces share: a PID loop and a heater's Joule power.

``PidLoop`` is the same control law as the Lakeshore 372 face (docs/sim-instruments.md)::

    e = T_setpoint(t) - T                      (K; the setpoint ramps at ramp_rate_k_per_min when enabled)
    fraction = clip(P * (e + (1/I) ∫e dt - D dT/dt), 0, 1)     (integration stops at the limits)

with P per kelvin (P = 20 -> full output at 50 mK of error), I and D in s (I = 0: no
integral). The face turns the fraction into heater power.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PidLoop:
    """One closed control loop; ``output(t, T)`` is called by the fridge at each sub-step."""

    p: float = 20.0
    i: float = 20.0
    d: float = 0.0
    setpoint_k: float = 0.0
    ramp_enabled: bool = False
    ramp_rate_k_per_min: float = 0.0
    _ramp_from: float = 0.0
    _ramp_t0: float = 0.0
    _integral: float = 0.0
    _t_prev: float | None = None
    _temp_prev: float | None = None

    def reset(self) -> None:
        """Forget the integral and the derivative history (on mode or input changes)."""
        self._integral, self._t_prev, self._temp_prev = 0.0, None, None

    def set_setpoint(self, value_k: float, t: float, temperature_k: float) -> None:
        """New setpoint; with ramping on, it is approached from where the setpoint (or the fridge) is."""
        start = self.effective_setpoint(t)
        if self.setpoint_k == 0.0:
            start = temperature_k
        self._ramp_from, self._ramp_t0 = start, t
        self.setpoint_k = float(value_k)

    def set_ramp(self, enabled: bool, rate_k_per_min: float, t: float) -> None:
        self._ramp_from, self._ramp_t0 = self.effective_setpoint(t), t
        self.ramp_enabled, self.ramp_rate_k_per_min = bool(enabled), float(rate_k_per_min)

    def set_pid(self, p: float, i: float, d: float) -> None:
        if i > 0 and self.i > 0:
            self._integral *= self.i / i  # keep the integral term's output continuous
        self.p, self.i, self.d = float(p), float(i), float(d)

    def effective_setpoint(self, t: float) -> float:
        if not (self.ramp_enabled and self.ramp_rate_k_per_min > 0):
            return self.setpoint_k
        step = self.ramp_rate_k_per_min / 60.0 * max(0.0, t - self._ramp_t0)
        if self.setpoint_k >= self._ramp_from:
            return min(self.setpoint_k, self._ramp_from + step)
        return max(self.setpoint_k, self._ramp_from - step)

    def output(self, t: float, temperature_k: float) -> float:
        """Heater output as a fraction 0..1 of full scale."""
        err = self.effective_setpoint(t) - temperature_k
        dt = 0.0 if self._t_prev is None else max(0.0, t - self._t_prev)
        deriv = 0.0 if (self._temp_prev is None or dt == 0) else (temperature_k - self._temp_prev) / dt
        if self.i > 0:
            self._integral += err * dt / self.i
        frac = self.p * (err + self._integral - self.d * deriv)
        if not 0.0 <= frac <= 1.0:  # anti-windup: undo the integration that pushed past a limit
            if self.i > 0:
                self._integral -= err * dt / self.i
            frac = min(1.0, max(0.0, self.p * (err + self._integral - self.d * deriv)))
        self._t_prev, self._temp_prev = t, temperature_k
        return frac


def heater_power_w(resistance_ohm: float, full_scale_a: float, fraction: float) -> float:
    """Joule power of a current-source heater at ``fraction`` of its full-scale current."""
    current = full_scale_a * min(1.0, max(0.0, fraction))
    return resistance_ohm * current * current
