"""Simulated Yokogawa GS200 DC voltage/current source (the paramp's flux bias).

Answers what ``qcodes.instrument_drivers.yokogawa.YokogawaGS200`` sends on init, on
``snapshot(update=True)``, on set, and its hardware ramp (a one-step program:
``*CLS;:PROG:REP 0;:PROG:SLOP t;:PROG:INT t;:PROG:EDIT:STAR;:SOUR:LEV x;:PROG:EDIT:END;:PROG:RUN``,
applied at once here; ``:STAT:EVEN?`` then reports end-of-program).

With ``role: paramp_flux`` (the default) the current flowing in the flux line goes to
``world.paramp.set_flux_current``: the level in current mode, level / ``bias_resistance_ohm``
in voltage mode, 0 with the output off. The source starts in ``source_mode`` (CURR by
default: a flux-bias source is left in current mode; a real GS200 resets to VOLT on
``*RST``, and so does this one).
"""

from __future__ import annotations

from typing import Any

from sim_instruments.servers.scpi_command_tree import BOOL, ScpiFace, choice, integer, number
from sim_instruments.servers.scpi_parsing import ScpiError, parse_float
from sim_instruments.world.world import World

ROLES = ("paramp_flux", "none")
RANGES = {"CURR": (1e-3, 10e-3, 100e-3, 200e-3), "VOLT": (10e-3, 100e-3, 1.0, 10.0, 30.0)}
EOP = 1 << 7  # extended event register: end of program


def _fmt(value: float) -> str:
    return f"{value:+.5E}"


