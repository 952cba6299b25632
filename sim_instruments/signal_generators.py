"""Simulated microwave sources: R&S SGS100A and Keysight N51x1 (N5171B/N5173B/N5181B/N5183B).

They answer what ``qcodes.instrument_drivers.rohde_schwarz.RohdeSchwarzSGS100A`` and
``qcodes.instrument_drivers.Keysight.KeysightN51x1`` (and its N5173B/N5183B subclasses)
send on init, on ``snapshot(update=True)`` and when a parameter is set. With the face
option ``role: paramp_pump`` (the default) the source is the paramp's pump: its
frequency, power and RF output go to ``world.paramp.set_pump`` on every change (with
several pump faces, the last one set wins); ``role: none`` makes it a plain source.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .scpi_face import BOOL, ScpiFace, choice, number
from .world import World

ROLES = ("paramp_pump", "none")


class _PumpSource(ScpiFace):
    """Frequency/power/output settings that may drive the paramp pump."""

    freq_pattern = "[SOURce]:FREQuency[:CW]"
    power_pattern = "[SOURce]:POWer[:LEVel][:IMMediate][:AMPLitude]"
    output_pattern = "OUTPut[:STATe]"

    def __init__(self, world: World, host: str, port: int, name: str, role: str,
                 freq_range: tuple[float, float], power_range: tuple[float, float]) -> None:
        super().__init__(world, host, port, name)
        if role not in ROLES:
            raise ValueError(f"{name}: role must be one of {ROLES}, got {role!r}")
        self.role = role
        self.add_setting("frequency", self.freq_pattern, 1.0e9, number(*freq_range), self._push)
        self.add_setting("power", self.power_pattern, -30.0, number(*power_range), self._push)
        self.add_setting("output", self.output_pattern, False, BOOL, self._push)

    def _push(self, _value: Any = None) -> None:
        if self.role == "paramp_pump":
            self.world.paramp.set_pump(frequency_hz=self.values["frequency"], power_dbm=self.values["power"],
                                       on=bool(self.values["output"]))

    def after_reset(self) -> None:
        self._push()


class RohdeSchwarzSGS100A(_PumpSource):
    """R&S SGS100A SGMA vector source (the qcodes driver's parameter set)."""

    face = "rs_sgs100a"
    idn = "Rohde&Schwarz,SGS100A,1416.0505K02/111111,4.2.76.0"
    options = "SGS-B26,SGS-K22"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "sgs100a",
                 role: str = "paramp_pump") -> None:
        super().__init__(world, host, port, name, role, freq_range=(1e6, 20e9), power_range=(-120.0, 25.0))
        s = self.add_setting
        s("phase", "[SOURce]:PHASe", 0.0, number(-360, 360))
        s("iq_state", "[SOURce]:IQ:STATe", False, BOOL)
        s("pulm_state", "[SOURce]:PULM:STATe", False, BOOL)
        s("pulm_source", "[SOURce]:PULM:SOURce", "INT", choice("INTernal", "EXTernal"))
        s("rosc_source", "[SOURce]:ROSCillator:SOURce", "INT", choice("INTernal", "EXTernal"))
        s("losc_source", "[SOURce]:LOSCillator:SOURce", "INT", choice("INTernal", "EXTernal"))
        s("refl_out", "CONNector:REFLo:OUTPut", "REF", choice("REF", "LO", "OFF"))
        s("rosc_out_freq", "[SOURce]:ROSCillator:OUTPut:FREQuency", "10MHZ", choice("10MHZ", "100MHZ", "1000MHZ"))
        s("rosc_ext_freq", "[SOURce]:ROSCillator:EXTernal:FREQuency", "10MHZ",
          choice("10MHZ", "100MHZ", "1000MHZ"))
        s("iq_imp", "[SOURce]:IQ:IMPairment[:STATe]", False, BOOL)
        s("leak_i", "[SOURce]:IQ:IMPairment:LEAKage:I", 0.0, number(-10, 10))
        s("leak_q", "[SOURce]:IQ:IMPairment:LEAKage:Q", 0.0, number(-10, 10))
        s("iq_ratio", "[SOURce]:IQ:IMPairment:IQRatio[:MAGNitude]", 0.0, number(-1, 1))
        s("iq_quad", "[SOURce]:IQ:IMPairment:QUADrature[:ANGLe]", 0.0, number(-8, 8))
        s("trig_omod", "CONNector:TRIGger:OMODe", "SVAL", choice("SVALid", "SNVALid", "PVOut", "PETrigger",
                                                                "PEMSource"))
        s("pulm_delay", "[SOURce]:PULM:DELay", 0.0, number(0, 100))
        s("pulm_ddelay", "[SOURce]:PULM:DOUBle:DELay", 40e-9, number(40e-9, 100))
        s("pulm_dwidth", "[SOURce]:PULM:DOUBle:WIDTh", 20e-9, number(20e-9, 100))
        s("pulm_mode", "[SOURce]:PULM:MODE", "SING", choice("SINGle", "DOUBle"))
        s("pulm_period", "[SOURce]:PULM:PERiod", 10e-6, number(100e-9, 100))
        s("pulm_pol", "[SOURce]:PULM:POLarity", "NORM", choice("NORMal", "INVerted"))
        s("pulm_gate_pol", "[SOURce]:PULM:TRIGger:EXTernal:GATE:POLarity", "NORM", choice("NORMal", "INVerted"))
        s("pulm_imp", "[SOURce]:PULM:TRIGger:EXTernal:IMPedance", "G50", choice("G50", "G10K"))
        s("pulm_slope", "[SOURce]:PULM:TRIGger:EXTernal:SLOPe", "POS", choice("NEGative", "POSitive"))
        s("pulm_trig", "[SOURce]:PULM:TRIGger:MODE", "AUTO", choice("AUTO", "EXTernal", "EGATe"))
        s("pulm_width", "[SOURce]:PULM:WIDTh", 1e-6, number(20e-9, 100))
        s("opmode", "[SOURce]:OPMode", "NORM", choice("NORMal", "BBBYpass"))
        self._push()


class KeysightN51x1(_PumpSource):
    """Keysight N51x1 MXG/EXG analog source; ``options`` sets the frequency option (e.g. "520" = 20 GHz)."""

    face = "keysight_n51x1"
    _FREQ_OPTIONS: ClassVar[dict[str, float]] = {"501": 1e9, "503": 3e9, "506": 6e9, "513": 13e9, "520": 20e9, "532": 31.8e9, "540": 40e9}

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, name: str = "n51x1",
                 role: str = "paramp_pump", model: str = "N5183B", options: str = "520,UNW,1E1") -> None:
        fmax = [f for opt, f in self._FREQ_OPTIONS.items() if opt in str(options)]
        if not fmax:
            raise ValueError(f"{name}: options must hold a frequency option {sorted(self._FREQ_OPTIONS)}, "
                             f"got {options!r}")
        self.idn = f"Keysight Technologies,{model},MY00051001,B.01.86"
        self.options = str(options)
        super().__init__(world, host, port, name, role, freq_range=(9e3, max(fmax)), power_range=(-144.0, 19.0))
        s = self.add_setting
        s("phase", "[SOURce]:PHASe[:ADJust]", 0.0, number())
        s("rosc_auto", "[SOURce]:ROSCillator:SOURce:AUTO", True, BOOL)
        s("pulm_state", "[SOURce]:PULM:STATe", False, BOOL)
        s("pulm_source", "[SOURce]:PULM:SOURce", "INT", choice("INTernal", "EXTernal"))
        self._push()
