"""The Y-factor measurement model of a paramp's noise, gain and SNR improvement, with its GUM budget.

Readings (per frequency): the analyzer's mean noise power with the hot and the cold source,
pump off and on (each with its type A uncertainty, the scatter of the trace points); |S21|²
with the pump on and off (VNA, type A likewise); the thermometer readings of the two loads.
Corrections (each a budget input with its calibration, :mod:`cryodaq.metrology.calibrations`):

* the loads' thermometers (``hot_load_temperature``, ``cold_load_temperature``): their readings
  are the estimates, their calibrations the uncertainties; or, for a calibrated noise source,
  its ENR table ``noise_source_enr`` (T_hot = T_off + T_0·10^(ENR/10), T_0 = 290 K, IEEE Std
  and Keysight AN 57-1) with the source's off temperature as the cold one;
* the line from the switch to the amplifier input, loss L (``input_line_loss``) at physical
  temperature T_line (``input_line_temperature``): a source at noise temperature T delivers
  T/L + (1 − 1/L)·T_CW(T_line) at the amplifier (the attenuator formula; NIST's cryogenic LNA
  budget, Gu, Randa, Billinger & Walker, Radio Science 48 (2013), finds this term dominant);
* source mismatch (``source_mismatch``): the hot path delivers M × the noise the cold path
  would (different reflections of the two switch paths, Simbierowicz et al., Rev. Sci.
  Instrum. 92, 034708 (2021)); M = 1 ± 2|Γ_s||Γ_a|, U-shaped (Keysight AN 57-2);
* analyzer linearity (``analyzer_linearity``, scale fidelity in dB per dB): a ratio R read as
  R_dB·(1 + s), so R = R_meas^(1/(1 + s));
* VNA dynamic accuracy (``vna_linearity``, dB per dB) on the gain ratio |S21_on|²/|S21_off|²
  alike: the VNA's calibration (tracking) cancels in that ratio, its receiver linearity over the
  ~20 dB between the two readings does not.

All temperatures are Callen–Welton noise temperatures T_CW = (hf/2k)·coth(hf/2kT) at the
frequency (at 12 mK and 5 GHz a load delivers 0.12 K, not 0.012 K). Then, pump off and on,
Y = P_hot/P_cold and T_n = (T_hot − Y·T_cold)/(Y − 1) (the receiver noise referred to the
amplifier input, the sources excluded); G = |S21_on|²/|S21_off|²; the paramp's added noise
T_paramp = T_n,on − T_n,off/G; ΔSNR = G/(P_cold,on/P_cold,off). :func:`yfactor_budget` returns
the budget of each (:mod:`cryodaq.metrology.gum`); the model is vectorised, so the budget costs
one call of it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.constants import h as PLANCK_H
from scipy.constants import k as BOLTZMANN_K

from cryodaq.metrology.calibrations import Calibration
from cryodaq.metrology.gum import Budget, Input, effective_count, evaluate

__all__ = ["MEASURANDS", "T0_K", "NoiseReading", "S21Reading", "YFactorPoint", "cw_temperature_k",
           "line_output_k", "mean_of_readings", "noise_source_model", "receiver_noise_k", "yfactor_budget",
           "yfactor_inputs", "yfactor_model"]

#: the IEEE reference temperature of ENR tables (K)
T0_K = 290.0

#: what :func:`yfactor_model` returns, with units
MEASURANDS = {"receiver_noise_on_k": "K", "receiver_noise_off_k": "K", "paramp_added_noise_k": "K",
              "system_noise_on_k": "K", "gain_db": "dB", "snr_improvement_db": "dB"}


def cw_temperature_k(temperature_k: Any, freq_hz: Any) -> np.ndarray:
    """Callen–Welton noise temperature (hf/2k_B)·coth(hf/2k_B T) of a matched load at T (zero-point included).

    Broadcasts over both arguments; T <= 0 gives the zero-point hf/2k_B.
    """
    t = np.asarray(temperature_k, dtype=float)
    x = PLANCK_H * np.asarray(freq_hz, dtype=float) / (2 * BOLTZMANN_K)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = np.where(t > 0, x / np.where(t > 0, t, 1.0), np.inf)
        return np.where(ratio > 350, x, x / np.tanh(np.minimum(ratio, 350)))


def receiver_noise_k(y_factor: Any, t_hot_k: Any, t_cold_k: Any) -> Any:
    """T_n = (T_hot − Y·T_cold)/(Y − 1) from one Y factor and the two source noise temperatures.

    Y = 1 gives ±inf. Returns a float for scalar arguments, else an array.
    """
    y = np.asarray(y_factor, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.asarray(t_hot_k, dtype=float) - y * t_cold_k) / (y - 1.0)
    return float(t) if np.ndim(t) == 0 else t


def line_output_k(t_source_k: Any, loss_db: Any, t_line_cw_k: Any) -> Any:
    """Noise temperature after a matched lossy line: T/L + (1 − 1/L)·T_line (L = 10^(loss/10) >= 1)."""
    transmission = 10.0 ** (-np.asarray(loss_db, dtype=float) / 10.0)
    return t_source_k * transmission + (1.0 - transmission) * t_line_cw_k


def _linear_ratio(ratio: Any, scale_error: Any) -> Any:
    """A measured ratio corrected for a scale error s (read as R_dB·(1 + s)): R_meas^(1/(1 + s))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(ratio, dtype=float) ** (1.0 / (1.0 + np.asarray(scale_error, dtype=float)))


