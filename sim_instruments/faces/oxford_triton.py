"""Simulated Oxford Instruments Triton dilution-refrigerator controller.

Speaks the Triton's text protocol over a TCP socket as the QCoDeS driver
``qcodes.instrument_drivers.oxford.OxfordTriton`` (an ``IPInstrument``) uses it: one
command per line (the driver ends them with CR LF), and *every* command is answered
with one line, LF terminated (a SET gets ``STAT:SET:<...>:VALID`` or ``:INVALID``, which
the driver reads as its write confirmation)::

    READ:DEV:T8:TEMP:SIG:TEMP        -> STAT:DEV:T8:TEMP:SIG:TEMP:0.012003K
    READ:DEV:T8:TEMP:LOOP:TSET       -> STAT:DEV:T8:TEMP:LOOP:TSET:0.100000K
    SET:DEV:T8:TEMP:LOOP:TSET:0.1    -> STAT:SET:DEV:T8:TEMP:LOOP:TSET:0.1:VALID
    READ:DEV:T9:TEMP:SIG:TEMP        -> STAT:DEV:T9:TEMP:SIG:TEMP:NOT_FOUND   (no such sensor)
    READ:SYS:DR:CHAN                 -> STAT:SYS:DR:CHAN:MC:STIL:PT2:PT1      (aliases)
    READ:SYS:DR:CHAN:MC              -> STAT:SYS:DR:CHAN:MC:T8

Numbers are written in fixed point: the driver's loop-value regex reads no exponent.

Thermometers (``channels``, default ``{T1: 45.0, T2: 4k, T5: still, T8: mxc}``) read the
world's fridge stages, or a constant (K). Each thermometer has its own loop settings
(MODE, TSET, P, I, D, RAMP:ENAB, RAMP:RATE, RANGE, HTR); the heater ``H1`` (mixing
chamber) is driven by the loop whose HTR is H1 and whose MODE is ON, with the law of
:class:`~sim_instruments.world.heater_control.PidLoop` and
``P_heater = R * (RANGE * fraction)**2`` (RANGE in mA, R = ``heater_resistance_ohm``).
With no loop on, ``SET:DEV:H1:HTR:SIG:POWR:<uW>`` sets the heater power directly.
The face attaches itself as the world fridge's controller when its heater is first
switched on (one heater face per world drives the mixing chamber).

Simulator commands: see :func:`~sim_instruments.faces.fridge_faults.sim_fridge_command`
(``SIM:FAULT:WARMUP 0.01``), answered ``STAT:<command>:VALID``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from sim_instruments.faces.fridge_faults import sim_fridge_command
from sim_instruments.servers.line_server import LineServer, ServedFace
from sim_instruments.servers.scpi_parsing import ScpiError
from sim_instruments.world.heater_control import PidLoop, heater_power_w
from sim_instruments.world.thermometer import ruox_ohm
from sim_instruments.world.world import World

IDN = "IDN:OXFORD INSTRUMENTS:TRITON:SIM0001:0.1"
STAGES = ("mxc", "still", "4k")
HEATER_RANGES_MA = (0.316, 1.0, 3.16, 10.0, 31.6, 100.0)
DEFAULT_CHANNELS: dict[str, Any] = {"T1": 45.0, "T2": "4k", "T5": "still", "T8": "mxc"}
DEFAULT_ALIASES = {"MC": "T8", "STIL": "T5", "PT2": "T2", "PT1": "T1"}
#: illustrative pressure gauges P1..P6 in mbar (tank, condensing line, still, OVC, ...)
DEFAULT_PRESSURES_MBAR = {"P1": 720.0, "P2": 2.1e-2, "P3": 0.41, "P4": 180.0, "P5": 1.5e-3, "P6": 3.2e-6}
PUMPS = ("TURB1", "COMP")

_TCHAN = re.compile(r"^T(\d{1,2})$")


class _Loop(PidLoop):
    """Loop settings of one thermometer as the Triton keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.mode_on = False
        self.heater = "NONE"
        self.range_ma = 1.0


def _fmt(value: float, unit: str = "", digits: int = 6) -> str:
    return f"{value:.{digits}f}{unit}"


