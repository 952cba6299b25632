"""``ParametricAmplifier``: a qcodes meta-instrument over a paramp's pump, flux bias, VNA and analyzer.

It holds references to the component instruments and makes **single-shot** measurements through
them, at the present pump, flux and load settings (each may switch the pump off and on again for
its reference, and leaves it as it was); what each result means is in
``docs/parametric-amplifier.md``:

* :meth:`~ParametricAmplifier.gain_curve` — S21 with the pump on over S21 with it off;
* :meth:`~ParametricAmplifier.gain_and_bandwidth` — Lorentzian fit (lmfit) of that curve:
  peak gain, centre, −3 dB bandwidth;
* :meth:`~ParametricAmplifier.gain_at` — the same ratio at one frequency;
* :meth:`~ParametricAmplifier.p1db` — VNA power sweep at one frequency: 1 dB compression point;
* :meth:`~ParametricAmplifier.snr_improvement` — gain over noise rise (analyzer);
* :meth:`~ParametricAmplifier.s21_at`, :meth:`~ParametricAmplifier.noise_power_mw` — one S21
  reading and one noise-power reading at one frequency, changing nothing.

Grids over settings — the tune-up over flux × pump frequency × pump power, the Y-factor noise
temperature over load × pump × frequency — are sweeps (:mod:`cryodaq.sweeps.procedures.paramp`),
so they get interlocks, progress, Ctrl-C and resume. The Y-factor arithmetic is the pure
function :func:`yfactor_noise_temperature`.

``pump_power``, ``pump_frequency`` and ``flux_current`` delegate to the source instruments'
parameters, so the station's safety limits on those (e.g. ``pump.power``) apply: a refused
value raises :class:`~cryodaq.errors.SafetyLimitError` and nothing is sent. With a load switch,
``load`` selects the hot or the cold load and ``load_temperature`` reads the selected one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qcodes.instrument import Instrument
from qcodes.parameters import DelegateParameter, ManualParameter, Parameter
from qcodes.validators import Bool, Enum, Numbers

from cryodaq.instruments.analyzer_adapters import (
    VNA,
    SpectrumAnalyzer,
    analyzer_adapter,
    vna_adapter,
)
from cryodaq.instruments.reliability import disable_nagle
from cryodaq.metrology.noise import (
    NoiseReading,
    S21Reading,
    cw_temperature_k,
    receiver_noise_k,
    yfactor_model,
)

__all__ = ["GainBandwidth", "GainCurve", "NoiseTemperature", "P1dBResult", "ParametricAmplifier", "SNRImprovement",
           "cw_temperature_k", "receiver_noise_k", "yfactor_noise_temperature"]

log = logging.getLogger(__name__)

_ON = (True, 1, "1", "on", "ON", "On")


def _db(x: np.ndarray | float) -> np.ndarray:
    return 10 * np.log10(x)


def _mw(dbm: np.ndarray | float) -> np.ndarray:
    return 10 ** (np.asarray(dbm, dtype=float) / 10)


# -- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class GainCurve:
    """Power gain vs frequency: |S21(pump on)|² / |S21(pump off)|²."""

    frequencies_hz: np.ndarray
    gain_db: np.ndarray
    s21_pump_on: np.ndarray
    s21_pump_off: np.ndarray
    probe_power_dbm: float  # at the VNA port
    pump_frequency_hz: float
    pump_power_dbm: float
    flux_current_a: float


@dataclass(frozen=True)
class GainBandwidth:
    """Lorentzian fit G(f) = 1 + (G0 − 1)/(1 + (2(f − f_c)/B)²) to a gain curve (in dB)."""

    peak_gain_db: float
    center_hz: float
    bandwidth_hz: float  # full width at −3 dB from the peak: B·√(G0/(G0 − 2)); NaN if G0 ≤ 2
    lorentz_width_hz: float  # B
    gain_bandwidth_product_hz: float  # √G0 · B (≈ the JPA linewidth κ)
    peak_gain_db_stderr: float
    bandwidth_hz_stderr: float
    curve: GainCurve


@dataclass(frozen=True)
class P1dBResult:
    """Gain vs input power at one frequency, and the 1 dB compression point."""

    frequency_hz: float
    source_powers_dbm: np.ndarray  # at the VNA port
    input_powers_dbm: np.ndarray  # at the paramp input: source − input_attenuation
    gain_db: np.ndarray
    small_signal_gain_db: float
    p1db_input_dbm: float  # NaN when the gain never fell 1 dB within the sweep
    p1db_output_dbm: float  # p1db_input + small-signal gain − 1 dB
    compressed: bool


@dataclass(frozen=True)
class SNRImprovement:
    """ΔSNR = G / (N_on / N_off): gain over the rise of the analyzer's noise floor."""

    frequency_hz: float
    gain_db: float
    noise_on_dbm: float  # mean noise power per point (RBW), pump on
    noise_off_dbm: float
    noise_rise_db: float
    snr_improvement_db: float