def _core(t_hot_src: Any, t_cold_src: Any, *, freq_hz: float, p_hot_off: Any, p_cold_off: Any, p_hot_on: Any,
          p_cold_on: Any, s21_sq_on: Any, s21_sq_off: Any, line_loss_db: Any, line_temperature_k: Any,
          source_mismatch: Any, analyzer_linearity: Any, vna_linearity: Any) -> dict[str, Any]:
    t_line = cw_temperature_k(line_temperature_k, freq_hz)
    t_hot = source_mismatch * line_output_k(t_hot_src, line_loss_db, t_line)
    t_cold = line_output_k(t_cold_src, line_loss_db, t_line)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_off = _linear_ratio(p_hot_off / p_cold_off, analyzer_linearity)
        y_on = _linear_ratio(p_hot_on / p_cold_on, analyzer_linearity)
        t_off = receiver_noise_k(y_off, t_hot, t_cold)
        t_on = receiver_noise_k(y_on, t_hot, t_cold)
        gain = _linear_ratio(s21_sq_on / s21_sq_off, vna_linearity)
        rise = _linear_ratio(p_cold_on / p_cold_off, analyzer_linearity)
        return {"receiver_noise_on_k": t_on, "receiver_noise_off_k": t_off,
                "paramp_added_noise_k": t_on - t_off / gain, "system_noise_on_k": t_cold + t_on,
                "gain_db": 10 * np.log10(gain), "snr_improvement_db": 10 * np.log10(gain / rise)}


def yfactor_model(*, freq_hz: float, t_hot_k: Any, t_cold_k: Any, **rest: Any) -> dict[str, Any]:
    """The measurands from hot and cold loads at physical temperatures ``t_hot_k``, ``t_cold_k`` (module docstring).

    Keyword arguments are the budget inputs (:func:`yfactor_inputs`), scalars or arrays that broadcast.
    """
    return _core(cw_temperature_k(t_hot_k, freq_hz), cw_temperature_k(t_cold_k, freq_hz), freq_hz=freq_hz, **rest)


def noise_source_model(*, freq_hz: float, enr_db: Any, t_off_k: Any, **rest: Any) -> dict[str, Any]:
    """The measurands from a calibrated noise source: on, T_off + T_0·10^(ENR/10); off, T_CW(T_off)."""
    t_off_cw = cw_temperature_k(t_off_k, freq_hz)
    return _core(t_off_cw + T0_K * 10.0 ** (np.asarray(enr_db, dtype=float) / 10.0), t_off_cw, freq_hz=freq_hz,
                 **rest)


