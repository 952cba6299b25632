"""A flux-tunable Josephson parametric amplifier (or a TWPA) and the noise chain around it.

The paramp sits after the MKID feedline, in front of a HEMT: ``world.chain_s21`` multiplies
its :meth:`ParampModel.s21` into what a VNA sees, and a spectrum analyzer face reads the
noise power of :meth:`ParampModel.output_noise_dbm`. Pump sources, the flux-bias source and
the hot/cold load switch write their state here (:meth:`set_pump`, :meth:`set_flux_current`,
:meth:`select_load`). The exact formulas are in ``docs/sim-instruments.md`` ("Parametric
amplifier"); in short, for a JPA

    Φ/Φ0   = flux_quanta_per_amp · I_flux + flux_offset_phi0
    f0     = f_max · |cos(π Φ/Φ0)|^½
    δ      = f_p/2 − f0  (3-wave mixing)   or   f_p − f0  (4-wave mixing)
    P_th   = P_th0 · (1 + (2δ/κ)²)                     (pump power at the paramp, mW)
    r      = min(P_p / P_th, 1 − 1/√G_max)
    G0     = 1 / (1 − r)²                              (peak power gain, 1 with the pump off)
    f_c    = f_p/2 (3WM) or f_p (4WM),   B = κ / √G0   (√G0 · B = κ: constant gain-bandwidth)
    G_s(f) = 1 + (G0 − 1) / (1 + (2 (f − f_c)/B)²)
    G(f, P_in) = 1 + (G_s − 1) / (1 + P_in (G_s − 1) / P_sat)            (compression)

Nothing here depends on time: settings take effect at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import numpy as np
from scipy.constants import h as PLANCK_H
from scipy.constants import k as BOLTZMANN_K

from sim_instruments.world.noise_bench import NoiseBenchConfig, line_output_k
from sim_instruments.world.twpa import TWPAConfig, TWPAGain

if TYPE_CHECKING:
    from sim_instruments.world.fridge import FridgeModel

#: 10**(-1 dB / 10): the gain ratio at the 1 dB compression point
_C1DB = 10 ** (-0.1)
KINDS = ("jpa", "twpa")
LOADS = ("hot", "cold")


@dataclass
class ParampConfig:
    """The paramp (``world.paramp``) and the noise chain after it; SI units, powers in dBm."""

    #: off by default: the world then has no paramp in ``world.amplifiers`` (unit gain everywhere)
    enabled: bool = False
    #: "jpa" (flux-tunable resonant paramp) or "twpa" (broadband, no flux dependence)
    kind: str = "jpa"
    #: 3: flux-pumped, gain centred at f_p/2; 4: current-pumped, gain centred at f_p
    wave_mixing: int = 3
    #: JPA resonance at zero flux
    f_max_hz: float = 7.0e9
    #: Φ/Φ0 per ampere of flux-bias current (mutual inductance / Φ0): 1000 = one Φ0 per mA
    flux_quanta_per_amp: float = 1000.0
    #: residual flux (trapped flux, offset) in Φ0
    flux_offset_phi0: float = 0.0
    #: κ: linewidth of the JPA = its gain-bandwidth product √G0 · B (Hz)
    linewidth_hz: float = 100e6
    #: parametric threshold at zero detuning, pump power at the paramp (dBm)
    pump_threshold_dbm: float = -70.0
    #: attenuation from the pump source to the paramp (dB)
    pump_attenuation_db: float = 50.0
    #: gain ceiling near/above threshold (dB); the real device would self-oscillate
    max_gain_db: float = 35.0
    #: compression: saturation input power P_sat (dBm); P1dB ≈ P_sat − 10 log10 G − 5.9 dB
    saturation_power_dbm: float = -80.0
    #: added noise of the paramp at high gain, referred to its input (K); scales as (1 − 1/G)
    t_added_k: float = 0.3
    #: HEMT noise temperature (K) and gain (dB)
    hemt_noise_k: float = 4.0
    hemt_gain_db: float = 40.0
    #: gain after the HEMT up to the analyzer input: warm amplifiers minus cable loss (dB)
    post_gain_db: float = 30.0
    #: temperature of the hot load: a number (K) or a fridge stage ("4k", "still")
    hot_load: float | str = "4k"
    #: pump tone reaching the HEMT, relative to the pump power at the paramp (dB)
    pump_leakage_db: float = -30.0
    #: TWPA only (kind: twpa): the four-wave-mixing line (sim_instruments.world.twpa)
    twpa: TWPAConfig = field(default_factory=TWPAConfig)
    #: injected drift of the pump power reaching the amplifier: linear (dB per hour of world time) and a
    #: slow sinusoidal wander (amplitude dB, period s), from when the world was made
    pump_drift_db_per_hour: float = 0.0
    pump_wander_db: float = 0.0
    pump_wander_period_s: float = 3600.0
    #: the noise bench between the loads and the paramp, as it truly is (sim_instruments.world.noise_bench)
    bench: NoiseBenchConfig = field(default_factory=NoiseBenchConfig)


@dataclass(frozen=True)
class ParampState:
    """What the instruments set: pump (at the source), flux-bias current and the selected load."""

    pump_frequency_hz: float = 10.0e9
    pump_power_dbm: float = -30.0
    pump_on: bool = False
    flux_current_a: float = 0.0
    load: str = "cold"


def effective_temperature_k(temperature_k: float | np.ndarray, freqs_hz: float | np.ndarray) -> np.ndarray:
    """Callen–Welton noise temperature (hf/2k)·coth(hf/2kT) of a matched load at T (zero-point included)."""
    t = np.asarray(temperature_k, dtype=float)
    x = PLANCK_H * np.asarray(freqs_hz, dtype=float) / (2 * BOLTZMANN_K)
    with np.errstate(divide="ignore", over="ignore"):
        ratio = np.where(t > 0, x / np.maximum(t, 1e-300), np.inf)
        return np.where(ratio > 350, x, x / np.tanh(ratio))


def _dbm_to_mw(dbm: float) -> float:
    return 10.0 ** (dbm / 10.0)


class ParampModel:
    """The paramp model and its settings (thread-safe: faces on several threads write the state)."""

    def __init__(self, config: ParampConfig, fridge: FridgeModel | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        c = config
        for f in fields(ParampConfig):
            value, default = getattr(c, f.name), f.default
            if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                               or not math.isfinite(value)):
                hint = " (YAML reads 1e9 or 1.0e9 as text: write 1.0e+9)" if isinstance(value, str) else ""
                raise ValueError(f"world.paramp.{f.name}: expected a number, got {value!r}{hint}")
        if c.kind not in KINDS:
            raise ValueError(f"world.paramp.kind: expected one of {KINDS}, got {c.kind!r}")
        if c.wave_mixing not in (3, 4):
            raise ValueError(f"world.paramp.wave_mixing: expected 3 or 4, got {c.wave_mixing!r}")
        for key in ("f_max_hz", "linewidth_hz", "pump_wander_period_s"):
            if not getattr(c, key) > 0:
                raise ValueError(f"world.paramp.{key}: expected > 0, got {getattr(c, key)!r}")
        if c.max_gain_db <= 0 or c.t_added_k < 0 or c.hemt_noise_k < 0:
            raise ValueError("world.paramp: max_gain_db must be > 0, t_added_k and hemt_noise_k >= 0")
        if isinstance(c.hot_load, str) and c.hot_load not in ("4k", "still"):
            raise ValueError(f"world.paramp.hot_load: expected a temperature in K, '4k' or 'still', got {c.hot_load!r}")
        c.bench.check()
        self.config = c
        self.fridge = fridge
        self.twpa: TWPAGain | None = TWPAGain(c.twpa) if c.kind == "twpa" else None
        self._clock = clock or time.monotonic
        self._t0 = self._clock()
        self._state = ParampState()
        self._lock = threading.Lock()

    # -- settings (written by the faces) ---------------------------------------------------
    @property
    def state(self) -> ParampState:
        return self._state

    def set_pump(self, *, frequency_hz: float | None = None, power_dbm: float | None = None,
                 on: bool | None = None) -> None:
        """Pump source settings, at the source (the pump line attenuates ``pump_attenuation_db``)."""
        changes = {k: v for k, v in (("pump_frequency_hz", frequency_hz), ("pump_power_dbm", power_dbm),
                                     ("pump_on", on)) if v is not None}
        with self._lock:
            self._state = replace(self._state, **changes)

    def set_flux_current(self, current_a: float) -> None:
        """Current flowing in the flux-bias line (0 when the source output is off)."""
        with self._lock:
            self._state = replace(self._state, flux_current_a=float(current_a))

    def select_load(self, load: str) -> None:
        """Which load the input of the paramp sees: "hot" or "cold" (the mixing-chamber load)."""
        if load not in LOADS:
            raise ValueError(f"load must be one of {LOADS}, got {load!r}")
        with self._lock:
            self._state = replace(self._state, load=load)

    # -- truth: operating point ----------------------------------------------------------
    def flux_phi0(self, state: ParampState | None = None) -> float:
        s = state or self._state
        return self.config.flux_quanta_per_amp * s.flux_current_a + self.config.flux_offset_phi0

    def resonance_hz(self, state: ParampState | None = None) -> float:
        """f0(Φ) = f_max |cos(πΦ/Φ0)|^½ (f_max for a TWPA)."""
        if self.config.kind == "twpa":
            return self.config.f_max_hz
        return self.config.f_max_hz * math.sqrt(abs(math.cos(math.pi * self.flux_phi0(state))))

    def drift_time_s(self) -> float:
        """World time the drifts have run (s)."""
        return self._clock() - self._t0

    def set_drift_time(self, elapsed_s: float) -> None:
        """Let the drifts continue from ``elapsed_s`` (the world changed its clock)."""
        self._t0 = self._clock() - float(elapsed_s)

    def pump_drift_db(self) -> float:
        """The injected drift of the pump line now (dB, world time since the model was made)."""
        c = self.config
        if not (c.pump_drift_db_per_hour or c.pump_wander_db):
            return 0.0
        t = self._clock() - self._t0
        return c.pump_drift_db_per_hour * t / 3600.0 + c.pump_wander_db * math.sin(2 * math.pi * t / c.pump_wander_period_s)

    def pump_power_at_paramp_dbm(self, state: ParampState | None = None) -> float:
        """Pump power reaching the amplifier: source − line attenuation + the injected drift (−∞ when off)."""
        s = state or self._state
        if not s.pump_on:
            return -math.inf
        return s.pump_power_dbm - self.config.pump_attenuation_db + self.pump_drift_db()

    def _pump_mw(self, s: ParampState) -> float:
        """Pump power at the amplifier in mW (0 with the pump off or the amplifier disabled)."""
        if not (self.config.enabled and s.pump_on):
            return 0.0
        return _dbm_to_mw(self.pump_power_at_paramp_dbm(s))

    def center_hz(self, state: ParampState | None = None) -> float:
        """Centre of the gain profile: f_p/2 (3-wave mixing) or f_p (4-wave mixing)."""
        s = state or self._state
        return s.pump_frequency_hz / 2 if self.config.wave_mixing == 3 else s.pump_frequency_hz

    def threshold_dbm(self, state: ParampState | None = None) -> float:
        """Pump threshold at the paramp for the present pump detuning."""
        c = self.config
        detuning = self.center_hz(state) - self.resonance_hz(state)
        return c.pump_threshold_dbm + 10 * math.log10(1 + (2 * detuning / c.linewidth_hz) ** 2)

    def peak_gain(self, state: ParampState | None = None) -> float:
        """Small-signal peak power gain G0 (linear; 1 with the pump off or the paramp disabled)."""
        s = state or self._state
        c = self.config
        if not (c.enabled and s.pump_on):
            return 1.0
        g_max = 10 ** (c.max_gain_db / 10)
        if self.twpa is not None:  # the gain at the pump frequency, phase matched or not
            return float(self.small_signal_gain(s.pump_frequency_hz, s))
        ratio = _dbm_to_mw(self.pump_power_at_paramp_dbm(s)) / _dbm_to_mw(self.threshold_dbm(s))
        ratio = min(ratio, 1.0 - 1.0 / math.sqrt(g_max))
        return 1.0 / (1.0 - ratio) ** 2

    def lorentz_width_hz(self, state: ParampState | None = None) -> float:
        """B in the gain profile: κ/√G0 for a JPA (the profile's −3 dB width is slightly wider)."""
        if self.twpa is not None:
            return math.nan
        return self.config.linewidth_hz / math.sqrt(self.peak_gain(state))

    # -- truth: what the measurements should recover -------------------------------------
    def small_signal_gain(self, freqs_hz: np.ndarray | float, state: ParampState | None = None) -> np.ndarray:
        """G_s(f), linear power gain at vanishing input power."""
        s = state or self._state
        if self.twpa is not None:
            return self.twpa.small_signal_gain(freqs_hz, s.pump_frequency_hz, self._pump_mw(s))
        g0 = self.peak_gain(s)
        x = 2 * (np.asarray(freqs_hz, dtype=float) - self.center_hz(s)) / self.lorentz_width_hz(s)
        return 1.0 + (g0 - 1.0) / (1.0 + x * x)

    def gain_db(self, freqs_hz: np.ndarray | float, input_power_dbm: float = -math.inf) -> np.ndarray:
        """Power gain in dB at ``freqs_hz`` for an input tone of ``input_power_dbm`` at the paramp."""
        return 10 * np.log10(self.gain(freqs_hz, input_power_dbm))

    def gain(self, freqs_hz: np.ndarray | float, input_power_dbm: float = -math.inf,
             state: ParampState | None = None) -> np.ndarray:
        """Compressed power gain G(f, P_in) = 1 + (G_s − 1)/(1 + P_in (G_s − 1)/P_sat); a TWPA's from pump
        depletion (sim_instruments.world.twpa)."""
        p_in = _dbm_to_mw(input_power_dbm) if math.isfinite(input_power_dbm) else 0.0
        if self.twpa is not None:
            s = state or self._state
            return self.twpa.gain(freqs_hz, s.pump_frequency_hz, self._pump_mw(s), p_in)
        gs = self.small_signal_gain(freqs_hz, state)
        excess = gs - 1.0
        return 1.0 + excess / (1.0 + p_in * excess / _dbm_to_mw(self.config.saturation_power_dbm))

    def bandwidth_hz(self, state: ParampState | None = None) -> float:
        """Full width at −3 dB from the peak: B·√(G0/(G0 − 2)); NaN when G0 ≤ 2 (no −3 dB points)."""
        g0 = self.peak_gain(state)
        if g0 <= 2.0:
            return math.nan
        return self.lorentz_width_hz(state) * math.sqrt(g0 / (g0 - 2.0))

    def p1db_dbm(self, freq_hz: float | None = None, state: ParampState | None = None) -> float:
        """Input power (dBm at the paramp) where the gain at ``freq_hz`` (default: the centre) is 1 dB down.

        From G(P) above with c = 10^(−0.1): P1dB = P_sat · G_s (1 − c) / ((G_s − 1)(c G_s − 1));
        NaN when G_s < 1 dB (nothing to compress).
        """
        f = self.center_hz(state) if freq_hz is None else freq_hz
        gs = float(self.small_signal_gain(f, state))
        if gs * _C1DB <= 1.0:
            return math.nan
        if self.twpa is not None:  # pump depletion has no closed form: where the gain is 1 dB down
            from scipy.optimize import brentq

            def down(p_dbm: float) -> float:
                return 10 * math.log10(float(self.gain(f, p_dbm, state)) / gs) + 1.0

            return float(brentq(down, -200.0, -20.0, xtol=1e-4)) if down(-20.0) < 0 else math.nan
        p = _dbm_to_mw(self.config.saturation_power_dbm) * gs * (1 - _C1DB) / ((gs - 1) * (gs * _C1DB - 1))
        return 10 * math.log10(p)

    def added_noise_k(self, freqs_hz: np.ndarray | float, state: ParampState | None = None) -> np.ndarray:
        """Noise the paramp adds, referred to its input: t_added_k · (1 − 1/G_s(f)) (0 with the pump off).

        A TWPA's is explicit: (1 − 1/G_s)·(T_source(f_i)·f/f_i + excess_noise_k), the selected source's
        noise entering at the idler frequency converted into the signal band, and the line's loss noise.
        """
        gs = self.small_signal_gain(freqs_hz, state)
        if self.twpa is not None:
            s = state or self._state
            f = np.asarray(freqs_hz, dtype=float)
            f_i = np.abs(self.twpa.idler_hz(f, s.pump_frequency_hz))
            idler = self.source_noise_k(f_i, s) * f / np.maximum(f_i, 1.0)
            return (1.0 - 1.0 / gs) * (idler + self.config.twpa.excess_noise_k)
        return self.config.t_added_k * (1.0 - 1.0 / gs)

    def noise_temperature_k(self, freqs_hz: np.ndarray | float, state: ParampState | None = None) -> np.ndarray:
        """Receiver noise temperature referred to the paramp input, the load excluded:
        T_n(f) = T_paramp(f) + T_HEMT / G_s(f) — what a Y-factor measurement gives."""
        return self.added_noise_k(freqs_hz, state) + self.config.hemt_noise_k / self.small_signal_gain(freqs_hz, state)

    def load_temperature_k(self, load: str | None = None) -> float:
        """Physical temperature of the hot or the cold (mixing-chamber) load."""
        load = load or self._state.load
        if load == "cold":
            return self.fridge.mxc_k() if self.fridge is not None else 0.0
        hot = self.config.hot_load
        if not isinstance(hot, str):
            return float(hot)
        if self.fridge is None:
            raise ValueError("world.paramp.hot_load names a fridge stage but the paramp has no fridge")
        return self.fridge.plate_4k_k() if hot == "4k" else self.fridge.still_k()

    def thermometer_k(self, load: str) -> float:
        """What the selected load's thermometer reads (noise-free): the truth + the bench's offset."""
        b = self.config.bench
        offset = b.hot_thermometer_offset_k if load == "hot" else b.cold_thermometer_offset_k
        return self.load_temperature_k(load) + offset

    def thermometer_reading_k(self, load: str) -> float:
        """One reading of a load's thermometer: the hot one :meth:`thermometer_k`; the cold one the mixing
        chamber's thermometer (with its reading noise) + the bench's offset."""
        if load == "cold" and self.fridge is not None:
            return self.fridge.read("mxc") + self.config.bench.cold_thermometer_offset_k
        return self.thermometer_k(load)

    def source_noise_k(self, freqs_hz: np.ndarray | float, state: ParampState | None = None) -> np.ndarray:
        """Noise temperature the selected load delivers at the paramp input, through the bench's line:
        M·T_CW(load)/L + (1 − 1/L)·T_CW(line) (sim_instruments.world.noise_bench)."""
        s = state or self._state
        b = self.config.bench
        f = np.asarray(freqs_hz, dtype=float)
        t_load = effective_temperature_k(self.load_temperature_k(s.load), f)
        if s.load == "hot":
            t_load = t_load * b.hot_mismatch
        if b.line_loss_db == 0:
            return t_load
        t_line = b.line_temperature_k if b.line_temperature_k is not None else self.load_temperature_k("cold")
        return line_output_k(t_load, b.line_loss_db, effective_temperature_k(t_line, f))

    def system_noise_k(self, freqs_hz: np.ndarray | float, state: ParampState | None = None) -> np.ndarray:
        """T_sys(f) = T_source(f) + T_n(f): everything referred to the paramp input (:meth:`source_noise_k`)."""
        s = state or self._state
        f = np.asarray(freqs_hz, dtype=float)
        return self.source_noise_k(f, s) + self.noise_temperature_k(f, s)

    def snr_improvement(self, freq_hz: float) -> float:
        """SNR(pump on) / SNR(pump off) at ``freq_hz`` = T_sys,off / T_sys,on (present load)."""
        s = self._state
        off = replace(s, pump_on=False)
        return float(self.system_noise_k(freq_hz, off) / self.system_noise_k(freq_hz, s))

    def chain_gain(self, freqs_hz: np.ndarray | float, state: ParampState | None = None) -> np.ndarray:
        """Power gain from the paramp input to the analyzer input: G_s · G_HEMT · G_post."""
        c = self.config
        return self.small_signal_gain(freqs_hz, state) * 10 ** ((c.hemt_gain_db + c.post_gain_db) / 10)

    def output_noise_dbm_per_hz(self, freqs_hz: np.ndarray | float) -> np.ndarray:
        """Noise power spectral density at the analyzer input: k_B · T_sys(f) · G_chain(f), in dBm/Hz."""
        s = self._state
        f = np.asarray(freqs_hz, dtype=float)
        watts = BOLTZMANN_K * self.system_noise_k(f, s) * self.chain_gain(f, s)
        return 10 * np.log10(watts * 1e3)

    def pump_tone(self) -> tuple[float, float] | None:
        """(frequency, power in dBm) of the pump leaking to the analyzer, or None with the pump off."""
        s = self._state
        if not (self.config.enabled and s.pump_on):
            return None
        c = self.config
        return s.pump_frequency_hz, self.pump_power_at_paramp_dbm(s) + c.pump_leakage_db + c.hemt_gain_db + c.post_gain_db

    # -- what world.chain_s21 multiplies in -----------------------------------------------
    def s21(self, freqs_hz: np.ndarray, input_power_dbm: float = -100.0) -> np.ndarray:
        """Complex voltage gain √G(f, P_in) · exp(−jφ), φ = (1 − 1/√G) · arctan(2 (f − f_c)/B); a TWPA's
        with its delay and gain ripple (sim_instruments.world.twpa)."""
        s = self._state
        f = np.asarray(freqs_hz, dtype=float)
        if self.twpa is not None:
            p_in = _dbm_to_mw(input_power_dbm) if math.isfinite(input_power_dbm) else 0.0
            return self.twpa.s21(f, s.pump_frequency_hz, self._pump_mw(s), p_in)
        g = self.gain(f, input_power_dbm, s)
        amp = np.sqrt(g)
        phase = (1.0 - 1.0 / amp) * np.arctan(2 * (f - self.center_hz(s)) / self.lorentz_width_hz(s))
        return amp * np.exp(-1j * phase)