@dataclass(frozen=True)
class NoiseTemperature:
    """Y-factor result; temperatures referred to the paramp input (K)."""

    frequency_hz: float
    t_hot_k: float  # physical load temperatures read from the switch
    t_cold_k: float
    t_hot_cw_k: float  # their Callen–Welton noise temperatures at frequency_hz
    t_cold_cw_k: float
    y_pump_off: float
    y_pump_on: float
    receiver_noise_off_k: float  # pump off: the chain after the paramp (HEMT ...)
    receiver_noise_on_k: float  # pump on: T_paramp + T_following / G
    gain_db: float
    paramp_added_noise_k: float  # T_n,on − T_n,off / G
    system_noise_on_k: float  # with the cold load: T_cold_cw + T_n,on
    system_noise_off_k: float


def _off_on(values: Sequence[float], what: str) -> tuple[float, float]:
    pair = tuple(float(v) for v in values)
    if len(pair) != 2:
        raise ValueError(f"yfactor_noise_temperature: {what} must be (pump off, pump on), got {values!r}")
    return pair  # type: ignore[return-value]


def yfactor_noise_temperature(p_hot: Sequence[float], p_cold: Sequence[float], t_hot_k: float, t_cold_k: float,
                              freq_hz: float, gain_db: float) -> NoiseTemperature:
    """Paramp added noise by the Y-factor method, from measured noise powers (docs/parametric-amplifier.md).

    ``p_hot``, ``p_cold``: noise powers (linear, one unit for all) with the hot and the cold load,
    each as (pump off, pump on); ``t_hot_k``, ``t_cold_k``: the loads' physical temperatures,
    turned into Callen–Welton noise temperatures at ``freq_hz``; ``gain_db``: the paramp gain there.
    Pump off the paramp passes with unit gain and adds nothing, so T_n,off is the following chain
    (HEMT ...); pump on T_n,on = T_paramp + T_n,off/G, so T_paramp = T_n,on − T_n,off/G.
    A pure function: the sweep stores the powers, and the analysis can be redone from the run.
    """
    hot_off, hot_on = _off_on(p_hot, "p_hot")
    cold_off, cold_on = _off_on(p_cold, "p_cold")
    t_hot_cw, t_cold_cw = float(cw_temperature_k(t_hot_k, freq_hz)), float(cw_temperature_k(t_cold_k, freq_hz))
    # the full measurement model (cryodaq.metrology.noise) with every correction at its neutral value
    out = yfactor_model(freq_hz=float(freq_hz), t_hot_k=float(t_hot_k), t_cold_k=float(t_cold_k), p_hot_off=hot_off,
                        p_cold_off=cold_off, p_hot_on=hot_on, p_cold_on=cold_on,
                        s21_sq_on=10 ** (float(gain_db) / 10), s21_sq_off=1.0, line_loss_db=0.0,
                        line_temperature_k=float(t_cold_k), source_mismatch=1.0, analyzer_linearity=0.0,
                        vna_linearity=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_off, y_on = float(np.float64(hot_off) / cold_off), float(np.float64(hot_on) / cold_on)
    t_off, t_on = float(out["receiver_noise_off_k"]), float(out["receiver_noise_on_k"])
    return NoiseTemperature(
        frequency_hz=float(freq_hz), t_hot_k=float(t_hot_k), t_cold_k=float(t_cold_k), t_hot_cw_k=t_hot_cw,
        t_cold_cw_k=t_cold_cw, y_pump_off=y_off, y_pump_on=y_on, receiver_noise_off_k=t_off,
        receiver_noise_on_k=t_on, gain_db=float(gain_db), paramp_added_noise_k=float(out["paramp_added_noise_k"]),
        system_noise_on_k=t_cold_cw + t_on, system_noise_off_k=t_cold_cw + t_off)


def _lorentz_db(f: np.ndarray, peak_db: float, center: float, width: float) -> np.ndarray:
    g0 = 10 ** (peak_db / 10)
    return 10 * np.log10(1 + (g0 - 1) / (1 + (2 * (f - center) / width) ** 2))


def _find_instrument(ref: Any, role: str) -> Any:
    if isinstance(ref, str):
        try:
            return Instrument.find_instrument(ref)
        except KeyError:
            raise KeyError(f"ParametricAmplifier: no instrument named {ref!r} for the {role} "
                           "(in a station file, list it before the paramp)") from None
    return ref


class ParametricAmplifier(Instrument):
    """A JPA/TWPA: pump source + flux-bias source + VNA (+ spectrum analyzer, hot/cold load switch).

    Args:
        name: instrument name.
        pump: pump source (qcodes ``RohdeSchwarzSGS100A``, ``KeysightN51x1`` ...) or its name.
        flux: flux-bias current source (``YokogawaGS200`` in current mode ...) or its name; None for an
            amplifier without flux bias (a current-pumped TWPA): then there are no ``flux_*`` parameters.
        vna: VNA driver (Keysight PNA or R&S ZNB family) or anything implementing
            :class:`~cryodaq.instruments.analyzer_adapters.VNA`, or its name.
        analyzer: spectrum analyzer (Keysight N9030B) for the noise measurements, optional.
        load_switch: hot/cold load switch (:class:`~cryodaq.instruments.NoiseLoadSwitch`), optional.
        wave_mixing: 3 (flux-pumped: gain centred at f_pump/2) or 4 (gain centred at f_pump).
        pump_power_param / pump_frequency_param / pump_output_param: names of the pump
            source's parameters (the output one is found: ``status`` on an SGS100A,
            ``rf_output`` on an N51x1, else ``output``).
        flux_current_param / flux_output_param: names on the flux source.
        input_attenuation_db: attenuation from the VNA port to the paramp input (dB).
        probe_power_dbm: VNA source power for gain measurements (dBm at the VNA port).
        if_bandwidth_hz: VNA IF bandwidth for gain measurements.
        settle_s: wait after every pump/flux change (0 for simulators).
    """

    def __init__(self, name: str, pump: Any, flux: Any, vna: Any, *, analyzer: Any = None,
                 load_switch: Any = None, wave_mixing: int = 3, pump_power_param: str = "power",
                 pump_frequency_param: str = "frequency", pump_output_param: str | None = None,
                 flux_current_param: str = "current", flux_output_param: str = "output",
                 input_attenuation_db: float = 60.0, probe_power_dbm: float = -70.0,
                 if_bandwidth_hz: float = 100.0, settle_s: float = 0.0, **kwargs: Any) -> None:
        if wave_mixing not in (3, 4):
            raise ValueError(f"{name}: wave_mixing must be 3 or 4, got {wave_mixing!r}")
        # resolve and check every part before registering this instrument
        pump = _find_instrument(pump, "pump")
        flux = _find_instrument(flux, "flux bias") if flux is not None else None
        source = self._source_parameter
        pump_output = source(pump, pump_output_param, ("status", "rf_output", "output"), "pump output")
        pump_power = source(pump, pump_power_param, (), "pump power")
        pump_frequency = source(pump, pump_frequency_param, (), "pump frequency")
        flux_output = source(flux, flux_output_param, (), "flux output") if flux is not None else None
        flux_current = source(flux, flux_current_param, (), "flux current") if flux is not None else None
        vna = _find_instrument(vna, "VNA")
        analyzer = _find_instrument(analyzer, "analyzer") if analyzer is not None else None
        load_switch = _find_instrument(load_switch, "load switch") if load_switch is not None else None
        super().__init__(name, **kwargs)
        self.pump, self.flux, self.load_switch = pump, flux, load_switch
        self._vna_instrument, self._analyzer_instrument = vna, analyzer
        self.wave_mixing = wave_mixing
        for component in (pump, flux, vna, analyzer, load_switch):
            disable_nagle(component)
        self._vna: VNA | None = None
        self._analyzer: SpectrumAnalyzer | None = None
        self._pump_output, self._flux_output = pump_output, flux_output

        self.pump_power: DelegateParameter = self.add_parameter(
            "pump_power", parameter_class=DelegateParameter, source=pump_power,
            label="pump power", unit="dBm",
            docstring="Pump power at the source (delegates to the pump source: its validators and "
                      "the station's safety limit on it apply).")
        self.pump_frequency: DelegateParameter = self.add_parameter(
            "pump_frequency", parameter_class=DelegateParameter, source=pump_frequency,
            label="pump frequency", unit="Hz", docstring="Pump frequency (delegates to the pump source).")
        self.pump_on: Parameter = self.add_parameter(
            "pump_on", label="pump on", get_cmd=self._get_pump_on, set_cmd=self._set_pump_on, vals=Bool(),
            docstring="Pump source RF output on/off.")
        if flux is not None:
            self.flux_current: DelegateParameter = self.add_parameter(
                "flux_current", parameter_class=DelegateParameter, source=flux_current,
                label="flux-bias current", unit="A",
                docstring="Flux-bias current (delegates to the flux source; its range and the station's "
                          "safety limit apply).")
            self.flux_on: Parameter = self.add_parameter(
                "flux_on", label="flux bias on", get_cmd=self._get_flux_on, set_cmd=self._set_flux_on, vals=Bool(),
                docstring="Flux-bias source output on/off.")
        self.input_attenuation: ManualParameter = self.add_parameter(
            "input_attenuation", parameter_class=ManualParameter, initial_value=float(input_attenuation_db),
            unit="dB", vals=Numbers(0, 200), label="input attenuation",
            docstring="Attenuation from the VNA port to the paramp input: refers VNA powers to the paramp.")
        self.probe_power: ManualParameter = self.add_parameter(
            "probe_power", parameter_class=ManualParameter, initial_value=float(probe_power_dbm), unit="dBm",
            vals=Numbers(-150, 30), label="VNA probe power",
            docstring="VNA source power for gain measurements (keep the paramp input well below P1dB).")
        self.if_bandwidth: ManualParameter = self.add_parameter(
            "if_bandwidth", parameter_class=ManualParameter, initial_value=float(if_bandwidth_hz), unit="Hz",
            vals=Numbers(1, 15e6), label="VNA IF bandwidth", docstring="VNA IF bandwidth for gain measurements.")
        self.settle_time: ManualParameter = self.add_parameter(
            "settle_time", parameter_class=ManualParameter, initial_value=float(settle_s), unit="s",
            vals=Numbers(0, 60), label="settle time", docstring="Wait after each pump or flux change.")
        self.wave_mixing_order: Parameter = self.add_parameter(
            "wave_mixing_order", get_cmd=lambda: self.wave_mixing, vals=Enum(3, 4), set_cmd=False,
            docstring="3: gain centred at f_pump/2 (flux pumped); 4: at f_pump (current pumped).")
        if load_switch is not None:
            self.load: Parameter = self.add_parameter(
                "load", label="noise load", get_cmd=lambda: load_switch.load(), set_cmd=self._set_load,
                vals=Enum("hot", "cold"),
                docstring="Which load the paramp input sees, 'hot' or 'cold' (set through the load switch, "
                          "then settle_time).")
            self.load_temperature: Parameter = self.add_parameter(
                "load_temperature", label="selected load temperature", unit="K",
                get_cmd=lambda: load_switch.temperature(load_switch.load()), set_cmd=False,
                docstring="Physical temperature of the selected load (the switch's thermometer).")

    def get_idn(self) -> dict[str, str | None]:
        """A meta-instrument has no identity string of its own."""
        return {"vendor": "cryodaq", "model": type(self).__name__, "serial": None, "firmware": None}

    # -- components -------------------------------------------------------------------------
    @staticmethod
    def _source_parameter(instrument: Any, name: str | None, candidates: Sequence[str], what: str) -> Parameter:
        names = [name] if name else list(candidates)
        for n in names:
            param = getattr(instrument, "parameters", {}).get(n)
            if param is not None:
                return param
        raise ValueError(f"ParametricAmplifier: {getattr(instrument, 'name', instrument)!r} has no parameter "
                         f"{' or '.join(repr(n) for n in names)} for the {what}")

    @property
    def vna(self) -> VNA:
        """The VNA behind its adapter (made on first use: the adapter configures the VNA)."""
        if self._vna is None:
            self._vna = vna_adapter(self._vna_instrument)
        return self._vna

    @property
    def analyzer(self) -> SpectrumAnalyzer:
        if self._analyzer_instrument is None:
            raise ValueError(f"{self.name}: this measurement needs a spectrum analyzer (analyzer=...)")
        if self._analyzer is None:
            self._analyzer = analyzer_adapter(self._analyzer_instrument)
        return self._analyzer

    def _get_pump_on(self) -> bool:
        return self._pump_output() in _ON

    def _set_pump_on(self, on: bool) -> None:
        self._set_output(self._pump_output, on)
        self._settle(self.pump)

    def _set_load(self, load: str) -> None:
        self.load_switch.load(load)
        self._settle(self.load_switch)

    def _get_flux_on(self) -> bool:
        return self._flux_output() in _ON

    def _set_flux_on(self, on: bool) -> None:
        self._set_output(self._flux_output, on)
        self._settle(self.flux)

    @staticmethod
    def _set_output(param: Parameter, on: bool) -> None:
        mapping = getattr(param, "val_mapping", None) or {}
        if True in mapping or not mapping:
            param(bool(on))
        else:
            param("on" if on else "off")

    def _settle(self, instrument: Any) -> None:
        """Wait until ``instrument`` has applied what was sent (``*OPC?``), then ``settle_time``."""
        ask = getattr(instrument, "ask", None)
        if ask is not None:
            ask("*OPC?")
        if self.settle_time() > 0:
            time.sleep(self.settle_time())

    def set_pump(self, *, power_dbm: float | None = None, frequency_hz: float | None = None,
                 on: bool | None = None) -> None:
        """Set any of the pump settings, then wait until the source has applied them."""
        if frequency_hz is not None:
            self.pump_frequency(frequency_hz)
        if power_dbm is not None:
            self.pump_power(power_dbm)
        if on is not None:
            self._set_output(self._pump_output, on)
        self._settle(self.pump)

    def set_flux(self, current_a: float) -> None:
        """Set the flux-bias current and wait until the source has applied it."""
        if self.flux is None:
            raise ValueError(f"{self.name}: this amplifier has no flux bias (flux=None)")
        self.flux_current(current_a)
        self._settle(self.flux)

    def signal_center_hz(self) -> float:
        """Where the gain is centred for the present pump: f_p/2 (3-wave mixing) or f_p (4-wave)."""
        fp = float(self.pump_frequency())
        return fp / 2 if self.wave_mixing == 3 else fp

    # -- measurements ------------------------------------------------------------------------
    def _sweep(self, start: float, stop: float, points: int, power_dbm: float,
               averages: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.vna.setup(start, stop, points, power_dbm=power_dbm, if_bandwidth_hz=self.if_bandwidth(),
                       averages=averages)
        return self.vna.sweep_s21()

    def gain_curve(self, start_hz: float, stop_hz: float, points: int = 401, *,
                   probe_power_dbm: float | None = None, averages: int | None = None) -> GainCurve:
        """Power gain vs frequency: |S21 pump on|² / |S21 pump off|² (the pump is left as it was)."""
        if not stop_hz > start_hz or points < 2:
            raise ValueError(f"{self.name}.gain_curve: need start < stop and points >= 2, got "
                             f"{start_hz}, {stop_hz}, {points}")
        power = self.probe_power() if probe_power_dbm is None else float(probe_power_dbm)
        was_on = self.pump_on()
        try:
            self.set_pump(on=False)
            _, s_off = self._sweep(start_hz, stop_hz, points, power, averages)
            self.set_pump(on=True)
            freqs, s_on = self._sweep(start_hz, stop_hz, points, power, averages)
        finally:
            self.set_pump(on=was_on)
        gain = _db(np.abs(s_on) ** 2 / np.maximum(np.abs(s_off) ** 2, 1e-300))
        flux = float(self.flux_current()) if self.flux is not None else math.nan
        return GainCurve(freqs, gain, s_on, s_off, power, float(self.pump_frequency()), float(self.pump_power()), flux)

    def gain_and_bandwidth(self, start_hz: float | None = None, stop_hz: float | None = None,
                           points: int = 401, *, span_hz: float = 200e6, curve: GainCurve | None = None,
                           averages: int | None = None) -> GainBandwidth:
        """Peak gain, centre and −3 dB bandwidth from a Lorentzian fit of the gain curve (in dB).

        Without ``start_hz``/``stop_hz`` the curve spans ``span_hz`` around the expected centre
        (f_pump/2 or f_pump). The −3 dB width comes from the fitted model, B·√(G0/(G0 − 2)).
        """
        import lmfit

        if curve is None:
            if start_hz is None or stop_hz is None:
                center = self.signal_center_hz()
                start_hz, stop_hz = center - span_hz / 2, center + span_hz / 2
            curve = self.gain_curve(start_hz, stop_hz, points, averages=averages)
        f, g = curve.frequencies_hz, curve.gain_db
        i_peak = int(np.argmax(g))
        above = f[g >= g[i_peak] - 3.0]
        width0 = max(float(above.max() - above.min()), 3 * float(np.median(np.diff(f))))
        model = lmfit.Model(_lorentz_db)
        params = model.make_params(peak_db=float(g[i_peak]), center=float(f[i_peak]), width=width0)
        params["peak_db"].set(min=1e-6)
        params["width"].set(min=float(np.median(np.diff(f))) / 10)
        result = model.fit(g, params, f=f)
        peak_db = float(result.params["peak_db"].value)
        width = float(result.params["width"].value)
        g0 = 10 ** (peak_db / 10)
        factor = math.sqrt(g0 / (g0 - 2)) if g0 > 2 else math.nan
        peak_err = result.params["peak_db"].stderr
        width_err = result.params["width"].stderr
        return GainBandwidth(
            peak_gain_db=peak_db, center_hz=float(result.params["center"].value), bandwidth_hz=width * factor,
            lorentz_width_hz=width, gain_bandwidth_product_hz=math.sqrt(g0) * width,
            peak_gain_db_stderr=float(peak_err) if peak_err is not None else math.nan,
            bandwidth_hz_stderr=float(width_err) * factor if width_err is not None else math.nan,
            curve=curve)

    def _s21_at(self, freq_hz: float, power_dbm: float, averages: int | None, points: int = 5,
                span_hz: float = 1e3) -> complex:
        _, s = self._sweep(freq_hz - span_hz / 2, freq_hz + span_hz / 2, points, power_dbm, averages)
        return complex(np.mean(s))

    def s21_reading(self, freq_hz: float, *, points: int = 5, span_hz: float = 1e3,
                    probe_power_dbm: float | None = None, averages: int | None = None) -> S21Reading:
        """S21 at one frequency as things are now (pump untouched): ``points`` over ``span_hz``, their
        complex mean, and |mean|² with its type A uncertainty (``cryodaq.metrology.noise.S21Reading``).

        The gain is the ratio of two such readings, |S21 pump on|² / |S21 pump off|²; a sweep over
        the pump stores the readings and its analysis divides them.
        """
        if points < 1:
            raise ValueError(f"{self.name}.s21_reading: points must be >= 1, got {points}")
        power = self.probe_power() if probe_power_dbm is None else float(probe_power_dbm)
        _, s = self._sweep(freq_hz - span_hz / 2, freq_hz + span_hz / 2, points, power, averages)
        return S21Reading.from_trace(s)

    def s21_at(self, freq_hz: float, *, probe_power_dbm: float | None = None, averages: int | None = None) -> complex:
        """S21 at one frequency as things are now: the mean of :meth:`s21_reading`'s 5 points over 1 kHz."""
        return self.s21_reading(freq_hz, probe_power_dbm=probe_power_dbm, averages=averages).mean

    def s21_trace(self, start_hz: float, stop_hz: float, points: int = 201, *,
                  probe_power_dbm: float | None = None, averages: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One VNA sweep as things are now (pump untouched): (frequencies, complex S21)."""
        power = self.probe_power() if probe_power_dbm is None else float(probe_power_dbm)
        return self._sweep(start_hz, stop_hz, points, power, averages)

    def gain_at(self, freq_hz: float, *, probe_power_dbm: float | None = None, averages: int | None = None) -> float:
        """Gain (dB) at one frequency: a narrow pump-off and pump-on measurement (pump left as it was)."""
        curve = self.gain_curve(freq_hz - 500.0, freq_hz + 500.0, 5, probe_power_dbm=probe_power_dbm,
                                averages=averages)
        return float(_db(np.abs(np.mean(curve.s21_pump_on)) ** 2 / np.abs(np.mean(curve.s21_pump_off)) ** 2))

    def p1db(self, freq_hz: float, power_start_dbm: float, power_stop_dbm: float, points: int = 31, *,
             averages: int | None = None, reference_points: int = 3) -> P1dBResult:
        """1 dB compression point at ``freq_hz`` from a VNA power sweep (source powers in dBm).

        All powers are swept with the pump off, then with it on; gain(P) = |S21_on|²/|S21_off|².
        The small-signal gain is the mean of the ``reference_points`` lowest powers; P1dB is
        where the gain first falls 1 dB below it (linear interpolation), referred to the paramp
        input by ``input_attenuation``. NaN (``compressed=False``) if it never does.
        """
        if points < reference_points + 2 or not power_stop_dbm > power_start_dbm:
            raise ValueError(f"{self.name}.p1db: need power_start < power_stop and points >= "
                             f"{reference_points + 2}")
        powers = np.linspace(power_start_dbm, power_stop_dbm, points)
        was_on = self.pump_on()
        previous_power = self.vna.power_dbm
        try:
            self.set_pump(on=False)
            s_off = np.array([self._s21_at(freq_hz, p, averages) for p in powers])
            self.set_pump(on=True)
            s_on = np.array([self._s21_at(freq_hz, p, averages) for p in powers])
        finally:
            self.set_pump(on=was_on)
            self.vna.power_dbm = previous_power
        gain = _db(np.abs(s_on) ** 2 / np.abs(s_off) ** 2)
        p_in = powers - self.input_attenuation()
        g_ss = float(np.mean(gain[:reference_points]))
        below = np.nonzero(gain < g_ss - 1.0)[0]
        below = below[below >= reference_points]
        if below.size == 0:
            p1 = math.nan
        else:
            i = int(below[0])
            g1, g2 = gain[i - 1], gain[i]
            p1 = float(p_in[i - 1] + (g_ss - 1.0 - g1) * (p_in[i] - p_in[i - 1]) / (g2 - g1))
        return P1dBResult(float(freq_hz), powers, p_in, gain, g_ss, p1, p1 + g_ss - 1.0, bool(below.size))

    def noise_reading(self, freq_hz: float, *, span_hz: float = 1e6, points: int = 201, rbw_hz: float = 10e3,
                      sweep_time_s: float | None = 1.0) -> NoiseReading:
        """Noise power over ``span_hz`` around ``freq_hz``, as things are now: the mean of one analyzer
        trace's points (mW per RBW, linear; RMS averaging, average detector) with its type A
        uncertainty from their scatter (correlated points counted as fewer:
        ``cryodaq.metrology.noise.NoiseReading``). With N = RBW·sweep_time/points independent
        samples per point the mean carries ≈ 1/√(N·points). Nothing is switched: the Y-factor
        sweep sets the load and the pump around it.
        """
        _, dbm = self._analyzer_trace(freq_hz, span_hz, points, rbw_hz, sweep_time_s)
        return NoiseReading.from_trace_mw(_mw(dbm))

    def noise_power_mw(self, freq_hz: float, *, span_hz: float = 1e6, points: int = 201, rbw_hz: float = 10e3,
                       sweep_time_s: float | None = 1.0) -> float:
        """Mean noise power (mW per RBW, linear): :meth:`noise_reading`'s mean."""
        return self.noise_reading(freq_hz, span_hz=span_hz, points=points, rbw_hz=rbw_hz,
                                  sweep_time_s=sweep_time_s).mean_mw

    def _analyzer_trace(self, freq_hz: float, span_hz: float, points: int, rbw_hz: float,
                        sweep_time_s: float | None) -> tuple[np.ndarray, np.ndarray]:
        """One analyzer trace over ``freq_hz ± span_hz/2``, checked to be there (an analyzer that
        refused the setting measures elsewhere: that must not pass for a noise reading)."""
        tolerance = max(0.01 * span_hz, 1.0)
        self.analyzer.setup(freq_hz, span_hz, points, rbw_hz, sweep_time_s)
        freqs, dbm = self.analyzer.trace_dbm()
        centre, span = (freqs[0] + freqs[-1]) / 2, freqs[-1] - freqs[0]
        if abs(centre - freq_hz) <= tolerance and abs(span - span_hz) <= tolerance:
            return freqs, dbm
        raise RuntimeError(f"{self.name}: the analyzer measures {freqs[0]:.9g}-{freqs[-1]:.9g} Hz, not "
                           f"{freq_hz:.9g} ± {span_hz / 2:.6g} Hz as set up (check its frequency range and errors)")

    def snr_improvement(self, freq_hz: float, *, span_hz: float = 1e6, points: int = 201, rbw_hz: float = 10e3,
                        sweep_time_s: float | None = 1.0, averages: int | None = None) -> SNRImprovement:
        """SNR gain of switching the pump on: ΔSNR = G / (N_on/N_off) = T_sys,off / T_sys,on.

        G from the VNA at ``freq_hz``; N_on, N_off the analyzer's mean noise power over
        ``span_hz`` around ``freq_hz`` (keep the span well inside the gain bandwidth and away
        from the pump tone). The pump is left as it was.
        """
        gain_db = self.gain_at(freq_hz, averages=averages)
        was_on = self.pump_on()
        try:
            self.set_pump(on=False)
            n_off = self.noise_power_mw(freq_hz, span_hz=span_hz, points=points, rbw_hz=rbw_hz,
                                        sweep_time_s=sweep_time_s)
            self.set_pump(on=True)
            n_on = self.noise_power_mw(freq_hz, span_hz=span_hz, points=points, rbw_hz=rbw_hz,
                                       sweep_time_s=sweep_time_s)
        finally:
            self.set_pump(on=was_on)
        rise = float(_db(n_on / n_off))
        return SNRImprovement(float(freq_hz), gain_db, float(_db(n_on)), float(_db(n_off)), rise, gain_db - rise)