@dataclass(frozen=True)
class NoiseReading:
    """One analyzer noise reading: the mean power over the trace points (mW per RBW) and its type A uncertainty."""

    mean_mw: float
    u_mw: float
    dof: float
    points: int

    @classmethod
    def from_trace_mw(cls, powers_mw: Any) -> NoiseReading:
        """Mean and standard error of the trace points, counting correlated points as fewer (gum.effective_count)."""
        p = np.asarray(powers_mw, dtype=float).ravel()
        n_eff = effective_count(p)
        inp = Input.type_a("p", p, n_effective=n_eff)
        return cls(inp.value, inp.u, inp.dof, int(p.size))


@dataclass(frozen=True)
class S21Reading:
    """One VNA reading over a few points: the complex mean, and |mean|² with its type A uncertainty."""

    mean: complex
    power: float
    u_power: float
    dof: float
    points: int

    @classmethod
    def from_trace(cls, s21: Any) -> S21Reading:
        """From the complex points of a narrow trace: u(|m|²) = 2|m|·s_radial/√n (the noise along the mean)."""
        z = np.asarray(s21, dtype=complex).ravel()
        m = complex(z.mean())
        n = z.size
        if n < 2:
            return cls(m, abs(m) ** 2, math.nan, math.nan, n)
        radial = (z * np.exp(-1j * np.angle(m))).real
        u = 2 * abs(m) * float(np.std(radial, ddof=1)) / math.sqrt(n)
        return cls(m, abs(m) ** 2, u, float(n - 1), n)


@dataclass(frozen=True)
class YFactorPoint:
    """The readings of one frequency of a Y-factor sweep.

    ``p_*``: (mean mW, u mW, dof) per (source, pump) state; ``s21_sq_*``: (|S21|², u, dof) with the
    pump on and off; ``t_hot_k``, ``t_cold_k``: the thermometers' mean readings (for a noise
    source, ``t_cold_k`` is its off temperature and ``t_hot_k`` is ignored).
    """

    freq_hz: float
    p_hot_off: tuple[float, float, float]
    p_cold_off: tuple[float, float, float]
    p_hot_on: tuple[float, float, float]
    p_cold_on: tuple[float, float, float]
    s21_sq_on: tuple[float, float, float]
    s21_sq_off: tuple[float, float, float]
    t_hot_k: float
    t_cold_k: float


    @classmethod
    def from_readings(cls, freq_hz: float, noise: Mapping[tuple[bool, bool], NoiseReading],
                      s21: Mapping[tuple[bool, bool], S21Reading], t_hot_k: float, t_cold_k: float) -> YFactorPoint:
        """From the readings keyed by (hot source?, pump on?): |S21|² per pump state is the mean of the
        two sources' readings (:func:`mean_of_readings`)."""
        def p(hot: bool, pump: bool) -> tuple[float, float, float]:
            r = noise[hot, pump]
            return r.mean_mw, r.u_mw, r.dof

        def g(pump: bool) -> tuple[float, float, float]:
            return mean_of_readings([(r.power, r.u_power, r.dof) for r in (s21[True, pump], s21[False, pump])])

        return cls(float(freq_hz), p(True, False), p(False, False), p(True, True), p(False, True), g(True), g(False),
                   float(t_hot_k), float(t_cold_k))


def mean_of_readings(readings: Any) -> tuple[float, float, float]:
    """(mean, u, dof) of the mean of independent readings given as (mean, u, dof): u = √Σu²/n, and ν by
    Welch–Satterthwaite; u and ν are NaN when any reading lacks them."""
    rows = [tuple(float(x) for x in r) for r in readings]
    n = len(rows)
    mean = sum(r[0] for r in rows) / n
    if not all(math.isfinite(r[1]) and math.isfinite(r[2]) for r in rows):
        return mean, math.nan, math.nan
    u2 = [r[1] ** 2 for r in rows]
    u = math.sqrt(sum(u2)) / n
    denominator = sum(x ** 2 / r[2] for x, r in zip(u2, rows) if x > 0)
    return mean, u, (sum(u2) ** 2 / denominator) if denominator > 0 else math.inf


_NOT_STATED = "not stated in the station's calibrations (taken as exact)"


def _stated(calibrations: Mapping[str, Calibration], role: str, name: str, value: float, unit: str,
            description: str) -> Input:
    cal = calibrations.get(role)
    if cal is None:
        return Input(name, float(value), 0.0, unit=unit, source=_NOT_STATED, description=description)
    return cal.as_input(name, value, description=description)


