"""Simulated Keysight PNA (N52xx) vector network analyser, channel 1.

Speaks the SCPI subset that ``qcodes.instrument_drivers.Keysight.KeysightN5222B``
(and the other ``KeysightPNABase`` models) sends, over a raw socket (LF terminated):
identification and options, port powers, RF output, IF bandwidth, averaging,
frequencies, points, sweep mode/type/time, group triggering, trigger source,
measurements (``CALC:PAR:...``), formats, electrical delay, ``FORM REAL,32|64|ASC``
with ``FORM:BORD NORM|SWAP`` and ``CALC:DATA? FDATA|SDATA`` (IEEE 488.2
definite-length blocks in binary). After a preset the PNA has one measurement,
``CH1_S11_1`` measuring S11 (as a real one), sweep mode CONT.

Sweeps: ``SENS:SWE:MODE SING`` runs one sweep of every measurement, ``GRO`` runs
``SENS:SWE:GRO:COUN`` sweeps; both end in HOLD (immediately, or after the nominal
sweep time × ``sweep_time_scale``). With the trigger source MAN or EXT they wait for
``INIT:IMM`` / ``*TRG``. In CONT mode a data query sweeps first. Averaging (``SENS:AVER
ON``) accumulates sweeps as :class:`~sim_instruments.faces.vna_settings.Averager` says; a
changed stimulus (frequencies, points, power, IF bandwidth) restarts it. The data
come from :mod:`sim_instruments.world.vna` (the world's S21, noise ∝ √IFBW / √avg).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_instruments.faces.vna_settings import (
    Averager,
    DataFormat,
    SweepSettings,
    fmt_number,
    format_trace,
    s_parameter_name,
)
from sim_instruments.servers.scpi_command_tree import ScpiFace
from sim_instruments.servers.scpi_parsing import (
    ScpiError,
    parse_bool,
    parse_float,
    parse_int,
    split_args,
    unquote,
)
from sim_instruments.world.vna import VnaFrontEnd, VnaModel
from sim_instruments.world.world import World

#: model -> (min Hz, max Hz, ports, min power dBm without / with a source-attenuator option)
MODELS = {
    "N5222B": (10e6, 26.5e9, 4, -30.0, -95.0),
    "N5245A": (10e6, 50e9, 4, -30.0, -90.0),
    "N5230C": (300e3, 13.5e9, 2, -90.0, -90.0),
    "N5232B": (300e3, 20e9, 4, -90.0, -90.0),
}
ATTENUATOR_OPTIONS = {"217", "219", "220", "417", "419", "420"}
MAX_POWER_DBM = 13.0
FORMATS = ("MLIN", "MLOG", "PHAS", "UPH", "IMAG", "REAL", "POL", "POLAR", "SMIT", "SMITH", "GDEL", "SWR")
SWEEP_TYPES = ("LIN", "LOG", "CW")


@dataclass
class _Measurement:
    number: int
    name: str
    parameter: str
    fmt: str = "MLOG"
    electrical_delay_s: float = 0.0
    data: np.ndarray | None = None
    signature: tuple | None = None
    averager: Averager = field(default_factory=Averager)


class KeysightPnaFace(ScpiFace):
    """The PNA face: an LF line server on ``host:port`` measuring the world's feedline.

    Options: ``model`` (a key of :data:`MODELS`), ``options`` (what ``*OPT?`` lists;
    a source-attenuator option such as 219 extends the power range down to -95 dBm),
    and the :class:`~sim_instruments.world.vna.VnaFrontEnd` keys.
    """

    face = "keysight_pna"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "keysight_pna",
                 model: str = "N5222B", options: str = "219,419", **frontend: Any) -> None:
        if model not in MODELS:
            raise ValueError(f"{name}: unknown PNA model {model!r}; known: {sorted(MODELS)}")
        super().__init__(world, host, port, name)
        self.model = model
        self.idn = f"Keysight Technologies,{model},MY00000000,A.13.95.09"
        installed = [o.strip() for o in str(options).split(",") if o.strip()]
        self.options = '"' + ",".join(installed) + '"'
        fmin, fmax, self.n_ports, pmin, pmin_att = MODELS[model]
        self.fmin_hz, self.fmax_hz = fmin, fmax
        self.min_power_dbm = pmin_att if ATTENUATOR_OPTIONS.intersection(installed) else pmin
        self.frontend = VnaFrontEnd(**frontend)
        self.physics = VnaModel(world, self.frontend, name)
        self._register()
        self.reset()

    # -- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """*RST / SYST:PRES: the preset state (one measurement CH1_S11_1, sweep mode CONT)."""
        self.sweep = SweepSettings(fmin_hz=self.fmin_hz, fmax_hz=self.fmax_hz, start_hz=self.fmin_hz,
                                   stop_hz=self.fmax_hz, points=201, power_dbm=-5.0, ifbw_hz=100e3,
                                   max_ifbw_hz=15e6)
        self.port_power = {p: -5.0 for p in range(1, self.n_ports + 1)}
        self.rf_on = True
        self.mode = "CONT"
        self.group_count = 1
        self.trigger_source = "IMM"
        self.pending_sweeps = 0  # triggered but waiting for a manual/external trigger
        self.busy_until = 0.0
        self.fom_cw_hz = 1e9
        self.measurements: dict[int, _Measurement] = {1: _Measurement(1, "CH1_S11_1", "S11")}
        self.active: int | None = 1
        self.displayed = {1: True}
        self.data_format = DataFormat()

    def _measurement(self) -> _Measurement:
        if self.active is None or self.active not in self.measurements:
            raise ScpiError(-221, "Settings conflict; no measurement selected")
        return self.measurements[self.active]

    def _signature(self) -> tuple:
        return self.sweep.signature() + (self.port_power[1], self.sweep.ifbw_hz)

    def _run_sweeps(self, n: int) -> None:
        """``n`` sweeps of every measurement of the channel, into their averagers."""
        freqs = self.sweep.frequencies()
        sig = self._signature()
        power = self.port_power[1]
        for m in self.measurements.values():
            if m.signature != sig:
                m.averager.clear()
                m.signature = sig
            if self.sweep.avg_on:
                z = self.physics.measure(m.parameter, freqs, power, self.sweep.ifbw_hz, n, self.rf_on)
                m.data = m.averager.add(z, n, self.sweep.avg_count)
            else:
                m.data = self.physics.measure(m.parameter, freqs, power, self.sweep.ifbw_hz, 1, self.rf_on)
        duration = self.frontend.sweep_time_scale * n * self.sweep.sweep_time_s()
        self.busy_until = time.monotonic() + duration

    def _trigger_mode(self, mode: str, n: int) -> None:
        self.mode = mode
        if self.trigger_source == "IMM":
            self._run_sweeps(n)
            self.pending_sweeps = 0
        else:
            self.pending_sweeps = n

    def _current_mode(self) -> str:
        if self.mode in ("SING", "GRO") and self.pending_sweeps == 0 and time.monotonic() >= self.busy_until:
            self.mode = "HOLD"
        return self.mode

    def _trace_data(self, kind: str) -> np.ndarray:
        m = self._measurement()
        if self.mode == "CONT" or m.data is None or m.signature != self._signature():
            self._run_sweeps(1)
        freqs = self.sweep.frequencies()
        z = m.data * np.exp(2j * np.pi * np.mod(freqs * m.electrical_delay_s, 1.0))
        if kind == "SDATA":
            return np.column_stack([z.real, z.imag]).ravel()
        return format_trace(z, m.fmt, freqs)

    # -- command table ------------------------------------------------------------------------------
    def _register(self) -> None:
        t = self.commands
        t.add("SYSTem:PRESet", set=lambda s, a: self.reset())
        t.add("*TRG", set=lambda s, a: self._manual_trigger())
        t.add("INITiate#[:IMMediate]", set=lambda s, a: self._manual_trigger())
        t.add("OUTPut[:STATe]", set=self._set_output, query=lambda s, a: "1" if self.rf_on else "0")
        t.add("[SOURce#]:POWer#[:LEVel][:IMMediate][:AMPLitude]", set=self._set_power, query=self._get_power)
        for node in ("BANDwidth", "BWIDth"):
            t.add(f"[SENSe#]:{node}[:RESolution]", set=lambda s, a: self.sweep.set_ifbw(parse_float(a, "SENS:BAND", "HZ")),
                  query=lambda s, a: fmt_number(self.sweep.ifbw_hz))
        t.add("[SENSe#]:AVERage[:STATe]", set=self._set_avg_state, query=lambda s, a: "1" if self.sweep.avg_on else "0")
        t.add("[SENSe#]:AVERage:COUNt", set=self._set_avg_count, query=lambda s, a: str(self.sweep.avg_count))
        t.add("[SENSe#]:AVERage:CLEar", set=lambda s, a: self._clear_averages())
        t.add("[SENSe#]:FREQuency:STARt", set=lambda s, a: self.sweep.set_start(parse_float(a, "SENS:FREQ:STAR", "HZ")),
              query=lambda s, a: fmt_number(self.sweep.start_hz))
        t.add("[SENSe#]:FREQuency:STOP", set=lambda s, a: self.sweep.set_stop(parse_float(a, "SENS:FREQ:STOP", "HZ")),
              query=lambda s, a: fmt_number(self.sweep.stop_hz))
        t.add("[SENSe#]:FREQuency:CENTer", set=lambda s, a: self.sweep.set_center(parse_float(a, "SENS:FREQ:CENT", "HZ")),
              query=lambda s, a: fmt_number((self.sweep.start_hz + self.sweep.stop_hz) / 2))
        t.add("[SENSe#]:FREQuency:SPAN", set=lambda s, a: self.sweep.set_span(parse_float(a, "SENS:FREQ:SPAN", "HZ")),
              query=lambda s, a: fmt_number(self.sweep.stop_hz - self.sweep.start_hz))
        for node in ("CW", "FIXed"):
            t.add(f"[SENSe#]:FREQuency:{node}", set=self._set_cw, query=lambda s, a: fmt_number(self.sweep.cw_hz))
        t.add("[SENSe#]:SWEep:POINts", set=self._set_points, query=lambda s, a: str(self.sweep.points))
        t.add("[SENSe#]:SWEep:TIME", query=lambda s, a: repr(float(self.sweep.sweep_time_s())))
        t.add("[SENSe#]:SWEep:TIME:AUTO", set=lambda s, a: parse_bool(a, "SENS:SWE:TIME:AUTO") and None,
              query=lambda s, a: "1")
        t.add("[SENSe#]:SWEep:MODE", set=self._set_mode, query=lambda s, a: self._current_mode())
        t.add("[SENSe#]:SWEep:TYPE", set=self._set_sweep_type, query=lambda s, a: self.sweep.sweep_type)
        t.add("[SENSe#]:SWEep:GROups:COUNt", set=self._set_group_count, query=lambda s, a: str(self.group_count))
        t.add("[SENSe#]:FOM:RANGe#:FREQuency:CW", set=self._set_fom_cw, query=lambda s, a: fmt_number(self.fom_cw_hz))
        t.add("TRIGger[:SEQuence]:SOURce", set=self._set_trigger_source, query=lambda s, a: self.trigger_source)
        t.add("CALCulate#:PARameter:MNUMber[:SELect]", set=self._select_number, query=self._get_number)
        t.add("CALCulate#:PARameter:CATalog:EXTended", query=self._catalog)
        t.add("CALCulate#:PARameter:CATalog", query=self._catalog)
        t.add("CALCulate#:PARameter:SELect", set=self._select_name)
        t.add("CALCulate#:PARameter:MODify:EXTended", set=self._modify)
        t.add("CALCulate#:PARameter:DEFine:EXTended", set=self._define)
        t.add("CALCulate#:PARameter:DELete", set=self._delete)
        t.add("CALCulate#:FORMat", set=self._set_format, query=lambda s, a: self._measurement().fmt)
        t.add("CALCulate#:CORRection:EDELay[:TIME]", set=self._set_edel,
              query=lambda s, a: repr(float(self._measurement().electrical_delay_s)))
        t.add("CALCulate#:DATA", query=self._data)
        t.add("FORMat[:DATA]", set=lambda s, a: self.data_format.set_form(a),
              query=lambda s, a: self.data_format.form_query())
        t.add("FORMat:BORDer", set=lambda s, a: self.data_format.set_order(a),
              query=lambda s, a: "NORM" if self.data_format.big_endian else "SWAP")
        t.add("DISPlay[:WINDow#]:TRACe#:STATe", set=self._set_display, query=self._get_display)

    # -- handlers -------------------------------------------------------------------------------------
    def _manual_trigger(self) -> None:
        if self.pending_sweeps:
            self._run_sweeps(self.pending_sweeps)
            self.pending_sweeps = 0

    def _set_output(self, s: tuple[int, ...], a: str) -> None:
        self.rf_on = parse_bool(a, "OUTP")

    def _set_power(self, s: tuple[int, ...], a: str) -> None:
        port = s[1]
        if port not in self.port_power:
            raise ScpiError(-114, f"Header suffix out of range; port {port} of {self.n_ports}")
        value = parse_float(a, "SOUR:POW", "DBM")
        if not self.min_power_dbm <= value <= MAX_POWER_DBM:
            raise ScpiError(-222, f"Data out of range; power {value} dBm outside "
                                  f"{self.min_power_dbm}..{MAX_POWER_DBM} dBm")
        self.port_power[port] = value

    def _get_power(self, s: tuple[int, ...], a: str) -> str:
        port = s[1]
        if port not in self.port_power:
            raise ScpiError(-114, f"Header suffix out of range; port {port} of {self.n_ports}")
        return fmt_number(self.port_power[port])

    def _set_avg_state(self, s: tuple[int, ...], a: str) -> None:
        on = parse_bool(a, "SENS:AVER")
        if on and not self.sweep.avg_on:
            self._clear_averages()
        self.sweep.avg_on = on

    def _set_avg_count(self, s: tuple[int, ...], a: str) -> None:
        self.sweep.avg_count = parse_int(a, "SENS:AVER:COUN", 1, 65536)

    def _clear_averages(self) -> None:
        for m in self.measurements.values():
            m.averager.clear()

    def _set_cw(self, s: tuple[int, ...], a: str) -> None:
        self.sweep.cw_hz = self.sweep.clamp(parse_float(a, "SENS:FREQ:CW", "HZ"))

    def _set_fom_cw(self, s: tuple[int, ...], a: str) -> None:
        self.fom_cw_hz = self.sweep.clamp(parse_float(a, "SENS:FOM:RANG:FREQ:CW", "HZ"))

    def _set_points(self, s: tuple[int, ...], a: str) -> None:
        self.sweep.points = parse_int(a, "SENS:SWE:POIN", 1, 100001)

    def _set_mode(self, s: tuple[int, ...], a: str) -> None:
        mode = a.strip().upper()
        mode = {"CONTINUOUS": "CONT", "SINGLE": "SING", "GROUPS": "GRO"}.get(mode, mode)
        if mode == "SING":
            self._trigger_mode("SING", 1)
        elif mode == "GRO":
            self._trigger_mode("GRO", self.group_count)
        elif mode in ("HOLD", "CONT"):
            self.mode, self.pending_sweeps = mode, 0
        else:
            raise ScpiError(-224, f"Illegal parameter value; SENS:SWE:MODE {a!r}")

    def _set_sweep_type(self, s: tuple[int, ...], a: str) -> None:
        kind = a.strip().upper()[:3]
        if kind not in SWEEP_TYPES:
            raise ScpiError(-221, f"Settings conflict; sweep type {a.strip()!r} is not simulated "
                                  f"(simulated: {', '.join(SWEEP_TYPES)})")
        self.sweep.sweep_type = kind

    def _set_group_count(self, s: tuple[int, ...], a: str) -> None:
        self.group_count = parse_int(a, "SENS:SWE:GRO:COUN", 1, 2_000_000)

    def _set_trigger_source(self, s: tuple[int, ...], a: str) -> None:
        src = a.strip().upper()[:3]
        if src not in ("IMM", "EXT", "MAN"):
            raise ScpiError(-224, f"Illegal parameter value; TRIG:SOUR {a!r}")
        self.trigger_source = src

    def _select_number(self, s: tuple[int, ...], a: str) -> None:
        n = parse_int(a, "CALC:PAR:MNUM", 1, 200)
        if n not in self.measurements:
            raise ScpiError(-221, f"Settings conflict; measurement {n} does not exist")
        self.active = n

    def _get_number(self, s: tuple[int, ...], a: str) -> str:
        return str(self._measurement().number)

    def _catalog(self, s: tuple[int, ...], a: str) -> str:
        return '"' + ",".join(f"{m.name},{m.parameter}" for m in self.measurements.values()) + '"'

    def _by_name(self, name: str) -> _Measurement:
        for m in self.measurements.values():
            if m.name == name:
                return m
        raise ScpiError(-221, f"Settings conflict; no measurement named {name!r}")

    def _select_name(self, s: tuple[int, ...], a: str) -> None:
        self.active = self._by_name(unquote(a)).number

    def _modify(self, s: tuple[int, ...], a: str) -> None:
        m = self._measurement()
        m.parameter = s_parameter_name(unquote(a), self.n_ports, "CALC:PAR:MOD:EXT")
        m.data, m.signature = None, None
        m.averager.clear()

    def _define(self, s: tuple[int, ...], a: str) -> None:
        args = split_args(a)
        if len(args) != 2:
            raise ScpiError(-109, "Missing parameter; CALC:PAR:DEF:EXT expects 'name','S<i><j>'")
        name, param = args[0], s_parameter_name(args[1], self.n_ports, "CALC:PAR:DEF:EXT")
        if any(m.name == name for m in self.measurements.values()):
            raise ScpiError(-221, f"Settings conflict; measurement {name!r} exists")
        n = max(self.measurements, default=0) + 1
        self.measurements[n] = _Measurement(n, name, param)

    def _delete(self, s: tuple[int, ...], a: str) -> None:
        m = self._by_name(unquote(a))
        del self.measurements[m.number]
        if self.active == m.number:
            self.active = None

    def _set_format(self, s: tuple[int, ...], a: str) -> None:
        fmt = a.strip().upper()
        if fmt not in FORMATS:
            raise ScpiError(-224, f"Illegal parameter value; CALC:FORM {a!r} (known: {', '.join(FORMATS)})")
        self._measurement().fmt = fmt

    def _set_edel(self, s: tuple[int, ...], a: str) -> None:
        self._measurement().electrical_delay_s = parse_float(a, "CALC:CORR:EDEL:TIME", "S")

    def _data(self, s: tuple[int, ...], a: str) -> str:
        kind = a.strip().upper()
        if kind not in ("FDATA", "SDATA"):
            raise ScpiError(-224, f"Illegal parameter value; CALC:DATA? {a!r} (simulated: FDATA, SDATA)")
        return self.data_format.encode(self._trace_data(kind))

    def _set_display(self, s: tuple[int, ...], a: str) -> None:
        self.displayed[s[1]] = parse_bool(a, "DISP:TRAC:STAT")

    def _get_display(self, s: tuple[int, ...], a: str) -> str:
        return "1" if self.displayed.get(s[1], False) else "0"