def _on_off(text: str, what: str) -> bool:
    t = text.strip().upper()
    if t not in ("ON", "OFF"):
        raise ScpiError(-104, f"{what} expects ON|OFF, got {text!r}")
    return t == "ON"


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ScpiError(-104, f"{what} expects a number, got {text!r}") from None


class OxfordTritonFace(ServedFace):
    """The Triton face: a line server on ``host:port`` over the world's fridge."""

    face = "oxford_triton"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "oxford_triton",
                 channels: Mapping[str, Any] | None = None, aliases: Mapping[str, str] | None = None,
                 heater_resistance_ohm: float = 120.0, pressures_mbar: Mapping[str, float] | None = None) -> None:
        self.world = world
        self.name = name
        if not heater_resistance_ohm > 0:
            raise ValueError(f"{name}: heater_resistance_ohm must be > 0, got {heater_resistance_ohm}")
        self.heater_resistance_ohm = float(heater_resistance_ohm)
        self.channels = self._parse_channels(DEFAULT_CHANNELS if channels is None else channels)
        given = DEFAULT_ALIASES if aliases is None else aliases
        self.aliases = {}
        for alias, chan in given.items():
            if chan not in self.channels:
                if aliases is None:
                    continue  # a default alias for a thermometer this configuration lacks
                raise ValueError(f"{name}.aliases.{alias}: {chan!r} is not one of the channels {sorted(self.channels)}")
            if not str(alias).isidentifier():
                raise ValueError(f"{name}.aliases: {alias!r} must be a valid identifier (the driver makes it a parameter)")
            self.aliases[str(alias)] = chan
        self.pressures_mbar = dict(DEFAULT_PRESSURES_MBAR if pressures_mbar is None else pressures_mbar)
        self.server = LineServer(self, host, port, reply_termination="\n", name=name, is_query=lambda c: True)
        self._lock = threading.RLock()
        self._attached = False
        self._reset()

    def _parse_channels(self, channels: Mapping[str, Any]) -> dict[str, str | float]:
        out: dict[str, str | float] = {}
        for key, source in channels.items():
            m = _TCHAN.match(str(key))
            if not m or not 1 <= int(m[1]) <= 16:
                raise ValueError(f"{self.name}.channels: {key!r} is not a thermometer T1..T16")
            if isinstance(source, str) and source in STAGES:
                out[str(key)] = source
            elif isinstance(source, (int, float)) and not isinstance(source, bool) and source > 0:
                out[str(key)] = float(source)
            else:
                raise ValueError(f"{self.name}.channels.{key}: expected a stage {STAGES} or a temperature in K, "
                                 f"got {source!r}")
        return out

    def _reset(self) -> None:
        self.loops = {chan: _Loop() for chan in self.channels}
        mxc = [c for c, s in self.channels.items() if s == "mxc"]
        if mxc:
            self.loops[mxc[0]].heater = "H1"
        self.enabled = {chan: True for chan in self.channels}
        self.pumps = {pump: True for pump in PUMPS}
        self.manual_power_w = 0.0
        self.heater_power_w_now = 0.0

    # -- physics --------------------------------------------------------------------
    def temperature_k(self, chan: str) -> float:
        source = self.channels[chan]
        return source if isinstance(source, float) else self.world.fridge.read(source)

    def _true_temperature(self, chan: str, mxc_k: float) -> float:
        source = self.channels[chan]
        if isinstance(source, float):
            return source
        if source == "mxc":
            return mxc_k
        return self.world.fridge.still_k() if source == "still" else self.world.fridge.plate_4k_k()

    def _active_loop(self) -> tuple[str, _Loop] | None:
        for chan, loop in self.loops.items():
            if loop.heater == "H1" and loop.mode_on:
                return chan, loop
        return None

    def _controller(self, t: float, mxc_k: float) -> float:
        """Called by the fridge at each sub-step: the H1 heater power (W)."""
        with self._lock:
            active = self._active_loop()
            if active is None:
                power = self.manual_power_w
            else:
                chan, loop = active
                frac = loop.output(t, self._true_temperature(chan, mxc_k))
                power = heater_power_w(self.heater_resistance_ohm, loop.range_ma * 1e-3, frac)
            self.heater_power_w_now = power
            return power

    def _attach(self) -> None:
        if not self._attached:
            self.world.fridge.set_controller(self._controller)
            self._attached = True

    # -- protocol -------------------------------------------------------------------
    def handle(self, command: str) -> str:
        command = command.strip()
        with self.world.fridge.lock, self._lock:
            self.world.fridge.mxc_k()  # bring the heater/PID state up to now first
            if command.upper() == "*IDN?":
                return IDN
            try:
                if command.upper().startswith("SIM:"):
                    reply = sim_fridge_command(self.world, command)
                    if reply is None:
                        raise ScpiError(-113, f"unknown simulator command {command!r}")
                    return reply if reply else f"STAT:{command}:VALID"
                verb, _, rest = command.partition(":")
                verb = verb.upper()
                if verb == "READ":
                    return "STAT:" + rest + ":" + self._read(rest.split(":"))
                if verb == "SET":
                    self._set(rest.split(":"))
                    return f"STAT:SET:{rest}:VALID"
                raise ScpiError(-113, f"unknown verb {verb!r}")
            except ScpiError:
                if command.upper().startswith("SET:"):
                    return f"STAT:{command}:INVALID"
                return f"STAT:{command.partition(':')[2]}:INVALID"

    def _read(self, parts: list[str]) -> str:
        p = [x.upper() for x in parts]
        if p[:2] == ["SYS", "TIME"]:
            return time.strftime("%H:%M:%S")
        if p[:3] == ["SYS", "DR", "ACTN"]:
            return "NONE"
        if p[:3] == ["SYS", "DR", "STATUS"]:
            return "OK"
        if p[:3] == ["SYS", "DR", "CHAN"]:
            if len(p) == 3:
                return ":".join(self.aliases)
            alias = parts[3]
            return self.aliases.get(alias, "NONE")
        if p[:2] == ["SYS", "VRM"]:
            return "INVALID"  # no magnet on this fridge
        if p[0] == "DEV" and len(p) >= 3:
            return self._read_dev(parts[1].upper(), p[2:])
        raise ScpiError(-113, "unknown READ")

    def _read_dev(self, dev: str, p: list[str]) -> str:
        if _TCHAN.match(dev) and p[0] == "TEMP" and len(p) >= 2:
            if dev not in self.channels:
                # an empty thermometer slot: switched off, no reading, no loop
                return "OFF" if p[1:] == ["MEAS", "ENAB"] and int(dev[1:]) <= 16 else "NOT_FOUND"
            if p[1:] == ["SIG", "TEMP"]:
                return _fmt(self.temperature_k(dev), "K")
            if p[1:] == ["SIG", "RES"]:
                return _fmt(ruox_ohm(self.temperature_k(dev)), "Ohm", 3)
            if p[1:] == ["MEAS", "ENAB"]:
                return "ON" if self.enabled[dev] else "OFF"
            if p[1] == "LOOP":
                return self._read_loop(self.loops[dev], p[2:])
            raise ScpiError(-113, "unknown thermometer key")
        if dev in self.pressures_mbar and p == ["PRES", "SIG", "PRES"]:
            return _fmt(self.pressures_mbar[dev], "mB", 9)
        if dev in PUMPS and p[:2] == ["PUMP", "SIG"]:
            if p[2:] == ["STATE"]:
                return "ON" if self.pumps[dev] else "OFF"
            if p[2:] == ["SPD"] and dev == "TURB1":
                return _fmt(820.0 if self.pumps[dev] else 0.0, "Hz", 1)
        if dev == "H1" and p == ["HTR", "SIG", "POWR"]:
            return _fmt(self.heater_power_w_now * 1e6, "uW", 6)
        known = set(self.channels) | set(self.pressures_mbar) | set(PUMPS) | {"H1"}
        if dev in known or _TCHAN.match(dev):
            raise ScpiError(-113, "unknown key")
        return "NOT_FOUND"  # no such device

    def _read_loop(self, loop: _Loop, p: list[str]) -> str:
        key = ":".join(p)
        if key == "MODE":
            return "ON" if loop.mode_on else "OFF"
        if key == "TSET":
            return _fmt(loop.setpoint_k, "K")
        if key in ("P", "I", "D"):
            return _fmt(getattr(loop, key.lower()), "", 4)
        if key == "RAMP:ENAB":
            return "ON" if loop.ramp_enabled else "OFF"
        if key == "RAMP:RATE":
            return _fmt(loop.ramp_rate_k_per_min, "K/min")
        if key == "RANGE":
            return _fmt(loop.range_ma, "mA", 3)
        if key == "HTR":
            return loop.heater
        raise ScpiError(-113, "unknown loop key")

    def _set(self, parts: list[str]) -> None:
        p = [x.upper() for x in parts]
        if len(p) < 4 or p[0] != "DEV":
            raise ScpiError(-113, "unknown SET")
        dev = p[1]
        now = self.world.clock()
        if _TCHAN.match(dev) and p[2] == "TEMP":
            if dev not in self.channels:
                raise ScpiError(-222, f"no thermometer {dev}")
            if p[3:5] == ["MEAS", "ENAB"] and len(p) == 6:
                self.enabled[dev] = _on_off(p[5], "MEAS:ENAB")
                return
            if p[3] == "LOOP" and len(p) >= 6:
                self._set_loop(dev, self.loops[dev], p[4:-1], parts[-1], now)
                return
        if dev in PUMPS and p[2:4] == ["PUMP", "SIG"] and len(p) == 6 and p[4] == "STATE":
            self.pumps[dev] = _on_off(p[5], "PUMP:SIG:STATE")
            return
        if dev == "H1" and p[2:5] == ["HTR", "SIG", "POWR"] and len(p) == 6:
            value = _number(parts[5], "HTR:SIG:POWR (uW)")
            if value < 0:
                raise ScpiError(-222, "heater power must be >= 0")
            self.manual_power_w = value * 1e-6
            if value > 0:
                self._attach()
            return
        raise ScpiError(-113, "unknown SET")

    def _set_loop(self, chan: str, loop: _Loop, key_parts: list[str], value: str, now: float) -> None:
        key = ":".join(key_parts)
        if key == "HTR":
            heater = value.upper()
            if heater not in ("H1", "NONE"):
                raise ScpiError(-222, f"no heater {value}")
            if heater == "H1":
                for other in self.loops.values():
                    if other.heater == "H1" and other is not loop:
                        other.heater = "NONE"
                        other.reset()
            loop.heater = heater
            loop.reset()
        elif key == "MODE":
            on = _on_off(value, "LOOP:MODE")
            if on != loop.mode_on:
                loop.reset()
            loop.mode_on = on
            if on:
                self._attach()
        elif key == "TSET":
            t_set = _number(value, "LOOP:TSET")
            if not 0 <= t_set <= 40:
                raise ScpiError(-222, "TSET out of range 0..40 K")
            loop.set_setpoint(t_set, now, self._true_temperature(chan, self.world.fridge.mxc_k()))
        elif key in ("P", "I", "D"):
            number = _number(value, f"LOOP:{key}")
            if not 0 <= number <= 1000:
                raise ScpiError(-222, f"{key} out of range 0..1000")
            pid = {"P": loop.p, "I": loop.i, "D": loop.d}
            pid[key] = number
            loop.set_pid(pid["P"], pid["I"], pid["D"])
        elif key == "RAMP:ENAB":
            loop.set_ramp(_on_off(value, "RAMP:ENAB"), loop.ramp_rate_k_per_min, now)
        elif key == "RAMP:RATE":
            loop.set_ramp(loop.ramp_enabled, _number(value, "RAMP:RATE"), now)
        elif key == "RANGE":
            range_ma = _number(value, "LOOP:RANGE (mA)")
            matches = [r for r in HEATER_RANGES_MA if abs(r - range_ma) <= 1e-6 * r]
            if not matches:
                raise ScpiError(-222, f"RANGE must be one of {HEATER_RANGES_MA} mA")
            loop.range_ma = matches[0]
        else:
            raise ScpiError(-113, f"unknown loop key {key}")
