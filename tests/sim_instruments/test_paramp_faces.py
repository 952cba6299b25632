"""The paramp model (world.paramp) and its instrument faces, each driven by its real qcodes driver
over pyvisa-py TCP: R&S SGS100A and Keysight N51x1 (pump), Yokogawa GS200 (flux bias),
Keysight N9030B (noise), and the hot/cold load switch (cryodaq's own driver)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from qcodes.instrument_drivers.Keysight import KeysightN5183B, KeysightN9030B
from qcodes.instrument_drivers.Keysight.N51x1 import KeysightN51x1
from qcodes.instrument_drivers.rohde_schwarz import RohdeSchwarzSGS100A
from qcodes.instrument_drivers.yokogawa import YokogawaGS200
from scipy.constants import h, k
from scipy.optimize import brentq

from cryodaq.errors import InstrumentError
from cryodaq.instruments.noise_load_switch import NoiseLoadSwitch
from sim_instruments.gs200 import YokogawaGS200 as GS200Face
from sim_instruments.n9030b import LOG_AVERAGE_NOISE_DB
from sim_instruments.n9030b import KeysightN9030B as N9030BFace
from sim_instruments.noise_load_switch import NoiseSourceSwitch
from sim_instruments.paramp import effective_temperature_k
from sim_instruments.scpi import split_program
from sim_instruments.scpi_face import CommandTree, ScpiFace
from sim_instruments.signal_generators import KeysightN51x1 as N51x1Face
from sim_instruments.signal_generators import RohdeSchwarzSGS100A as SGSFace
from sim_instruments.world import World

_names = itertools.count()
JPA = {"paramp": {"enabled": True}}


def _addr(face) -> str:
    return f"TCPIP0::127.0.0.1::{face.port}::SOCKET"


def _open(cls, face, **kw):
    return cls(f"{cls.__name__}_{next(_names)}", _addr(face), visalib="@py", timeout=2, **kw)


# -- the model -------------------------------------------------------------------------------

def test_disabled_paramp_leaves_the_chain_unchanged_and_pump_off_is_unity():
    world = World()
    assert world.paramp not in world.amplifiers and not world.config.paramp.enabled
    f = np.linspace(4.9e9, 5.1e9, 101)
    np.testing.assert_array_equal(world.chain_s21(f, -100.0), world.feedline_s21(f))
    world.paramp.set_pump(frequency_hz=10e9, power_dbm=-20.5, on=True)
    assert world.paramp.peak_gain() == 1.0  # no paramp installed: pumping does nothing

    jpa = World(JPA)
    assert jpa.amplifiers == [jpa.paramp]
    np.testing.assert_array_equal(jpa.paramp.s21(f, -100.0), np.ones(f.size))  # pump off: passes
    jpa.paramp.set_pump(frequency_hz=10e9, power_dbm=-20.5, on=True)
    ratio = jpa.chain_s21(f, -150.0) / jpa.feedline_s21(f)
    np.testing.assert_allclose(np.abs(ratio) ** 2, jpa.paramp.gain(f), rtol=1e-12)


def test_flux_tuning_threshold_gain_and_gain_bandwidth_product():
    pa = World(JPA).paramp
    c = pa.config
    assert pa.resonance_hz() == c.f_max_hz
    pa.set_flux_current(1 / 3 / c.flux_quanta_per_amp)  # Φ = Φ0/3: |cos| = 1/2
    assert pa.resonance_hz() == pytest.approx(c.f_max_hz * math.sqrt(0.5), rel=1e-12)
    f0 = pa.resonance_hz()
    # on resonance: G0 = 1/(1 - P/P_th)^2 with P = P_source - line attenuation
    pa.set_pump(frequency_hz=2 * f0, power_dbm=c.pump_threshold_dbm + c.pump_attenuation_db + 10 * math.log10(0.9),
                on=True)
    assert pa.peak_gain() == pytest.approx(100.0, rel=1e-9)
    assert pa.center_hz() == f0
    assert math.sqrt(pa.peak_gain()) * pa.lorentz_width_hz() == pytest.approx(c.linewidth_hz, rel=1e-12)
    # the -3 dB full width of the profile, found numerically, is the closed form bandwidth_hz()
    upper = brentq(lambda f: 10 * math.log10(pa.small_signal_gain(f) / 100.0) + 10 * math.log10(2),
                   f0, f0 + 10 * pa.lorentz_width_hz())
    assert 2 * (upper - f0) == pytest.approx(pa.bandwidth_hz(), rel=1e-9)
    # detuning the pump by 2δ = κ doubles the threshold: the ratio falls from 0.9 to 0.45
    pa.set_pump(frequency_hz=2 * f0 + c.linewidth_hz)
    assert pa.peak_gain() == pytest.approx(1 / (1 - 0.45) ** 2, rel=1e-9)
    # above threshold the gain is capped at max_gain_db
    pa.set_pump(frequency_hz=2 * f0, power_dbm=c.pump_threshold_dbm + c.pump_attenuation_db + 3)
    assert 10 * math.log10(pa.peak_gain()) == pytest.approx(c.max_gain_db, abs=1e-9)


def test_compression_point_is_where_the_gain_falls_by_1_db():
    pa = World(JPA).paramp
    pa.set_pump(frequency_hz=14e9, power_dbm=-20.5, on=True)
    fc = pa.center_hz()
    g_small = float(pa.gain_db(fc))
    p1 = brentq(lambda p: float(pa.gain_db(fc, p)) - (g_small - 1.0), -160, -40)
    assert pa.p1db_dbm() == pytest.approx(p1, abs=1e-6)
    # P1dB ≈ P_sat − 10 log10 G − 5.87 dB at high gain
    assert pa.p1db_dbm() == pytest.approx(pa.config.saturation_power_dbm - g_small - 5.87, abs=0.25)
    # more gain compresses earlier
    pa.set_pump(power_dbm=-20.2)
    assert pa.gain_db(fc) > g_small and pa.p1db_dbm() < p1


def test_noise_model_pump_off_is_the_hemt_and_pump_on_is_near_the_quantum_limit():
    pa = World(JPA).paramp
    c = pa.config
    f = 7e9
    assert float(pa.noise_temperature_k(f)) == c.hemt_noise_k  # pump off: the HEMT alone
    pa.set_pump(frequency_hz=2 * f, power_dbm=-20.5, on=True)
    g = float(pa.small_signal_gain(f))
    assert float(pa.added_noise_k(f)) == pytest.approx(c.t_added_k * (1 - 1 / g))
    assert float(pa.noise_temperature_k(f)) == pytest.approx(c.t_added_k * (1 - 1 / g) + c.hemt_noise_k / g)
    # Callen–Welton: hf/2k at T -> 0, T at T >> hf/k
    assert float(effective_temperature_k(0.0, f)) == pytest.approx(h * f / (2 * k))
    assert float(effective_temperature_k(300.0, f)) == pytest.approx(300.0, rel=1e-6)
    t_cold = effective_temperature_k(pa.load_temperature_k("cold"), f)
    assert pa.snr_improvement(f) == pytest.approx((t_cold + c.hemt_noise_k) / (t_cold + pa.noise_temperature_k(f)))


def test_twpa_gain_grows_with_pump_power_without_flux_dependence():
    pa = World({"paramp": {"enabled": True, "kind": "twpa", "wave_mixing": 4}}).paramp
    c = pa.config
    pa.set_pump(frequency_hz=6e9, power_dbm=c.pump_threshold_dbm + c.pump_attenuation_db, on=True)
    assert 10 * math.log10(pa.peak_gain()) == pytest.approx(c.twpa_gain_db_at_threshold, abs=1e-9)
    g = pa.peak_gain()
    pa.set_flux_current(0.3e-3)
    assert pa.peak_gain() == g and pa.resonance_hz() == c.f_max_hz
    assert pa.bandwidth_hz() > 2e9


def test_bad_paramp_config_names_the_key():
    with pytest.raises(ValueError, match=r"world.paramp.linewidth_hz.*1.0e\+9"):
        World({"paramp": {"linewidth_hz": "100e6"}})
    with pytest.raises(ValueError, match="world.paramp.kind"):
        World({"paramp": {"kind": "maser"}})


# -- SCPI machinery -----------------------------------------------------------------------------

def test_scpi_headers_match_short_and_long_forms_optional_nodes_and_suffixes():
    cs = CommandTree()
    cs.add("[SOURce]:FREQuency[:CW]", query=lambda s, a: "f")
    cs.add(":READ:SANalyzer#", query=lambda s, a: f"trace{s[0]}")
    for header in ("SOUR:FREQ?", ":source:frequency:cw?", "FREQ?", "Freq:CW?"):
        handler, suffixes = cs.lookup(header)
        assert handler(suffixes, "") == "f"
    handler, suffixes = cs.lookup(":READ:SAN1?")
    assert handler(suffixes, "") == "trace1"
    for bad in ("SOUR:FRE?", "SOUR:FREQ", "SOURCE:FREQUENCYX?", "READ:SAN?X"):
        with pytest.raises(Exception, match="-113"):
            cs.lookup(bad)
    assert split_program('*CLS;:PROG:REP 0;LOAD "a;b"') == ["*CLS", ":PROG:REP 0", 'LOAD "a;b"']


def test_scpi_suffixes_per_node_with_defaults_and_words_scoped_to_their_parent():
    cs = CommandTree()
    cs.add("[SENSe#]:CORRection:EDELay#[:TIME]", query=lambda s, a: f"edel{s}")
    cs.add("[SENSe]:ROSCillator", query=lambda s, a: "rosc")
    cs.add("STATus:OPERation", query=lambda s, a: "status")
    cs.add("OUTPut:STATe", query=lambda s, a: "state")  # STATe and STATus: both STAT, under other parents
    for header, expected in (("SENS1:CORR:EDEL2?", "edel(1, 2)"), ("CORR:EDEL3:TIME?", "edel(1, 3)"),
                             ("sense4:correction:edelay?", "edel(4, 1)"), ("ROSC?", "rosc"),
                             ("STAT:OPER?", "status"), ("OUTP:STATE?", "state")):
        handler, suffixes = cs.lookup(header)
        assert handler(suffixes, "") == expected, header
    for bad in ("SENS2:ROSC?", "CORR2:EDEL?", "STATE:OPER?", "OUTP:STATUS?"):  # no '#' there / wrong parent
        with pytest.raises(Exception, match="-113"):
            cs.lookup(bad)
    with pytest.raises(ValueError, match="STATUS"):
        cs.add("OUTPut:STATus", query=lambda s, a: "clash")  # STAT under OUTP is STATe already
    with pytest.raises(ValueError, match="query="):
        cs.add("OUTPut:STATe?", query=lambda s, a: "")


def test_a_failing_command_ends_the_program_message_but_earlier_replies_are_sent():
    face = SGSFace(World(JPA))
    assert face.handle(":SOUR:FREQ 6e9;:SOUR:FREQ?;:SOUR:BOGUS?;:SOUR:POW -20") == "6000000000.0"
    assert face.values["power"] == -30.0  # the command after the failing one did not run
    assert face.handle("SYST:ERR?").startswith("-113") and face.handle("SYST:ERR?") == '0,"No error"'
    assert face.handle(":SOUR:POW 99;:SOUR:POW?") is None  # refused set: the query after it is not run
    assert face.handle("SYST:ERR?").startswith("-222")


def test_compound_commands_relative_paths_errors_and_command_log():
    face = SGSFace(World(JPA))
    assert face.handle(":SOUR:FREQ 5e9;POW -12;:OUTP:STAT ON;:SOUR:FREQ?;POW?") == "5000000000.0;-12.0"
    assert face.values["output"] is True
    assert face.handle("SOUR:FREQ 99e9") is None  # out of range: refused, queued
    assert face.handle("SYST:ERR?").startswith("-222")
    assert face.values["frequency"] == 5e9
    assert face.handle("SOUR:BOGUS?") is None and face.handle("SYST:ERR?").startswith("-113")
    assert face.handle("SYST:ERR?") == '0,"No error"'
    assert face.received(r"^SOUR:FREQ 99e9$") == ["SOUR:FREQ 99e9"]


# -- pump sources --------------------------------------------------------------------------------

def test_sgs100a_driver_sets_the_paramp_pump():
    world = World(JPA)
    with SGSFace(world) as face:
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
    with N51x1Face(world, role="none") as face:
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
    with N51x1Face(world, options="506") as face:
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
    with GS200Face(world) as face:
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
    with N9030BFace(world) as face:
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
    with NoiseSourceSwitch(world) as face:
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


def test_scpi_face_base_is_abstract_enough_for_a_new_instrument():
    """A face built on ScpiFace gets the common commands and the error queue."""
    face = ScpiFace(World())
    assert face.handle("*IDN?") == ScpiFace.idn and face.handle("*OPC?") == "1"
    assert face.handle("*IDN?;*OPC?") == f"{ScpiFace.idn};1"
