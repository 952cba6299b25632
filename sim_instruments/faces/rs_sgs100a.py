"""Simulated R&S SGS100A microwave source.

It answers what ``qcodes.instrument_drivers.rohde_schwarz.RohdeSchwarzSGS100A`` sends on
init, on ``snapshot(update=True)`` and when a parameter is set; option ``role`` as in
:mod:`sim_instruments.faces.pump_source`.
"""

from __future__ import annotations

from sim_instruments.faces.pump_source import PumpSourceFace
from sim_instruments.servers.scpi_command_tree import BOOL, choice, number
from sim_instruments.world.world import World


class RohdeSchwarzSGS100AFace(PumpSourceFace):
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
