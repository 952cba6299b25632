"""Simulated Rohde & Schwarz ZNB vector network analyser (ZNB4/8/20/40, 2 or 4 ports).

Speaks the SCPI subset that ``qcodes.instrument_drivers.rohde_schwarz.RohdeSchwarzZNB20``
(any ``RohdeSchwarzZNBBase``) sends with its ``RohdeSchwarzZNBChannel`` channels, over
a raw socket, replies terminated by LF: identification, port count, reset, traces and
channels (``CALC<ch>:PAR:SDEF/DEL:ALL/MEAS?/SEL``), formats, ``CALC<ch>:DATA? SDAT|FDAT``
(ASCII, or ``FORM REAL,32|64`` blocks), frequencies, points, power, IF bandwidth,
averaging, sweep type/time, electrical delay, ``INIT<ch>:IMM; *WAI``, continuous
mode, RF output, reference oscillator, the display commands (accepted, no effect),
and compound lines (``DISP:LAY GRID;:DISP:LAY:GRID 2,2``). After ``*RST``: channel 1
with trace ``Trc1`` measuring S21, continuous sweeping, RF on.

``INIT<ch>:IMM`` sweeps every trace of the channel once (taking the nominal sweep time ×
``sweep_time_scale``, so ``*WAI`` after it is trivially satisfied); with averaging on,
sweeps accumulate since the last ``SENS<ch>:AVER:CLE``. With continuous sweeping on,
a data query sweeps first. Data come from :mod:`sim_instruments.world.vna`.

Electrical delay ``SENS<ch>:CORR:EDEL<port>:TIME``: S_ij is corrected by the sum of the
delays of ports i and j (S_ii by twice port i's); ``...:EDEL:AUTO ONCE`` sets the delay
of the selected trace's receiving port i (port 2 for S21, the one the qcodes driver's
``electrical_delay`` reads) so that the trace's linear phase slope vanishes.
"""

from __future__ import annotations

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
    sweep_and_wait,
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

#: model -> (min Hz, max Hz, min source power dBm): the ranges the qcodes driver assumes
MODELS = {
    "ZNB4": (9e3, 4.5e9, -80.0),
    "ZNB8": (9e3, 8.5e9, -80.0),
    "ZNB20": (100e3, 20e9, -60.0),
    "ZNB40": (10e6, 40e9, -60.0),
}
MAX_POWER_DBM = 25.0
MAX_IFBW_HZ = 1e6
FORMATS = ("MLOG", "MLIN", "PHAS", "UPH", "POL", "SMIT", "ISM", "SWR", "REAL", "IMAG", "GDEL", "COMP")
SWEEP_TYPES = ("LIN", "LOG", "CW", "POIN")


@dataclass
class _Trace:
    name: str
    channel: int
    parameter: str
    fmt: str = "MLOG"
    data: np.ndarray | None = None
    signature: tuple | None = None
    averager: Averager = field(default_factory=Averager)


@dataclass
class _Channel:
    sweep: SweepSettings
    selected: str | None = None
    measuring: bool = True
    trigger_source: str = "IMM"
    sweep_time_auto: bool = True
    electrical_delay_s: dict[int, float] = field(default_factory=dict)


