"""The simulated VNAs (Keysight PNA, R&S ZNB) driven by the real QCoDeS drivers over pyvisa-py TCP."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from pyvisa.util import from_ieee_block

from cryodaq.instruments.rs_znb import RohdeSchwarzZNBSocket, znb_socket_resource
from sim_instruments.faces.keysight_pna import KeysightPnaFace
from sim_instruments.faces.registry import FACES
from sim_instruments.faces.rs_znb import RohdeSchwarzZnbFace
from sim_instruments.faces.vna_settings import round_up_bandwidth
from sim_instruments.servers.launcher import serve
from sim_instruments.world.vna import VnaFrontEnd
from sim_instruments.world.world import World

keysight = pytest.importorskip("qcodes.instrument_drivers.Keysight")
rohde = pytest.importorskip("qcodes.instrument_drivers.rohde_schwarz")


_names = itertools.count()


FRONTEND = VnaFrontEnd()


def _address(face) -> str:
    return f"TCPIP0::127.0.0.1::{face.port}::SOCKET"


def expected_s21(world: World, freqs: np.ndarray, source_dbm: float, fe: VnaFrontEnd = FRONTEND) -> np.ndarray:
    """What the module docstring of sim_instruments.world.vna promises, written out independently."""
    gain = 10 ** ((fe.output_gain_db - fe.line_attenuation_db) / 20)
    background = np.exp(1j * (fe.phase_offset_rad - 2 * np.pi * freqs * fe.cable_delay_s))
    return gain * background * world.chain_s21(freqs, source_dbm - fe.line_attenuation_db)


def noise_sigma(source_dbm: float, ifbw_hz: float, n_avg: int = 1, fe: VnaFrontEnd = FRONTEND) -> float:
    k_b = 1.380649e-23
    density = k_b * fe.noise_temperature_k * 10 ** (fe.output_gain_db / 10) + 10 ** (fe.receiver_noise_dbm_per_hz / 10) * 1e-3
    return float(np.sqrt(density * ifbw_hz / (10 ** (source_dbm / 10) * 1e-3) / n_avg))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.abs(x) ** 2)))


@pytest.fixture
def world():
    return World({}, clock=lambda: 0.0)


@pytest.fixture
def pna_face(world):
    with KeysightPnaFace(world, port=0) as face:
        yield face


@pytest.fixture
def pna(pna_face):
    inst = keysight.KeysightN5222B(f"pna_{next(_names)}", _address(pna_face), visalib="@py", timeout=3)
    yield inst
    inst.close()


@pytest.fixture
def znb_face(world):
    with RohdeSchwarzZnbFace(world, port=0) as face:
        yield face


@pytest.fixture
def znb(znb_face):
    # the exact qcodes class, given a socket resource that keeps the reply's LF (see cryodaq.instruments.rs_znb)
    inst = rohde.RohdeSchwarzZNB20(f"znb_{next(_names)}", None, resource=znb_socket_resource(_address(znb_face)),
                                   timeout=3)
    yield inst
    inst.close()


def test_if_bandwidth_rounds_up_to_the_1_1p5_2_3_5_7_series():
    assert round_up_bandwidth(1000, 1e6) == 1000
    assert round_up_bandwidth(1001, 1e6) == 1500
    assert round_up_bandwidth(4000, 1e6) == 5000
    assert round_up_bandwidth(0.2, 1e6) == 1
    assert round_up_bandwidth(5e7, 1e6) == 1e6


# -- Keysight PNA ---------------------------------------------------------------------------------

def test_pna_init_identity_power_range_and_a_clean_error_queue(pna, pna_face):
    assert pna.get_idn()["model"] == "N5222B"
    assert pna.power.vals.valid_values[0] == -95  # *OPT? lists a source-attenuator option: -95..13 dBm
    pna.snapshot(update=True)  # every get command of the driver
    assert pna.ask("SYST:ERR?") == '0,"No error"'  # nothing the driver sent was unknown
    assert [t.trace_name for t in pna.traces] == ["CH1_S11_1"]  # a preset PNA measures S11


def test_pna_stimulus_parameters_round_trip(pna):
    pna.start(5.0e9)
    pna.stop(5.002e9)
    pna.points(401)
    pna.power(-42.5)
    pna.if_bandwidth(1000)
    pna.averages(8)
    assert (pna.start(), pna.stop(), pna.points(), pna.power(), pna.if_bandwidth(), pna.averages()) == (
        5.0e9, 5.002e9, 401, -42.5, 1000.0, 8)
    assert pna.center() == 5.001e9 and pna.span() == 2e6
    pna.if_bandwidth(1234)
    assert pna.if_bandwidth() == 1500  # the instrument rounds up to an IF bandwidth it has
    assert pna.sweep_time() == pytest.approx(401 / 1500 + 1e-3)
    pna.port2.source_power(-20)
    assert pna.port2.source_power() == -20 and pna.power() == -42.5


def test_pna_trace_equals_the_world_chain_within_noise(pna, world):
    fr, _, _ = world.resonator_params()
    pna.start(fr[2] - 40e3)  # the neighbours are ~96 kHz away
    pna.stop(fr[2] + 40e3)
    pna.points(301)
    pna.power(-30)
    pna.if_bandwidth(1000)
    pna.trace("S21")
    f = pna.frequency_axis()
    z = pna.polar()
    want = expected_s21(world, f, -30)
    sigma = noise_sigma(-30, 1000)
    assert rms(z - want) == pytest.approx(sigma, rel=0.2)
    assert np.max(np.abs(z - want)) < 6 * sigma
    # the resonance dip is in the data: deepest point within a few points of fr
    assert abs(f[np.argmin(np.abs(z))] - fr[2]) < 1e3
    mag_db, phase_deg = pna.magnitude(), pna.phase()
    assert np.max(np.abs(10 ** (mag_db / 20) - np.abs(want))) < 6 * sigma
    dphi = np.angle(np.exp(1j * (np.radians(phase_deg) - np.angle(want))))
    assert np.max(np.abs(dphi)) < 6 * sigma / np.min(np.abs(want))
    assert np.allclose(pna.real() + 1j * pna.imaginary(), want, atol=6 * sigma)


def test_pna_averaging_and_bandwidth_set_the_noise(pna, world):
    pna.start(4.5e9)  # away from the resonators: a flat background
    pna.stop(4.6e9)
    pna.points(801)
    pna.power(-50)
    pna.trace("S21")
    f = pna.frequency_axis()
    want = expected_s21(world, f, -50)
    pna.if_bandwidth(10e3)
    wide = rms(pna.polar() - want)
    pna.if_bandwidth(100)
    narrow = rms(pna.polar() - want)
    assert wide / narrow == pytest.approx(10, rel=0.15)
    pna.averages(16)
    pna.averages_on()
    averaged = rms(pna.polar() - want)  # the driver group-triggers 16 sweeps
    assert narrow / averaged == pytest.approx(4, rel=0.15)
    assert pna.sweep_mode() == "CONT"  # the driver restores the mode it found


def test_pna_rf_off_gives_noise_only_and_binary_formats(pna, world):
    pna.start(4.5e9)
    pna.stop(4.6e9)
    pna.points(201)
    pna.power(-30)
    pna.if_bandwidth(1000)
    pna.trace("S21")
    pna.output(False)
    assert rms(pna.polar()) == pytest.approx(noise_sigma(-30, 1000), rel=0.25)
    pna.output(True)
    pna.sweep_mode("SING")
    assert pna.sweep_mode() == "HOLD"
    pna.write("CALC:FORM MLIN")
    h = pna.visa_handle
    h.write("FORM REAL,64")
    h.write("FORM:BORD SWAP")
    swapped = np.array(h.query_binary_values("CALC:DATA? FDATA", datatype="d", is_big_endian=False))
    h.write("FORM ASCii")
    ascii_ = np.array(h.query_ascii_values("CALC:DATA? FDATA"))
    assert swapped.shape == (201,) and np.array_equal(swapped, ascii_)  # HOLD: the same stored sweep
    sdata = np.array(h.query_ascii_values("CALC:DATA? SDATA"))
    assert np.allclose(np.abs(sdata[0::2] + 1j * sdata[1::2]), ascii_)
    h.write("FORM REAL,32")
    h.write("FORM:BORD NORM")
    raw = h.query_binary_values("CALC:DATA? FDATA", datatype="f", is_big_endian=True)
    assert np.allclose(raw, ascii_, rtol=1e-6)
    assert from_ieee_block(b"#18" + np.array([1.5, 2.5], ">f4").tobytes(), "f", True) == [1.5, 2.5]


def test_pna_electrical_delay_removes_the_cable_phase(pna, world):
    pna.start(4.5e9)
    pna.stop(4.6e9)
    pna.points(201)
    pna.power(-20)
    pna.trace("S21")
    total_delay = FRONTEND.cable_delay_s + world.config.feedline.cable_delay_s
    pna.electrical_delay(total_delay)
    assert pna.electrical_delay() == pytest.approx(total_delay)
    phase = np.unwrap(np.radians(pna.phase()))
    assert np.ptp(phase) < 0.01  # flat once the delay is removed (it was 2π·8 rad)


def test_pna_manual_trigger_and_real_time_sweeps(world):
    with KeysightPnaFace(world, port=0, sweep_time_scale=1.0, model="N5230C", options="") as face:
        pna = keysight.KeysightN5230C(f"pna_{next(_names)}", _address(face), visalib="@py", timeout=3)
        try:
            assert pna.power.vals.valid_values == (-90, 13)
            pna.points(201)
            pna.if_bandwidth(1000)  # 0.2 s per sweep
            t0 = time.monotonic()
            assert pna.polar().shape == (201,)  # the driver polls SENS:SWE:MODE? until HOLD
            assert time.monotonic() - t0 >= 0.2
            pna.trigger_source("MAN")
            pna.sweep_mode("SING")
            time.sleep(0.3)
            assert pna.sweep_mode() == "SING"  # waiting for its trigger
            pna.write("INIT:IMM")
            time.sleep(0.3)
            assert pna.sweep_mode() == "HOLD"
        finally:
            pna.close()


# -- R&S ZNB --------------------------------------------------------------------------------------

def test_znb_init_creates_the_s_parameter_channels_and_answers_everything(znb, znb_face):
    assert znb.get_idn()["model"] == "ZNB20-2Port"
    assert [c.short_name for c in znb.channels] == ["S11", "S12", "S21", "S22"]
    assert [znb_face.traces[n].parameter for n in ("Trc1", "Trc2", "Trc3", "Trc4")] == ["S11", "S12", "S21", "S22"]
    assert znb.rf_power() is False  # the driver switches RF off after its reset
    znb.snapshot(update=True)
    assert znb.ask("SYST:ERR?").strip() == '0,"No error"'


def test_znb_channel_parameters_round_trip(znb):
    ch = znb.S21
    ch.start(5.0e9)
    ch.stop(5.002e9)
    ch.npts(401)
    ch.power(-35.25)
    ch.bandwidth(1500)
    ch.avg(4)
    assert (ch.start(), ch.stop(), ch.npts(), ch.power(), ch.bandwidth(), ch.avg()) == (
        5.0e9, 5.002e9, 401, -35.25, 1500, 4)
    assert ch.center() == 5.001e9 and ch.span() == 2e6
    assert ch.vna_parameter() == "S21"
    assert ch.trace_mag_phase.shapes == ((401,), (401,))
    ch.format("Phase")
    assert ch.format() == "Phase"
    with pytest.raises(ValueError):
        ch.bandwidth(1234)  # the driver only offers the instrument's values
    assert ch.sweep_time() == pytest.approx(401 / 1500 + 1e-3)


def test_znb_trace_equals_the_world_chain_within_noise(znb, world):
    znb.rf_on()
    ch = znb.S21
    fr, _, _ = world.resonator_params()
    ch.start(fr[5] - 40e3)
    ch.stop(fr[5] + 40e3)
    ch.npts(301)
    ch.power(-30)
    ch.bandwidth(1000)
    ch.avg(1)
    f = np.linspace(ch.start(), ch.stop(), ch.npts())
    magnitude, phase = ch.trace_mag_phase()
    z = magnitude * np.exp(1j * phase)
    want = expected_s21(world, f, -30)
    sigma = noise_sigma(-30, 1000)
    assert rms(z - want) == pytest.approx(sigma, rel=0.2)
    assert abs(f[np.argmin(magnitude)] - fr[5]) < 1e3
    db, _ = ch.trace_db_phase()
    assert np.max(np.abs(10 ** (db / 20) - np.abs(want))) < 6 * sigma
    fdat_db = ch.trace()  # FDAT in the trace's MLOG format
    assert np.max(np.abs(10 ** (fdat_db / 20) - np.abs(want))) < 6 * sigma
    ch.avg(16)  # the driver sends 16 INIT:IMM; *WAI after SENS:AVER:CLE
    averaged = ch.trace_mag_phase()
    assert rms(averaged[0] * np.exp(1j * averaged[1]) - want) == pytest.approx(sigma / 4, rel=0.2)


def test_znb_socket_driver_class_and_the_plain_driver_quirk(znb_face):
    addr = _address(znb_face)
    inst = RohdeSchwarzZNBSocket(f"znb_{next(_names)}", addr, timeout=3, init_s_params=False)
    try:
        assert len(inst.channels) == 0
        inst.add_channel("S21")
        inst.rf_on()
        assert inst.rf_power() is True and inst.S21.format() == "dB"
    finally:
        inst.close()
    # The plain driver over a socket with terminator "\n" loses the LF its value maps expect.
    plain = rohde.RohdeSchwarzZNB20(f"znb_{next(_names)}", addr, visalib="@py", timeout=3, terminator="\n",
                                    init_s_params=False)
    try:
        with pytest.raises(KeyError):
            plain.rf_power()
    finally:
        plain.close()


def test_znb_electrical_delay_auto_and_rf_off(znb, world):
    ch = znb.S21
    ch.start(4.5e9)
    ch.stop(4.6e9)
    ch.npts(201)
    ch.power(-20)
    znb.rf_on()
    ch.set_electrical_delay_auto()
    total_delay = FRONTEND.cable_delay_s + world.config.feedline.cable_delay_s
    assert ch.electrical_delay() == pytest.approx(total_delay, rel=1e-3)
    _, phase = ch.trace_mag_phase()
    assert np.ptp(np.unwrap(phase)) < 0.01
    znb.rf_off()
    magnitude, _ = ch.trace_mag_phase()
    assert np.max(magnitude) < 10 * noise_sigma(-20, ch.bandwidth())


def test_znb_4_port_model(world):
    with RohdeSchwarzZnbFace(world, port=0, model="ZNB8", ports=4) as face:
        inst = RohdeSchwarzZNBSocket(f"znb_{next(_names)}", _address(face), timeout=3)
        try:
            assert len(inst.channels) == 16 and inst.S43.vna_parameter() == "S43"
            assert inst.S21.power.vals.valid_values == (-80, 25)
        finally:
            inst.close()


# -- launcher -------------------------------------------------------------------------------------

def test_launcher_serves_both_faces_with_options():
    assert FACES["keysight_pna"] is KeysightPnaFace and FACES["rs_znb"] is RohdeSchwarzZnbFace
    cfg = {"world": {"seed": 3}, "instruments": {
        "vna": {"face": "keysight_pna", "address": "TCPIP0::127.0.0.1::0::SOCKET", "line_attenuation_db": 40},
        "znb": {"face": "rs_znb", "address": "TCPIP0::127.0.0.1::0::SOCKET", "model": "ZNB8"},
    }}
    with serve(cfg) as sim:
        assert sim.faces["vna"].frontend.line_attenuation_db == 40
        assert sim.faces["znb"].handle("*IDN?").startswith("Rohde-Schwarz,ZNB8-2Port")
    bad = {"instruments": {"vna": {"face": "keysight_pna", "address": "TCPIP0::127.0.0.1::0::SOCKET",
                                   "line_atten_db": 40}}}
    with pytest.raises(ValueError, match="line_atten_db"):
        serve(bad)
