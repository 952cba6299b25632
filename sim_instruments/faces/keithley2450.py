"""Simulated Keithley 2450 SourceMeter as the TES bias source (SCPI over TCP, LF).

Answers what ``qcodes.instrument_drivers.Keithley.Keithley2450`` sends: ``*LANG?``,
``*IDN?``, ``:SOUR:FUNC``, ``:SENS:FUNC``, the source submodule's
``:SOUR:<f>[:LEV]``, ``:RANG[:AUTO]``, ``:VLIM``/``:ILIM[:TRIP]``, ``:DEL[:AUTO|:USER<n>]``,
``:READ:BACK``, the sense submodule's ``:SENS:<f>:RSEN|RANG[:AUTO]|NPLC|AZER|DEL:USER<n>``,
``:SENS:COUN``, ``:OUTP[:STAT]``, ``ROUT:TERM``, ``:SYST:LFR?``, ``:MEAS?``/``:READ?``/
``:FETC?`` with buffers (``:TRAC:POIN|ACT|CLE|DATA?|MAKE|DEL|TRIG``), linear sweeps
(``:SOUR:SWE:<f>:LIN`` + ``:INIT``), ``*WAI``, ``*OPC?``, ``*RST``, ``*CLS``,
``:SYST:ERR?``. Headers follow the SCPI rules of :mod:`sim_instruments.servers.scpi_command_tree`
(long or short forms, any case: the driver writes ``:SENSe:current:RANGe?``). An
unknown command or a bad value is queued for ``:SYST:ERR?`` and changes nothing; a
failed query gets no reply, as on the real instrument (the driver's ``user_delay``
with ``user_number`` unset asks ``...:DELay:USERNone?`` and times out). ``*RST``
state is the 2450's: voltage source, current sense, output off.

Physics: the output drives one TES bias line (``world.tes``; the face's
``channels`` option, else ``world.tes.bias_lines[name]``, else every pixel): the
line's wiring ``r_line_ohm`` in series with each pixel's shunt ‖ TES branch. In
current-source mode the bias current is the level unless the terminal voltage
would exceed the voltage limit (then the current that meets the limit flows and
``:VLIM:TRIP?`` reads 1); in voltage-source mode the current solves
``I·R_load(I) = V`` capped by the current limit. Without a TES array in the world
the load is a plain ``load_ohm`` resistor. Readings carry relative Gaussian noise
``reading_noise_fraction``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq

from sim_instruments.servers.scpi_command_tree import ScpiFace
from sim_instruments.servers.scpi_parsing import ScpiError, parse_bool, parse_float, split_args, unquote
from sim_instruments.world.world import World

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,SIM2450,1.7.12b"
BUFFER_CAPACITY = 100_000
SOURCE_RANGES = {"CURR": [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
                 "VOLT": [0.02, 0.2, 2.0, 20.0, 200.0]}
SENSE_RANGES = {"CURR": SOURCE_RANGES["CURR"], "VOLT": SOURCE_RANGES["VOLT"],
                "RES": [20.0, 200.0, 2e3, 2e4, 2e5, 2e6, 2e7, 2e8]}
SENSE_NAMES = {"CURR": '"CURR:DC"', "VOLT": '"VOLT:DC"', "RES": '"RES"'}
UNITS = {"CURR": "Amp DC", "VOLT": "Volt DC", "RES": "Ohm"}
LONG = {"CURR": "CURRent", "VOLT": "VOLTage", "RES": "RESistance"}
FUNCTION_WORDS = {"CURR": "CURR", "CURRENT": "CURR", "VOLT": "VOLT", "VOLTAGE": "VOLT",
                  "RES": "RES", "RESISTANCE": "RES"}
ELEMENTS = {"READING": "READ", "FORMATTED": "FORM", "SOURCE": "SOUR", "SOURFORMATTED": "SOURFORM",
            "RELATIVE": "REL", "SECONDS": "SEC", "FRACTIONAL": "FRAC", "STATUS": "STAT",
            "SOURSTATUS": "SOURSTAT", "TSTAMP": "TST"}
OVERFLOW = 9.9e37


def _pick_range(value: float, ranges: Sequence[float], what: str) -> float:
    for r in ranges:
        if abs(value) <= r * (1 + 1e-9):
            return r
    raise ScpiError(-222, f"Parameter data out of range; {what} {value!r} exceeds {ranges[-1]!r}")


@dataclass
class _Source:
    level: float = 0.0
    range: float = 0.0
    auto_range: bool = True
    limit: float = 0.0
    delay: float = 0.0
    auto_delay: bool = True
    read_back: bool = True
    user_delays: dict[int, float] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0.0))


@dataclass
class _Sense:
    range: float = 0.0
    auto_range: bool = True
    four_wire: bool = False
    nplc: float = 1.0
    auto_zero: bool = True
    user_delays: dict[int, float] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0.0))


@dataclass
class _Reading:
    value: float
    source: float
    function: str
    source_function: str
    t: float


@dataclass
class _Buffer:
    capacity: int = BUFFER_CAPACITY
    readings: list[_Reading] = field(default_factory=list)

    def add(self, reading: _Reading) -> None:
        self.readings.append(reading)
        if len(self.readings) > self.capacity:
            del self.readings[: len(self.readings) - self.capacity]


class Keithley2450Face(ScpiFace):
    """The 2450 face: an LF SCPI server on ``host:port`` driving a TES bias line of the world."""

    face = "keithley2450"
    idn = IDN

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "keithley2450",
                 channels: Sequence[int] | None = None, load_ohm: float = 1000.0,
                 reading_noise_fraction: float = 1e-5) -> None:
        super().__init__(world, host, port, name)
        self.tes = world.tes
        if self.tes is not None:
            self.channels = self.tes.bias_line(name, channels)
        elif channels is not None:
            raise ValueError(f"{name}: 'channels' needs a TES array (world.tes.enabled: true)")
        else:
            self.channels = np.zeros(0, dtype=int)
        if not load_ohm > 0:
            raise ValueError(f"{name}: load_ohm must be > 0, got {load_ohm}")
        self.load_ohm = float(load_ohm)
        self.noise_fraction = float(reading_noise_fraction)
        self._rng = np.random.default_rng(np.random.SeedSequence(world.config.seed, spawn_key=(0x2450,)))
        self.language = "SCPI"
        self._register()
        self.reset()

    # -- state ----------------------------------------------------------------------
    def reset(self) -> None:
        """*RST: voltage source at 0 V, current sense, output off, default limits and buffers."""
        self.source_function = "VOLT"
        self.sense_function = "CURR"
        self.output = False
        self.terminals = "FRON"
        self.sources = {"CURR": _Source(range=1e-8, limit=21.0), "VOLT": _Source(range=0.02, limit=105e-6)}
        self.senses = {"CURR": _Sense(range=1e-4), "VOLT": _Sense(range=0.02), "RES": _Sense(range=2e5)}
        self.count = 1
        self.buffers = {"defbuffer1": _Buffer(), "defbuffer2": _Buffer()}
        self.sweep: dict[str, Any] | None = None
        self.tripped = False
        self.i_out = 0.0
        self._apply()

    def load_resistance(self, current_a: float) -> float:
        """What the output sees at ``current_a``: the TES bias line, or the plain load."""
        if self.tes is None:
            return self.load_ohm
        return self.tes.load_resistance(self.channels, current_a)

    def _current_for_voltage(self, volts: float) -> float:
        """I with I·R_load(I) = volts (monotonic in I: the load is >= the line wiring)."""
        if volts == 0 or self.tes is None:
            return volts / self.load_ohm
        hi = volts / self.tes.config.r_line_ohm
        return float(brentq(lambda i: i * self.load_resistance(i) - volts, 0.0, hi, xtol=1e-15, rtol=1e-12))

    def _apply(self) -> None:
        """Work out the output current from the settings and bias the TES line with it."""
        self.tripped = False
        if not self.output:
            current = 0.0
        elif self.source_function == "CURR":
            src = self.sources["CURR"]
            current = src.level
            if abs(current * self.load_resistance(current)) > src.limit:
                current = self._current_for_voltage(float(np.sign(current)) * src.limit)
                self.tripped = True
        else:
            src = self.sources["VOLT"]
            current = self._current_for_voltage(src.level)
            if abs(current) > src.limit:
                current = float(np.sign(current) * src.limit)
                self.tripped = True
        self.i_out = float(current)
        if self.tes is not None:
            self.tes.set_bias(self.channels, self.i_out)

    def measure(self, function: str | None = None) -> float:
        """A reading of ``function`` (default: the sense function) at the terminals now."""
        function = function or self.sense_function
        i = self.i_out
        v = i * self.load_resistance(i) if i != 0 else 0.0
        if function == "CURR":
            value = i
        elif function == "VOLT":
            value = v
        else:
            value = v / i if i != 0 else OVERFLOW
        if value != OVERFLOW and self.noise_fraction > 0:
            value *= 1.0 + self.noise_fraction * float(self._rng.standard_normal())
        return float(value)

    def _record(self, buffer: str, function: str | None = None) -> float:
        target = self._buffer(buffer)
        value = self.measure(function)
        source_value = self.i_out if self.source_function == "CURR" else self.sources["VOLT"].level
        target.add(_Reading(value, source_value, function or self.sense_function, self.source_function, time.time()))
        return value

    def _buffer(self, name: str) -> _Buffer:
        name = unquote(name) or "defbuffer1"
        if name not in self.buffers:
            raise ScpiError(-230, f"Data corrupt or stale; no reading buffer named {name!r}")
        return self.buffers[name]

    # -- command table ------------------------------------------------------------------
    def _register(self) -> None:
        add = self.commands.add

        def nothing(suffixes: tuple[int, ...], args: str) -> None:
            return None

        add("*LANG", set=self._set_language, query=lambda s, a: self.language)
        add(":OUTPut[:STATe]", set=self._set_output, query=lambda s, a: "1" if self.output else "0")
        add(":ROUTe:TERMinals", set=self._set_terminals, query=lambda s, a: self.terminals)
        add(":SYSTem:LFRequency", query=lambda s, a: "50")
        add(":STATus:CLEar", set=lambda s, a: self.errors.clear())
        add(":SYSTem:CLEar", set=lambda s, a: self.errors.clear())
        add(":ABORt", set=nothing)
        add(":SENSe#:AZERo:ONCE", set=nothing)
        add(":SOURce#:FUNCtion[:MODE]", set=self._set_source_function, query=lambda s, a: self.source_function)
        add(":SENSe#:FUNCtion[:ON]", set=self._set_sense_function,
            query=lambda s, a: SENSE_NAMES[self.sense_function])
        add(":SENSe#:COUNt", set=self._set_count, query=lambda s, a: str(self.count))
        for fn in ("CURR", "VOLT"):
            self._register_source(fn)
        for fn in ("CURR", "VOLT", "RES"):
            self._register_sense(fn)
        add(":MEASure", query=lambda s, a: self._measure_cmd(a, None))
        add(":READ", query=lambda s, a: self._measure_cmd(a, None))
        for fn in ("CURR", "VOLT", "RES"):
            add(f":MEASure:{LONG[fn]}[:DC]", query=lambda s, a, fn=fn: self._measure_cmd(a, fn))
        add(":FETCh", query=self._fetch)
        add(":TRACe:POINts", set=self._set_points,
            query=lambda s, a: str(self._buffer(self._items(a, 1)[0]).capacity))
        add(":TRACe:ACTual", query=lambda s, a: str(len(self._buffer(self._items(a, 1)[0]).readings)))
        add(":TRACe:CLEar", set=lambda s, a: self._buffer(self._items(a, 1)[0]).readings.clear())
        add(":TRACe:MAKE", set=self._make_buffer)
        add(":TRACe:DELete", set=self._delete_buffer)
        add(":TRACe:TRIGger", set=self._trace_trigger)
        add(":TRACe:DATA", query=self._trace_data)
        add(":INITiate[:IMMediate]", set=lambda s, a: self._initiate())

    def _register_source(self, fn: str) -> None:
        add, node, what = self.commands.add, f":SOURce#:{LONG[fn]}", f"SOUR:{fn}"
        limit = "VLIMit" if fn == "CURR" else "ILIMit"

        def source() -> _Source:  # looked up per command: *RST replaces the objects
            return self.sources[fn]

        add(f"{node}[:LEVel][:IMMediate][:AMPLitude]", set=lambda s, a: self._set_level(fn, a),
            query=lambda s, a: repr(source().level))
        add(f"{node}:RANGe", set=lambda s, a: self._set_source_range(fn, a),
            query=lambda s, a: repr(source().range))
        self._add_flag(f"{node}:RANGe:AUTO", source, "auto_range", what)
        add(f"{node}:{limit}[:LEVel]", set=lambda s, a: self._set_limit(fn, a),
            query=lambda s, a: repr(source().limit))
        add(f"{node}:{limit}[:LEVel]:TRIPped",
            query=lambda s, a: "1" if (self.tripped and self.source_function == fn) else "0")
        add(f"{node}:DELay", set=lambda s, a: self._set_source_delay(fn, a),
            query=lambda s, a: repr(source().delay))
        self._add_flag(f"{node}:DELay:AUTO", source, "auto_delay", what)
        self._add_user_delays(node, source, f"SOUR:{fn}:DEL:USER")
        self._add_flag(f"{node}:READ:BACK", source, "read_back", what)
        add(f":SOURce#:SWEep:{LONG[fn]}:LINear", set=lambda s, a: self._sweep_setup(fn, a))

    def _register_sense(self, fn: str) -> None:
        add, node, what = self.commands.add, f":SENSe#:{LONG[fn]}", f"SENS:{fn}"

        def sense() -> _Sense:
            return self.senses[fn]

        self._add_flag(f"{node}:RSENse", sense, "four_wire", what)
        add(f"{node}:RANGe[:UPPer]", set=lambda s, a: self._set_sense_range(fn, a),
            query=lambda s, a: repr(sense().range))
        self._add_flag(f"{node}:RANGe:AUTO", sense, "auto_range", what)
        add(f"{node}:NPLCycles", set=lambda s, a: self._set_nplc(fn, a),
            query=lambda s, a: repr(sense().nplc))
        self._add_flag(f"{node}:AZERo[:STATe]", sense, "auto_zero", what)
        self._add_user_delays(node, sense, f"SENS:{fn}:DEL:USER")

    def _add_flag(self, pattern: str, target: Callable[[], Any], attr: str, what: str) -> None:
        """An ON|OFF setting kept as ``target().<attr>``."""
        self.commands.add(pattern, set=lambda s, a: setattr(target(), attr, parse_bool(a, what)),
                          query=lambda s, a: "1" if getattr(target(), attr) else "0")

    def _add_user_delays(self, node: str, target: Callable[[], _Source | _Sense], what: str) -> None:
        """``<node>:DELay:USER<n>`` (n = 1..5, the header's last suffix): ``target().user_delays[n]``."""
        self.commands.add(f"{node}:DELay:USER#",
                          set=lambda s, a: target().user_delays.__setitem__(self._user(s[-1]), self._delay(a, what)),
                          query=lambda s, a: repr(target().user_delays[self._user(s[-1])]))

    # -- handlers -----------------------------------------------------------------------
    @staticmethod
    def _items(args: str, at_least: int = 0) -> list[str]:
        items = split_args(args)
        return items + [""] * max(0, at_least - len(items))

    @staticmethod
    def _user(n: int) -> int:
        if not 1 <= n <= 5:
            raise ScpiError(-114, f"Header suffix out of range; USER{n} (1..5)")
        return n

    @staticmethod
    def _delay(args: str, what: str) -> float:
        value = parse_float(args, what)
        if not 0 <= value <= 1e4:
            raise ScpiError(-222, f"Parameter data out of range; {what} must be 0..10000 s")
        return value

    def _set_language(self, suffixes: tuple[int, ...], args: str) -> None:
        self.language = unquote(args).upper()

    def _set_output(self, suffixes: tuple[int, ...], args: str) -> None:
        self.output = parse_bool(args, ":OUTP")
        self._apply()

    def _set_terminals(self, suffixes: tuple[int, ...], args: str) -> None:
        value = args.strip().upper()
        if value not in ("FRON", "FRONT", "REAR"):
            raise ScpiError(-224, f"Illegal parameter value; ROUT:TERM expects FRONt|REAR, got {args!r}")
        self.terminals = value[:4]

    def _set_source_function(self, suffixes: tuple[int, ...], args: str) -> None:
        value = FUNCTION_WORDS.get(unquote(args).upper())
        if value not in SOURCE_RANGES:
            raise ScpiError(-224, f"Illegal parameter value; SOUR:FUNC expects CURR|VOLT, got {args!r}")
        if value != self.source_function:
            self.source_function = value
            self.sweep = None
            self._apply()

    def _set_sense_function(self, suffixes: tuple[int, ...], args: str) -> None:
        words = unquote(args).upper().split(":")
        value = FUNCTION_WORDS.get(words[0])
        if value is None or words[1:] not in ([], ["DC"]):
            raise ScpiError(-224, f'Illegal parameter value; SENS:FUNC expects "CURR:DC"|"VOLT:DC"|"RES", got {args!r}')
        self.sense_function = value

    def _set_count(self, suffixes: tuple[int, ...], args: str) -> None:
        value = parse_float(args, "SENS:COUN")
        if value != int(value) or not 1 <= value <= 300000:
            raise ScpiError(-222, "Parameter data out of range; SENS:COUN must be an integer 1..300000")
        self.count = int(value)

    def _set_level(self, fn: str, args: str) -> None:
        src = self.sources[fn]
        value = parse_float(args, f"SOUR:{fn}")
        top = SOURCE_RANGES[fn][-1] * 1.05
        if abs(value) > top:
            raise ScpiError(-222, f"Parameter data out of range; SOUR:{fn} {value!r} beyond +/-{top!r}")
        if src.auto_range:
            src.range = _pick_range(value, SOURCE_RANGES[fn], f"SOUR:{fn}")
        elif abs(value) > src.range * 1.05:
            raise ScpiError(-222, f"Parameter data out of range; SOUR:{fn} {value!r} exceeds the "
                                  f"{src.range!r} range (autorange off)")
        src.level = value
        self._apply()

    def _set_source_range(self, fn: str, args: str) -> None:
        src = self.sources[fn]
        src.range = _pick_range(parse_float(args, f"SOUR:{fn}:RANG"), SOURCE_RANGES[fn], f"SOUR:{fn}:RANG")
        src.auto_range = False

    def _set_limit(self, fn: str, args: str) -> None:
        what = f"SOUR:{fn}:{'VLIM' if fn == 'CURR' else 'ILIM'}"
        value = parse_float(args, what)
        top = 210.0 if fn == "CURR" else 1.05
        if not 0 < value <= top:
            raise ScpiError(-222, f"Parameter data out of range; {what} must be in (0, {top}]")
        self.sources[fn].limit = value
        self._apply()

    def _set_source_delay(self, fn: str, args: str) -> None:
        self.sources[fn].delay = self._delay(args, f"SOUR:{fn}:DEL")
        self.sources[fn].auto_delay = False

    def _set_sense_range(self, fn: str, args: str) -> None:
        sense = self.senses[fn]
        sense.range = _pick_range(parse_float(args, f"SENS:{fn}:RANG"), SENSE_RANGES[fn], f"SENS:{fn}:RANG")
        sense.auto_range = False

    def _set_nplc(self, fn: str, args: str) -> None:
        value = parse_float(args, f"SENS:{fn}:NPLC")
        if not 0.01 <= value <= 10:
            raise ScpiError(-222, f"Parameter data out of range; SENS:{fn}:NPLC must be 0.01..10")
        self.senses[fn].nplc = value

    def _measure_cmd(self, args: str, function: str | None) -> str:
        return repr(self._record(self._items(args, 1)[0], function))

    def _fetch(self, suffixes: tuple[int, ...], args: str) -> str:
        name, *elements = self._items(args, 1)
        buf = self._buffer(name)
        if not buf.readings:
            raise ScpiError(-230, "Data corrupt or stale; the buffer is empty")
        return self._format(buf.readings[-1:], elements or ["READ"])

    def _set_points(self, suffixes: tuple[int, ...], args: str) -> None:
        items = self._items(args, 2)
        size = parse_float(items[0], "TRAC:POIN")
        if size != int(size) or not 1 <= size <= 11_000_000:
            raise ScpiError(-222, "Parameter data out of range; TRAC:POIN must be an integer 1..11000000")
        self._buffer(items[1]).capacity = int(size)

    def _make_buffer(self, suffixes: tuple[int, ...], args: str) -> None:
        items = self._items(args, 2)
        name = unquote(items[0])
        size = parse_float(items[1], "TRAC:MAKE size")
        if not name or name in self.buffers or size != int(size) or size < 1:
            raise ScpiError(-224, f"Illegal parameter value; TRAC:MAKE {args!r}")
        self.buffers[name] = _Buffer(capacity=int(size))

    def _delete_buffer(self, suffixes: tuple[int, ...], args: str) -> None:
        name = unquote(self._items(args, 1)[0])
        if name not in self.buffers or name.startswith("defbuffer"):
            raise ScpiError(-224, f"Illegal parameter value; cannot delete buffer {name!r}")
        del self.buffers[name]

    def _trace_trigger(self, suffixes: tuple[int, ...], args: str) -> None:
        self._record(self._items(args, 1)[0])

    def _trace_data(self, suffixes: tuple[int, ...], args: str) -> str:
        items = self._items(args, 3)
        start = int(parse_float(items[0], "TRAC:DATA? start"))
        end = int(parse_float(items[1], "TRAC:DATA? end"))
        buf = self._buffer(items[2])
        if not 1 <= start <= end <= len(buf.readings):
            raise ScpiError(-222, f"Parameter data out of range; TRAC:DATA? {start}..{end} of "
                                  f"{len(buf.readings)} readings")
        return self._format(buf.readings[start - 1:end], [e for e in items[3:] if e] or ["READ"])

    def _format(self, readings: list[_Reading], elements: list[str]) -> str:
        t0 = readings[0].t if readings else 0.0
        out = []
        for r in readings:
            stamp = time.gmtime(r.t)
            values = {
                "READ": repr(r.value), "FORM": f"{r.value:.6E}", "SOUR": repr(r.source),
                "SOURFORM": f"{r.source:.6E}", "REL": repr(r.t - t0), "SEC": str(int(r.t)),
                "FRAC": repr(r.t % 1.0), "UNIT": UNITS[r.function], "SOURUNIT": UNITS[r.source_function],
                "STAT": "0", "SOURSTAT": "0", "DATE": time.strftime("%m/%d/%Y", stamp),
                "TIME": time.strftime("%H:%M:%S", stamp), "TST": time.strftime("%m/%d/%Y %H:%M:%S", stamp),
            }
            for el in elements:
                key = ELEMENTS.get(el.upper(), el.upper())
                if key not in values:
                    raise ScpiError(-224, f"Illegal parameter value; unknown buffer element {el!r}")
                out.append(values[key])
        return ",".join(out)

    def _sweep_setup(self, fn: str, args: str) -> None:
        if fn != self.source_function:
            raise ScpiError(-221, f"Settings conflict; SOUR:SWE:{fn}:LIN while the source function is "
                                  f"{self.source_function}")
        items = self._items(args)
        if len(items) < 3:
            raise ScpiError(-109, "Missing parameter; SOUR:SWE:<f>:LIN start, stop, points[, delay, count, "
                                  "range, failAbort, dual, 'buffer']")
        start, stop = parse_float(items[0], "sweep start"), parse_float(items[1], "sweep stop")
        points = parse_float(items[2], "sweep points")
        count = parse_float(items[4], "sweep count") if len(items) > 4 else 1
        if points != int(points) or not 2 <= points <= 1_000_000 or count != int(count) or count < 1:
            raise ScpiError(-222, "Parameter data out of range; sweep points must be 2..1e6 and count >= 1")
        dual = parse_bool(items[7], "sweep dual") if len(items) > 7 else False
        buffer = unquote(items[8]) if len(items) > 8 else "defbuffer1"
        self._buffer(buffer)
        for level in (start, stop):
            _pick_range(level, SOURCE_RANGES[fn], f"sweep level of SOUR:{fn}")
        self.sweep = {"function": fn, "levels": np.linspace(start, stop, int(points)), "count": int(count),
                      "dual": dual, "buffer": buffer}

    def _initiate(self) -> None:
        """Run the trigger model: one reading, or the configured sweep, whose model (like the 2450's
        sweep templates) first clears its buffer, turns the output on and leaves the level at the last point."""
        if self.sweep is None:
            self._record("defbuffer1")
            return
        self._buffer(self.sweep["buffer"]).readings.clear()
        levels = self.sweep["levels"]
        if self.sweep["dual"]:
            levels = np.concatenate([levels, levels[::-1]])
        fn = self.sweep["function"]
        src = self.sources[fn]
        self.output = True
        for _ in range(self.sweep["count"]):
            for level in levels:
                src.level = float(level)
                if src.auto_range:
                    src.range = _pick_range(src.level, SOURCE_RANGES[fn], "sweep level")
                self._apply()
                self._record(self.sweep["buffer"])