class YokogawaGS200Face(ScpiFace):
    face = "yokogawa_gs200"
    idn = "YOKOGAWA,GS211,91T000001,2.02"
    options = "/MON"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "gs200",
                 role: str = "paramp_flux", source_mode: str = "CURR", bias_resistance_ohm: float = 1e3,
                 line_resistance_ohm: float = 10.0) -> None:
        super().__init__(world, host, port, name)
        if role not in ROLES:
            raise ValueError(f"{name}: role must be one of {ROLES}, got {role!r}")
        if source_mode not in RANGES:
            raise ValueError(f"{name}: source_mode must be CURR or VOLT, got {source_mode!r}")
        if bias_resistance_ohm <= 0 or line_resistance_ohm <= 0:
            raise ValueError(f"{name}: bias_resistance_ohm and line_resistance_ohm must be > 0")
        self.role = role
        self.bias_resistance_ohm = float(bias_resistance_ohm)
        self.line_resistance_ohm = float(line_resistance_ohm)
        self._start_mode = source_mode
        self.mode = source_mode
        self.range = {"CURR": 1e-3, "VOLT": 1.0}
        self.level = {"CURR": 0.0, "VOLT": 0.0}
        self.event_register = 0
        self._program_level: float | None = None
        self._editing = False
        s = self.add_setting
        s("output", "OUTPut[:STATe]", False, BOOL, self._push)
        s("prot_volt", "[SOURce]:PROTection:VOLTage", 30.0, number(1, 30))
        s("prot_curr", "[SOURce]:PROTection:CURRent", 0.2, number(1e-3, 0.2))
        s("remote", "SENSe:REMote", False, BOOL)
        s("guard", "SENSe:GUARd", False, BOOL)
        s("sense", "SENSe[:STATe]", False, BOOL)
        s("nplc", "SENSe:NPLC", 5, integer(1, 25))
        s("sense_delay", "SENSe:DELay", 0, integer(0, 999999))
        s("sense_trig", "SENSe:TRIGger", "READ", choice("READy", "TIMer", "COMMunicate", "IMMediate"))
        s("sense_int", "SENSe:INTerval", 0.1, number(0.1, 3600))
        s("prog_int", "PROGram:INTerval", 1.0, number(0.1, 3600))
        s("prog_slope", "PROGram:SLOPe", 0.0, number(0, 3600))
        s("prog_trig", "PROGram:TRIGger", "NORM", choice("NORMal", "MEND"))
        s("prog_rep", "PROGram:REPeat", True, BOOL)
        s("prog_count", "PROGram:COUNt", 1, integer(1, 10000))
        s("bnc_out", "ROUTe:BNCO", "TRIG", choice("TRIGger", "OUTPut", "READy"))
        s("bnc_in", "ROUTe:BNCI", "TRIG", choice("TRIGger", "OUTPut"))
        c = self.commands.add
        c("[SOURce]:FUNCtion", set=self._function, query=lambda s, a: self.mode)
        c("[SOURce]:RANGe", set=self._set_range, query=lambda s, a: _fmt(self.range[self.mode]))
        c("[SOURce]:LEVel[:FIX]", set=self._set_level, query=lambda s, a: _fmt(self.level[self.mode]))
        c("[SOURce]:LEVel:AUTO", set=self._set_level_auto)
        c("SYSTem:LFRequency", query=lambda s, a: "50")
        c("MEASure", query=self._measure)
        c("*STB", query=lambda s, a: "0")
        c("*ESR", query=lambda s, a: "0")
        c("STATus:EVENt", query=self._event)
        c("STATus:CONDition", query=lambda s, a: "0")
        c("PROGram:LOAD", set=lambda s, a: None, query=lambda s, a: '""')
        c("PROGram:SAVE", set=lambda s, a: None)
        c("PROGram:EDIT:STARt", set=self._edit_start)
        c("PROGram:EDIT:END", set=self._edit_end)
        c("PROGram:RUN", set=self._run)
        for cmd in ("PROGram:HOLD", "PROGram:PAUSe", "PROGram:CONTinue"):
            c(cmd, set=lambda s, a: None)
        self._push()

    # -- state ----------------------------------------------------------------------------
    def flux_current_a(self) -> float:
        """Current in the flux line now."""
        if not self.values["output"]:
            return 0.0
        level = self.level[self.mode]
        return level if self.mode == "CURR" else level / self.bias_resistance_ohm

    def _push(self, _value: Any = None) -> None:
        if self.role == "paramp_flux":
            self.world.paramp.set_flux_current(self.flux_current_a())

    def after_reset(self) -> None:
        self.mode = "VOLT"
        self.range = {"CURR": 1e-3, "VOLT": 1.0}
        self.level = {"CURR": 0.0, "VOLT": 0.0}
        self.event_register = 0
        self._push()

    # -- commands ------------------------------------------------------------------------
    def _function(self, suffixes: tuple[int, ...], args: str) -> None:
        mode = choice("CURRent", "VOLTage").parse(args, "SOUR:FUNC")
        if self.values["output"]:
            raise ScpiError(-221, "Settings conflict; cannot change the function with the output on")
        self.mode = mode
        self._push()

    def _set_range(self, suffixes: tuple[int, ...], args: str) -> None:
        value = parse_float(args, "SOUR:RANG")
        allowed = RANGES[self.mode]
        fit = [r for r in allowed if r >= abs(value) * (1 - 1e-9)]
        if not fit:
            raise ScpiError(-222, f"Data out of range; {self.mode} range must be <= {allowed[-1]:g}")
        self.range[self.mode] = fit[0]
        if abs(self.level[self.mode]) > self._max_level():
            self.level[self.mode] = 0.0
        self._push()

    def _max_level(self) -> float:
        r = self.range[self.mode]
        return r if r == RANGES[self.mode][-1] else 1.2 * r

    def _set_level(self, suffixes: tuple[int, ...], args: str) -> None:
        value = parse_float(args, "SOUR:LEV")
        if self._editing:
            self._program_level = value
            return
        if abs(value) > self._max_level() * (1 + 1e-9):
            raise ScpiError(-222, f"Data out of range; |level| must be <= {self._max_level():g} in this range")
        self.level[self.mode] = value
        self.event_register |= 1 << 5  # source change
        self._push()

    def _set_level_auto(self, suffixes: tuple[int, ...], args: str) -> None:
        value = parse_float(args, "SOUR:LEV:AUTO")
        fit = [r for r in RANGES[self.mode] if r * (1.2 if r != RANGES[self.mode][-1] else 1.0) >= abs(value)]
        if not fit:
            raise ScpiError(-222, f"Data out of range; {value:g} is beyond the largest {self.mode} range")
        self.range[self.mode] = fit[0]
        self._set_level(suffixes, args)

    def _measure(self, suffixes: tuple[int, ...], args: str) -> str:
        if not self.values["output"]:
            return _fmt(0.0)
        current = self.flux_current_a()
        return _fmt(current * self.line_resistance_ohm if self.mode == "CURR" else current)

    def _event(self, suffixes: tuple[int, ...], args: str) -> str:
        value, self.event_register = self.event_register, 0
        return str(value)

    def _edit_start(self, suffixes: tuple[int, ...], args: str) -> None:
        self._editing, self._program_level = True, None

    def _edit_end(self, suffixes: tuple[int, ...], args: str) -> None:
        self._editing = False

    def _run(self, suffixes: tuple[int, ...], args: str) -> None:
        """A one-step program reaches its level at once here (the ramp time is not simulated)."""
        if self._program_level is not None:
            self._set_level((), repr(self._program_level))
        self.event_register |= EOP