class RohdeSchwarzZnbFace(ScpiFace):
    """The ZNB face: an LF line server on ``host:port`` measuring the world's feedline.

    Options: ``model`` (a key of :data:`MODELS`), ``ports`` (2 or 4), and the
    :class:`~sim_instruments.world.vna.VnaFrontEnd` keys.
    """

    face = "rs_znb"
    options = "ZNB-K2"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "rs_znb",
                 model: str = "ZNB20", ports: int = 2, **frontend: Any) -> None:
        if model not in MODELS:
            raise ValueError(f"{name}: unknown ZNB model {model!r}; known: {sorted(MODELS)}")
        if ports not in (2, 4):
            raise ValueError(f"{name}: ports must be 2 or 4, got {ports!r}")
        super().__init__(world, host, port, name)
        self.model = model
        self.n_ports = int(ports)
        self.idn = f"Rohde-Schwarz,{model}-{self.n_ports}Port,1311601062100000,3.45"
        self.fmin_hz, self.fmax_hz, self.min_power_dbm = MODELS[model]
        self.frontend = VnaFrontEnd(**frontend)
        self.physics = VnaModel(world, self.frontend, name)
        self._register()
        self.reset()

    # -- state ------------------------------------------------------------------------------------
    def _new_channel(self) -> _Channel:
        sweep = SweepSettings(fmin_hz=self.fmin_hz, fmax_hz=self.fmax_hz, start_hz=self.fmin_hz,
                              stop_hz=self.fmax_hz, points=201, power_dbm=-10.0, ifbw_hz=10e3,
                              max_ifbw_hz=MAX_IFBW_HZ, avg_count=10)
        return _Channel(sweep=sweep, electrical_delay_s={p: 0.0 for p in range(1, self.n_ports + 1)})

    def reset(self) -> None:
        """*RST / SYST:PRES: channel 1 with trace Trc1 measuring S21, continuous sweeping, RF on."""
        self.channels: dict[int, _Channel] = {1: self._new_channel()}
        self.traces: dict[str, _Trace] = {"Trc1": _Trace("Trc1", 1, "S21")}
        self.channels[1].selected = "Trc1"
        self.continuous = True
        self.rf_on = True
        self.rosc_source = "INT"
        self.rosc_ext_hz = 10e6
        self.data_format = DataFormat()

    def _channel(self, n: int, create: bool = False) -> _Channel:
        if n not in self.channels:
            if not create:
                raise ScpiError(-114, f"Header suffix out of range; channel {n} does not exist")
            self.channels[n] = self._new_channel()
        return self.channels[n]

    def _selected(self, n: int) -> _Trace:
        ch = self._channel(n)
        if ch.selected is None or ch.selected not in self.traces:
            raise ScpiError(-221, f"Settings conflict; channel {n} has no selected trace")
        return self.traces[ch.selected]

    @staticmethod
    def _signature(ch: _Channel) -> tuple:
        return ch.sweep.signature() + (ch.sweep.power_dbm, ch.sweep.ifbw_hz)

    def _sweep_channel(self, n: int) -> None:
        """One sweep of every trace of channel ``n`` (into the averagers when averaging)."""
        ch = self._channel(n)
        freqs = ch.sweep.frequencies()
        sig = self._signature(ch)
        for tr in self.traces.values():
            if tr.channel != n:
                continue
            if tr.signature != sig:
                tr.averager.clear()
                tr.signature = sig
            z = self.physics.measure(tr.parameter, freqs, ch.sweep.power_dbm, ch.sweep.ifbw_hz, 1, self.rf_on)
            tr.data = tr.averager.add(z, 1, ch.sweep.avg_count) if ch.sweep.avg_on else z
        sweep_and_wait(self.frontend, ch.sweep, 1)

    def _trace_delay_s(self, ch: _Channel, tr: _Trace) -> float:
        i, j = int(tr.parameter[1]), int(tr.parameter[2])
        return ch.electrical_delay_s.get(i, 0.0) + ch.electrical_delay_s.get(j, 0.0)

    def _corrected(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(frequencies, complex data with the electrical delay removed) of channel ``n``'s selected trace."""
        ch = self._channel(n)
        tr = self._selected(n)
        if self.continuous or tr.data is None or tr.signature != self._signature(ch):
            self._sweep_channel(n)
        freqs = ch.sweep.frequencies()
        tau = self._trace_delay_s(ch, tr)
        return freqs, tr.data * np.exp(2j * np.pi * np.mod(freqs * tau, 1.0))

    # -- command table ------------------------------------------------------------------------------
    def _register(self) -> None:
        t = self.commands
        t.add("SYSTem:PRESet", set=lambda s, a: self.reset())
        t.add("INSTrument:PORT:COUNt", query=lambda s, a: str(self.n_ports))
        t.add("OUTPut#[:STATe]", set=self._set_output, query=lambda s, a: "1" if self.rf_on else "0")
        t.add("[SENSe]:ROSCillator[:SOURce]", set=self._set_rosc, query=lambda s, a: self.rosc_source)
        t.add("[SENSe]:ROSCillator:EXTernal:FREQuency", set=self._set_rosc_ext,
              query=lambda s, a: fmt_number(self.rosc_ext_hz))
        t.add("STATus:QUEStionable:INTegrity:HARDware[:EVENt]", query=lambda s, a: "0")
        # traces and channels
        t.add("CALCulate#:PARameter:SDEFine", set=self._sdef)
        t.add("CALCulate#:PARameter:DELete:ALL", set=lambda s, a: self._delete_all())
        t.add("CALCulate#:PARameter:DELete", set=self._delete)
        t.add("CALCulate#:PARameter:MEASure", set=self._set_meas, query=self._get_meas)
        t.add("CALCulate#:PARameter:SELect", set=self._select, query=self._get_selected)
        t.add("CALCulate#:PARameter:CATalog", query=self._catalog)
        t.add("CONFigure:TRACe:CATalog", query=self._trace_catalog)
        t.add("CONFigure:CHANnel#:CATalog", query=self._trace_catalog)
        t.add("CONFigure:CHANnel#:MEASure[:ALL]", set=self._set_measuring,
              query=lambda s, a: "1" if self._channel(s[0]).measuring else "0")
        t.add("CALCulate#:FORMat", set=self._set_format, query=lambda s, a: self._selected(s[0]).fmt)
        t.add("CALCulate#:DATA", query=self._data)
        # stimulus
        self._add_frequency("STARt", lambda sw, v: sw.set_start(v), lambda sw: sw.start_hz)
        self._add_frequency("STOP", lambda sw, v: sw.set_stop(v), lambda sw: sw.stop_hz)
        self._add_frequency("CENTer", lambda sw, v: sw.set_center(v), lambda sw: (sw.start_hz + sw.stop_hz) / 2)
        self._add_frequency("SPAN", lambda sw, v: sw.set_span(v), lambda sw: sw.stop_hz - sw.start_hz)
        for node in ("CW", "FIXed"):
            self._add_frequency(node, lambda sw, v: setattr(sw, "cw_hz", sw.clamp(v)), lambda sw: sw.cw_hz)
        t.add("[SENSe#]:SWEep:POINts", set=self._set_points,
              query=lambda s, a: str(self._channel(s[0]).sweep.points))
        t.add("[SENSe#]:SWEep:TYPE", set=self._set_sweep_type,
              query=lambda s, a: self._channel(s[0]).sweep.sweep_type)
        t.add("[SENSe#]:SWEep:TIME", query=lambda s, a: repr(float(self._channel(s[0]).sweep.sweep_time_s())))
        t.add("[SENSe#]:SWEep:TIME:AUTO", set=self._set_sweep_time_auto,
              query=lambda s, a: "1" if self._channel(s[0]).sweep_time_auto else "0")
        for node in ("BANDwidth", "BWIDth"):
            t.add(f"[SENSe#]:{node}[:RESolution]", set=self._set_bandwidth,
                  query=lambda s, a: fmt_number(self._channel(s[0]).sweep.ifbw_hz))
        t.add("[SENSe#]:AVERage[:STATe]", set=self._set_avg_state,
              query=lambda s, a: "1" if self._channel(s[0]).sweep.avg_on else "0")
        t.add("[SENSe#]:AVERage:COUNt", set=self._set_avg_count,
              query=lambda s, a: str(self._channel(s[0]).sweep.avg_count))
        t.add("[SENSe#]:AVERage:CLEar", set=self._clear_averages)
        t.add("[SENSe#]:CORRection:EDELay#[:TIME]", set=self._set_edel, query=self._get_edel)
        t.add("[SENSe#]:CORRection:EDELay#:AUTO", set=self._auto_edel)
        t.add("SOURce#:POWer[:LEVel][:IMMediate][:AMPLitude]", set=self._set_power,
              query=lambda s, a: fmt_number(self._channel(s[0]).sweep.power_dbm))
        t.add("TRIGger#[:SEQuence]:SOURce", set=self._set_trigger_source,
              query=lambda s, a: self._channel(s[0]).trigger_source)
        # sweeps
        t.add("INITiate#[:IMMediate]", set=lambda s, a: self._sweep_channel(s[0]))
        t.add("INITiate#:CONTinuous:ALL", set=self._set_continuous, query=self._get_continuous)
        t.add("INITiate#:CONTinuous", set=self._set_continuous, query=self._get_continuous)
        # data transfer
        t.add("FORMat[:DATA]", set=lambda s, a: self.data_format.set_form(a),
              query=lambda s, a: self.data_format.form_query())
        t.add("FORMat:BORDer", set=lambda s, a: self.data_format.set_order(a),
              query=lambda s, a: "NORM" if self.data_format.big_endian else "SWAP")
        # display: accepted, nothing to show
        for pattern in ("DISPlay[:WINDow#]:LAYout", "DISPlay[:WINDow#]:LAYout:GRID",
                        "DISPlay[:WINDow#]:TRACe#:Y[:SCALe]:AUTO", "SYSTem:DISPlay:UPDate",
                        "SYSTem:ERRor:DISPlay"):
            t.add(pattern, set=lambda s, a: None)

    def _add_frequency(self, node: str, setter: Any, getter: Any) -> None:
        def set_(s: tuple[int, ...], a: str) -> None:
            setter(self._channel(s[0]).sweep, parse_float(a, f"SENS:FREQ:{node.upper()}", "HZ"))

        self.commands.add(f"[SENSe#]:FREQuency:{node}", set=set_,
                      query=lambda s, a: fmt_number(getter(self._channel(s[0]).sweep)))

    # -- handlers -------------------------------------------------------------------------------------
    def _set_output(self, s: tuple[int, ...], a: str) -> None:
        self.rf_on = parse_bool(a, "OUTP")

    def _set_rosc(self, s: tuple[int, ...], a: str) -> None:
        src = a.strip().upper()[:3]
        if src not in ("INT", "EXT"):
            raise ScpiError(-224, f"Illegal parameter value; ROSC:SOUR {a!r}")
        self.rosc_source = src

    def _set_rosc_ext(self, s: tuple[int, ...], a: str) -> None:
        value = parse_float(a, "ROSC:EXT:FREQ", "HZ")
        if not 1e6 <= value <= 20e6:
            raise ScpiError(-222, f"Data out of range; ROSC:EXT:FREQ {value} Hz outside 1..20 MHz")
        self.rosc_ext_hz = value

    def _sdef(self, s: tuple[int, ...], a: str) -> None:
        args = split_args(a)
        if len(args) != 2 or not args[0]:
            raise ScpiError(-109, "Missing parameter; CALC:PAR:SDEF expects 'name','S<i><j>'")
        name, param = args[0], s_parameter_name(args[1], self.n_ports, "CALC:PAR:SDEF")
        if name in self.traces:
            raise ScpiError(-221, f"Settings conflict; trace {name!r} exists")
        ch = self._channel(s[0], create=True)
        self.traces[name] = _Trace(name, s[0], param)
        ch.selected = name

    def _delete_all(self) -> None:
        self.traces.clear()
        for ch in self.channels.values():
            ch.selected = None

    def _trace(self, name: str, channel: int | None = None) -> _Trace:
        tr = self.traces.get(name)
        if tr is None or (channel is not None and tr.channel != channel):
            where = f" in channel {channel}" if channel is not None else ""
            raise ScpiError(-221, f"Settings conflict; no trace named {name!r}{where}")
        return tr

    def _delete(self, s: tuple[int, ...], a: str) -> None:
        tr = self._trace(unquote(a), s[0])
        del self.traces[tr.name]
        ch = self._channel(tr.channel)
        if ch.selected == tr.name:
            ch.selected = None

    def _set_meas(self, s: tuple[int, ...], a: str) -> None:
        args = split_args(a)
        if len(args) != 2:
            raise ScpiError(-109, "Missing parameter; CALC:PAR:MEAS expects 'name','S<i><j>'")
        tr = self._trace(args[0], s[0])
        tr.parameter = s_parameter_name(args[1], self.n_ports, "CALC:PAR:MEAS")
        tr.data, tr.signature = None, None
        tr.averager.clear()

    def _get_meas(self, s: tuple[int, ...], a: str) -> str:
        return f"'{self._trace(unquote(a), s[0]).parameter}'"

    def _select(self, s: tuple[int, ...], a: str) -> None:
        tr = self._trace(unquote(a), s[0])
        self._channel(s[0]).selected = tr.name

    def _get_selected(self, s: tuple[int, ...], a: str) -> str:
        return f"'{self._selected(s[0]).name}'"

    def _catalog(self, s: tuple[int, ...], a: str) -> str:
        self._channel(s[0])
        return "'" + ",".join(f"{t.name},{t.parameter}" for t in self.traces.values() if t.channel == s[0]) + "'"

    def _trace_catalog(self, s: tuple[int, ...], a: str) -> str:
        return "'" + ",".join(f"{i},{name}" for i, name in enumerate(self.traces, start=1)) + "'"

    def _set_measuring(self, s: tuple[int, ...], a: str) -> None:
        self._channel(s[0]).measuring = parse_bool(a, "CONF:CHAN:MEAS")

    def _set_format(self, s: tuple[int, ...], a: str) -> None:
        fmt = a.strip().upper()
        if fmt not in FORMATS:
            raise ScpiError(-224, f"Illegal parameter value; CALC:FORM {a!r} (known: {', '.join(FORMATS)})")
        self._selected(s[0]).fmt = fmt

    def _data(self, s: tuple[int, ...], a: str) -> str:
        kind = a.strip().upper()
        if kind not in ("SDAT", "SDATA", "FDAT", "FDATA"):
            raise ScpiError(-224, f"Illegal parameter value; CALC:DATA? {a!r} (simulated: SDAT, FDAT)")
        freqs, z = self._corrected(s[0])
        if kind.startswith("SDAT"):
            values = np.column_stack([z.real, z.imag]).ravel()
        else:
            values = format_trace(z, self._selected(s[0]).fmt, freqs)
        return self.data_format.encode(values)

    def _set_points(self, s: tuple[int, ...], a: str) -> None:
        self._channel(s[0]).sweep.points = parse_int(a, "SENS:SWE:POIN", 1, 100001)

    def _set_sweep_type(self, s: tuple[int, ...], a: str) -> None:
        kind = a.strip().upper()
        kind = {"LINEAR": "LIN", "LOGARITHMIC": "LOG", "POINT": "POIN"}.get(kind, kind)
        if kind not in SWEEP_TYPES:
            raise ScpiError(-221, f"Settings conflict; sweep type {a.strip()!r} is not simulated "
                                  f"(simulated: {', '.join(SWEEP_TYPES)})")
        self._channel(s[0]).sweep.sweep_type = kind

    def _set_sweep_time_auto(self, s: tuple[int, ...], a: str) -> None:
        self._channel(s[0]).sweep_time_auto = parse_bool(a, "SENS:SWE:TIME:AUTO")

    def _set_bandwidth(self, s: tuple[int, ...], a: str) -> None:
        self._channel(s[0]).sweep.set_ifbw(parse_float(a, "SENS:BAND", "HZ"))

    def _set_avg_state(self, s: tuple[int, ...], a: str) -> None:
        self._channel(s[0]).sweep.avg_on = parse_bool(a, "SENS:AVER")

    def _set_avg_count(self, s: tuple[int, ...], a: str) -> None:
        self._channel(s[0]).sweep.avg_count = parse_int(a, "SENS:AVER:COUN", 1, 1_000_000)

    def _clear_averages(self, s: tuple[int, ...], a: str) -> None:
        self._channel(s[0])
        for tr in self.traces.values():
            if tr.channel == s[0]:
                tr.averager.clear()

    def _port(self, ch: _Channel, port: int) -> int:
        if port not in ch.electrical_delay_s:
            raise ScpiError(-114, f"Header suffix out of range; port {port} of {self.n_ports}")
        return port

    def _set_edel(self, s: tuple[int, ...], a: str) -> None:
        ch = self._channel(s[0])
        ch.electrical_delay_s[self._port(ch, s[1])] = parse_float(a, "SENS:CORR:EDEL:TIME", "S")

    def _get_edel(self, s: tuple[int, ...], a: str) -> str:
        ch = self._channel(s[0])
        return repr(float(ch.electrical_delay_s[self._port(ch, s[1])]))

    def _auto_edel(self, s: tuple[int, ...], a: str) -> None:
        if a.strip().upper() != "ONCE":
            raise ScpiError(-224, f"Illegal parameter value; SENS:CORR:EDEL:AUTO {a!r} (expected ONCE)")
        ch = self._channel(s[0])
        self._port(ch, s[1])
        tr = self._selected(s[0])
        port = int(tr.parameter[1])  # the receiving port of the selected trace (EDEL2 for S21)
        freqs, z = self._corrected(s[0])
        if freqs.size < 2 or np.ptp(freqs) == 0:
            return
        slope = np.polyfit(2 * np.pi * freqs, np.unwrap(np.angle(z)), 1)[0]
        share = 2.0 if tr.parameter[1] == tr.parameter[2] else 1.0
        ch.electrical_delay_s[port] += float(-slope / share)

    def _set_power(self, s: tuple[int, ...], a: str) -> None:
        value = parse_float(a, "SOUR:POW", "DBM")
        if not self.min_power_dbm <= value <= MAX_POWER_DBM:
            raise ScpiError(-222, f"Data out of range; power {value} dBm outside "
                                  f"{self.min_power_dbm}..{MAX_POWER_DBM} dBm")
        self._channel(s[0]).sweep.power_dbm = value

    def _set_trigger_source(self, s: tuple[int, ...], a: str) -> None:
        src = a.strip().upper()[:3]
        if src not in ("IMM", "EXT", "MAN"):
            raise ScpiError(-224, f"Illegal parameter value; TRIG:SOUR {a!r}")
        self._channel(s[0]).trigger_source = src

    def _set_continuous(self, s: tuple[int, ...], a: str) -> None:
        self.continuous = parse_bool(a, "INIT:CONT")

    def _get_continuous(self, s: tuple[int, ...], a: str) -> str:
        return "1" if self.continuous else "0"
