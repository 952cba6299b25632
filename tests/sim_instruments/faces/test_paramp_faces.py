"""The paramp's instrument faces, each driven by its real qcodes driver over pyvisa-py TCP:
R&S SGS100A and Keysight N51x1 (pump), Yokogawa GS200 (flux bias), Keysight N9030B (noise),
and the hot/cold load switch (cryodaq's own driver)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from qcodes.instrument_drivers.Keysight import KeysightN5183B, KeysightN9030B
from qcodes.instrument_drivers.Keysight.N51x1 import KeysightN51x1
from qcodes.instrument_drivers.rohde_schwarz import RohdeSchwarzSGS100A
from qcodes.instrument_drivers.yokogawa import YokogawaGS200
from scipy.constants import k

from cryodaq.errors import InstrumentError
from cryodaq.instruments.noise_load_switch import NoiseLoadSwitch
from sim_instruments.faces.keysight_n51x1 import KeysightN51x1Face
from sim_instruments.faces.keysight_n9030b import LOG_AVERAGE_NOISE_DB, KeysightN9030BFace
from sim_instruments.faces.noise_source_switch import NoiseSourceSwitchFace
from sim_instruments.faces.rs_sgs100a import RohdeSchwarzSGS100AFace
from sim_instruments.faces.yokogawa_gs200 import YokogawaGS200Face
from sim_instruments.world.paramp import effective_temperature_k
from sim_instruments.world.world import World

_names = itertools.count()


JPA = {"paramp": {"enabled": True}}


def _addr(face) -> str:
    return f"TCPIP0::127.0.0.1::{face.port}::SOCKET"


def _open(cls, face, **kw):
    return cls(f"{cls.__name__}_{next(_names)}", _addr(face), visalib="@py", timeout=2, **kw)


# -- pump sources --------------------------------------------------------------------------------

def test_sgs100a_driver_sets_the_paramp_pump():
    world = World(JPA)
    with RohdeSchwarzSGS100AFace(world) as face:
        sgs = _open(RohdeSchwarzSGS100A, face)
        try:
            snap = sgs.snapshot(update=True)  # every query the driver knows
            assert snap["parameters"]["status"]["value"] is False
            assert snap["parameters"]["ref_osc_source"]["value"] == "INT"
            sgs.frequency(10.0008e9)
            sgs.power(-20.5)
            sgs.on()
            sgs.IQ_state("on")
            sgs.operation_mode("NORMal")
            sgs.ask("*OPC?")  # the face has applied everything sent before
            assert (sgs.frequency(), sgs.power(), sgs.status(), sgs.IQ_state()) == (10.0008e9, -20.5, True, True)
            state = world.paramp.state
            assert (state.pump_frequency_hz, state.pump_power_dbm, state.pump_on) == (10.0008e9, -20.5, True)
            sgs.off()
            sgs.ask("*OPC?")
            assert world.paramp.state.pump_on is False
            assert sgs.ask("SYST:ERR?") == '0,"No error"'
            sgs.reset()
            assert sgs.power() == -30.0 and sgs.frequency() == 1e9
        finally:
            sgs.close()


def test_n51x1_drivers_read_and_set_and_a_plain_source_leaves_the_pump_alone():
    world = World(JPA)
    with KeysightN51x1Face(world, role="none") as face:
        for cls in (KeysightN51x1, KeysightN5183B):
            src = _open(cls, face)
            try:
                src.snapshot(update=True)
                assert src.frequency.vals.max_value == 20e9  # from the "520" option in *OPT?
                src.frequency(7.5e9)
                src.power(-12.25)
                src.rf_output("on")
                src.pulse_modulation("off")  # present because *OPT? lists UNW
                src.pulse_modulation_source("external")
                assert (src.frequency(), src.power(), src.rf_output()) == (7.5e9, -12.25, True)
                assert src.pulse_modulation_source() == "external"
                assert src.get_idn()["model"] == "N5183B"
            finally:
                src.close()
        assert world.paramp.state.pump_on is False  # role none: not the pump
    with KeysightN51x1Face(world, options="506") as face:
        src = _open(KeysightN51x1, face)
        try:
            with pytest.raises(ValueError):
                src.frequency(7e9)  # the 6 GHz option: the driver's validator refuses
            src.frequency(5.5e9)
            src.power(-30)
            src.rf_output("on")
            src.ask("*OPC?")
            assert world.paramp.state.pump_frequency_hz == 5.5e9 and world.paramp.state.pump_on
        finally:
            src.close()


# -- flux bias -------------------------------------------------------------------------------------

def test_gs200_driver_sets_the_flux_current():
    world = World(JPA)
    with YokogawaGS200Face(world) as face:
        gs = _open(YokogawaGS200, face)
        try:
            snap = gs.snapshot(update=True)
            assert snap["parameters"]["source_mode"]["value"] == "CURR"
            assert gs.measure.present
            gs.current_range(1e-3)
            gs.current(3.3e-4)
            gs.ask("*OPC?")
            assert world.paramp.state.flux_current_a == 0.0  # output off: no current flows
            gs.output("on")
            gs.ask("*OPC?")
            assert gs.current() == pytest.approx(3.3e-4) and world.paramp.state.flux_current_a == pytest.approx(3.3e-4)
            with pytest.raises(ValueError, match="not in range"):
                gs.current(2e-3)  # beyond the 1 mA range: the driver refuses, nothing is sent
            assert not face.received(r"LEV.*2\.0+e-03")
            gs.ramp_current(5e-4, step=None, delay=None, ramp_mode="HARDWARE")  # program + poll for EOP
            assert world.paramp.state.flux_current_a == pytest.approx(5e-4)
            assert face.received(r"PROG:RUN")
            gs.measure.enabled("on")
            assert gs.measure.measure() == pytest.approx(5e-4 * face.line_resistance_ohm, rel=1e-4)
            gs.output("off")
            gs.source_mode("VOLT")
            gs.voltage_range(1.0)
            gs.voltage(0.25)
            gs.output("on")
            gs.ask("*OPC?")
            assert world.paramp.state.flux_current_a == pytest.approx(0.25 / face.bias_resistance_ohm)
            assert gs.system_errors() == '0,"No error"'
        finally:
            gs.close()


# -- spectrum analyzer ------------------------------------------------------------------------------

def test_n9030b_trace_is_the_chain_noise_power_in_the_rbw():
    world = World(JPA)
    with KeysightN9030BFace(world) as face:
        sa = _open(KeysightN9030B, face)
        try:
            sa.snapshot(update=True)
            assert sa.mode() == "SA" and "pn" not in sa.submodules
            sa.sa.setup_swept_sa_sweep(4.99e9, 5.01e9, 401)
            sa.sa.res_bw(100e3)
            sa.sa.sweep_time(0.4)  # 1 ms per point: RBW·t = 100 independent samples, 10 % per point
            sa.sa.average_type("RMS")
            freqs = sa.sa.freq_axis()
            trace = sa.sa.trace()
            assert trace.shape == (401,) and freqs[0] == 4.99e9
            expected = face.expected_dbm(freqs)
            mean_ratio = np.mean(10 ** ((trace - expected) / 10))
            assert mean_ratio == pytest.approx(1.0, abs=0.02)  # 401 points x 10 % -> 0.5 % rms
            assert np.std(10 ** ((trace - expected) / 10)) == pytest.approx(0.1, rel=0.2)
            # k_B T_sys G RBW: pump off, T_sys = T_cw(cold) + T_HEMT; ENBW of a Gaussian RBW = 1.0645 RBW
            pa, c = world.paramp, world.paramp.config
            t_sys = effective_temperature_k(world.temperature_k(), 5e9) + c.hemt_noise_k
            p_dbm = 10 * np.log10(k * t_sys * 10 ** ((c.hemt_gain_db + c.post_gain_db) / 10) * 1.0645e5 * 1e3)
            assert face.expected_dbm(np.array([5e9]))[0] == pytest.approx(p_dbm, abs=0.01)
            sa.sa.average_type("LOG")
            sa.ask("*OPC?")  # the face has applied it (a set command gets no answer)
            assert face.expected_dbm(np.array([5e9]))[0] == pytest.approx(p_dbm + LOG_AVERAGE_NOISE_DB, abs=0.01)
            # the pump leaks through: a tone at f_p in a trace around it
            pa.set_pump(frequency_hz=10e9, power_dbm=-20.0, on=True)
            sa.sa.setup_swept_sa_sweep(9.99e9, 10.01e9, 201)
            tone = sa.sa.trace()
            assert np.argmax(tone) == 100
            expected_tone = -20.0 - c.pump_attenuation_db + c.pump_leakage_db + c.hemt_gain_db + c.post_gain_db
            assert tone[100] == pytest.approx(expected_tone, abs=1.5)
            assert sa.ask("SYST:ERR?") == '0,"No error"'
        finally:
            sa.close()


# -- load switch -------------------------------------------------------------------------------------

def test_load_switch_driver_selects_the_load_and_reads_its_temperature():
    world = World(JPA)
    with NoiseSourceSwitchFace(world) as face:
        sw = NoiseLoadSwitch(f"sw_{next(_names)}", _addr(face), timeout=2)
        try:
            snap = sw.snapshot(update=True)
            assert snap["parameters"]["load"]["value"] == "cold"
            assert snap["parameters"]["hot_temperature"]["unit"] == "K"
            assert sw.cold_temperature() == pytest.approx(world.temperature_k(), rel=0.01)
            assert sw.hot_temperature() == pytest.approx(world.fridge.plate_4k_k(), rel=1e-5)
            sw.load("hot")
            assert sw.load() == "hot" and world.paramp.state.load == "hot"
            assert sw.temperature("hot") == pytest.approx(world.paramp.load_temperature_k("hot"), rel=1e-5)
            with pytest.raises(ValueError):
                sw.load("warm")  # the driver's validator
            sw.write("LOAD:SEL WARM")  # straight to the instrument: refused there
            with pytest.raises(InstrumentError, match="-224"):
                sw.check_errors()
            assert world.paramp.state.load == "hot"
            sw.check_errors()
        finally:
            sw.close()
