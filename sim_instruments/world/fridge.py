"""A dilution refrigerator reduced to what the instruments can see.

The mixing chamber (MXC) follows first-order thermal dynamics toward the
equilibrium set by the heater power, ``T_eq(P) = (T_base**n + P/K)**(1/n)``, with
time constant ``tau_s``. The still and 4 K plates read roughly constant values with
a slow drift. The state is evaluated lazily: every read advances the integration to
the current time of the world's clock, so nothing needs a thread.

A closed-loop controller (the Lakeshore 372 PID) can be attached with
:meth:`FridgeModel.set_controller`; it is called at every integration sub-step, the way a
real controller updates its output a few times a second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: controller(t_s, mxc_temperature_k) -> heater power in W
Controller = Callable[[float, float], float]


@dataclass
class FridgeConfig:
    """Thermal model of the fridge; SI units (K, W, s)."""

    t_base_k: float = 0.012
    exponent: float = 2.0
    #: K in P = K * (T**n - T_base**n); 0.01 W/K**2 gives ~100 uW of cooling at 100 mK
    conductance_w_per_k_n: float = 0.01
    tau_s: float = 30.0
    #: MXC temperature at the start; None = T_base
    t_start_k: float | None = None
    still_k: float = 0.85
    plate_4k_k: float = 3.3
    #: peak amplitude (K) and period (s) of the slow sinusoidal drift of still and 4 K plates
    plate_drift_fraction: float = 0.01
    plate_drift_period_s: float = 900.0
    #: relative RMS noise of a temperature reading
    reading_noise_fraction: float = 5e-4
    #: integration sub-step is min(tau_s / 10, max_step_s)
    max_step_s: float = 0.1


class FridgeModel:
    """Mixing chamber, still and 4 K plate temperatures, evaluated at the clock's time."""

    def __init__(
        self,
        config: FridgeConfig,
        clock: Callable[[], float] = time.monotonic,
        seed: int | np.random.SeedSequence = 0,
    ) -> None:
        if config.tau_s <= 0:
            raise ValueError(f"fridge.tau_s must be > 0, got {config.tau_s}")
        if config.exponent <= 0 or config.conductance_w_per_k_n <= 0:
            raise ValueError("fridge.exponent and fridge.conductance_w_per_k_n must be > 0")
        self.config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._rng = np.random.default_rng(seed)
        self._t_last = clock()
        self._t0 = self._t_last
        self._mxc = config.t_start_k if config.t_start_k is not None else config.t_base_k
        self._heater_w = 0.0
        self._controller: Controller | None = None
        self._warm_rate = 0.0
        self._warm_target = math.inf
        self._warm_start = 0.0

    @property
    def lock(self) -> threading.RLock:
        """The fridge's lock; a face that also locks itself must take this one first."""
        return self._lock

    # -- inputs ---------------------------------------------------------------
    @property
    def heater_power_w(self) -> float:
        """The heater power now (W); with a controller attached, its latest output."""
        with self._lock:
            self._advance(self._clock())
            return self._heater_w

    def set_heater_power(self, power_w: float) -> None:
        """Open-loop heater power (W, clipped at 0). Has no effect while a controller is attached."""
        with self._lock:
            self._advance(self._clock())
            self._heater_w = max(0.0, float(power_w))

    def set_controller(self, controller: Controller | None) -> None:
        """Attach (or detach with None) a closed-loop controller that sets the heater power."""
        with self._lock:
            self._advance(self._clock())
            self._controller = controller
            if controller is None:
                self._heater_w = 0.0

    def warm_up(self, rate_k_per_s: float, target_k: float | None = None) -> None:
        """Fault: the base temperature climbs at ``rate_k_per_s`` (up to ``target_k``), whatever the heater does."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            self._warm_rate = float(rate_k_per_s)
            self._warm_target = math.inf if target_k is None else float(target_k)
            self._warm_start = now

    def stop_warm_up(self) -> None:
        """End the warm-up fault: the fridge cools back toward its normal equilibrium."""
        with self._lock:
            self._advance(self._clock())
            self._warm_rate = 0.0
            self._warm_target = math.inf

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Continue on another clock: the state is brought up to now on the old one, then time runs on the new."""
        with self._lock:
            self._advance(self._clock())
            elapsed = self._t_last - self._t0
            self._clock = clock
            self._t_last = clock()
            self._t0 = self._t_last - elapsed
            self._warm_start = self._t_last if self._warm_rate else self._warm_start

    # -- outputs --------------------------------------------------------------
    def mxc_k(self) -> float:
        """True (noise-free) mixing-chamber temperature now."""
        with self._lock:
            self._advance(self._clock())
            return self._mxc

    def still_k(self) -> float:
        return self._plate(self.config.still_k, 0.0)

    def plate_4k_k(self) -> float:
        return self._plate(self.config.plate_4k_k, 1.3)

    def read(self, stage: str) -> float:
        """A noisy reading of ``stage`` in K: 'mxc', 'still' or '4k'."""
        true = {"mxc": self.mxc_k, "still": self.still_k, "4k": self.plate_4k_k}
        if stage not in true:
            raise ValueError(f"unknown fridge stage {stage!r}; known: {sorted(true)}")
        value = true[stage]()
        with self._lock:
            noise = self._rng.standard_normal() * self.config.reading_noise_fraction
        return value * (1.0 + noise)

    def equilibrium_k(self, power_w: float, t_base_k: float | None = None) -> float:
        """MXC temperature reached at constant heater power ``power_w``."""
        c = self.config
        tb = c.t_base_k if t_base_k is None else t_base_k
        return (tb**c.exponent + max(power_w, 0.0) / c.conductance_w_per_k_n) ** (1.0 / c.exponent)

    def power_for_k(self, temperature_k: float) -> float:
        """Heater power (W) whose equilibrium is ``temperature_k`` (0 below base)."""
        c = self.config
        return max(0.0, c.conductance_w_per_k_n * (temperature_k**c.exponent - c.t_base_k**c.exponent))

    # -- internals --------------------------------------------------------------
    def _plate(self, mean_k: float, phase: float) -> float:
        c = self.config
        t = self._clock() - self._t0
        return mean_k * (1.0 + c.plate_drift_fraction * math.sin(2 * math.pi * t / c.plate_drift_period_s + phase))

    def _base_at(self, t: float) -> float:
        if self._warm_rate == 0.0:
            return self.config.t_base_k
        rise = self._warm_rate * max(0.0, t - self._warm_start)
        return min(self.config.t_base_k + rise, max(self._warm_target, self.config.t_base_k))

    def _advance(self, now: float) -> None:
        """Integrate from the last evaluation to ``now`` (exponential integrator per sub-step)."""
        c = self.config
        if now <= self._t_last:
            return
        # the state forgets anything older than ~40 time constants: skip it
        t = max(self._t_last, now - 40.0 * c.tau_s)
        if self._controller is None and self._warm_rate == 0.0:
            t_eq = self.equilibrium_k(self._heater_w)
            self._mxc = t_eq + (self._mxc - t_eq) * math.exp(-(now - t) / c.tau_s)
            self._t_last = now
            return
        step = min(c.tau_s / 10.0, c.max_step_s)
        while t < now:
            h = min(step, now - t)
            if self._controller is not None:
                self._heater_w = max(0.0, float(self._controller(t, self._mxc)))
            t_eq = self.equilibrium_k(self._heater_w, self._base_at(t + 0.5 * h))
            self._mxc = t_eq + (self._mxc - t_eq) * math.exp(-h / c.tau_s)
            t += h
        self._t_last = now