def _reading(name: str, reading: tuple[float, float, float], unit: str, description: str) -> Input:
    mean, u, dof = (float(x) for x in reading)
    if not math.isfinite(u) or not math.isfinite(dof) or dof <= 0:
        return Input(name, mean, 0.0, unit=unit, source="a single reading: no scatter to evaluate",
                     description=description)
    return Input(name, mean, u, dof=dof, kind="A", distribution="student-t", unit=unit,
                 source=f"scatter of the reading's points (nu = {dof:.0f})", description=description)


def yfactor_inputs(point: YFactorPoint, calibrations: Mapping[str, Calibration]) -> tuple[list[Input], dict[str, Any]]:
    """The budget inputs of one frequency, and the model's fixed arguments (``freq_hz``, which source).

    Calibrations missing from the station enter with zero uncertainty, their source saying so.
    """
    f = point.freq_hz
    inputs = [
        _reading("p_hot_off", point.p_hot_off, "mW", "noise power, hot source, pump off"),
        _reading("p_cold_off", point.p_cold_off, "mW", "noise power, cold source, pump off"),
        _reading("p_hot_on", point.p_hot_on, "mW", "noise power, hot source, pump on"),
        _reading("p_cold_on", point.p_cold_on, "mW", "noise power, cold source, pump on"),
        _reading("s21_sq_on", point.s21_sq_on, "", "|S21|², pump on"),
        _reading("s21_sq_off", point.s21_sq_off, "", "|S21|², pump off"),
    ]
    fixed: dict[str, Any] = {"freq_hz": f}
    enr = calibrations.get("noise_source_enr")
    if enr is not None:
        inputs.append(enr.as_input("enr_db", enr.value_at(f), description="noise source ENR at this frequency"))
        t_off = enr.parameters.get("t_off_k", point.t_cold_k)
        inputs.append(_stated(calibrations, "cold_load_temperature", "t_off_k", t_off, "K",
                              "noise source physical temperature (off state)"))
        fixed["model"] = "noise_source"
    else:
        inputs.append(_stated(calibrations, "hot_load_temperature", "t_hot_k", point.t_hot_k, "K",
                              "hot load temperature (thermometer reading)"))
        inputs.append(_stated(calibrations, "cold_load_temperature", "t_cold_k", point.t_cold_k, "K",
                              "cold load temperature (thermometer reading)"))
        fixed["model"] = "loads"
    line = calibrations.get("input_line_loss")
    inputs.append(_stated(calibrations, "input_line_loss", "line_loss_db", line.value_at(f) if line else 0.0, "dB",
                          "loss from the switch to the amplifier input"))
    t_line = calibrations.get("input_line_temperature")
    inputs.append(_stated(calibrations, "input_line_temperature", "line_temperature_k",
                          t_line.value_at(f) if t_line else point.t_cold_k, "K", "physical temperature of that line"))
    mismatch = calibrations.get("source_mismatch")
    inputs.append(_stated(calibrations, "source_mismatch", "source_mismatch",
                          mismatch.value if mismatch and mismatch.value is not None else 1.0, "",
                          "hot/cold source mismatch (delivered-noise ratio)"))
    inputs.append(_stated(calibrations, "analyzer_linearity", "analyzer_linearity", 0.0, "dB/dB",
                          "analyzer scale fidelity on power ratios"))
    inputs.append(_stated(calibrations, "vna_linearity", "vna_linearity", 0.0, "dB/dB",
                          "VNA dynamic accuracy on the gain ratio"))
    return inputs, fixed


def yfactor_budget(point: YFactorPoint, calibrations: Mapping[str, Calibration], *, k: float = 2.0
                   ) -> dict[str, Budget]:
    """The budget of every measurand of :data:`MEASURANDS` at one frequency (module docstring)."""
    inputs, fixed = yfactor_inputs(point, calibrations)
    kind = fixed.pop("model")
    model = functools.partial(noise_source_model if kind == "noise_source" else yfactor_model, **fixed)
    return evaluate(model, inputs, k=k, units=MEASURANDS)
